import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from endopat.checkpoints import save_checkpoint  # noqa: E402
from endopat.config import ModelConfig  # noqa: E402
from endopat.segmenter import Segmenter  # noqa: E402
from endopat.export import OnnxSegmenter, export_onnx  # noqa: E402
from endopat.networks import build_unet  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    cfg = ModelConfig(features=(4, 4, 8, 8, 16, 4), image_size=(32, 32), input="Lab")
    d = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(1)
    ckpt = save_checkpoint(d / "seg.pt", kind="segmenter", model_cfg=cfg, state_dict=build_unet(cfg).state_dict(),
                           threshold=0.4)
    return ckpt, export_onnx(ckpt, d / "seg.onnx")


def test_onnx_model_matches_pytorch_within_tolerance(exported):
    ckpt, onnx_path = exported
    frames = [np.random.default_rng(i).integers(0, 255, (40, 50, 3), dtype=np.uint8) for i in range(3)]
    a = Segmenter(ckpt).probabilities(frames)
    b = OnnxSegmenter(onnx_path).probabilities(frames)
    assert all(np.abs(x - y).max() < 1e-4 for x, y in zip(a, b))


def test_onnx_model_accepts_other_batch_and_image_sizes(exported):
    import onnxruntime as ort

    _, onnx_path = exported
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"input": np.zeros((5, 3, 64, 48), np.float32)})
    assert out.shape == (5, 1, 64, 48)


def test_onnx_metadata_carries_preprocessing(exported):
    _, onnx_path = exported
    seg = OnnxSegmenter(onnx_path)
    assert seg.cfg.input == "Lab" and seg.cfg.image_size == (32, 32) and seg.threshold == pytest.approx(0.4)


def test_an_export_that_differs_from_pytorch_is_refused_and_not_written(tmp_path, exported, monkeypatch):
    import endopat.export as export
    from endopat.errors import EndopatError

    ckpt, _ = exported
    monkeypatch.setattr(export, "PARITY_TOLERANCE", -1.0)  # no export can pass
    with pytest.raises(EndopatError, match="differs from PyTorch"):
        export_onnx(ckpt, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_the_export_records_the_checkpoint_it_came_from(exported):
    from endopat.io import file_digest

    ckpt, onnx_path = exported
    assert OnnxSegmenter(onnx_path).info["checkpoint_sha256"] == file_digest(ckpt)


@pytest.mark.parametrize("arch, size", [("vit_s14", (56, 84)), ("convnextv2_tiny", (64, 96))])
def test_a_foundation_architecture_exports_and_predicts_as_pytorch(tmp_path, arch, size):
    cfg = ModelConfig(arch=arch, image_size=size, decoder_channels=(16, 8, 8, 8, 8))
    ckpt = save_checkpoint(tmp_path / "seg.pt", kind="segmenter", model_cfg=cfg, state_dict=build_unet(cfg).state_dict())
    onnx = OnnxSegmenter(export_onnx(ckpt, tmp_path / "seg.onnx"))
    images = [np.random.default_rng(i).integers(0, 255, (120, 160, 3), dtype=np.uint8) for i in range(3)]  # batch 3
    for a, b in zip(Segmenter(ckpt).probabilities(images), onnx.probabilities(images)):
        assert np.abs(a - b).max() < 1e-4
