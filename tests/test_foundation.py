"""Continued pretraining of foundation encoders: every auxiliary task starts from a weights file on a
ViT and a ConvNeXt, and fine-tuning takes its network over; inpainting on a ViT masks its tokens."""

import pytest
import torch

from conftest import TINY_STUDY
from endopat.config import FinetuneConfig, ModelConfig
from endopat.encoder_weights import random_published
from endopat.finetune import finetune
from endopat.pretrain import pretrain
from endopat.tasks.config import PretrainConfig
from endopat.tasks.inpaint import InpaintTask


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from endopat.data.readers import open_labeled
    from endopat.data.synth import SynthSpec, generate

    root = tmp_path_factory.mktemp("d")
    generate(root, SynthSpec(size=48, videos=3, unlabeled_videos=1, frames=6, label_every=2))
    return root / "unlabeled", open_labeled(root / "labeled")


@pytest.mark.parametrize("arch, size, task", [
    ("vit_s16", 32, "recolor"), ("vit_s16", 32, "inpaint"), ("vit_s16", 32, "contrastive"),
    ("convnextv2_tiny", 32, "inpaint"),
    ("vit_s16_dinov3", 32, "recolor"), ("vit_s16_dinov3", 32, "inpaint"), ("vit_s16_dinov3", 32, "contrastive"),
    ("pvt_v2_b2", 32, "recolor"), ("pvt_v2_b2", 32, "inpaint"),
    ("caformer_s18", 32, "contrastive"), ("caformer_s18_relu", 32, "inpaint")])
# the large files of the same families (vit_l14, convnext_large) load strictly in their own tests
def test_a_task_continues_a_foundation_encoder_and_fine_tuning_takes_it_over(tmp_path, data, arch, size, task):
    torch.save(random_published(arch), tmp_path / "w.pth")
    unlabeled, parts = data
    model = ModelConfig(arch=arch, image_size=(size, size), decoder_channels=(16, 8, 8, 8, 8))
    pre = pretrain(unlabeled, tmp_path / "pre", PretrainConfig(task=task, steps=2, batch_size=2, model=model,
                                                               encoder_weights=str(tmp_path / "w.pth"),
                                                               encoder_norm="endovit"),
                   progress=False, log=lambda *a: None)
    ckpt = torch.load(pre, weights_only=True)
    assert ckpt["provenance"]["encoder_weights"]["rgb_normalisation"]["name"] == "endovit"
    best = finetune(parts["train"], parts["val"], tmp_path / "ft",
                    FinetuneConfig(epochs=1, min_samples_per_epoch=2, batch_size=2, model=model),
                    init=pre, progress=False, log=lambda *a: None)
    report = (tmp_path / "ft" / "init_report.txt").read_text()
    assert "not loaded" not in report
    state = torch.load(best, weights_only=True)
    assert state["model"]["arch"] == arch and state["provenance"]["encoder_weights"]["rgb_normalisation"]["name"] == "endovit"


def test_inpainting_on_a_vit_hides_its_own_patches_as_mask_tokens(monkeypatch):
    """The encoder sees the hidden patches as mask tokens during the step, and never after it."""
    from endopat.networks import build_unet

    cfg = ModelConfig(arch="vit_s16", image_size=(32, 48), decoder_channels=(16, 8, 8, 8, 8))
    task = InpaintTask.__new__(InpaintTask)
    task.tokens, task.patch, task.net = True, 16, build_unet(cfg, in_channels=3, out_channels=3)
    seen = []
    original = task.net.encoder.forward
    monkeypatch.setattr(task.net.encoder, "forward", lambda x: seen.append(task.net.encoder.token_mask) or original(x))
    hidden = torch.zeros(2, 1, 32, 48)
    hidden[0, :, :16, 16:32] = 1
    task._predict(task.net, torch.randn(2, 3, 32, 48), hidden)
    assert seen[0].tolist() == [[False, True, False, False, False, False], [False] * 6]
    assert task.net.encoder.token_mask is None


def test_fine_tuning_at_another_size_resizes_the_vit_s_position_embeddings(tmp_path, data):
    unlabeled, parts = data
    model = ModelConfig(arch="vit_s16", image_size=(32, 32), decoder_channels=(16, 8, 8, 8, 8))
    pre = pretrain(unlabeled, tmp_path / "pre", PretrainConfig(task="inpaint", steps=1, batch_size=2, model=model),
                   progress=False, log=lambda *a: None)
    other = model.model_copy(update={"image_size": (32, 48)})
    best = finetune(parts["train"], parts["val"], tmp_path / "ft",
                    FinetuneConfig(epochs=1, min_samples_per_epoch=2, batch_size=2, model=other),
                    init=pre, progress=False, log=lambda *a: None)
    report = (tmp_path / "ft" / "init_report.txt").read_text()
    assert "resized to this token grid (bicubic): encoder.pos_embed" in report and "not loaded" not in report
    assert torch.load(best, weights_only=True)["state_dict"]["encoder.pos_embed"].shape == (1, 1 + 2 * 3, 384)


def test_one_study_puts_the_paper_s_unet_a_foundation_vit_and_its_continued_pretraining_side_by_side(tmp_path):
    """Methods with their own arch: their stages and cells are their own; the weights' norm is kept."""
    import json

    from endopat.study.config import study_from_dict
    from endopat.study.runner import run_study

    torch.save({"model": random_published("vit_s16", mae_decoder=True)}, tmp_path / "endovit.pth")
    vit = {"arch": "vit_s16", "encoder_weights": "endovit"}
    cfg = {**TINY_STUDY, "synth": TINY_STUDY["synth"][:1], "extra_labeled": {}, "fractions": ["1/2"], "subsets": 1, "overlays": 0,
           "weights": {"endovit": {"path": str(tmp_path / "endovit.pth"), "norm": "endovit"}},
           "methods": [{"name": "baseline"}, {"name": "ViT scratch", "arch": "vit_s16"},
                       {"name": "EndoViT", **vit}, {"name": "EndoViT + MIM", "pretrain": "target", "task": "inpaint", **vit}],
           "model": {"features": [4, 4, 8, 8, 16, 4], "image_size": [32, 32], "decoder_channels": [16, 8, 8, 8, 8]}}
    out = tmp_path / "run"
    assert run_study(study_from_dict(cfg), out, progress=False, log=lambda *a: None)["cells"] == 4
    stage = out / "stages" / "pretrain" / "target+inpaint+w-endovit+a-vit_s16"
    assert json.loads((stage / "pretrain.json").read_text())["encoder_weights"]["rgb_normalisation"]["name"] == "endovit"
    arch = lambda m: torch.load(out / "cells" / m / "f1-2_s0" / "run" / "best.pt", weights_only=True)["model"]["arch"]  # noqa: E731
    assert [arch(m) for m in ("baseline", "vit-scratch", "endovit", "endovit-mim")] == ["basic_unet", *["vit_s16"] * 3]
    assert "endovit.pth (vit layout, vit_s16): loaded" in (out / "cells" / "endovit" / "f1-2_s0" / "run" /
                                                          "init_report.txt").read_text()


def test_a_method_s_arch_must_suit_the_study_s_image_size():
    from endopat.errors import EndopatError
    from endopat.study.config import study_from_dict

    with pytest.raises(EndopatError, match="method 'ViT': .*multiples of 14 for vit_s14"):
        study_from_dict({**TINY_STUDY, "methods": [{"name": "baseline"}, {"name": "ViT", "arch": "vit_s14"}]})
