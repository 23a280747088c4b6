"""CaFormer-S18 (endopat.archs.caformer): the authors' key layout loads strictly (SurgeNet's teacher
wrapping too), the features equal timm's ``caformer_s18`` on the same weights (read through timm's
own key conversion), the StarReLU and ReLU files each refuse the other's architecture, and the
U-Net runs at two sizes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from endopat.config import ModelConfig
from endopat.encoder_weights import load_encoder_weights, random_published
from endopat.errors import EndopatError
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


def test_a_surgenet_teacher_file_loads_strictly_onto_the_relu_caformer(tmp_path):
    state = random_published("caformer_s18_relu", seed=2)
    torch.save({"teacher": {f"backbone.{k}": v for k, v in state.items()}}, tmp_path / "SurgeNetXL_teacher.pth")
    cfg = ModelConfig(arch="caformer_s18_relu", image_size=(64, 64))
    report = load_encoder_weights(build_unet(cfg), cfg, tmp_path / "SurgeNetXL_teacher.pth")
    assert report.layout == "metaformer" and not report.fresh
    assert report.unused == ["head.fc1.weight", "head.fc2.weight", "norm.bias", "norm.weight"]


@pytest.mark.parametrize("file_arch, arch, message", [
    ("caformer_s18", "caformer_s18_relu", "have no place in caformer_s18_relu"),
    ("caformer_s18_relu", "caformer_s18", "missing")])
def test_a_starrelu_file_and_a_relu_file_each_refuse_the_other_caformer(tmp_path, file_arch, arch, message):
    torch.save(random_published(file_arch), tmp_path / "w.pth")
    cfg = ModelConfig(arch=arch, image_size=(64, 64))
    with pytest.raises(EndopatError, match=f"w.pth: not {arch} encoder weights.*{message}"):
        load_encoder_weights(build_unet(cfg), cfg, tmp_path / "w.pth")
