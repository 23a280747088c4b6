import json

import numpy as np
import pytest
from conftest import TINY_STUDY, slow_or_shuffled_video_store

from endopat.data.labeled import Sample
from endopat.errors import EndopatError
from endopat.io import write_png
from endopat.study.config import study_from_dict
from endopat.study.sources import find_overlap, pair_likeness, prepare_source, pretraining_source, semi_store


def _image(seed, shape=(24, 32)):
    return np.random.default_rng(seed).integers(0, 255, (*shape, 3), dtype=np.uint8)


@pytest.fixture
def dataset(tmp_path):
    """A labeled test surgery OP3 (2 frames) and an unlabeled folder of 6 frames: one of them the
    same file, one a copy of a test frame's pixels under another name, one from OP3's video."""
    test_dir, unl = tmp_path / "labeled" / "images", tmp_path / "unlabeled"
    test = []
    for k in range(2):
        write_png(test_dir / f"OP3_img_{k:02d}.png", _image(k))
        test.append(Sample(test_dir / f"OP3_img_{k:02d}.png", (), "OP3_img", f"OP3_img_{k:02d}"))
    for k in range(3):
        write_png(unl / f"OP1_img_{k:02d}.png", _image(10 + k))
    write_png(unl / "OP9_img_00.png", _image(1))  # the pixels of OP3_img_01
    write_png(unl / "OP3_img_05.png", _image(20))  # another frame of the test surgery
    return test, unl


def test_a_copy_of_a_test_frame_counts_as_the_same_pixels_and_a_frame_of_its_video_as_the_same_video(dataset):
    test, unl = dataset
    o = find_overlap("u", unl, test, "exclude")
    assert (o.files, o.test) == (5, {"same file": 0, "same pixels": 1, "same video": 1})
    assert sorted(o.names) == ["OP3_img_05.png", "OP9_img_00.png"]


def test_the_test_split_s_own_image_file_counts_as_the_same_file(dataset, tmp_path):
    test, unl = dataset
    o = find_overlap("u", test[0].image.parent, test, "keep")
    assert o.test["same file"] == 2 and o.n_test == 2


def test_exclude_pretrains_on_a_view_without_the_test_frames(dataset, tmp_path):
    test, unl = dataset
    o = prepare_source("target", unl, test, "exclude", tmp_path / "run")
    view = pretraining_source(tmp_path / "run", "target")
    assert view == tmp_path / "run" / "sources" / "target" / "view" and str(view) == o.used
    assert sorted(p.name for p in view.iterdir()) == [f"OP1_img_{k:02d}.png" for k in range(3)]
    assert "2 of 5 frames are from the test split (1 same pixels, 1 same video); left out" in o.sentence()


def test_keep_pretrains_on_the_whole_source_and_says_that_it_saw_the_test_frames(dataset, tmp_path):
    test, unl = dataset
    o = prepare_source("target", unl, test, "keep", tmp_path / "run")
    assert pretraining_source(tmp_path / "run", "target") == unl
    assert "pretraining saw them" in o.sentence()


def test_a_video_named_like_a_test_video_belongs_to_the_test_split(tmp_path):
    from endopat.data.video import write_video

    for name in ("vid01", "vid03"):
        write_video(tmp_path / "videos" / f"{name}.mp4", [_image(0, (32, 32))] * 2, fps=5)
    test = [Sample(tmp_path / "x.png", (), "vid03", "vid03_f000")]
    o = find_overlap("v", tmp_path / "videos", test, "exclude")
    assert (o.kind, o.files, o.test["same video"], o.names) == ("videos", 2, 1, ["vid03.mp4"])
    assert o.sentence().startswith("1 of 2 videos")


def test_a_source_made_only_of_test_frames_is_an_error_with_exclude(dataset, tmp_path):
    test, _ = dataset
    with pytest.raises(EndopatError, match="every file is from the test split"):
        prepare_source("t", test[0].image.parent, test, "exclude", tmp_path / "run")


def test_a_frame_store_holding_test_frames_cannot_be_filtered_and_says_so(dataset, tmp_path):
    from endopat.data.frames import build_store

    test, unl = dataset
    store = build_store(unl, tmp_path / "store", (16, 16))
    with pytest.raises(EndopatError, match="frame store with 1 frames of the test split"):
        prepare_source("s", store.root, test, "exclude", tmp_path / "run")


def test_a_plain_path_in_the_config_means_a_source_whose_test_frames_are_left_out():
    cfg = study_from_dict({"labeled": {"path": "l"}, "unlabeled": {"target": "u"}, "methods": [{"name": "baseline"}]})
    assert (cfg.unlabeled["target"].path, cfg.unlabeled["target"].test_frames) == ("u", "exclude")


def test_a_study_folder_that_pretrained_on_test_frames_before_the_setting_existed_is_not_resumed_as_excluding(
        tmp_path):
    from endopat.study.runner import check_same_study

    base = {"labeled": {"path": "l"}, "unlabeled": {"target": "u"}, "methods": [{"name": "baseline"}]}
    cfg = study_from_dict(base)
    saved = json.loads(cfg.model_dump_json())
    saved["unlabeled"] = {"target": "u"}  # as an older endopat wrote it
    (tmp_path / "study.json").write_text(json.dumps(saved))
    with pytest.raises(EndopatError, match="unlabeled.target.test_frames"):
        check_same_study(cfg, tmp_path)
    check_same_study(study_from_dict({**base, "unlabeled": {"target": {"path": "u", "test_frames": "keep"}}}),
                     tmp_path)


def test_every_thins_a_folder_of_images_before_the_test_frames_are_left_out(dataset, tmp_path):
    test, unl = dataset
    o = prepare_source("thin", unl, test, "exclude", tmp_path / "run", every=2)
    # files in name order: OP1_img_00, OP1_img_01, OP1_img_02, OP3_img_05, OP9_img_00 -> 00, 02, OP9 (test pixels)
    assert o.files == 3 and o.n_test == 1 and "(one file in 2)" in o.sentence()
    assert sorted(p.name for p in pretraining_source(tmp_path / "run", "thin").iterdir()) == \
        ["OP1_img_00.png", "OP1_img_02.png"]


def test_a_method_s_own_pretraining_steps_make_a_stage_of_their_own():
    from endopat.study.grid import all_stages

    cfg = study_from_dict({"labeled": {"path": "l"}, "unlabeled": {"u": "u"}, "pretrain": {"steps": 600},
                           "methods": [{"name": "PAT", "pretrain": "u"},
                                       {"name": "PAT long", "pretrain": "u", "pretrain_steps": 2400}]})
    stages = {s.key: s for s in all_stages(cfg)}
    assert set(stages) == {"pretrain/u", "pretrain/u+s2400"}
    assert cfg.pretrain_config(steps=stages["pretrain/u+s2400"].steps).steps == 2400
    assert cfg.pretrain_config(steps=stages["pretrain/u"].steps).steps == 600


@pytest.mark.parametrize("shuffled, warned", [(False, False), (True, True)])
def test_the_report_says_how_alike_a_temporal_row_s_pairs_are_and_warns_when_no_more_than_random(
        tmp_path, shuffled, warned):
    semi = {"method": "temporal", "source": "target", "gap": 1}
    cfg = study_from_dict({**TINY_STUDY, "methods": [{"name": "baseline"}, {"name": "temporal", "semi": semi},
                                                     {"name": "mean teacher", "semi": {**semi, "method": "mean_teacher"}}]})
    out = tmp_path / "run"
    assert pair_likeness(out, cfg) == []  # not built yet: nothing to say
    slow_or_shuffled_video_store(tmp_path, shuffled, semi_store(out, "target", cfg.model, 1.0))  # 32x32, as TINY_STUDY
    ((name, text),) = pair_likeness(out, cfg)  # the temporal row only
    assert name == "temporal" and ("no more alike than random frames" in text) == warned


def test_a_damaged_store_of_a_temporal_row_leaves_its_line_out_of_the_report(tmp_path):
    cfg = study_from_dict({**TINY_STUDY, "methods": [{"name": "baseline"}, {"name": "temporal", "semi": {
        "method": "temporal", "source": "target"}}]})
    store = slow_or_shuffled_video_store(tmp_path, False, semi_store(tmp_path / "run", "target", cfg.model, 1.0))
    (store.root / "store.json").write_text('{"frames": "many"')
    assert pair_likeness(tmp_path / "run", cfg) == []
