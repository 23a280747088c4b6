
import numpy as np
import pytest
from conftest import PREDICT_CFG, direct_masks, random_images
from PIL import Image

from endopat.segmenter import Segmenter
from endopat.drawing import outline, overlay
from endopat.predict import predict

def test_predict_on_one_image_matches_a_direct_forward_pass(tmp_path, model_path):
    (img,) = random_images(1)
    Image.fromarray(img).save(tmp_path / "a.png")
    predict(model_path, tmp_path / "a.png", tmp_path / "out", progress=False)
    got = np.asarray(Image.open(tmp_path / "out" / "masks" / "a.png")) > 0
    assert got.shape == img.shape[:2] and np.array_equal(got, direct_masks(model_path, [img])[0])


def test_predict_on_a_folder_writes_one_mask_per_image_with_the_same_stem(tmp_path, model_path):
    (tmp_path / "in").mkdir()
    frames = random_images(3)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / "in" / f"img{i}.png")
    predict(model_path, tmp_path / "in", tmp_path / "out", batch_size=2, progress=False)
    expected = direct_masks(model_path, frames)
    for i in range(3):
        got = np.asarray(Image.open(tmp_path / "out" / "masks" / f"img{i}.png")) > 0
        assert np.array_equal(got, expected[i])


def test_overlay_tints_the_mask_and_draws_its_outline():
    frame = np.zeros((6, 6, 3), np.uint8)
    mask = np.zeros((6, 6), bool)
    mask[1:5, 1:5] = True
    out = overlay(frame, mask)
    assert outline(mask).sum() == 12 and (out[2, 2] != 0).any() and (out[0, 0] == 0).all()
    assert (out[1, 1] == [255, 255, 0]).all()


def test_predict_refuses_a_missing_source(tmp_path, model_path):
    from endopat.errors import EndopatError

    with pytest.raises(EndopatError, match="nope.mp4: not found"):
        predict(model_path, tmp_path / "nope.mp4", tmp_path / "out", progress=False)


def test_on_a_cpu_predict_runs_onnxruntime_from_an_export_cached_beside_the_checkpoint(tmp_path, model_path):
    pytest.importorskip("onnxruntime")
    from endopat.export import OnnxSegmenter
    from endopat.predict import load_model

    ckpt = tmp_path / "seg.pt"
    ckpt.write_bytes(model_path.read_bytes())
    assert isinstance(load_model(ckpt), OnnxSegmenter)
    cached = tmp_path / "seg.pt.onnx"
    stamp = cached.stat().st_mtime_ns
    load_model(ckpt)
    assert cached.stat().st_mtime_ns == stamp  # reused, not exported again


def test_a_changed_checkpoint_is_exported_again(tmp_path, model_path):
    pytest.importorskip("onnxruntime")
    from endopat.checkpoints import save_checkpoint
    from endopat.config import ModelConfig
    from endopat.networks import build_unet
    from endopat.predict import load_model

    ckpt = tmp_path / "seg.pt"
    ckpt.write_bytes(model_path.read_bytes())
    load_model(ckpt)
    before = (tmp_path / "seg.pt.onnx").read_bytes()
    cfg = ModelConfig(**PREDICT_CFG)
    unet = build_unet(cfg)  # other weights
    save_checkpoint(ckpt, kind="segmenter", model_cfg=cfg, state_dict=unet.state_dict())
    load_model(ckpt)
    assert (tmp_path / "seg.pt.onnx").read_bytes() != before


def test_both_backends_write_the_same_masks(tmp_path, model_path):
    pytest.importorskip("onnxruntime")
    for i, im in enumerate(random_images(3, 48, 80)):
        (tmp_path / "in").mkdir(exist_ok=True)
        Image.fromarray(im).save(tmp_path / "in" / f"{i}.png")
    got = {}
    for backend in ("torch", "onnx"):
        predict(model_path, tmp_path / "in", tmp_path / backend, progress=False, backend=backend)
        got[backend] = [np.asarray(Image.open(tmp_path / backend / "masks" / f"{i}.png")) for i in range(3)]
    agree = np.mean([(a == b).mean() for a, b in zip(got["torch"], got["onnx"])])
    assert agree > 0.999


@pytest.mark.parametrize("backend", ["cuda", "ort"])
def test_an_unknown_backend_is_an_error_naming_the_choices(tmp_path, model_path, backend):
    from endopat.errors import EndopatError

    with pytest.raises(EndopatError, match="auto, onnx, torch"):
        predict(model_path, tmp_path, tmp_path / "out", progress=False, backend=backend)


def test_a_segmenter_preprocessing_on_its_device_predicts_as_on_the_host(model_path):
    frames = random_images(3, h=120, w=200)
    host, device = Segmenter(model_path, preprocess="host"), Segmenter(model_path, preprocess="device")
    assert not host.on_device and device.on_device
    for a, b in zip(host.probabilities(frames), device.probabilities(frames)):
        assert a.shape == b.shape == (120, 200) and np.abs(a - b).max() < 0.02


def test_class_overlay_tints_each_class_in_its_colour_and_draws_a_legend():
    from endopat.drawing import class_overlay
    from endopat.labels import Labels

    labels = Labels(("background", "liver", "tool"))
    frame = np.full((60, 80, 3), 100, np.uint8)
    ids = np.zeros((60, 80), np.uint8)
    ids[30:50, 10:30], ids[30:50, 50:70] = 1, 2
    out = class_overlay(frame, ids, labels, legend=False)
    assert tuple(out[40, 20]) != tuple(out[40, 60]) and (out[5, 5] == 100).all()
    assert (class_overlay(frame, ids, labels)[4:10, 4:10] != 100).any()  # the legend's swatches, top left


def _folder(tmp_path, n=4):
    (tmp_path / "in").mkdir()
    for i, f in enumerate(random_images(n)):
        Image.fromarray(f).save(tmp_path / "in" / f"img{i}.png")
    return tmp_path / "in"


def test_a_rerun_of_the_same_prediction_keeps_the_masks_it_finished_and_writes_the_rest(tmp_path, three_class_path):
    src, out = _folder(tmp_path), tmp_path / "out"
    predict(three_class_path, src, out, batch_size=2, progress=False, backend="torch")
    whole = (out / "areas.csv").read_text()
    (out / "masks" / "img3.png").unlink()  # as if killed before the last image
    marked = np.asarray(Image.open(out / "masks" / "img0.png")).copy()
    marked[0, 0] = 2 - marked[0, 0] % 3  # a pixel only a kept mask would still hold
    Image.fromarray(marked).save(out / "masks" / "img0.png")
    lines = []
    predict(three_class_path, src, out, batch_size=2, progress=False, backend="torch", log=lines.append)
    assert "resuming: 3 of 4 images already segmented by this run" in "\n".join(lines)
    assert np.array_equal(np.asarray(Image.open(out / "masks" / "img0.png")), marked)  # kept, not redone
    assert (out / "masks" / "img3.png").is_file()
    assert (out / "areas.csv").read_text().splitlines()[2:] == whole.splitlines()[2:]  # img1-3 as before


def test_another_threshold_or_model_segments_every_image_again(tmp_path, model_path):
    src, out = _folder(tmp_path, 2), tmp_path / "out"
    predict(model_path, src, out, progress=False, backend="torch")
    Image.fromarray(np.full((40, 56), 7, np.uint8)).save(out / "masks" / "img0.png")
    predict(model_path, src, out, threshold=0.4, progress=False, backend="torch")
    assert set(np.unique(np.asarray(Image.open(out / "masks" / "img0.png")))) <= {0, 255}  # written again


@pytest.mark.parametrize("names, clash", [(("a.mp4", "a.mkv"), "a.mkv and a.mp4: both would write a_overlay.mp4"),
                                          (("a.png", "a.jpg"), "a.jpg and a.png: both would write masks/a.png")])
def test_two_inputs_whose_outputs_would_share_a_name_are_an_error_naming_both(tmp_path, model_path, names, clash):
    from endopat.data.video import write_video
    from endopat.errors import EndopatError

    (tmp_path / "in").mkdir()
    for name in names:
        if name.endswith(("mp4", "mkv")):
            write_video(tmp_path / "in" / name, random_images(2, 16, 16), fps=10)
        else:
            Image.fromarray(random_images(1)[0]).save(tmp_path / "in" / name)
    with pytest.raises(EndopatError, match=clash):
        predict(model_path, tmp_path / "in", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_folder_of_images_and_videos_gets_masks_and_a_video_each(tmp_path, model_path):
    from endopat.data.video import write_video

    src = _folder(tmp_path, 2)
    write_video(src / "v.mp4", random_images(3, 48, 64), fps=10)
    result = predict(model_path, src, tmp_path / "out", progress=False, backend="torch")
    assert [m.name for m in result["masks"]] == ["img0.png", "img1.png"]
    assert [(v["overlay"].name, v["frames"]) for v in result["videos"]] == [("v_overlay.mp4", 3)]


def test_a_binary_model_s_areas_csv_gives_each_image_s_instrument_share_also_after_a_resume(tmp_path, model_path):
    import csv

    src, out = _folder(tmp_path, 3), tmp_path / "out"
    predict(model_path, src, out, progress=False, backend="torch")
    rows = list(csv.DictReader(open(out / "areas.csv")))
    mask = np.asarray(Image.open(out / "masks" / "img1.png")) > 0
    assert list(rows[1]) == ["image", "background", "instrument"] and rows[1]["image"] == "img1.png"
    assert float(rows[1]["instrument"]) == pytest.approx(mask.mean(), abs=1e-6)
    first = (out / "areas.csv").read_text()
    (out / "masks" / "img2.png").unlink()  # as if killed before the last image
    predict(model_path, src, out, progress=False, backend="torch")
    assert (out / "areas.csv").read_text() == first  # the kept masks' rows read back from their 0/255 PNGs
