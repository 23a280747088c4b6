"""A plain PyTorch fine-tuning loop: the yardstick endopat's fine-tuning is measured against.

Written to be read top to bottom, independent of endopat's training code (only the U-Net class is
shared, so both train the same network). The recipe (issue 10):

* images resized to 128x128 (bilinear; masks nearest), input L / 100 (CIE Lab via kornia);
* MONAI BasicUNet, widths (16, 16, 32, 64, 128, 16), one output logit, binary cross-entropy;
* Adam lr 1e-3, batch 8, ``samples_per_epoch`` samples an epoch (the training set repeated);
* random horizontal and vertical flips, drawn once per batch;
* lr x0.1 after 10 epochs without a validation-loss gain; keep the weights of the best validation
  loss; no early stopping;
* test Dice per image at the mask's own resolution (probabilities upsampled bilinearly).

Run alone: ``python bench/yardstick.py TRAIN_DIR VAL_DIR TEST_DIR`` is not offered; call
:func:`run` (``bench/parity.py`` does) with lists of (image path, mask path) pairs.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

SIZE = (128, 128)


def load(pairs, size=SIZE):
    """(image, mask) paths -> L/100 tensors (N, 1, H, W) and float masks (N, 1, H, W) at ``size``."""
    import kornia.color

    xs, ys = [], []
    for image_path, mask_path in pairs:
        rgb = Image.open(image_path).convert("RGB").resize(size[::-1], Image.BILINEAR)
        mask = Image.open(mask_path).convert("L").resize(size[::-1], Image.NEAREST)
        xs.append(np.asarray(rgb))
        ys.append(np.asarray(mask) > 127)
    rgb = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 255
    L = kornia.color.rgb_to_lab(rgb)[:, :1] / 100
    return L, torch.from_numpy(np.stack(ys)).float()[:, None]


def dice_full_resolution(model, pairs, size=SIZE) -> list[float]:
    """Per-image Dice of ``model`` on ``pairs``, judged at each mask's own resolution."""
    x, _ = load(pairs, size)
    out = []
    with torch.no_grad():
        prob = torch.sigmoid(model(x))
    for p, (_, mask_path) in zip(prob, pairs):
        gt = np.asarray(Image.open(mask_path).convert("L")) > 127
        p = F.interpolate(p[None], size=gt.shape, mode="bilinear", align_corners=False)[0, 0]
        pred = p.numpy() >= 0.5
        total = pred.sum() + gt.sum()
        out.append(1.0 if total == 0 else float(2 * (pred & gt).sum() / total))
    return out


def run(train, val, test, seed=0, epochs=40, samples_per_epoch=80, batch_size=8, lr=1e-3,
        features=(16, 16, 32, 64, 128, 16)) -> list[float]:
    """Train on ``train``, keep the best on ``val``, return the per-image test Dice."""
    from monai.networks.nets import BasicUNet

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_train, y_train = load(train)
    x_val, y_val = load(val)
    model = BasicUNet(spatial_dims=2, in_channels=1, out_channels=1, features=features)
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
            if rng.random() < 0.5:  # one flip draw for the whole batch
                x, y = x.flip(-1), y.flip(-1)
            if rng.random() < 0.5:
                x, y = x.flip(-2), y.flip(-2)
            loss = F.binary_cross_entropy_with_logits(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val_loss = float(F.binary_cross_entropy_with_logits(model(x_val), y_val))
        sched.step(val_loss)
        if val_loss < best_loss:
            best_loss, best_state = val_loss, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval()
    return dice_full_resolution(model, test)
