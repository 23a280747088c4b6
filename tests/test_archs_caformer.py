"""CaFormer-S18 (endopat.archs.caformer): the features equal timm's ``caformer_s18`` on the same
weights in the authors' layout (read through timm's own key conversion), for both activations.
SurgeNet's teacher wrapping loads in test_encoder_weights.py; the U-Net's two sizes and the
refusal of the other activation's files are in test_archs.py."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from endopat.config import ModelConfig
from endopat.encoder_weights import random_published
from endopat.networks import build_unet

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / ".reference"  # timm, installed there with --no-deps by `make reference`


def perturbed(arch: str, seed: int) -> dict[str, torch.Tensor]:
    """A stand-in release file whose norm weights, residual scales and StarReLU pairs are moved off
    their initial ones and zeros (so a swapped or ignored one shows)."""
    g = torch.Generator().manual_seed(seed)
    return {k: v + 0.1 * torch.randn(v.shape, generator=g) if v.dim() == 1 else v
            for k, v in random_published(arch, seed).items()}


@pytest.mark.parametrize("arch, act", [("caformer_s18", "starrelu"), ("caformer_s18_relu", "relu")])
def test_the_encoder_gives_the_features_of_timms_caformer_on_the_same_published_weights(tmp_path, arch, act):
    if not (REFERENCE / "timm").is_dir():
        pytest.skip("timm is not installed in .reference/ (make reference)")
    state = perturbed(arch, seed=1)
    ours = build_unet(ModelConfig(arch=arch, image_size=(64, 64)), in_channels=3).encoder.eval()
    ours.load_state_dict({k: v for k, v in state.items() if not k.startswith(("head.", "norm."))}, strict=True)
    x = torch.randn(2, 3, 64, 96)
    torch.save({k: v for k, v in state.items() if not k.startswith("head.")}, tmp_path / "state.pt")
    torch.save(x, tmp_path / "x.pt")
    subprocess.run([sys.executable, str(ROOT / "tests" / "reference" / "timm_caformer.py"), tmp_path / "state.pt",
                    tmp_path / "x.pt", tmp_path / "out.pt", act], check=True,
                   env={**os.environ, "PYTHONPATH": str(REFERENCE)})
    want = torch.load(tmp_path / "out.pt", weights_only=True)
    with torch.no_grad():
        got = ours(x)
    assert [g.shape[1:] for g in got] == [(64, 16, 24), (128, 8, 12), (320, 4, 6), (512, 2, 3)]
    for g, w in zip(got, want):
        assert g.shape == w.shape and torch.allclose(g, w, atol=1e-4)
