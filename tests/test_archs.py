"""The registries are the one place to add an architecture or a task: a toy one of each, registered
here, pretrains and fine-tunes through the same code as the shipped ones."""

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import BaseModel
from torch import nn

from endopat.archs import ARCHS, Arch
from endopat.config import FinetuneConfig, ModelConfig
from endopat.finetune import finetune
from endopat.pretrain import pretrain
from endopat.tasks import TASKS, Task
from endopat.tasks.config import PretrainConfig


class ToyNet(nn.Module):
    """Two convolutions down, one up: enough of a U-Net to be one."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 8, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(8)
        self.down = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.head = nn.Conv2d(8, out_channels, 1)

    def forward(self, x):
        return self.head(self.up(torch.relu(self.down(torch.relu(self.norm(self.stem(x)))))))


def _levels(net, x):
    a = torch.relu(net.norm(net.stem(x)))
    return [a, net.down(a)]


TOY_ARCH = Arch("toy", lambda cfg, i, o: ToyNet(i, o), _levels, lambda cfg: 16, "stem.weight", "norm",
                {"encoder": ("stem", "norm", "down"), "decoder": ("up", "head"), "last": ("head",)}, 2)


class ToyTask(Task):
    """Predict the L channel from the frame, blurred: a pretext task in twenty lines."""

    name = "toy"

    class Settings(BaseModel):
        lr: float = 1e-3

    fields = ["loss"]

    def __init__(self, cfg, run, store):
        super().__init__(cfg, run, store)
        self.net = self.build_unet(out_channels=2)
        self.model, self.opt = run.setup("toy", self.net, torch.optim.Adam(self.net.parameters(), lr=self.settings.lr))

    def _input(self, frames):
        from endopat.networks import prepare_input

        return prepare_input(frames.to(self.run.device), self.cfg.model.input)

    def step(self, frames):
        x = self._input(frames)
        loss = torch.nn.functional.l1_loss(self.model(x)[:, :1], torch.nn.functional.avg_pool2d(x[:, :1], 3, 1, 1))
        self.opt.zero_grad()
        self.run.fabric.backward(loss)
        self.opt.step()
        return {"loss": loss.detach()}

    def samples(self, frames, path: Path):
        from endopat.io import write_png

        write_png(path, np.zeros((8, 8, 3), np.uint8))

    def unet(self):
        return self.net


@pytest.fixture
def data(tmp_path):
    from endopat.data.readers import open_labeled
    from endopat.data.synth import SynthSpec, generate

    generate(tmp_path / "d", SynthSpec(size=48, videos=3, unlabeled_videos=1, frames=6, label_every=2))
    return tmp_path / "d" / "unlabeled", open_labeled(tmp_path / "d" / "labeled")


@pytest.mark.parametrize("arch, task", [("toy", "recolor"), ("basic_unet", "toy"), ("toy", "toy")])
def test_a_toy_architecture_and_a_toy_task_registered_in_one_line_pretrain_and_fine_tune(
        monkeypatch, tmp_path, data, arch, task):
    monkeypatch.setitem(ARCHS, "toy", TOY_ARCH)
    monkeypatch.setitem(TASKS, "toy", ToyTask)
    unlabeled, parts = data
    model = ModelConfig(arch=arch, features=(4, 4, 8, 8, 16, 4), image_size=(32, 32))
    pre = pretrain(unlabeled, tmp_path / "pre", PretrainConfig(task=task, steps=2, batch_size=2, model=model),
                   progress=False, log=lambda *a: None)
    best = finetune(parts["train"], parts["val"], tmp_path / "ft", FinetuneConfig(epochs=1, min_samples_per_epoch=4,
                                                                               model=model),
                    init=pre, progress=False, log=lambda *a: None)
    state = torch.load(best, weights_only=True)
    assert state["model"]["arch"] == arch and (tmp_path / "ft" / "init_report.txt").is_file()


@pytest.mark.parametrize("arch, input_mode, size", [
    ("vit_s16_dinov3", "L", (64, 112)), ("vit_s16_dinov3", "Lab", (64, 112)),
    ("pvt_v2_b2", "L", (64, 96)), ("pvt_v2_b2", "Lab", (64, 96)),
    ("caformer_s18", "L", (64, 96)), ("caformer_s18_relu", "Lab", (96, 64))])
def test_a_foundation_unet_segments_at_its_training_size_and_another(arch, input_mode, size):
    from endopat.config import ModelConfig
    from endopat.networks import build_unet

    net = build_unet(ModelConfig(arch=arch, image_size=(64, 64), input=input_mode)).eval()
    for hw in ((64, 64), size):
        with torch.no_grad():
            assert net(torch.randn(1, 1 if input_mode == "L" else 3, *hw)).shape == (1, 2, *hw)


@pytest.mark.parametrize("arch, other, message", [
    ("vit_s14", "vit_b14", "of another shape"), ("vit_s14", "resnet18", "no tensor matches"),
    ("vit_s14", "convnext_tiny", "not vit_s14 encoder weights"),
    ("vit_s16_dinov3", "vit_b16_dinov3", "of another shape"), ("vit_s16_dinov3", "vit_s14", "not vit_s16_dinov3"),
    ("vit_s16_dinov3", "convnext_tiny", "not vit_s16_dinov3"),
    ("pvt_v2_b2", "convnext_tiny", ""), ("pvt_v2_b2", "vit_s16", ""),
    ("caformer_s18", "pvt_v2_b2", ""), ("caformer_s18_relu", "convnext_tiny", ""),
    ("caformer_s18_relu", "caformer_s18", "have no place in caformer_s18_relu"),  # StarReLU's tensors
    ("caformer_s18", "caformer_s18_relu", "missing"),  # SurgeNet's ReLU file has none
    ("convnext_large", "convnext_tiny", "of another shape")])
def test_a_weights_file_of_another_family_or_size_is_refused_naming_it(tmp_path, arch, other, message):
    from endopat.config import ModelConfig
    from endopat.encoder_weights import load_encoder_weights, random_published
    from endopat.errors import EndopatError
    from endopat.networks import build_unet

    torch.save(random_published(other), tmp_path / "other.pth")
    side = 64 // ARCHS[arch].multiple * ARCHS[arch].multiple
    cfg = ModelConfig(arch=arch, image_size=(side, side))
    with pytest.raises(EndopatError, match=f"other.pth: .*{message}") as err:
        load_encoder_weights(build_unet(cfg), cfg, tmp_path / "other.pth")
    assert "\n" not in str(err.value)
