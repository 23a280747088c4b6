"""Multi-class segmentation end to end on real anatomy: a 7-class model on a slice of
endoscapes-seg50-dev through finetune -> evaluate -> predict -> export (ONNX parity) -> suggest ->
import, the ignore id (255) excluded from training and scoring."""

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import accepted_label_studio_export, run_cli

from endopat.config import FinetuneConfig, ModelConfig
from endopat.data.labeled import load_image, load_mask
from endopat.data.readers import open_labeled
from endopat.errors import EndopatError
from endopat.evaluate import evaluate
from endopat.finetune import finetune
from endopat.io import read_image
from endopat.labels import Labels

CLASSES = ("background", "cystic_plate", "calot_triangle", "cystic_artery", "cystic_duct", "gallbladder", "tool")
MODEL = ModelConfig(features=[8, 8, 16, 16, 32, 8], image_size=[48, 80])


def frames_folder(samples, folder):
    """A folder of the samples' images (what predict and suggest take)."""
    folder.mkdir()
    for s in samples:
        shutil.copy(s.image, folder / s.image.name)
    return folder


@pytest.fixture(scope="module")
def endoscapes(shared_data):
    return open_labeled(shared_data / "endoscapes-seg50-dev")["all"]


@pytest.fixture(scope="module")
def trained(endoscapes, tmp_path_factory):
    """A 7-class model fine-tuned on 8 frames of two videos, validated on a third."""
    by_video = {}
    for s in endoscapes:
        by_video.setdefault(s.group, []).append(s)
    videos = sorted(by_video)
    train = by_video[videos[0]][:4] + by_video[videos[1]][:4]
    val = by_video[videos[2]][:3]
    test = [s for v in videos[3:6] for s in by_video[v][:2]]
    out = tmp_path_factory.mktemp("mc")
    best = finetune(train, val, out / "ft", FinetuneConfig(model=MODEL, epochs=2, min_samples_per_epoch=8,
                                                           batch_size=4, loss="dice_ce"),
                    progress=False, log=lambda *a: None)
    return best, test, out


def test_a_classes_txt_makes_the_folder_seven_classes_with_255_ignored(endoscapes):
    labels = endoscapes[0].labels
    assert labels.names == CLASSES and labels.ignore == 255 and len(endoscapes) == 418
    ignored = next(s for s in endoscapes if 255 in np.unique(read_image(s.masks[0], mode="raw")))
    mask = load_mask(ignored, load_image(ignored).shape[:2])
    assert set(np.unique(mask).tolist()) <= {*range(7), 255} and (mask == 255).any()


def test_the_checkpoint_stores_the_classes_and_has_one_output_per_class(trained):
    best, _, _ = trained
    ckpt = torch.load(best, map_location="cpu", weights_only=True)
    assert Labels.from_dict(ckpt["labels"]).names == CLASSES
    out = [v for k, v in ckpt["state_dict"].items() if k.startswith("final_conv") and k.endswith("weight")]
    assert out[-1].shape[0] == 7


def test_evaluate_gives_per_class_dice_and_iou_and_a_foreground_mean(trained):
    best, test, _ = trained
    rows = evaluate(best, test)
    assert len(rows) == len(test)
    for r in rows:
        per_class = [r[f"dice_{n}"] for n in CLASSES[1:] if r[f"dice_{n}"] is not None]
        assert r["dice"] == pytest.approx(np.mean(per_class) if per_class else 1.0, abs=1e-6)
        assert abs(sum(r[f"gt_{n}"] for n in CLASSES) - 1) < 1e-6  # shares of the scored pixels


def test_predict_writes_class_ids_palette_overlays_and_areas(trained, tmp_path):
    from endopat.predict import predict

    best, test, _ = trained
    r = predict(best, frames_folder(test[:2], tmp_path / "frames"), tmp_path / "pred", progress=False, backend="torch")
    ids = read_image(r["masks"][0], mode="raw")
    assert ids.shape == (480, 854) and set(np.unique(ids).tolist()) <= set(range(7))
    assert (tmp_path / "pred" / "overlays" / r["masks"][0].name).is_file()
    areas = (tmp_path / "pred" / "areas.csv").read_text().splitlines()
    assert areas[0] == "image," + ",".join(CLASSES) and len(areas) == 3
    assert Labels.read(tmp_path / "pred" / "masks" / "classes.txt").names == CLASSES


def test_an_onnx_export_carries_the_classes_and_gives_the_same_masks(trained, tmp_path):
    pytest.importorskip("onnxruntime")
    from endopat.export import OnnxSegmenter, export_onnx
    from endopat.segmenter import Segmenter

    best, test, _ = trained
    onnx = OnnxSegmenter(export_onnx(best, tmp_path / "m.onnx"))
    torch_model = Segmenter(best)
    images = [load_image(s) for s in test[:3]]
    assert onnx.labels == torch_model.labels
    for a, b in zip(onnx.predict_ids(images), torch_model.predict_ids(images)):
        assert (a != b).mean() < 1e-4  # argmax ties at a float ulp aside


def test_suggest_pre_annotates_each_class_and_the_export_imports_back_pixel_equal(trained, tmp_path):
    from endopat.annotation.importer import import_export
    from endopat.segmenter import Segmenter
    from endopat.suggest import suggest

    best, test, _ = trained
    suggest(frames_folder(test[:3], tmp_path / "frames"), 2, tmp_path / "s", model=best, strategy="uncertain",
            progress=False, log=lambda *a: None)
    config = (tmp_path / "s" / "label_studio" / "label_config.xml").read_text()
    assert all(f'value="{n}"' in config for n in CLASSES[1:])
    tasks = json.loads((tmp_path / "s" / "label_studio" / "tasks.json").read_text())
    names = {r["value"]["brushlabels"][0] for t in tasks for r in t["predictions"][0]["result"]}
    assert names and names <= set(CLASSES[1:])
    (tmp_path / "export.json").write_text(json.dumps(accepted_label_studio_export(tasks)))
    r = import_export(tmp_path / "export.json", tmp_path / "s", tmp_path / "labeled", classes=Labels(CLASSES))
    assert r["added"] == 2 and Labels.read(tmp_path / "labeled" / "classes.txt").names == CLASSES
    back = open_labeled(tmp_path / "labeled")["all"]
    seg = Segmenter(best)
    from endopat.suggest import _full_mask  # the pre-annotation suggest drew
    from endopat.embedding import Embedder

    embedder = Embedder(best)
    for s in back:
        image = read_image(s.image)
        assert (load_mask(s, image.shape[:2]) == _full_mask(embedder, image)).all()
    assert seg.labels.names == back[0].labels.names


def test_import_refuses_a_label_that_is_no_class_in_one_line(trained, tmp_path):
    from endopat.annotation.importer import import_export

    _, test, _ = trained
    shutil.copy(test[0].image, tmp_path / test[0].image.name)
    h, w = 480, 854
    ann = {"id": 1, "data": {"image": test[0].image.name}, "annotations": [{"id": 1, "completed_by": 1,
           "was_cancelled": False, "result": [{"type": "polygonlabels", "original_height": h, "original_width": w,
                                              "value": {"points": [[10, 10], [50, 10], [50, 50]],
                                                        "polygonlabels": ["liver"]}}]}]}
    (tmp_path / "e.json").write_text(json.dumps([ann]))
    with pytest.raises(EndopatError, match="label 'liver' is not a class") as err:
        import_export(tmp_path / "e.json", tmp_path, tmp_path / "l", classes=Labels(CLASSES))
    assert "\n" not in str(err.value)
    r = import_export(tmp_path / "e.json", tmp_path, tmp_path / "l2", classes=Labels(CLASSES),
                      labels=["liver=gallbladder"])
    mask = read_image(tmp_path / "l2" / "masks" / f"{test[0].image.stem}.png", mode="raw")
    assert r["added"] == 1 and set(np.unique(mask).tolist()) == {0, 5}


def test_the_evaluate_command_prints_each_class_on_the_images_that_show_it(trained, tmp_path, monkeypatch, capsys):

    best, test, _ = trained
    for s in test:
        for sub, path in (("images", s.image), ("masks", s.masks[0])):
            (tmp_path / "d" / "test" / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, tmp_path / "d" / "test" / sub / path.name)
    (tmp_path / "d" / "classes.txt").write_text("".join(f"{i} {n}\n" for i, n in enumerate(CLASSES)) + "255 ignore\n")
    assert run_cli(monkeypatch, "evaluate", best, "-d", tmp_path / "d", "-o", tmp_path / "m.csv") == 0
    out = capsys.readouterr().out
    assert "per class (images whose truth shows it):" in out and "  gallbladder: Dice " in out
    header = (tmp_path / "m.csv").read_text().splitlines()[0]
    assert "dice_gallbladder" in header and "gt_tool" in header
