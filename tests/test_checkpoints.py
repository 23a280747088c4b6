import pickle

import pytest
import torch

from endopat.checkpoints import init_from, load_checkpoint, save_checkpoint
from endopat.config import ModelConfig
from endopat.errors import EndopatError
from endopat.networks import Colorizer, build_unet

class Payload:
    """Stands for any Python object a malicious checkpoint could carry."""


CFG = ModelConfig(features=(4, 4, 8, 8, 16, 4), image_size=(32, 32))


def test_checkpoint_loads_with_weights_only_and_rebuilds_the_model(tmp_path):
    g = Colorizer(CFG)
    path = save_checkpoint(tmp_path / "g.pt", kind="colorizer", model_cfg=CFG,
                           state_dict=g.unet.state_dict(), provenance={"steps": 3})
    raw = torch.load(path, weights_only=True)
    assert raw["kind"] == "colorizer" and raw["model"]["features"] == list(CFG.features)
    ckpt = load_checkpoint(path)
    model = build_unet(ckpt.model, in_channels=1)  # a generator sees L only
    model.load_state_dict(ckpt.state_dict)


@pytest.mark.parametrize("input_mode", ["L", "Lab"])
def test_pretrained_hand_off_loads_every_layer_but_the_last(input_mode):
    g = Colorizer(CFG)
    seg = build_unet(CFG.model_copy(update={"input": input_mode}))
    report = init_from(seg, g.unet.state_dict())
    keys = list(seg.state_dict())
    assert sorted(report.reinitialised) == ["final_conv.bias", "final_conv.weight"]
    assert sorted(report.loaded + report.inflated) == sorted(k for k in keys if not k.startswith("final_conv."))
    assert not report.skipped
    for k in report.loaded:
        assert torch.equal(seg.state_dict()[k], g.unet.state_dict()[k])
    assert not torch.equal(seg.state_dict()["final_conv.weight"], g.unet.state_dict()["final_conv.weight"])


def test_lab_segmenter_inflates_the_pretrained_luminance_kernel():
    g = Colorizer(CFG)
    seg = build_unet(CFG.model_copy(update={"input": "Lab"}))
    report = init_from(seg, g.unet.state_dict())
    w = seg.state_dict()["conv_0.conv_0.conv.weight"]
    assert report.inflated == ["conv_0.conv_0.conv.weight"]
    assert torch.equal(w[:, :1], g.unet.state_dict()["conv_0.conv_0.conv.weight"])
    assert (w[:, 1:] == 0).all()


def test_a_fresh_inflation_keeps_the_segmenters_own_a_b_kernels_beside_the_pretrained_l_kernel():
    g = Colorizer(CFG)
    seg = build_unet(CFG.model_copy(update={"input": "Lab"}))
    own = seg.state_dict()["conv_0.conv_0.conv.weight"].clone()
    report = init_from(seg, g.unet.state_dict(), inflate="fresh")
    w = seg.state_dict()["conv_0.conv_0.conv.weight"]
    assert torch.equal(w[:, :1], g.unet.state_dict()["conv_0.conv_0.conv.weight"])
    assert torch.equal(w[:, 1:], own[:, 1:]) and (w[:, 1:] != 0).any()
    assert "a/b kernels freshly initialised" in "\n".join(report.lines())


def test_mismatched_tensors_are_reported_not_loaded():
    src = build_unet(CFG.model_copy(update={"features": (4, 4, 8, 8, 32, 4)})).state_dict()
    report = init_from(build_unet(CFG), src)
    assert report.skipped and all("shape" in why for why in report.skipped.values())


def test_a_checkpoint_holding_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "endopat", "state_dict": {}, "obj": Payload()}, path, pickle_module=pickle)
    with pytest.raises(EndopatError, match="refused"):
        load_checkpoint(path)


def test_a_file_that_is_not_a_checkpoint_gets_a_clear_error(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(EndopatError, match="junk.pt"):
        load_checkpoint(path)


def test_the_last_decoder_block_can_be_reinitialised_too():
    g = Colorizer(CFG)
    seg = build_unet(CFG)
    report = init_from(seg, g.unet.state_dict(), reinit=("upcat_1", "final_conv"))
    assert all(k.startswith(("upcat_1.", "final_conv.")) for k in report.reinitialised)
    assert any(k.startswith("upcat_1.") for k in report.reinitialised)
    assert not any(k.startswith(("upcat_1.", "final_conv.")) for k in report.loaded)


def test_a_segmenter_init_can_keep_every_layer():
    src = build_unet(CFG)
    seg = build_unet(CFG)
    report = init_from(seg, src.state_dict(), reinit=())
    assert not report.reinitialised and torch.equal(seg.final_conv.weight, src.final_conv.weight)
