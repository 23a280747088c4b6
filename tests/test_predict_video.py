import csv

import numpy as np
import pytest
from conftest import direct_masks, random_images
from PIL import Image

from endopat.data.video import iter_frames, write_video
from endopat.predict import predict


def test_predict_on_a_video_writes_an_overlay_of_the_same_length_and_a_csv(tmp_path, model_path):
    write_video(tmp_path / "v.mp4", random_images(7, 48, 64), fps=10)
    (result,) = predict(model_path, tmp_path / "v.mp4", tmp_path / "out", batch_size=3, save_masks=True,
                        progress=False)["videos"]
    assert result["frames"] == 7
    assert sum(1 for _ in iter_frames(result["overlay"])) == 7
    rows = list(csv.DictReader(open(result["csv"])))
    assert [int(r["frame"]) for r in rows] == list(range(7))
    assert float(rows[1]["time_s"]) == pytest.approx(0.1)
    decoded = [f for _, f in iter_frames(tmp_path / "v.mp4")]
    expected = direct_masks(model_path, decoded)
    saved = np.asarray(Image.open(tmp_path / "out" / "v_masks" / "frame_000004.png")) > 0
    assert np.array_equal(saved, expected[4])
    assert float(rows[4]["area_fraction"]) == pytest.approx(expected[4].mean())


def test_a_multi_class_video_gets_class_areas_per_frame_and_class_id_masks(tmp_path, three_class_path):
    from endopat.segmenter import Segmenter

    write_video(tmp_path / "v.mp4", random_images(5, 48, 64), fps=10)
    (result,) = predict(three_class_path, tmp_path / "v.mp4", tmp_path / "out", batch_size=2, save_masks=True,
                        progress=False, backend="torch")["videos"]
    rows = list(csv.DictReader(open(result["csv"])))
    assert list(rows[0]) == ["frame", "time_s", "area_background", "area_liver", "area_tool", "mean_confidence"]
    decoded = [f for _, f in iter_frames(tmp_path / "v.mp4")]
    want = Segmenter(three_class_path).predict_ids(decoded)[3]
    saved = np.asarray(Image.open(tmp_path / "out" / "v_masks" / "frame_000003.png"))
    assert np.array_equal(saved, want)
    assert float(rows[3]["area_tool"]) == pytest.approx((want == 2).mean(), abs=1e-6)
    assert sum(1 for _ in iter_frames(result["overlay"])) == 5


class Killed(Exception):
    pass


def counting(model_path, kill_after=None):
    """The torch model of ``model_path`` counting the frames it segments (and raising Killed, as a
    kill would stop it, once it has segmented ``kill_after``)."""
    from endopat.segmenter import Segmenter

    model = Segmenter(model_path)
    forward, model.seen = model.forward, 0

    def counted(x):
        if kill_after is not None and model.seen >= kill_after:
            raise Killed
        model.seen += len(x)
        return forward(x)

    model.forward = counted
    return model


def run_video(model, video, out, **kw):
    from endopat.predict_video import predict_video

    return predict_video(model, video, out, batch_size=1, part_frames=3, run={"model": "m"}, **kw)


@pytest.fixture
def video(tmp_path):
    write_video(tmp_path / "v.mp4", random_images(7, 48, 64), fps=10)
    return tmp_path / "v.mp4"


def test_a_video_in_parts_joins_into_every_frame_and_row_and_leaves_no_parts(tmp_path, model_path, video):
    result = run_video(counting(model_path), video, tmp_path / "out", save_masks=True)
    assert result["frames"] == 7 and sum(1 for _ in iter_frames(result["overlay"])) == 7
    assert [r["frame"] for r in csv.DictReader(open(result["csv"]))] == [str(i) for i in range(7)]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["v_frames.csv", "v_masks", "v_overlay.mp4", "v_predict.json"]


def test_a_killed_video_resumes_at_its_last_whole_part_and_ends_as_an_unkilled_run(tmp_path, model_path, video):
    whole = run_video(counting(model_path), video, tmp_path / "whole")
    with pytest.raises(Killed):  # killed in the second part: the first (frames 0-2) is whole
        run_video(counting(model_path, kill_after=5), video, tmp_path / "out")
    lines, model = [], counting(model_path)
    result = run_video(model, video, tmp_path / "out", log=lines.append)
    assert "resuming: 3 frames of v.mp4 already segmented by this run" in "\n".join(lines)
    assert model.seen == 4  # frames 3-6 only
    assert open(result["csv"]).read() == open(whole["csv"]).read()
    # 64 wide: x264 encodes the same frames to the same bytes only at widths that are multiples of 64 (README)
    got, want = ([f for _, f in iter_frames(r["overlay"])] for r in (result, whole))
    assert len(got) == 7 and all(np.array_equal(a, b) for a, b in zip(got, want))


@pytest.mark.parametrize("damage", ["run.json", "part_000000.json", "part_000000.mp4", "part_000001.mp4"])
def test_a_damaged_part_or_record_is_made_again_with_what_follows(tmp_path, model_path, video, damage):
    with pytest.raises(Killed):  # parts 0 and 1 whole (frames 0-5), the last not begun
        run_video(counting(model_path, kill_after=6), video, tmp_path / "out")
    part = tmp_path / "out" / "v_parts" / damage
    part.write_bytes(part.read_bytes()[: len(part.read_bytes()) // 2])
    model = counting(model_path)
    result = run_video(model, video, tmp_path / "out")
    redo = {"run.json": 7, "part_000000.json": 7, "part_000000.mp4": 7, "part_000001.mp4": 4}[damage]
    assert model.seen == redo and result["frames"] == 7
    assert [r["frame"] for r in csv.DictReader(open(result["csv"]))] == [str(i) for i in range(7)]


def test_another_threshold_segments_the_whole_video_again(tmp_path, model_path, video):
    with pytest.raises(Killed):
        run_video(counting(model_path, kill_after=5), video, tmp_path / "out")
    model = counting(model_path)
    run_video(model, video, tmp_path / "out", threshold=0.4)
    assert model.seen == 7


def test_predict_segments_a_changed_video_again(tmp_path, model_path, video, monkeypatch):
    import functools

    import endopat.predict as predict_module
    from endopat.predict_video import predict_video

    monkeypatch.setattr(predict_module, "predict_video", functools.partial(predict_video, part_frames=3))
    for kill_after, frames in ((5, random_images(7, 48, 64)), (None, random_images(7, 48, 64, seed=1))):
        model = counting(model_path, kill_after)
        monkeypatch.setattr(predict_module, "load_model", lambda *a, model=model: model)
        write_video(video, frames, fps=10)  # the second time: the same name, other frames
        try:
            predict(model_path, video, tmp_path / "out", batch_size=1, progress=False)
        except Killed:
            pass
    assert model.seen == 7


def test_a_finished_video_is_not_segmented_again_by_the_same_run(tmp_path, model_path, video):
    run_video(counting(model_path), video, tmp_path / "out")
    lines, model = [], counting(model_path)
    result = run_video(model, video, tmp_path / "out", log=lines.append)
    assert model.seen == 0 and result["frames"] == 7 and "v.mp4: already segmented by this run" in lines[0]


def test_a_run_killed_over_another_runs_finished_video_does_not_leave_it_finished(tmp_path, model_path, video):
    run_video(counting(model_path), video, tmp_path / "out")
    with pytest.raises(Killed):  # another threshold: its masks begin to replace the first run's
        run_video(counting(model_path, kill_after=2), video, tmp_path / "out", threshold=0.4)
    model = counting(model_path)
    run_video(model, video, tmp_path / "out")
    assert model.seen == 7


def test_a_folder_of_videos_resumes_video_by_video(tmp_path, model_path, monkeypatch):
    import functools

    import endopat.predict as predict_module
    from endopat.predict_video import predict_video

    monkeypatch.setattr(predict_module, "predict_video", functools.partial(predict_video, part_frames=3))
    for name, seed in (("a", 0), ("b", 1)):
        write_video(tmp_path / "in" / f"{name}.mp4", random_images(5, 48, 64, seed), fps=10)
    seen = []
    for kill_after in (8, None):  # killed in b's second part: a finished, b's first part whole
        model = counting(model_path, kill_after)
        monkeypatch.setattr(predict_module, "load_model", lambda *a, model=model: model)
        try:
            result = predict(model_path, tmp_path / "in", tmp_path / "out", batch_size=1, progress=False)
        except Killed:
            pass
        seen.append(model.seen)
    assert seen == [8, 2] and [v["frames"] for v in result["videos"]] == [5, 5]


def test_a_record_or_part_with_any_field_replaced_is_kept_or_made_again(tmp_path, model_path, video):
    """A field gone or of another type makes its part again; a number in place of a number is an
    edit the part keeps (as a hand-edited mask is kept), but never a frame out of its place."""
    import json
    import shutil

    from conftest import FIELD_VALUES, json_fields, replaced

    whole = run_video(counting(model_path), video, tmp_path / "whole")
    with pytest.raises(Killed):  # one whole part, and the record of the finished run beside it
        run_video(counting(model_path, kill_after=5), video, tmp_path / "killed")
    shutil.copy(tmp_path / "whole" / "v_predict.json", tmp_path / "killed" / "v_predict.json")
    for name in ("v_predict.json", "v_parts/part_000000.json", "v_parts/run.json"):
        record = json.loads((tmp_path / "killed" / name).read_text())
        # the top-level fields and the first row's (the other rows and the run's copy are alike)
        for field in [f for f in json_fields(record) if len(f) == 1 or f[:2] == ("rows", 0)]:
            for value in FIELD_VALUES:
                out = tmp_path / "case"
                shutil.rmtree(out, ignore_errors=True)
                shutil.copytree(tmp_path / "killed", out)
                (out / name).write_text(json.dumps(replaced(record, field, value)))
                result = run_video(counting(model_path), video, out)  # no exception
                rows = list(csv.DictReader(open(result["csv"])))
                assert [r["frame"] for r in rows] == [str(i) for i in range(7)], (name, field, value)
                if not isinstance(value, (int, float)) or value != value:  # not a number: made again
                    assert rows == list(csv.DictReader(open(whole["csv"]))), (name, field, value)


def test_a_model_that_outputs_nan_still_gets_its_table_written(tmp_path, model_path, video):
    import torch

    model = counting(model_path)
    forward = model.forward
    model.forward = lambda x: torch.full_like(forward(x), float("nan"))
    result = run_video(model, video, tmp_path / "out")
    rows = list(csv.DictReader(open(result["csv"])))
    assert len(rows) == 7 and rows[0]["mean_probability"] == "nan"
