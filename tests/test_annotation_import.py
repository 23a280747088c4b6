import io
import json
import zipfile

import numpy as np
import pytest
from conftest import accepted_label_studio_export, run_cli
from PIL import Image

from endopat.annotation import cvat_xml, label_studio_tasks
from endopat.annotation.importer import import_export
from endopat.errors import EndopatError

H, W = 37, 53
NAMES = ["vid01_f000012_t0.48s.png", "vid02_f000030_t1.20s.png"]


def blob(seed=0):
    rng = np.random.default_rng(seed)
    mask = np.zeros((H, W), bool)
    mask[5:20, 10 + seed : 40] = True
    mask[rng.random((H, W)) < 0.05] = True  # scattered pixels: runs of every length
    return mask


MASKS = [blob(0), blob(1)]


@pytest.fixture
def frames(tmp_path):
    folder = tmp_path / "suggested" / "frames"
    folder.mkdir(parents=True)
    for k, name in enumerate(NAMES):
        Image.fromarray(np.random.default_rng(k).integers(0, 255, (H, W, 3), np.uint8)).save(folder / name)
    return folder


def _masks(out):
    return [np.asarray(Image.open(out / "masks" / n)) > 127 for n in NAMES]


def _files(root):
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} if root.exists() else {}


def test_suggest_s_cvat_pre_annotations_come_back_pixel_equal(frames, tmp_path):
    (tmp_path / "annotations.xml").write_text(cvat_xml([(f"frames/{n}", (H, W)) for n in NAMES], MASKS))
    r = import_export(tmp_path / "annotations.xml", frames.parent, tmp_path / "labeled")
    assert (r["tool"], r["added"]) == ("CVAT for images 1.1", 2)
    assert all(np.array_equal(a, b) for a, b in zip(_masks(tmp_path / "labeled"), MASKS))


def test_suggest_s_label_studio_pre_annotations_accepted_come_back_pixel_equal(frames, tmp_path):
    tasks = label_studio_tasks([(f"frames/{n}", (H, W)) for n in NAMES], MASKS)
    (tmp_path / "export.json").write_text(json.dumps(accepted_label_studio_export(tasks)))
    r = import_export(tmp_path / "export.json", frames.parent, tmp_path / "labeled")
    assert (r["tool"], r["added"]) == ("Label Studio JSON", 2)
    assert all(np.array_equal(a, b) for a, b in zip(_masks(tmp_path / "labeled"), MASKS))


def test_a_brush_mask_encoded_by_label_studio_s_own_library_imports_pixel_true(frames, tmp_path):
    from label_studio_sdk.converter.brush import mask2rle

    rle = mask2rle((MASKS[0] * 255).astype(np.uint8))
    task = {"id": 1, "data": {"image": "/data/upload/3/8c1a2b3d-" + NAMES[0]}, "annotations": [{
        "id": 1, "completed_by": {"id": 4, "email": "a@b.c"}, "was_cancelled": False, "result": [{
            "type": "brushlabels", "original_width": W, "original_height": H,
            "value": {"format": "rle", "rle": rle, "brushlabels": ["Instrument"]}}]}]}
    (tmp_path / "e.json").write_text(json.dumps([task]))
    import_export(tmp_path / "e.json", frames, tmp_path / "labeled")
    assert np.array_equal(_masks_one(tmp_path / "labeled"), MASKS[0])
    manifest = json.loads((tmp_path / "labeled" / "manifest.json").read_text())
    assert manifest[NAMES[0][:-4]]["annotator"] == "a@b.c" and manifest[NAMES[0][:-4]]["labels"] == ["Instrument"]


def _coco(segmentations, categories=({"id": 1, "name": "instrument"},)):
    images = [{"id": k + 1, "file_name": n, "width": W, "height": H} for k, n in enumerate(NAMES)]
    anns = [{"id": i + 1, "image_id": img, "category_id": cat, "segmentation": seg, "iscrowd": 0}
            for i, (img, cat, seg) in enumerate(segmentations)]
    return {"images": images, "annotations": anns, "categories": list(categories)}


@pytest.mark.parametrize("compressed", [True, False])
def test_coco_rle_made_by_pycocotools_imports_pixel_true(frames, tmp_path, compressed):
    from pycocotools import mask as mask_utils

    def rle(m):
        if compressed:
            r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            return {"size": r["size"], "counts": r["counts"].decode()}
        flat = m.T.ravel()  # COCO's uncompressed RLE: column-major runs, background first
        edges = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
        runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
        return {"size": [H, W], "counts": ([0] if flat[0] else []) + runs}

    (tmp_path / "instances.json").write_text(json.dumps(_coco([(1, 1, rle(MASKS[0])), (2, 1, rle(MASKS[1]))])))
    r = import_export(tmp_path / "instances.json", frames, tmp_path / "labeled")
    assert r["tool"] == "COCO instances"
    assert all(np.array_equal(a, b) for a, b in zip(_masks(tmp_path / "labeled"), MASKS))


@pytest.mark.parametrize("size", [(1, 1), (37, 53), (480, 854)])
def test_compressed_coco_rle_is_read_as_pycocotools_writes_it(size):
    from pycocotools import mask as mask_utils

    from endopat.annotation.coco import rle_counts, rle_mask

    rng = np.random.default_rng(size[0])
    for density in (0.0, 0.01, 0.5, 1.0):
        m = rng.random(size) < density
        r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        assert np.array_equal(rle_mask(rle_counts(r["counts"], "x"), size, "x"), m)


def test_any_string_as_compressed_coco_rle_counts_decodes_or_ends_in_one_line():
    # pycocotools' own decoder writes past its buffer on some of these (a crash, not an exception)
    from endopat.annotation.coco import rle_counts, rle_mask

    rng = np.random.default_rng(0)
    for _ in range(2000):
        counts = bytes(rng.integers(40, 130, int(rng.integers(1, 30))).astype(np.uint8))
        try:
            rle_mask(rle_counts(counts, "a.json"), (24, 32), "a.json")
        except EndopatError as err:
            assert str(err).startswith("a.json: ")


POLY = [(10.3, 4.2), (45.8, 8.9), (40.1, 30.6), (14.7, 33.2), (6.2, 18.5)]


def test_a_polygon_fills_the_same_pixels_from_cvat_coco_and_label_studio_and_close_to_opencv(frames, tmp_path):
    import cv2

    xml = cvat_xml([(n, (H, W)) for n in NAMES])
    xml = xml.replace(f'name="{NAMES[0]}" width="{W}" height="{H}" />',
                      f'name="{NAMES[0]}" width="{W}" height="{H}"><polygon label="instrument" points="'
                      + ";".join(f"{x},{y}" for x, y in POLY) + '" /></image>')
    (tmp_path / "c.xml").write_text(xml)
    (tmp_path / "coco.json").write_text(json.dumps(_coco([(1, 1, [[v for xy in POLY for v in xy]])])))
    ls = [{"id": 1, "data": {"image": NAMES[0]}, "annotations": [{"id": 1, "completed_by": 1, "result": [{
        "type": "polygonlabels", "original_width": W, "original_height": H,
        "value": {"points": [[100 * x / W, 100 * y / H] for x, y in POLY], "polygonlabels": ["instrument"]}}]}]}]
    (tmp_path / "ls.json").write_text(json.dumps(ls))
    got = []
    for k, export in enumerate(("c.xml", "coco.json", "ls.json")):
        import_export(tmp_path / export, frames, tmp_path / f"l{k}")
        got.append(np.asarray(Image.open(tmp_path / f"l{k}" / "masks" / NAMES[0])) > 127)
    assert np.array_equal(got[0], got[1]) and np.array_equal(got[0], got[2]) and got[0].sum() > 500
    ref = np.zeros((H, W), np.uint8)
    cv2.fillPoly(ref, [np.round(np.array(POLY)).astype(np.int32)], 1)
    iou = (got[0] & (ref > 0)).sum() / (got[0] | (ref > 0)).sum()
    assert iou > 0.9  # opencv's integer-vertex fill of the same outline (CVAT's server-side rule differs)


def test_cvat_shapes_of_a_frame_are_merged_boxes_left_out_and_frames_without_shapes_empty(frames, tmp_path):
    xml = cvat_xml([(n, (H, W)) for n in NAMES], [MASKS[0], np.zeros((H, W), bool)])
    poly = '<polygon label="instrument" points="40,30;52,30;52,36;40,36" />'
    box = '<box label="instrument" xtl="1" ytl="1" xbr="5" ybr="5" />'
    xml = xml.replace("</image>", poly + box + "</image>", 1)
    (tmp_path / "a.xml").write_text(xml)
    r = import_export(tmp_path / "a.xml", frames, tmp_path / "labeled")
    first, second = _masks(tmp_path / "labeled")
    assert first[32, 45] and np.array_equal(first & ~np.pad(np.ones((6, 12), bool), ((30, 1), (40, 1))), MASKS[0]
                                            & ~np.pad(np.ones((6, 12), bool), ((30, 1), (40, 1))))
    assert not second.any() and r["empty"] == 1 and r["left_out"] == {"boxs": 1}


def test_a_cvat_zip_and_the_segmentation_mask_format_import(frames, tmp_path):
    buf = io.BytesIO()
    colour = (250, 50, 83)
    with zipfile.ZipFile(tmp_path / "masks.zip", "w") as z:
        z.writestr("labelmap.txt", "# label:color_rgb:parts:actions\nbackground:0,0,0::\ninstrument:250,50,83::\n"
                                   "liver:10,200,10::\n")
        for n, m in zip(NAMES, MASKS):
            rgb = np.zeros((H, W, 3), np.uint8)
            rgb[m] = colour
            rgb[0, 0] = (10, 200, 10)
            buf = io.BytesIO()
            Image.fromarray(rgb).save(buf, format="PNG")
            z.writestr(f"SegmentationClass/{n[:-4]}.png", buf.getvalue())
    r = import_export(tmp_path / "masks.zip", frames, tmp_path / "labeled")
    assert r["tool"] == "CVAT Segmentation mask 1.1"
    assert all(np.array_equal(a, b & ~np.pad([[True]], ((0, H - 1), (0, W - 1)))) for a, b in
               zip(_masks(tmp_path / "labeled"), MASKS))
    both = import_export(tmp_path / "masks.zip", frames, tmp_path / "both", labels=["instrument", "liver"])
    assert both["added"] == 2 and _masks(tmp_path / "both")[0][0, 0]


def test_label_studio_leaves_out_skipped_tasks_and_takes_the_latest_or_the_named_annotator(frames, tmp_path):
    def ann(i, who, mask, when, cancelled=False):
        from endopat.annotation import brush_rle
        return {"id": i, "completed_by": who, "was_cancelled": cancelled, "updated_at": when,
                "result": [{"type": "brushlabels", "original_width": W, "original_height": H,
                            "value": {"format": "rle", "rle": brush_rle(mask), "brushlabels": ["instrument"]}}]}

    export = [{"id": 1, "data": {"image": NAMES[0]}, "annotations": [ann(1, 1, MASKS[0], "2026-12-01T09:00"),
                                                                     ann(2, 2, MASKS[1], "2026-12-01T11:00")]},
              {"id": 2, "data": {"image": NAMES[1]}, "annotations": [ann(3, 1, MASKS[1], "x", cancelled=True)]}]
    (tmp_path / "e.json").write_text(json.dumps(export))
    r = import_export(tmp_path / "e.json", frames, tmp_path / "latest")
    assert r["frames"] == 1 and r["left_out"] == {"skipped tasks (annotation cancelled)": 1}
    assert np.array_equal(_masks_one(tmp_path / "latest"), MASKS[1])  # annotator 2 came later
    import_export(tmp_path / "e.json", frames, tmp_path / "first", annotator="1")
    assert np.array_equal(_masks_one(tmp_path / "first"), MASKS[0])


def _masks_one(out):
    return np.asarray(Image.open(out / "masks" / NAMES[0])) > 127


def test_importing_again_adds_nothing_and_a_different_mask_needs_replace(frames, tmp_path):
    (tmp_path / "a.xml").write_text(cvat_xml([(n, (H, W)) for n in NAMES], MASKS))
    (tmp_path / "b.xml").write_text(cvat_xml([(n, (H, W)) for n in NAMES], [MASKS[1], MASKS[1]]))
    out = tmp_path / "labeled"
    import_export(tmp_path / "a.xml", frames, out)
    assert import_export(tmp_path / "a.xml", frames, out)["unchanged"] == 2
    before = _files(out)
    with pytest.raises(EndopatError, match="holds a different mask; --replace"):
        import_export(tmp_path / "b.xml", frames, out)
    assert _files(out) == before
    r = import_export(tmp_path / "b.xml", frames, out, replace=True)
    assert (r["replaced"], r["unchanged"]) == (1, 1) and np.array_equal(_masks(out)[0], MASKS[1])


def test_an_imported_folder_reads_as_labeled_data_grouped_by_the_suggested_video(frames, tmp_path):
    from endopat.data.readers import open_labeled

    (tmp_path / "a.xml").write_text(cvat_xml([(n, (H, W)) for n in NAMES], MASKS))
    import_export(tmp_path / "a.xml", frames, tmp_path / "labeled")
    samples = open_labeled(tmp_path / "labeled")["all"]
    assert sorted(s.group for s in samples) == ["vid01", "vid02"]


BAD = {  # id: (how the export is broken, the words of the error)
    "rle that does not fill its box": (lambda x: x.replace('rle="', 'rle="1, ', 1), "add up to"),
    "an image missing from --images": (lambda x: x.replace(NAMES[1], "gone.png"), "image 'gone.png': its image is not in"),
    "two images with one name": (lambda x: x.replace(NAMES[1], NAMES[0]), "two images named"),
    "a label that does not exist": (lambda x: x.replace('label="instrument"', 'label="tool"', 1),
                                    "label 'tool' does not exist"),
    "a polygon with 2 points": (lambda x: x.replace("</image>", '<polygon label="instrument" points="1,1;5,5" />'
                                                    "</image>", 1), "a polygon with 2 point"),
    # pycocotools, which fills polygons, crashes on the first and exhausts memory on the second
    "a polygon point that is not a number": (lambda x: x.replace("</image>", '<polygon label="instrument" '
                                                                 'points="1,1;5,nan;9,1" /></image>', 1), "not a number"),
    "a polygon point far outside the image": (lambda x: x.replace("</image>", '<polygon label="instrument" '
                                                                  'points="1,1;5,1e9;9,1" /></image>', 1),
                                              "outside the 53x37 image"),
    "an image without a name": (lambda x: x.replace(f'name="{NAMES[1]}"', "", 1), "an image without a file name"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_export_is_an_error_naming_file_and_frame_and_writes_nothing(frames, tmp_path, case):
    broken, words = BAD[case]
    (tmp_path / "a.xml").write_text(broken(cvat_xml([(n, (H, W)) for n in NAMES], MASKS)))
    out = tmp_path / "labeled"
    with pytest.raises(EndopatError) as err:
        import_export(tmp_path / "a.xml", frames, out)
    assert words in str(err.value) and "a.xml" in str(err.value)
    assert _files(out) == {}


def test_an_export_size_that_is_not_the_image_s_is_an_error(frames, tmp_path):
    (tmp_path / "a.xml").write_text(cvat_xml([(NAMES[0], (H + 1, W))], [np.zeros((H + 1, W), bool)]))
    with pytest.raises(EndopatError, match=f"says {W}x{H + 1}"):
        import_export(tmp_path / "a.xml", frames, tmp_path / "labeled")


def test_the_import_command_prints_what_it_did_in_one_line_each(frames, tmp_path, monkeypatch, capsys):

    (tmp_path / "a.xml").write_text(cvat_xml([(n, (H, W)) for n in NAMES], MASKS))
    assert run_cli(monkeypatch, "import", tmp_path / "a.xml", "--images", frames, "-o", tmp_path / "l") == 0
    assert "CVAT for images 1.1: 2 frames; added 2" in capsys.readouterr().out
    assert run_cli(monkeypatch, "import", tmp_path / "a.xml", "--images", frames, "-o", tmp_path / "l",
                   "--label", "liver") == 2
    assert "label 'liver' does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("rasteriser", ["opencv", "pillow"])
def test_a_polygon_at_frame_size_is_within_2_percent_iou_of_other_tools_fill_rules(rasteriser):
    import cv2
    from PIL import ImageDraw

    from endopat.annotation.export import polygon_mask

    poly = [(10 * x, 10 * y) for x, y in POLY]  # an instrument-sized outline in a 530x370 frame
    ours = polygon_mask(poly, (10 * H, 10 * W), "test")
    if rasteriser == "opencv":
        ref = np.zeros((10 * H, 10 * W), np.uint8)
        cv2.fillPoly(ref, [np.round(np.array(poly)).astype(np.int32)], 1)
    else:
        im = Image.new("L", (10 * W, 10 * H))
        ImageDraw.Draw(im).polygon(poly, fill=1)
        ref = np.asarray(im)
    ref = ref > 0
    assert (ours & ref).sum() / (ours | ref).sum() > 0.98


def test_exports_written_by_datumaro_import_pixel_true(tmp_path):
    """Datumaro (CVAT's dataset library) writes a mask and a polygon as CVAT for images and as COCO;
    both come back as what the file holds (COCO: as pycocotools decodes the file's own segmentations;
    Datumaro stores polygon points as float32, so they are the file's, not the original's)."""
    pytest.importorskip("datumaro")
    from datumaro.components.annotation import Mask, Polygon
    from datumaro.components.dataset import Dataset
    from datumaro.components.dataset_base import DatasetItem
    from datumaro.components.media import Image as DmImage
    from pycocotools import mask as mask_utils

    from endopat.annotation.export import polygon_mask

    img = np.random.default_rng(0).integers(0, 255, (H, W, 3), np.uint8)
    poly = [v for xy in POLY for v in xy]
    ds = Dataset.from_iterable([DatasetItem(id=NAMES[0][:-4], media=DmImage.from_numpy(data=img), annotations=[
        Mask(image=MASKS[0].astype(np.uint8), label=0), Polygon(points=poly, label=0)])], categories=["instrument"])
    ds.export(str(tmp_path / "cvat"), "cvat", save_media=True)
    ds.export(str(tmp_path / "coco"), "coco_instances", save_media=True)
    import_export(tmp_path / "cvat", tmp_path / "cvat" / "images", tmp_path / "from-cvat")
    assert np.array_equal(_masks_one(tmp_path / "from-cvat"), MASKS[0] | polygon_mask(POLY, (H, W), "test"))
    import_export(tmp_path / "coco", tmp_path / "coco" / "images", tmp_path / "from-coco")
    coco = json.loads(next((tmp_path / "coco" / "annotations").glob("*.json")).read_text())
    want = np.zeros((H, W), bool)
    for a in coco["annotations"]:
        seg = a["segmentation"]
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, H, W)) if isinstance(seg, list) else (
            mask_utils.frPyObjects(seg, H, W) if isinstance(seg["counts"], list) else dict(seg, counts=seg["counts"].encode()))
        want |= mask_utils.decode(rle).astype(bool)
    assert np.array_equal(_masks_one(tmp_path / "from-coco"), want) and want.sum() > MASKS[0].sum()
