"""One rule for putting a frame of any size into the network's ``image_size``, and back.

``letterbox`` (the default): scale the frame by ``min(H/h, W/w)`` so it fits inside the network's
``(H, W)`` keeping its aspect ratio, centre it, and pad the rest (images black — the colour of the
endoscope's own border — masks background). Nothing is cropped and nothing is squashed: a
1920x1080 instrument keeps its proportions in a 256x448 (or 256x256) training image. Predictions
are read back from the same box and resized (bilinear probabilities, then threshold) to the frame's
full resolution, so every pixel of the input gets a label.

``stretch``: resize to ``(H, W)`` ignoring the aspect ratio (the common practice of
square-resizing pipelines; kept for checkpoints and studies that want it).

Images are resized bilinearly (PIL), masks with nearest neighbour. The same functions serve frame
stores (:mod:`endopat.data.frames`), labeled pairs (:mod:`endopat.data.labeled`), evaluation and
prediction (:func:`endopat.evaluate.probabilities`); the rule is stored in each checkpoint's
``model.fit`` and in exported ONNX metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

FITS = ("letterbox", "stretch")  # every fit rule: the one list config, CLI and docs read
Fit = Literal[FITS]


@dataclass(frozen=True)
class Box:
    """Where a frame's content lies inside the network image: rows ``top:top+height``, columns
    ``left:left+width``."""

    top: int
    left: int
    height: int
    width: int


def content_box(src_hw: tuple[int, int], dst_hw: tuple[int, int], fit: Fit = "letterbox") -> Box:
    """The box a ``src_hw`` frame occupies in a ``dst_hw`` network image under ``fit``."""
    (h, w), (H, W) = src_hw, dst_hw
    if fit == "stretch":
        return Box(0, 0, H, W)
    scale = min(H / h, W / w)
    nh, nw = min(H, max(1, round(h * scale))), min(W, max(1, round(w * scale)))
    return Box((H - nh) // 2, (W - nw) // 2, nh, nw)


def _resize(array: np.ndarray, hw: tuple[int, int], nearest: bool) -> np.ndarray:
    if array.shape[:2] == tuple(hw):
        return array
    im = Image.fromarray(array).resize((hw[1], hw[0]), Image.NEAREST if nearest else Image.BILINEAR)
    return np.asarray(im)


def fit_image(image: np.ndarray, size: tuple[int, int], fit: Fit = "letterbox") -> np.ndarray:
    """RGB uint8 ``(h, w, 3)`` -> ``(H, W, 3)`` under ``fit`` (bilinear; letterbox pads black)."""
    box = content_box(image.shape[:2], size, fit)
    inner = _resize(np.ascontiguousarray(image), (box.height, box.width), nearest=False)
    if (box.height, box.width) == tuple(size):
        return inner
    out = np.zeros((*size, image.shape[2]), dtype=image.dtype)
    out[box.top : box.top + box.height, box.left : box.left + box.width] = inner
    return out


def fit_images_on(images, size: tuple[int, int], fit: Fit, device):
    """RGB uint8 ``(h, w, 3)`` arrays -> ``(B, H, W, 3)`` uint8 on ``device``: :func:`fit_image` done
    there (bilinear with antialiasing, as PIL's, rounded; within a few grey levels of it), so that
    a GPU segmenter uploads frames as they are and resizes them itself."""
    import torch  # only here: the rest of the geometry (frame stores, readers, import) is numpy alone

    out = torch.zeros(len(images), *size, 3, dtype=torch.uint8, device=device)
    for i, image in enumerate(images):
        box = content_box(image.shape[:2], size, fit)
        x = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None].float()
        if tuple(x.shape[-2:]) != (box.height, box.width):
            x = torch.nn.functional.interpolate(x, size=(box.height, box.width), mode="bilinear",
                                                align_corners=False, antialias=True)
        out[i, box.top : box.top + box.height, box.left : box.left + box.width] = \
            x[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
    return out


def fit_mask(mask: np.ndarray, size: tuple[int, int], fit: Fit = "letterbox") -> np.ndarray:
    """A mask ``(h, w)`` -> ``(H, W)`` under ``fit`` (nearest; letterbox pads background): boolean
    stays boolean, class ids (uint8) stay ids."""
    box = content_box(mask.shape, size, fit)
    if mask.dtype == bool:
        inner = _resize(mask.astype(np.uint8) * 255, (box.height, box.width), nearest=True) > 127
    else:
        inner = _resize(np.ascontiguousarray(mask, dtype=np.uint8), (box.height, box.width), nearest=True)
    if (box.height, box.width) == tuple(size):
        return inner
    out = np.zeros(size, dtype=inner.dtype)
    out[box.top : box.top + box.height, box.left : box.left + box.width] = inner
    return out


def restore(prob, src_hw: tuple[int, int], fit: Fit = "letterbox"):
    """A network-sized map ``(C, H, W)`` (torch tensor) -> ``(C, h, w)`` at the frame's own size:
    the content box is cut out and resized bilinearly."""
    import torch  # only here: the rest of the geometry (frame stores, readers, import) is numpy alone

    box = content_box(src_hw, tuple(prob.shape[-2:]), fit)
    inner = prob[..., box.top : box.top + box.height, box.left : box.left + box.width]
    if tuple(inner.shape[-2:]) == tuple(src_hw):
        return inner
    return torch.nn.functional.interpolate(inner[None], size=tuple(src_hw), mode="bilinear",
                                           align_corners=False)[0]


def aspect_size(src_hw: tuple[int, int], short: int = 256, multiple: int = 16) -> tuple[int, int]:
    """A network size with the source's aspect ratio: the short side ``short``, the long side scaled
    and rounded to a multiple of ``multiple`` (1920x1080 -> 256x448; 640x480 -> 256x336)."""
    h, w = src_hw
    if h <= w:
        return short, max(multiple, round(w * short / h / multiple) * multiple)
    return max(multiple, round(h * short / w / multiple) * multiple), short
