"""Every reader of a user's file, fed mutated files (truncated, bit-flipped, spliced, text, empty,
another format, huge dimensions, and for JSON or YAML one value replaced by an odd one or deleted):
each case reads or ends in one EndopatError naming the file,
never another exception. 200 cases per reader here (mutations of small files made here and of a
real frame from ../shared/data); ``python bench/fuzz.py`` runs 5,000."""

import io
import json
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import yaml
import pytest
import torch
from PIL import Image

from endopat.errors import EndopatError
from conftest import FIELD_VALUES, ends_in_one_line, json_fields, replaced

CASES = int(os.environ.get("ENDOPAT_FUZZ_CASES", 200))  # bench/fuzz.py runs more
SEED = int(os.environ.get("ENDOPAT_FUZZ_SEED", 0))  # and other mutations (--seed)
FOREIGN = [b"", b"junk\n", b"\x80\x02}q\x00.", b"PK\x03\x04", b"\x89PNG\r\n\x1a\n", b'{"a": [1,', b"\x00" * 64,
           b"format: endopat\n", b"\xff\xd8\xff\xe0", "é✓\n".encode("utf-16")]


def huge_png(width: int = 60000, height: int = 60000) -> bytes:
    """A PNG whose header claims huge dimensions (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


# values a JSON or YAML field may hold instead of the one a reader expects
ODD = [None, -1, 0, 10**12, -(10**12), 1.5, float("nan"), "", "x", "../../etc", [], {}, [1, 2], {"a": 1}, True,
       "\u00e9\u0000"]


def _document(seed: bytes):
    """``seed`` parsed as a JSON or YAML mapping or list, with the function that writes it back; else None."""
    try:
        text = seed.decode()
        doc, dump = ((json.loads(text), json.dumps) if text.lstrip()[:1] in "{[" else
                     (yaml.safe_load(text), yaml.safe_dump))
    except Exception:  # noqa: BLE001 - not a document: no structure-aware mutants
        return None
    return (doc, dump) if isinstance(doc, (dict, list)) else None


def _with_one_odd_value(doc, rng):
    """``doc`` with one node (at any depth) replaced by an odd value or deleted."""
    def nodes(node, at=()):
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in children:
            yield at + (k,)
            yield from nodes(v, at + (k,))

    doc = json.loads(json.dumps(doc))  # a copy
    where = list(nodes(doc))
    if not where:
        return ODD[int(rng.integers(len(ODD)))]
    at = where[int(rng.integers(len(where)))]
    parent = doc
    for k in at[:-1]:
        parent = parent[k]
    if rng.random() < 0.2:
        del parent[at[-1]]
    else:
        parent[at[-1]] = ODD[int(rng.integers(len(ODD)))]
    return doc


def mutants(seed: bytes, n: int = CASES, rng_seed: int = SEED):
    """``n`` mutations of ``seed``: each of truncation, bit flips, byte splices, a repeated or
    deleted slice, another file's bytes, a value of a JSON or YAML document, or text in its place."""
    rng = np.random.default_rng(rng_seed)
    document = _document(seed)
    for k in range(n):
        data = bytearray(seed)
        how = k % 8
        if how == 0 and data:  # truncated
            data = data[: int(rng.integers(0, len(data)))]
        elif how == 1 and data:  # bits flipped
            for i in rng.integers(0, len(data), int(rng.integers(1, 9))):
                data[i] ^= 1 << int(rng.integers(0, 8))
        elif how == 2:  # random bytes spliced in
            at = int(rng.integers(0, len(data) + 1))
            data[at:at] = bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
        elif how == 3 and len(data) > 2:  # a slice deleted or repeated
            a, b = sorted(int(x) for x in rng.integers(0, len(data), 2))
            data = data[:a] + data[b:] if rng.random() < 0.5 else data[:b] + data[a:b] + data[b:]
        elif how == 4:  # another format's bytes, maybe followed by noise
            data = bytearray(FOREIGN[k % len(FOREIGN)] + bytes(rng.integers(0, 256, int(rng.integers(0, 300)),
                                                                          dtype=np.uint8)))
        elif how == 5 and data:  # bytes overwritten with one value (zeroed or 0xff runs)
            a = int(rng.integers(0, len(data)))
            data[a: a + int(rng.integers(1, 256))] = bytes([int(rng.choice([0, 255]))]) * len(data[a: a + 255])
        elif how == 6 and document:  # a JSON or YAML document with one odd value
            doc, dump = document
            data = bytearray(dump(_with_one_odd_value(doc, rng)).encode())
        else:  # whole-file replacements: empty, text, a huge-dimensions image
            data = bytearray([b"", b"not a file of this kind\n", huge_png()][k % 3])
        yield bytes(data)


def fuzz(tmp_path: Path, name: str, seed: bytes, read, n: int = CASES) -> int:
    """Feed ``n`` mutants of ``seed`` (written as ``name``) to ``read(path)``; returns how many
    read without error. Any exception but EndopatError fails, naming the case."""
    path = tmp_path / name
    ok = 0
    for k, data in enumerate(mutants(seed, n)):
        path.write_bytes(data)
        try:
            read(path)
            ok += 1
        except EndopatError as err:
            assert "\n" not in str(err).strip() and str(path) in str(err), f"case {k}: {err}"
        except Exception as err:  # noqa: BLE001 - the point of the test
            pytest.fail(f"case {k} ({len(data)} bytes): {err.__class__.__name__}: {err}")
    return ok


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG")
    return buf.getvalue()


RGB = np.random.default_rng(0).integers(0, 255, (24, 32, 3), np.uint8)
MASK = np.zeros((24, 32), np.uint8)
MASK[5:15, 8:20] = 255


@pytest.mark.parametrize("name, seed", [("a.png", _png(RGB)), ("a.jpg", _jpeg(RGB))])
def test_any_bytes_as_an_image_read_or_end_in_one_line(tmp_path, name, seed):
    from endopat.io import read_image

    fuzz(tmp_path, name, seed, read_image)


def test_any_bytes_of_a_real_frame_read_or_end_in_one_line(tmp_path, shared_data):
    from endopat.io import read_image

    seed = (shared_data / "endoscapes-unlabeled").glob("*.jpg").__next__().read_bytes()
    fuzz(tmp_path, "frame.jpg", seed, read_image)


@pytest.mark.parametrize("encoding, mask", [("binary", MASK), ("binary", (MASK // 255).astype(np.uint16) * 65535),
                                            ("nonzero", MASK // 255 * 20)])
def test_any_bytes_as_a_mask_of_each_encoding_read_or_end_in_one_line(tmp_path, encoding, mask):
    from endopat.data.labeled import Sample, load_mask

    fuzz(tmp_path, "m.png", _png(mask),
         lambda p: load_mask(Sample(tmp_path / "img.png", (p,), "g", "id", encoding=encoding), (24, 32)))


def test_any_class_map_string_parses_or_ends_in_one_line(tmp_path):
    from endopat.data.masks import MaskFormat

    text = b"255,0,0=instrument;0,0,0=background;7=background"
    fuzz(tmp_path, "class-map", text,
         lambda p: MaskFormat.parse(class_map=p.read_bytes().decode("latin-1"), source=str(p)))


@pytest.mark.parametrize("example", ["demo.yaml", "paper.yaml", "endoscapes.yaml"])
def test_any_bytes_as_a_study_config_load_and_validate_or_end_in_one_line(tmp_path, example):
    from endopat.study.config import load_study

    fuzz(tmp_path, "c.yaml", (Path(__file__).parents[1] / "examples" / example).read_bytes(), load_study)


TRAINING_CONFIGS = {  # a pretrain and a fine-tune config as a user writes them, with every section
    "pretrain": ("model: {arch: basic_unet, features: [16, 16, 32, 64, 128, 16], image_size: [96, 128]}\n"
                 "task: inpaint\nsteps: 600\nbatch_size: 8\nseed: 3\nframe_stride: 2\n"
                 "recolor: {discriminator: {width: 0.5}, loss: {rebalance_alpha: 0.5}}\n"
                 "inpaint: {mask_ratio: 0.5}\ncontrastive: {temperature: 0.1}\nprecision: '32'\n"),
    "finetune": ("model: {features: [16, 16, 32, 64, 128, 16], image_size: [96, 128], input: Lab}\n"
                 "epochs: 40\nmin_samples_per_epoch: 80\nbatch_size: 8\nlr: 0.001\nloss: dice_ce\n"
                 "augment: {flips: true, rotate: true, gain: 0.2}\nsemi: {method: fixmatch, unlabeled: frames}\n"
                 "early_stop_patience: 10\nseed: 1\n"),
}


@pytest.mark.parametrize("kind", list(TRAINING_CONFIGS))
def test_any_bytes_as_a_training_config_load_and_validate_or_end_in_one_line(tmp_path, kind):
    from endopat.config import FinetuneConfig, load_config
    from endopat.tasks.config import PretrainConfig

    model = {"pretrain": PretrainConfig, "finetune": FinetuneConfig}[kind]
    load_config(model, None)  # the seed itself is valid (else the fuzz would test nothing)
    seed = TRAINING_CONFIGS[kind].encode()
    (tmp_path / "valid.yaml").write_bytes(seed)
    load_config(model, tmp_path / "valid.yaml")
    fuzz(tmp_path, "c.yaml", seed, lambda p: load_config(model, p))

@pytest.mark.parametrize("labels", [None, {"names": ["background", "gallbladder", "tool"], "ignore": 255}])
def test_any_bytes_as_a_segmenter_checkpoint_load_or_end_in_one_line(tmp_path, labels):
    from endopat.checkpoints import make_checkpoint
    from endopat.config import ModelConfig
    from endopat.networks import build_unet
    from endopat.segmenter import Segmenter

    cfg = ModelConfig(features=(2, 2, 2, 2, 2, 2), image_size=(16, 16))
    net = build_unet(cfg, out_channels=3 if labels else 2)  # binary: one logit, which build_unet makes of 2
    buf = io.BytesIO()
    torch.save(make_checkpoint("segmenter", cfg, net.state_dict(), labels=labels), buf)
    assert fuzz(tmp_path, "best.pt", buf.getvalue(), Segmenter) > 0  # the unchanged ones load


def _segmenter_checkpoint() -> dict:
    from endopat.checkpoints import make_checkpoint
    from endopat.config import ModelConfig
    from endopat.networks import build_unet

    cfg = ModelConfig(features=(2, 2, 2, 2, 2, 2), image_size=(16, 16))
    return make_checkpoint("segmenter", cfg, build_unet(cfg, out_channels=3).state_dict(), provenance={"steps": 1},
                           labels={"names": ["background", "gallbladder", "tool"], "ignore": 255})


@pytest.mark.parametrize("key", [k for k in _segmenter_checkpoint() if k != "format"])
def test_any_value_of_a_checkpoint_field_loads_exports_or_ends_in_one_line(tmp_path, key):
    from endopat.checkpoints import save_atomic
    from endopat.export import export_onnx

    path = tmp_path / "best.pt"
    for value in FIELD_VALUES:
        save_atomic(replaced(_segmenter_checkpoint(), (key,), value), path)
        ends_in_one_line(lambda: export_onnx(path, tmp_path / "m.onnx"), path, f"{key}={value!r}")


@pytest.mark.parametrize("name", ["w.pth", "w.bin", "w.safetensors"])
def test_any_bytes_as_encoder_weights_read_or_end_in_one_line(tmp_path, name):
    from safetensors.torch import save

    from endopat.encoder_weights import read_weights_file

    state = {"conv1.weight": torch.randn(4, 3, 3, 3), "bn1.bias": torch.zeros(4)}
    if name.endswith(".safetensors"):
        seed = save(state)
    else:
        buf = io.BytesIO()
        torch.save({"state_dict": state}, buf)
        seed = buf.getvalue()
    fuzz(tmp_path, name, seed, read_weights_file)


def test_text_as_encoder_weights_is_one_line_naming_the_file(tmp_path):
    from endopat.encoder_weights import read_weights_file

    (tmp_path / "w.pth").write_text("junk")
    with pytest.raises(EndopatError, match=r"w\.pth: not a readable checkpoint"):
        read_weights_file(tmp_path / "w.pth")


def test_any_bytes_as_a_video_read_or_end_in_one_line(tmp_path):
    from endopat.data.video import iter_frames, write_video

    write_video(tmp_path / "seed.mp4", [RGB[:16, :16]] * 4, fps=5)
    fuzz(tmp_path, "v.mp4", (tmp_path / "seed.mp4").read_bytes(), lambda p: list(iter_frames(p)), n=CASES)


def test_any_bytes_in_a_frame_store_s_files_read_or_end_in_one_line(tmp_path):
    from endopat.data.store import STORE_DATA, STORE_META, FrameStore

    store = tmp_path / "store"
    store.mkdir()
    meta = json.dumps({"count": 2, "height": 4, "width": 5, "sources": [], "stride": 1}).encode()
    (store / STORE_DATA).write_bytes(bytes(2 * 4 * 5 * 3))

    def read_meta(p: Path) -> None:
        (store / STORE_META).write_bytes(p.read_bytes())
        try:
            FrameStore(store)[1]
        except EndopatError as err:  # the error names the store's own file
            raise EndopatError(f"{p}: {err}") from None

    fuzz(tmp_path, "meta.json", meta, read_meta)
    (store / STORE_META).write_bytes(meta)

    def read_data(p: Path) -> None:
        (store / STORE_DATA).write_bytes(p.read_bytes())
        try:
            FrameStore(store)[1]
        except EndopatError as err:
            raise EndopatError(f"{p}: {err}") from None

    fuzz(tmp_path, "frames.u8", bytes(2 * 4 * 5 * 3), read_data)


STORE_RECORD = {"count": 2, "height": 4, "width": 5, "kind": "images", "stride": 1,
                "sources": [{"path": "/v/a_1.png", "frames": 1}, {"path": "/v/a_2.png", "frames": 1}]}


@pytest.mark.parametrize("field", [("count",), ("height",), ("kind",), ("sources",), ("sources", 0),
                                   ("sources", 0, "path"), ("sources", 0, "frames")], ids=str)
def test_any_value_of_a_frame_store_field_reads_or_ends_in_one_line(tmp_path, field):
    from endopat.data.store import STORE_DATA, STORE_META, FrameStore
    from endopat.semi.unlabeled import Unlabeled

    (tmp_path / STORE_DATA).write_bytes(bytes(2 * 4 * 5 * 3))
    for value in FIELD_VALUES:
        (tmp_path / STORE_META).write_text(json.dumps(replaced(STORE_RECORD, field, value)))
        # its readers: the frames, and the videos the temporal pairs are drawn within
        ends_in_one_line(lambda: Unlabeled(FrameStore(tmp_path), "Lab", 1, gap=1).store[1], tmp_path,
                         f"{field}={value!r}")  # the file, or the store it makes (too few frames for a pair)


def _exports(tmp_path: Path) -> dict[str, bytes]:
    from endopat.annotation import cvat_xml, label_studio_tasks

    files = [("a.png", (24, 32))]
    tasks = label_studio_tasks(files, [MASK > 0])
    ls = [{"id": 1, "data": t["data"], "annotations": [{"id": 2, "completed_by": 1, "was_cancelled": False,
                                                        "result": t["predictions"][0]["result"],
                                                        "updated_at": "2026-12-01T10:00:00Z"}]} for t in tasks]
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 32, "height": 24}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                             "segmentation": [[8, 5, 20, 5, 20, 15, 8, 15]]}],
            "categories": [{"id": 1, "name": "instrument"}]}
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("labelmap.txt", "background:0,0,0::\ninstrument:250,50,83::\n")
        rgb = np.zeros((24, 32, 3), np.uint8)
        rgb[MASK > 0] = (250, 50, 83)
        z.writestr("SegmentationClass/a.png", _png(rgb))
    return {"cvat.xml": cvat_xml(files, [MASK > 0]).encode(), "ls.json": json.dumps(ls).encode(),
            "coco.json": json.dumps(coco).encode(), "masks.zip": zbuf.getvalue()}


def _importer(tmp_path: Path):
    """``import_export`` of an export into a labeled folder, asserting that a refused one wrote nothing."""
    from endopat.annotation.importer import import_export

    images, out = tmp_path / "frames", tmp_path / "labeled"
    images.mkdir()
    (images / "a.png").write_bytes(_png(RGB[:24, :32]))

    def imported(export: Path) -> None:
        before = sorted(out.rglob("*")) if out.exists() else []
        try:
            import_export(export, images, out, replace=True)
        except EndopatError:
            assert (sorted(out.rglob("*")) if out.exists() else []) == before  # nothing written
            raise

    return imported


@pytest.mark.parametrize("name", ["cvat.xml", "ls.json", "coco.json", "masks.zip"])
def test_any_bytes_as_an_annotation_export_import_or_end_in_one_line_writing_nothing(tmp_path, name):
    fuzz(tmp_path, name, _exports(tmp_path)[name], _importer(tmp_path))


@pytest.mark.parametrize("name", ["ls.json", "coco.json"])
def test_any_value_in_any_field_of_a_json_export_imports_or_ends_in_one_line_writing_nothing(tmp_path, name):
    imported, export = _importer(tmp_path), tmp_path / name
    record = json.loads(_exports(tmp_path)[name])
    for field in json_fields(record):
        for value in FIELD_VALUES:
            export.write_text(json.dumps(replaced(record, field, value)))
            ends_in_one_line(lambda: imported(export), export, f"{field}={value!r}")


def test_any_bytes_as_a_labeled_folder_s_import_manifest_import_or_end_in_one_line_writing_nothing(tmp_path):
    from endopat.annotation.importer import MANIFEST, import_export

    images = tmp_path / "frames"
    images.mkdir()
    (images / "a.png").write_bytes(_png(RGB[:24, :32]))
    export = tmp_path / "coco.json"
    export.write_bytes(_exports(tmp_path)["coco.json"])
    out = tmp_path / "labeled"
    import_export(export, images, out)  # a folder an earlier import made
    seed = (out / MANIFEST).read_bytes()
    (out / "masks" / "a.png").unlink()  # so that each import has a frame to write

    def read(p: Path) -> None:
        before = sorted(out.rglob("*"))
        try:
            import_export(export, images, out)
        except EndopatError:
            assert sorted(out.rglob("*")) == before  # nothing written
            raise
        finally:
            (out / "masks" / "a.png").unlink(missing_ok=True)

    fuzz(tmp_path, f"labeled/{MANIFEST}", seed, read)


def test_any_bytes_as_a_split_file_read_or_end_in_one_line(tmp_path):
    from endopat.data.splits import Split

    seed = Split(["a", "b"], ["c"], ["d"], {"1": [["a", "b"]], "1/2": [["a"], ["b"]]}, 0, "src", None).to_json()
    fuzz(tmp_path, "split.json", seed.encode(), Split.load)


def test_any_bytes_in_a_finished_cell_or_study_json_end_in_one_line(tmp_path):
    from endopat.report.tables import table_rows
    from endopat.study.report import collect, summaries
    from endopat.study.prepare import check_same_study

    cell = tmp_path / "run" / "cells" / "baseline" / "c0"
    cell.mkdir(parents=True)
    meta = json.dumps({"key": "baseline/c0", "method": "baseline", "fraction": "1", "subset": 0, "repeat": 0,
                       "pretrain_rep": 0, "labels": 40, "round": 0, "seconds": 53.4}).encode()
    (cell / "cell.json").write_bytes(meta)
    metrics = b"id,dice,iou\nimg0,0.5,0.4\nimg1,0.7,0.6\n"

    def read_metrics(p: Path) -> None:  # and the report's table of it
        (cell / "metrics.csv").write_bytes(p.read_bytes())
        try:
            table_rows(summaries(collect(tmp_path / "run"), ["baseline"]), "baseline")
        except EndopatError as err:
            raise EndopatError(f"{p}: {err}") from None

    fuzz(tmp_path, "metrics.csv", metrics, read_metrics)
    (cell / "metrics.csv").write_bytes(metrics)

    def read_meta(p: Path) -> None:  # and what the report makes of it
        (cell / "cell.json").write_bytes(p.read_bytes())
        try:
            summaries(collect(tmp_path / "run"), ["baseline"])
        except EndopatError as err:
            raise EndopatError(f"{p}: {err}") from None

    fuzz(tmp_path, "cell.json", meta, read_meta)

    class Cfg:  # check_same_study compares the saved config with this one
        @staticmethod
        def model_dump_json():
            return json.dumps({"name": "x"})

    def read_study(p: Path) -> None:
        (tmp_path / "run" / "study.json").write_bytes(p.read_bytes())
        try:
            check_same_study(Cfg, tmp_path / "run")
        except EndopatError as err:
            raise EndopatError(f"{p}: {err}") from None

    fuzz(tmp_path, "study.json", json.dumps({"name": "x", "seed": 0}).encode(), read_study)


def test_any_bytes_as_an_onnx_model_load_or_end_in_one_line(tmp_path):
    pytest.importorskip("onnxruntime")
    import onnx

    from endopat.config import ModelConfig
    from endopat.export import OnnxSegmenter

    seed = tmp_path / "seed.onnx"
    torch.onnx.export(torch.nn.Conv2d(1, 1, 1), (torch.zeros(1, 1, 8, 8),), str(seed), dynamo=False,
                      input_names=["input"], output_names=["probability"])
    model = onnx.load(str(seed))
    entry = model.metadata_props.add()
    entry.key, entry.value = "endopat", json.dumps({"model": ModelConfig().model_dump(mode="json"), "threshold": 0.5})
    onnx.save(model, str(seed))
    assert fuzz(tmp_path, "m.onnx", seed.read_bytes(), lambda p: OnnxSegmenter(p).forward(torch.zeros(1, 1, 8, 8))) > 0


def test_any_bytes_as_a_classes_txt_read_or_end_in_one_line(tmp_path):
    from endopat.labels import Labels

    fuzz(tmp_path, "classes.txt", b"0 background\n1 cystic_plate\n2 tool\n255 ignore\n", Labels.read)


def test_any_class_id_mask_bytes_read_or_end_in_one_line(tmp_path):
    from endopat.data.labeled import Sample, load_mask
    from endopat.labels import Labels

    ids = (np.arange(24 * 32).reshape(24, 32) % 4).astype(np.uint8)
    ids[0] = 255
    labels = Labels(("background", "a", "b", "c"))
    fuzz(tmp_path, "m.png", _png(ids),
         lambda p: load_mask(Sample(tmp_path / "img.png", (p,), "g", "id", encoding="ids", labels=labels), (24, 32)))


def _histogram_file(path: Path) -> None:
    from endopat.colour import ABHistogram

    ABHistogram.load(path)


def _overlap_file(path: Path) -> None:
    from endopat.study.sources import pretraining_source

    (path.parent / "sources" / "t").mkdir(parents=True, exist_ok=True)
    (path.parent / "sources" / "t" / "overlap.json").write_bytes(path.read_bytes())
    try:
        pretraining_source(path.parent, "t")
    except EndopatError as err:
        raise EndopatError(f"{path}: {err}") from None


def _selection_file(path: Path) -> None:
    from endopat.study.selection import SELECTION, saved_ids

    (path.parent / "cell").mkdir(exist_ok=True)
    (path.parent / "cell" / SELECTION).write_bytes(path.read_bytes())
    try:
        saved_ids(path.parent / "cell")
    except EndopatError as err:
        raise EndopatError(f"{path}: {err}") from None


def _stage_done_file(path: Path) -> None:
    from endopat.report.compute import compute_rows

    (path.parent / "stages" / "pretrain" / "t").mkdir(parents=True, exist_ok=True)
    (path.parent / "stages" / "pretrain" / "t" / "done.json").write_bytes(path.read_bytes())
    compute_rows(path.parent, [], [])


RUN_RECORDS = {  # a run folder's own files, as endopat writes them, and what reads each back
    "ab_histogram.json": (lambda: json.dumps({"grid_size": 1, "offset": 128, "counts": [[3] * 256, [1] * 256]}),
                          _histogram_file),
    "overlap.json": (lambda: json.dumps({"key": "k", "overlap": {
        "name": "t", "source": "/data/t", "setting": "exclude", "kind": "images", "files": 12,
        "test": {"same file": 2}, "names": ["a.png", "b.png"], "used": "/run/sources/t/view", "every": 1}}),
        _overlap_file),
    "selection.json": (lambda: json.dumps({"strategy": "diverse", "labels": 2, "ids": ["a", "b"], "added": ["b"]}),
                       _selection_file),
    "done.json": (lambda: json.dumps({"stage": "pretrain/t", "seconds": 812.5}), _stage_done_file),
}


@pytest.mark.parametrize("name", list(RUN_RECORDS))
def test_any_bytes_in_a_run_folder_s_own_record_read_or_end_in_one_line(tmp_path, name):
    seed, read = RUN_RECORDS[name]
    fuzz(tmp_path, name, seed().encode(), read)


def test_any_bytes_as_a_kvasir_split_list_read_or_end_in_one_line(tmp_path):
    from endopat.data.readers import open_labeled
    from endopat.io import write_png

    root = tmp_path / "kvasir"
    for i in range(2):
        write_png(root / "images" / f"k{i}.png", RGB)
        write_png(root / "masks" / f"k{i}.png", MASK)

    def read(path: Path) -> None:
        (root / "train.txt").write_bytes(path.read_bytes())
        try:
            open_labeled(root, "kvasir")
        except EndopatError as err:
            raise EndopatError(f"{path}: {err}") from None

    fuzz(tmp_path, "train.txt", b"k0\nk1\n", read)
