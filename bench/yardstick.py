"""A plain PyTorch fine-tuning loop: the yardstick endopat's fine-tuning is measured against.

Written to be read top to bottom, independent of endopat's training code (only the U-Net class is
shared, so both train the same network). It gets what ``endopat finetune`` gets — the same input,
geometry and budget — so that a difference measures the loop, not the recipe:

* geometry: letterbox, written here again (scale to fit ``size`` keeping the aspect ratio, centre,
  pad black; masks nearest, padded background), as endopat's default ``model.fit``;
* input ``Lab`` (endopat's default) or ``L``: CIE Lab via kornia, normalised as endopat does
  (``L / 50 - 1``, ``a / 128``, ``b / 128``); the first layer takes 3 or 1 channels;
* MONAI BasicUNet, one output logit, binary cross-entropy (endopat: two logits, cross-entropy;
  the same model family, so a named difference);
* Adam lr 1e-3, batch 8, ``samples_per_epoch`` samples an epoch (the training set repeated);
* random horizontal and vertical flips, drawn once per batch (endopat: per sample);
* lr x0.1 after 10 epochs without a validation-loss gain; keep the weights of the best validation
  loss; no early stopping;
* test Dice per image at the mask's own resolution (probabilities cut from the letterbox and
  upsampled bilinearly).

Call :func:`run` (``bench/parity.py`` does) with lists of (image path, mask path) pairs.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

SIZE = (128, 128)
INPUTS = {"L": 1, "Lab": 3}  # input -> channels of the first layer


def letterbox_box(hw, size):
    """(top, left, height, width) of a ``hw`` frame scaled into ``size`` keeping its aspect."""
    (h, w), (H, W) = hw, size
    scale = min(H / h, W / w)
    nh, nw = min(H, max(1, round(h * scale))), min(W, max(1, round(w * scale)))
    return (H - nh) // 2, (W - nw) // 2, nh, nw


def letterbox(im: Image.Image, size, resample) -> np.ndarray:
    top, left, nh, nw = letterbox_box((im.height, im.width), size)
    inner = np.asarray(im.resize((nw, nh), resample))
    out = np.zeros((*size, *inner.shape[2:]), dtype=inner.dtype)
    out[top : top + nh, left : left + nw] = inner
    return out


def load(pairs, size=SIZE, input="Lab"):
    """(image, mask) paths -> normalised input tensors (N, C, H, W) and float masks (N, 1, H, W)."""
    import kornia.color

    xs, ys = [], []
    for image_path, mask_path in pairs:
        xs.append(letterbox(Image.open(image_path).convert("RGB"), size, Image.BILINEAR))
        mask = (np.asarray(Image.open(mask_path).convert("L")) > 127).astype(np.uint8) * 255
        ys.append(letterbox(Image.fromarray(mask), size, Image.NEAREST) > 127)
    rgb = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 255
    lab = kornia.color.rgb_to_lab(rgb)
    lab = torch.cat([lab[:, :1] / 50 - 1, lab[:, 1:] / 128], dim=1)
    return lab[:, : INPUTS[input]].contiguous(), torch.from_numpy(np.stack(ys)).float()[:, None]


def dice_full_resolution(model, pairs, size=SIZE, input="Lab") -> list[float]:
    """Per-image Dice of ``model`` on ``pairs``, judged at each mask's own resolution."""
    x, _ = load(pairs, size, input)
    out = []
    with torch.no_grad():
        logits = model(x)
        prob = torch.softmax(logits, 1)[:, 1:] if logits.shape[1] == 2 else torch.sigmoid(logits)
    for p, (_, mask_path) in zip(prob, pairs):
        gt = np.asarray(Image.open(mask_path).convert("L")) > 127
        top, left, nh, nw = letterbox_box(gt.shape, size)
        p = p[:, top : top + nh, left : left + nw]
        p = F.interpolate(p[None], size=gt.shape, mode="bilinear", align_corners=False)[0, 0]
        pred = p.numpy() >= 0.5
        total = pred.sum() + gt.sum()
        out.append(1.0 if total == 0 else float(2 * (pred & gt).sum() / total))
    return out


def run(train, val, test, seed=0, epochs=40, samples_per_epoch=80, batch_size=8, lr=1e-3,
        features=(16, 16, 32, 64, 128, 16), size=SIZE, input="Lab", logits=1, flips="batch") -> list[float]:
    """Train on ``train``, keep the best on ``val``, return the per-image test Dice.

    Two switches move the recipe toward endopat's, to find which difference matters:
    ``logits=2`` (two logits, softmax cross-entropy) and ``flips="sample"`` (a flip draw per sample)."""
    from monai.networks.nets import BasicUNet

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_train, y_train = load(train, size, input)
    x_val, y_val = load(val, size, input)
    model = BasicUNet(spatial_dims=2, in_channels=INPUTS[input], out_channels=logits, features=features)
    if logits == 2:  # softmax over (background, instrument): a logit difference, the instrument's sigmoid
        def loss_fn(out, y):
            return F.cross_entropy(out, y[:, 0].long())
    else:
        loss_fn = F.binary_cross_entropy_with_logits
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.1, patience=10)
    best_loss, best_state = float("inf"), None
    for epoch in range(epochs):
        model.train()
        # an epoch of samples_per_epoch draws: the training set repeated, shuffled
        repeats = -(-samples_per_epoch // len(x_train))
        order = np.concatenate([rng.permutation(len(x_train)) for _ in range(repeats)])[:samples_per_epoch]
        for start in range(0, len(order), batch_size):
            idx = torch.from_numpy(order[start : start + batch_size])
            x, y = x_train[idx], y_train[idx]
            if flips == "sample":  # a draw per sample
                for dim in (-1, -2):
                    f = torch.from_numpy(rng.random(len(x)) < 0.5).view(-1, 1, 1, 1)
                    x, y = torch.where(f, x.flip(dim), x), torch.where(f, y.flip(dim), y)
            else:
                if rng.random() < 0.5:  # one flip draw for the whole batch
                    x, y = x.flip(-1), y.flip(-1)
                if rng.random() < 0.5:
                    x, y = x.flip(-2), y.flip(-2)
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(model(x_val), y_val))
        sched.step(val_loss)
        if val_loss < best_loss:
            best_loss, best_state = val_loss, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval()
    return dice_full_resolution(model, test, size, input)
