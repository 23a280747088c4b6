import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from endopat.checkpoints import save_checkpoint
from endopat.config import ModelConfig
from endopat.data.video import write_video
from endopat.errors import EndopatError
from endopat.networks import build_unet
from endopat.choose import Candidate, choose, k_center
from endopat.suggest import suggest

CFG = ModelConfig(features=(4, 4, 8, 8, 16, 4), image_size=(32, 32))


def frames_of(n, seed=0, size=(40, 56)):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (*size, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    torch.manual_seed(0)
    unet = build_unet(CFG)
    with torch.no_grad():
        unet.final_conv.bias.copy_(torch.tensor([0.0, 0.05]))
    return save_checkpoint(tmp_path_factory.mktemp("m") / "seg.pt", kind="segmenter", model_cfg=CFG,
                           state_dict=unet.state_dict())


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Two 4-second videos: each a slow fade, so neighbouring frames are near-duplicates."""
    root = tmp_path_factory.mktemp("videos")
    for v, colour in enumerate(((200, 60, 50), (60, 160, 200))):
        write_video(root / f"vid{v}.mp4", [np.clip(np.full((48, 64, 3), colour) + 3 * t, 0, 255).astype(np.uint8)
                                          for t in range(40)], fps=10)
    return root


def test_k_center_picks_the_spread_out_points_of_a_crafted_embedding():
    rng = np.random.default_rng(0)
    corners = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], float)
    emb = np.concatenate([c + 0.1 * rng.standard_normal((25, 2)) for c in corners])
    picked, _ = k_center(emb, 4)
    assert sorted(i // 25 for i in picked) == [0, 1, 2, 3]  # one point from each cluster


def test_k_center_starts_from_the_labeled_frames():
    emb = np.array([[0.0, 0], [0.1, 0], [5, 0], [5.1, 0]])
    picked, _ = k_center(emb, 1, centers=np.array([[0.0, 0.0]]))
    assert picked[0] in (2, 3)


@pytest.mark.parametrize("strategy", ["random", "diverse", "uncertain", "hybrid"])
def test_neighbouring_frames_of_a_video_are_not_picked_together(strategy):
    cands = [Candidate("v.mp4", "v", i, i * 0.5) for i in range(40)]  # 20 s at 2 frames/s
    emb = np.random.default_rng(1).standard_normal((40, 8))
    u = np.random.default_rng(2).random(40)
    times = sorted(cands[i].time_s for i, _, _ in choose(strategy, 5, emb, cands, uncertainty=u, min_gap=2.0))
    assert len(times) == 5 and min(np.diff(times)) >= 2.0


def test_random_choice_is_deterministic_by_seed():
    cands = [Candidate("v.mp4", "v", i, float(i)) for i in range(50)]
    emb = np.zeros((50, 2))
    picks = [[i for i, _, _ in choose("random", 5, emb, cands, seed=s)] for s in (3, 3, 4)]
    assert picks[0] == picks[1] != picks[2]


def test_diverse_suggestion_of_videos_writes_full_resolution_frames_with_time_stamps(tmp_path, videos):
    result = suggest(videos, 4, tmp_path / "out", strategy="diverse", fps=5, min_gap=1.0, progress=False)
    with open(tmp_path / "out" / "ranking.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert result["candidates"] == 2 * 20 and len(rows) == 4
    assert {r["video"] for r in rows} == {"vid0", "vid1"}  # spread over both videos
    first = Image.open(tmp_path / "out" / rows[0]["file"])
    assert first.size == (64, 48) and "_t" in rows[0]["file"]
    assert (tmp_path / "out" / "contact_sheet.png").is_file()


def test_frames_already_labeled_are_excluded(tmp_path):
    (tmp_path / "pool").mkdir()
    (tmp_path / "done" / "images").mkdir(parents=True)
    for k, f in enumerate(frames_of(8)):
        Image.fromarray(f).save(tmp_path / "pool" / f"f{k}.png")
        if k < 3:
            Image.fromarray(f).save(tmp_path / "done" / "images" / f"copy{k}.png")  # same pixels, other name
    suggest(tmp_path / "pool", 5, tmp_path / "out", labeled=tmp_path / "done", progress=False)
    with open(tmp_path / "out" / "ranking.csv") as fh:
        chosen = {r["file"] for r in csv.DictReader(fh)}
    assert chosen == {f"frames/f{k}.png" for k in range(3, 8)}


def test_a_segmenter_gives_uncertainty_and_pre_annotations_that_label_studio_reads(tmp_path, videos, segmenter):
    pytest.importorskip("label_studio_sdk")
    from label_studio_sdk.converter.brush import decode_rle
    from label_studio_sdk.label_interface import LabelInterface

    suggest(videos, 3, tmp_path / "out", model=segmenter, strategy="hybrid", fps=5, progress=False)
    with open(tmp_path / "out" / "ranking.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert all(float(r["uncertainty"]) > 0 for r in rows)
    config = (tmp_path / "out" / "label_studio" / "label_config.xml").read_text()
    tasks = json.loads((tmp_path / "out" / "label_studio" / "tasks.json").read_text())
    interface = LabelInterface(config)
    for task in tasks:
        assert interface.validate_task({"data": task["data"]}) and interface.validate_prediction(task["predictions"][0])
        (result,) = task["predictions"][0]["result"]
        rgba = decode_rle(result["value"]["rle"]).reshape(result["original_height"], result["original_width"], 4)
        assert rgba.shape[:2] == (48, 64)


@pytest.mark.parametrize("strategy", ["uncertain", "hybrid"])
def test_uncertainty_without_a_segmenter_is_a_one_line_error(tmp_path, videos, strategy):
    with pytest.raises(EndopatError, match="needs a segmenter"):
        suggest(videos, 2, tmp_path / "out", strategy=strategy, progress=False)


def test_an_empty_source_is_an_error_naming_it(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EndopatError, match="empty"):
        suggest(tmp_path / "empty", 2, tmp_path / "out", progress=False)


def test_a_model_that_is_not_a_checkpoint_is_an_error_naming_it(tmp_path, videos):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(EndopatError, match="bad.pt"):
        suggest(videos, 2, tmp_path / "out", model=tmp_path / "bad.pt", progress=False)


def test_a_frame_store_is_a_source_too(tmp_path):
    from endopat.data.frames import build_store

    (tmp_path / "imgs").mkdir()
    for k, f in enumerate(frames_of(6)):
        Image.fromarray(f).save(tmp_path / "imgs" / f"{k}.png")
    build_store(tmp_path / "imgs", tmp_path / "store", (32, 32))
    result = suggest(tmp_path / "store", 3, tmp_path / "out", progress=False)
    with open(tmp_path / "out" / "ranking.csv") as fh:
        files = [r["file"] for r in csv.DictReader(fh)]
    assert result["candidates"] == 6 and all(f.startswith("frames/store_f") for f in files)
    assert Image.open(tmp_path / "out" / files[0]).size == (32, 32)
