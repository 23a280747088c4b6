import xml.etree.ElementTree as ET

import numpy as np
import pytest

from endopat.annotation import brush_rle, cvat_mask_rle, cvat_xml, label_studio_tasks, LABEL_STUDIO_CONFIG


def blob(h=37, w=53, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), bool)
    mask[5:20, 10:40] = True
    mask[rng.random((h, w)) < 0.05] = True  # scattered single pixels: runs of every length
    return mask


@pytest.mark.parametrize("mask", [blob(), np.zeros((8, 9), bool), np.ones((300, 300), bool), blob(2, 3, 1)])
def test_brush_rle_decodes_with_label_studio_s_own_decoder(mask):
    pytest.importorskip("label_studio_sdk")
    from label_studio_sdk.converter.brush import decode_rle

    rgba = decode_rle(brush_rle(mask)).reshape(*mask.shape, 4)
    assert np.array_equal(rgba[..., 3] > 0, mask)


def test_label_studio_tasks_validate_against_the_labeling_config():
    pytest.importorskip("label_studio_sdk")
    from label_studio_sdk.label_interface import LabelInterface

    tasks = label_studio_tasks([("frames/a.png", (37, 53))], [blob()], "seg.pt")
    interface = LabelInterface(LABEL_STUDIO_CONFIG)
    # (the SDK's validate_task cannot check a task's predictions itself: it calls validate_prediction
    # without the prediction, so the data and the prediction are checked apart)
    assert interface.validate_task({"data": tasks[0]["data"]})
    assert interface.validate_prediction(tasks[0]["predictions"][0])


def _decode_cvat(mask_el, h, w) -> np.ndarray:
    """CVAT's mask semantics, as its docs and Datumaro's importer state them."""
    runs = [int(v) for v in mask_el.get("rle").split(",")]
    left, top, bw, bh = (int(mask_el.get(k)) for k in ("left", "top", "width", "height"))
    flat = np.zeros(bw * bh, bool)
    pos, value = 0, False
    for r in runs:
        flat[pos : pos + r] = value
        pos, value = pos + r, not value
    out = np.zeros((h, w), bool)
    out[top : top + bh, left : left + bw] = flat.reshape(bh, bw)
    return out


def test_cvat_xml_has_the_task_meta_and_each_image_s_mask():
    masks = [blob(), np.zeros((37, 53), bool)]
    root = ET.fromstring(cvat_xml([("frames/a.png", (37, 53)), ("frames/b.png", (37, 53))], masks))
    assert root.tag == "annotations" and root.findtext("version") == "1.1"
    assert root.find("meta/task/labels/label/name").text == "instrument"
    images = root.findall("image")
    assert [i.get("name") for i in images] == ["frames/a.png", "frames/b.png"]
    assert np.array_equal(_decode_cvat(images[0].find("mask"), 37, 53), masks[0])
    assert images[1].find("mask") is None  # nothing predicted, nothing drawn


def test_a_mask_touching_its_box_corner_starts_with_a_zero_background_run():
    mask = np.zeros((4, 4), bool)
    mask[1:3, 1:3] = True
    runs, box = cvat_mask_rle(mask)
    assert runs == [0, 4] and box == (1, 1, 2, 2)


def test_datumaro_reads_the_cvat_export(tmp_path):
    dm = pytest.importorskip("datumaro")
    from PIL import Image

    (tmp_path / "images" / "frames").mkdir(parents=True)
    Image.new("RGB", (53, 37)).save(tmp_path / "images" / "frames" / "a.png")
    (tmp_path / "annotations.xml").write_text(cvat_xml([("frames/a.png", (37, 53))], [blob()]))
    dataset = dm.Dataset.import_from(str(tmp_path), "cvat")
    (item,) = list(dataset)
    (ann,) = item.annotations
    assert np.array_equal(ann.image.astype(bool), blob())
