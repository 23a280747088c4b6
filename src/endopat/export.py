"""ONNX export of a segmenter, and an onnxruntime-backed segmenter with the same interface.

The exported graph maps the normalised network input (L, or L/a/b, see :mod:`endopat.colour`) to
the instrument probability ``(B, 1, H, W)``; batch, height and width are dynamic (height and width
must stay multiples of 16). Everything needed to preprocess — input mode, training size,
threshold, endopat version — is stored in the model's metadata, so an ``.onnx`` file is as
self-describing as a checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from endopat.errors import EndopatError
from endopat.io import atomic_path


class _Probability(torch.nn.Module):
    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.unet(x), dim=1)[:, 1:2]


def export_onnx(checkpoint: str | Path, out: str | Path, opset: int = 17) -> Path:
    import onnx

    from endopat.evaluate import Segmenter

    seg = Segmenter(checkpoint)
    h, w = seg.cfg.image_size
    example = torch.zeros(1, seg.cfg.in_channels, h, w)
    out = Path(out)
    with atomic_path(out) as tmp:
        torch.onnx.export(
            _Probability(seg.model).eval(), (example,), str(tmp), dynamo=False, opset_version=opset,
            input_names=["input"], output_names=["probability"],
            dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"},
                          "probability": {0: "batch", 2: "height", 3: "width"}},
        )
        model = onnx.load(str(tmp))
        meta = {"endopat": json.dumps({"model": seg.cfg.model_dump(mode="json"), "threshold": seg.threshold,
                                       "preprocess": seg.checkpoint["preprocess"],
                                       "endopat_version": seg.checkpoint["endopat_version"],
                                       "provenance": seg.checkpoint.get("provenance", {})}, default=str)}
        for k, v in meta.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.save(model, str(tmp))
    return out


class OnnxSegmenter:
    """Like :class:`endopat.evaluate.Segmenter`, running the exported graph with onnxruntime."""

    def __init__(self, path: str | Path, providers: list[str] | None = None):
        import onnxruntime as ort

        from endopat.config import ModelConfig

        path = Path(path)
        if not path.is_file():
            raise EndopatError(f"{path}: ONNX model not found")
        try:
            self.session = ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            raise EndopatError(f"{path}: not a loadable ONNX model ({str(err).splitlines()[0]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map.get("endopat")
        if meta is None:
            raise EndopatError(f"{path}: no endopat metadata (export it with `endopat export`)")
        info = json.loads(meta)
        self.cfg = ModelConfig.model_validate(info["model"])
        self.threshold = float(info["threshold"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (prob,) = self.session.run(["probability"], {"input": x.numpy()})
        return torch.from_numpy(prob)

    def probabilities(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Foreground probability maps at each image's own size (as the PyTorch segmenter)."""
        from endopat.evaluate import probabilities

        return probabilities(self.forward, self.cfg, images)
