import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import TINY_STUDY, same_weights
from endopat.data.splits import label_subsets, Split
from endopat.encoder_weights import random_published
from endopat.errors import EndopatError
from endopat.study.config import study_from_dict
from endopat.study.grid import all_stages, cells, parse_shard, shard


def fake_split(n_train=16, fractions=("1", "1/2", "1/4")):
    train = [f"x{i}" for i in range(n_train)]
    return Split(train, ["v"], ["t"], label_subsets(train, fractions, 5, 0))


def grid_config(**changes):
    return study_from_dict({**TINY_STUDY, "fractions": ["1", "1/2", "1/4"], "subsets": 5, **changes})


def test_grid_has_one_cell_per_method_fraction_and_subset():
    cs = cells(grid_config(), fake_split())
    assert len(cs) == 4 * (1 + 2 + 4)
    assert len({c.key for c in cs}) == len(cs)


def test_finetune_seeds_repeat_each_cell_with_its_own_seed_and_keep_single_run_keys():
    cs = cells(grid_config(finetune_seeds=2), fake_split())
    assert len(cs) == 2 * 4 * (1 + 2 + 4) and len({c.key for c in cs}) == len(cs)
    first = [c for c in cs if c.method.name == "baseline" and c.fraction == "1"]
    assert [c.key for c in first] == ["baseline/f1_s0", "baseline/f1_s0_r1"]
    assert first[0].seed(7) != first[1].seed(7)


def test_pretrain_seeds_repeat_each_stage_and_the_cells_that_start_from_it():
    cfg = grid_config(pretrain_seeds=2)
    keys = [s.key for s in all_stages(cfg)]
    assert keys == ["pretrain/target", "supervised/other+pat-target", "pretrain/target+inpaint",
                    "pretrain/target_p1", "supervised/other+pat-target_p1", "pretrain/target+inpaint_p1"]
    stages = all_stages(cfg)
    assert stages[0].seed(7) == 7 and stages[3].seed(7) != 7
    cs = cells(cfg, fake_split())
    per_method = {m: sum(c.method.name == m for c in cs) for m in ("baseline", "PAT", "PAT-Ext")}
    assert per_method == {"baseline": 7, "PAT": 14, "PAT-Ext": 14}
    pat = [c.key for c in cs if c.method.name == "PAT" and c.fraction == "1"]
    assert pat == ["pat/f1_s0", "pat/f1_s0_p1"]
    assert len({c.seed(0) for c in cs if c.method.name == "PAT" and c.fraction == "1"}) == 1



@pytest.mark.parametrize("changes, named", [
    ({"finetune_seeds": 10**9}, "finetune_seeds"),
    ({"pretrain_seeds": 10**9}, "pretrain_seeds"),
    ({"finetune_seeds": 500, "pretrain_seeds": 500}, "the grid could hold"),
    ({"seed": -1}, "'seed'"),
    ({"test_fraction": float("nan")}, "'test_fraction'"),
])
def test_a_grid_too_large_to_run_or_a_seed_out_of_range_is_refused_before_the_grid_is_listed(changes, named):
    with pytest.raises(EndopatError, match=named):
        study_from_dict({**TINY_STUDY, **changes})

def test_a_config_path_expands_environment_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("ENDOPAT_TEST_ROOT", str(tmp_path))
    assert grid_config().resolve("$ENDOPAT_TEST_ROOT/x", Path("/run")) == tmp_path / "x"
    monkeypatch.delenv("ENDOPAT_TEST_ROOT")
    with pytest.raises(EndopatError, match="ENDOPAT_TEST_ROOT is not set"):
        grid_config().resolve("$ENDOPAT_TEST_ROOT/x", Path("/run"))


def test_methods_share_the_pretraining_stage_they_have_in_common():
    keys = [s.key for s in all_stages(grid_config())]
    assert keys == ["pretrain/target", "supervised/other+pat-target", "pretrain/target+inpaint"]


def test_the_shards_partition_the_grid():
    cs = cells(grid_config(), fake_split())
    parts = [shard(cs, i, 4) for i in range(4)]
    keys = [c.key for p in parts for c in p]
    assert sorted(keys) == sorted(c.key for c in cs) and len(keys) == len(set(keys))


def test_a_bad_shard_spec_is_an_error():
    assert parse_shard("2/3") == (2, 3)
    with pytest.raises(EndopatError, match="--shard"):
        parse_shard("3/3")


def test_a_method_naming_an_unknown_source_is_an_error():
    with pytest.raises(EndopatError, match="pretrain source 'nowhere'"):
        grid_config(methods=[{"name": "PAT", "pretrain": "nowhere"}])


def test_a_method_naming_an_unknown_task_is_an_error_listing_the_tasks():
    with pytest.raises(EndopatError, match="unknown task 'jigsaw' .the tasks: recolor, inpaint, contrastive"):
        grid_config(methods=[{"name": "PAT", "pretrain": "target", "task": "jigsaw"}])


def test_each_pretraining_task_shows_its_sample_figure_in_the_report(finished):
    out, _ = finished
    md = (out / "report" / "report.md").read_text()
    for stage in ("pretrain-target", "pretrain-target-inpaint"):
        assert (out / "report" / f"samples-{stage}.png").is_file()
        assert f"(samples-{stage}.png)" in md
    assert "recolor on 'target'" in md and "inpaint on 'target'" in md


def test_a_labeled_source_takes_a_class_map_and_refuses_a_bad_one():
    cfg = study_from_dict({**TINY_STUDY, "labeled": {"path": "x", "class_map": {"255,0,0": "instrument", "0": "background"}}})
    assert cfg.labeled.mask_format().class_map == (((255, 0, 0), "instrument"), (0, "background"))
    with pytest.raises(EndopatError, match="class map key '255,0' is not a value"):
        study_from_dict({**TINY_STUDY, "labeled": {"path": "x", "class_map": {"255,0": "instrument"}}})


def test_a_typo_in_a_study_key_is_an_error_naming_it():
    with pytest.raises(EndopatError, match="unknown key 'fractoins'"):
        study_from_dict({**TINY_STUDY, "fractoins": ["1"]})


def _run(out, **kw):
    from endopat.study.runner import run_study

    return run_study(study_from_dict(TINY_STUDY), out, progress=False, log=lambda *a: None, **kw)


# the killed-and-resumed tables are compared bit for bit with `finished`: one thread (conftest._threads)
pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(scope="module")
def finished(tmp_path_factory, one_thread_module):
    out = tmp_path_factory.mktemp("study") / "run"
    counts = _run(out)
    return out, counts


def test_a_study_runs_every_cell_and_writes_the_report(finished):
    out, counts = finished
    assert counts == {"cells": 12, "run": 12, "skipped": 0}
    table = (out / "report" / "table1.csv").read_text().splitlines()
    assert len(table) == 1 + 4 * 2
    for f in ("report.md", "report.html", "curves.png", "ab_histograms.png", "overlays.png", "savings.csv",
              "stats.csv"):
        assert (out / "report" / f).is_file(), f
    assert (out / "stages" / "pretrain" / "target" / "done.json").is_file()
    md = (out / "report" / "report.md").read_text()
    assert "Protocol: **endopat**" in md and "- segmenter input Lab (the paper: the L channel)" in md


def test_every_cell_and_stage_records_the_machine_it_was_computed_on(finished):
    import json

    from endopat.machine import machine

    out, _ = finished
    records = [*out.glob("cells/*/*/cell.json"), *out.glob("stages/*/*/done.json")]
    assert records and all(json.loads(p.read_text())["machine"] == machine() for p in records)


def test_the_report_says_what_each_stage_and_each_methods_cells_cost(finished):
    import csv

    out, _ = finished
    with open(out / "report" / "compute.csv") as fh:
        rows = {r["what"]: r for r in csv.DictReader(fh)}
    assert rows["total"]["runs"] == str(12 + 3) and float(rows["total"]["seconds"]) > 0
    assert "stage pretrain/target" in rows and "## Compute" in (out / "report" / "report.md").read_text()


def test_a_report_against_another_method_gives_every_method_its_difference_from_that_one(finished):
    import csv

    from endopat.study.report import write_study_report
    from endopat.study.runner import reopen

    out, _ = finished
    write_study_report(out, *reopen(out, log=lambda *a: None), vs=("PAT",))
    with open(out / "report" / "stats-vs-pat.csv") as fh:
        rows = {(r["method"], r["fraction"]): r for r in csv.DictReader(fh)}
    with open(out / "report" / "stats.csv") as fh:
        pat = {r["fraction"]: float(r["dice_diff"]) for r in csv.DictReader(fh) if r["method"] == "PAT"}
    assert {m for m, _ in rows} == {"baseline", "PAT-Ext", "PAT-inpaint"}
    for fraction, d in pat.items():  # the baseline against PAT: the same difference, the other sign
        assert float(rows[("baseline", fraction)]["dice_diff"]) == pytest.approx(-d)
    assert "## Differences from PAT" in (out / "report" / "report.md").read_text()


def test_a_report_against_a_method_the_study_does_not_have_is_an_error_listing_them(finished):
    from endopat.study.report import write_study_report
    from endopat.study.runner import reopen

    out, _ = finished
    with pytest.raises(EndopatError, match="--vs 'PTA': no such method .* PAT-inpaint"):
        write_study_report(out, *reopen(out, log=lambda *a: None), vs=("PTA",))


def test_the_html_tables_show_the_rounded_values_of_the_markdown_report(finished):
    import re

    out, _ = finished
    page = (out / "report" / "report.html").read_text()
    cells = re.findall(r"<td>([^<]*)</td>", page)
    assert cells and not [c for c in cells if re.fullmatch(r"[+-]?\d+\.\d{4,}", c)]
    percentages = re.findall(r"<td>([^<]*%)</td>", page)  # % vs baseline: whole, signed, as in report.md
    assert percentages and all(re.fullmatch(r"[+-]?\d+%", c) for c in percentages)


def test_a_study_with_pretraining_repeats_reports_the_share_of_variance_they_cause(tmp_path):
    import csv

    from endopat.study.runner import run_study

    cfg = {**TINY_STUDY, "synth": TINY_STUDY["synth"][:1], "extra_labeled": {}, "fractions": ["1/2"], "pretrain_seeds": 2,
           "methods": [{"name": "baseline"}, {"name": "PAT", "pretrain": "target"}], "overlays": 0}
    out = tmp_path / "run"
    counts = run_study(study_from_dict(cfg), out, progress=False, log=lambda *a: None)
    assert counts["cells"] == 2 + 4
    first, second = (out / "stages" / "pretrain" / k / "pretrained.pt" for k in ("target", "target_p1"))
    assert first.read_bytes() != second.read_bytes()
    with open(out / "report" / "stats.csv") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["pretrain_runs"] == "2" and row["runs"] == "4" and row["baseline_runs"] == "2"
    # the pretraining runs are a measured level with a share of their own; one fine-tuning seed is not
    assert float(row["var_pretrain_pct"]) > 0 and row["var_finetune_pct"] == ""
    md = (out / "report" / "report.md").read_text()
    assert "share: pretraining runs" in md and "labels needed [95% CI]" in md


def test_a_study_on_two_workers_runs_every_stage_and_cell_once(finished, tmp_path):
    out = tmp_path / "run"
    counts = _run(out, workers=2)
    assert counts == {"cells": 12, "run": 12, "skipped": 0}
    assert len(list(out.glob("cells/*/*/metrics.csv"))) == 12
    assert len(list(out.glob("stages/*/*/done.json"))) == 3
    assert _run(out, workers=2) == {"cells": 12, "run": 0, "skipped": 12}


def test_a_killed_study_resumes_without_recomputing_and_gives_the_same_table(finished, tmp_path, monkeypatch):
    import endopat.study.runner as runner

    reference, _ = finished
    out = tmp_path / "run"
    real_evaluate = runner.evaluate  # the name the runner calls
    calls = {"n": 0}

    def killed_on_the_fourth_cell(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_evaluate(*a, **k)

    monkeypatch.setattr(runner, "evaluate", killed_on_the_fourth_cell)
    with pytest.raises(KeyboardInterrupt):
        _run(out)
    monkeypatch.setattr(runner, "evaluate", real_evaluate)
    done = sorted(out.glob("cells/*/*/metrics.csv"))
    assert len(done) == 3
    stamps = {p: p.stat().st_mtime_ns for p in done}
    counts = _run(out)
    assert counts == {"cells": 12, "run": 9, "skipped": 3}
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert (out / "report" / "table1.csv").read_text() == (reference / "report" / "table1.csv").read_text()


def test_a_study_killed_inside_a_pretraining_stage_resumes_to_the_same_table(tmp_path, monkeypatch):
    from endopat.study.runner import run_study
    from endopat.tasks.recolor import RecolorTask

    cfg = study_from_dict({**TINY_STUDY, "methods": [{"name": "PAT", "pretrain": "target"}], "fractions": ["1"],
                           "subsets": 1, "pretrain": {**TINY_STUDY["pretrain"], "steps": 3, "checkpoint_every": 1}})
    step, calls = RecolorTask.step, []

    def killed_in_step_three(self, frames):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return step(self, frames)

    monkeypatch.setattr(RecolorTask, "step", killed_in_step_three)
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, tmp_path / "killed", progress=False, log=lambda *a: None)
    monkeypatch.setattr(RecolorTask, "step", step)
    run_study(cfg, tmp_path / "killed", progress=False, log=lambda *a: None)
    run_study(cfg, tmp_path / "whole", progress=False, log=lambda *a: None)
    assert (tmp_path / "killed" / "report" / "table1.csv").read_bytes() == \
        (tmp_path / "whole" / "report" / "table1.csv").read_bytes()


def test_a_run_folder_refuses_a_changed_config_and_names_what_changed(finished):
    from endopat.study.runner import run_study

    out, _ = finished
    changed = study_from_dict({**TINY_STUDY, "subsets": TINY_STUDY.get("subsets", 1) + 1})
    with pytest.raises(EndopatError, match="another config \\(changed: subsets\\)"):
        run_study(changed, out, progress=False, log=lambda *a: None)


def test_a_run_folder_of_an_older_endopat_whose_settings_only_moved_resumes(finished, tmp_path):
    import json

    from endopat.study.runner import check_same_study

    cfg = study_from_dict({**TINY_STUDY, "methods": [m for m in TINY_STUDY["methods"] if "task" not in m]})
    old = json.loads(cfg.model_dump_json())
    old["pretrain"].pop("task")  # as endopat 0.1 wrote it: no tasks, re-colorization keys at the top
    old["pretrain"].update(old["pretrain"].pop("recolor"))
    for m in old["methods"]:
        m.pop("task")
    (tmp_path / "study.json").write_text(json.dumps(old))
    check_same_study(cfg, tmp_path)  # no error
    old["pretrain"]["lr_g"] = 2e-4  # an older default that differs from today's is a change
    (tmp_path / "study.json").write_text(json.dumps(old))
    with pytest.raises(EndopatError, match="changed: pretrain.recolor.lr_g"):
        check_same_study(cfg, tmp_path)


def test_shards_run_apart_merge_into_the_whole_report(finished, tmp_path):
    from endopat.study.report import write_study_report
    from endopat.study.runner import prepare

    out = tmp_path / "run"
    for i in range(3):
        _run(out, shard_spec=(i, 3), report=False)
    cfg = study_from_dict(TINY_STUDY)
    write_study_report(out, cfg, prepare(cfg, out, lambda *a: None))
    reference, _ = finished
    assert (out / "report" / "table1.csv").read_text() == (reference / "report" / "table1.csv").read_text()


def test_rows_picked_by_name_run_first_and_the_rest_later_give_the_whole_table(finished, tmp_path):
    out = tmp_path / "run"
    counts = _run(out, methods=("baseline", "PAT-inpaint"), report=False)
    assert counts == {"cells": 6, "run": 6, "skipped": 0}
    assert {p.parent.name for p in out.glob("stages/*/*/done.json")} == {"target+inpaint"}
    assert {p.parent.parent.name for p in out.glob("cells/*/*/metrics.csv")} == {"baseline", "pat-inpaint"}
    assert _run(out) == {"cells": 12, "run": 6, "skipped": 6}
    reference, _ = finished
    assert (out / "report" / "table1.csv").read_text() == (reference / "report" / "table1.csv").read_text()


def test_a_stage_whose_record_is_there_without_its_checkpoint_runs_again_to_the_same_weights(finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished[0], out, ignore=shutil.ignore_patterns("*.pt"))  # results kept, weights not
    assert _run(out, methods=("PAT",), report=False) == {"cells": 3, "run": 0, "skipped": 3}
    assert same_weights(out / "stages/pretrain/target/pretrained.pt",
                        finished[0] / "stages/pretrain/target/pretrained.pt")


def test_a_picked_row_the_study_does_not_have_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(EndopatError, match="--method 'PAT-typo': the study has no such row .*PAT-Ext"):
        _run(tmp_path / "run", methods=("PAT-typo",))
    assert not (tmp_path / "run").exists()


def test_the_html_report_renders_in_headless_chromium_with_its_figures(finished, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed (CI installs it: apt-get install chromium)")
    out, _ = finished
    shot = tmp_path / "shot.png"
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'p'}",
         "--virtual-time-budget=3000", "--dump-dom", (out / "report" / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120).stdout
    assert "Table 1" in dom and dom.count('src="data:image/png;base64,') == 5  # + 2 task figures
    for alt in ("mean test DSC against labeled images", "log a/b histograms per unlabeled source",
                "ground truth and predictions"):
        assert f'alt="{alt}"' in dom
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'q'}",
         f"--screenshot={shot}", "--window-size=1200,2400", (out / "report" / "report.html").as_uri()],
        capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_the_shipped_demo_config_is_valid_and_quick_keeps_baseline_and_pat():
    from endopat.demo import demo_config

    full = demo_config()
    quick = demo_config(quick=True)
    assert {m.task for m in full.methods if m.pretrain == "target"} == {None, "inpaint", "contrastive"}
    assert {m.name for m in quick.methods} == {"baseline", "PAT (target medical)"}
    assert set(quick.unlabeled) == {"target"} and quick.pretrain.steps < full.pretrain.steps
    assert full.pretrain_seeds >= 2 and quick.pretrain_seeds == 1


def test_a_demo_data_seed_draws_other_videos_split_and_seeds():
    from endopat.demo import demo_config

    first, second = demo_config(), demo_config(data_seed=1)
    assert second.seed == 1 and second.methods == first.methods
    assert [d.seed for d in second.synth] == [d.seed + 10 for d in first.synth]


def test_the_paper_config_is_valid():
    from endopat.study.config import load_study

    cfg = load_study(Path(__file__).parents[1] / "examples" / "paper.yaml")
    assert cfg.fractions == ["1", "1/2", "1/4", "1/8", "1/16"] and cfg.subsets == 5


def test_the_demo_with_every_paper_row_keeps_the_demos_settings():
    from endopat.demo import demo_config
    from endopat.study.config import load_study

    cfg, demo = load_study(Path(__file__).parents[1] / "examples" / "demo-paper.yaml"), demo_config()
    assert len(cfg.methods) == 8 and {m.name for m in demo.methods} < {m.name for m in cfg.methods}
    assert (cfg.model, cfg.pretrain, cfg.finetune) == (demo.model, demo.pretrain, demo.finetune)


def test_the_real_dev_set_config_runs_every_task_on_the_target_frames(monkeypatch):
    from endopat.study.config import load_study
    from endopat.tasks import TASKS

    monkeypatch.setenv("ENDOPAT_SHARED_DATA", "/data")
    cfg = load_study(Path(__file__).parents[1] / "examples" / "endovis15-dev.yaml")
    assert sorted(m.task or cfg.pretrain.task for m in cfg.methods if m.pretrain == "target") == sorted(TASKS)


def test_the_real_dev_set_configs_split_by_surgery_and_keep_the_test_surgery_out_of_pretraining(
        shared_data, monkeypatch, tmp_path):
    from endopat.study.config import load_study
    from endopat.study.runner import prepare

    monkeypatch.setenv("ENDOPAT_SHARED_DATA", str(shared_data))
    monkeypatch.setenv("ENDOPAT_WEIGHTS", str(tmp_path / "weights"))
    for name in ("endovis15-dev.yaml", "endovis15-dev-foundation.yaml", "endovis15-dev-foundation-gpu.yaml",
                 "endovis15-dev-recipe.yaml"):
        cfg = load_study(Path(__file__).parents[1] / "examples" / name)
        data = prepare(cfg, tmp_path / name, log=lambda *a: None)
        surgeries = [{i.split("_")[0] for i in part} for part in (data.split.train, data.split.val, data.split.test)]
        assert surgeries == [{"OP1"}, {"OP2"}, {"OP3"}]
        assert cfg.finetune_seeds >= 2 and cfg.pretrain_seeds >= 2 and cfg.subsets >= 2
        assert all(o.n_test == 0 or o.setting == "exclude" for o in data.sources.values())
    target = prepare(load_study(Path(__file__).parents[1] / "examples" / "endovis15-dev.yaml"),
                     tmp_path / "endovis15-dev.yaml", log=lambda *a: None).sources["target"]
    assert (target.files, target.n_test, target.test["same file"]) == (120, 40, 40)
    assert len(list(Path(target.used).iterdir())) == 80


def test_a_study_compares_scratch_imagenet_and_recolorization_from_imagenet_as_methods(tmp_path):
    import json

    import torch

    from endopat.study.runner import run_study

    torch.save(random_published("resnet18"), tmp_path / "imagenet.pth")
    cfg = {**TINY_STUDY, "synth": TINY_STUDY["synth"][:1], "extra_labeled": {}, "fractions": ["1/2"], "subsets": 1,
           "weights": {"imagenet": str(tmp_path / "imagenet.pth")},
           "methods": [{"name": "scratch"}, {"name": "ImageNet", "encoder_weights": "imagenet"},
                       {"name": "PAT from ImageNet", "pretrain": "target", "encoder_weights": "imagenet"}],
           "baseline": "scratch", "overlays": 0,
           "model": {"arch": "resnet18", "image_size": [32, 32], "decoder_channels": [16, 8, 8, 8, 8]}}
    out = tmp_path / "run"
    assert run_study(study_from_dict(cfg), out, progress=False, log=lambda *a: None)["cells"] == 3
    assert (out / "stages" / "pretrain" / "target+w-imagenet" / "done.json").is_file()
    imagenet = out / "cells" / "imagenet" / "f1-2_s0" / "run" / "init_report.txt"
    assert "imagenet.pth (torchvision-resnet layout, resnet18): loaded" in imagenet.read_text()
    pat = (out / "cells" / "pat-from-imagenet" / "f1-2_s0" / "run" / "init_report.txt").read_text()
    assert "encoder weights" not in pat and "init:" in pat  # the weights came in through the stage
    table = (out / "report" / "table1.csv").read_text()
    assert all(name in table for name in ("scratch", "ImageNet", "PAT from ImageNet"))
    provenance = json.loads((out / "stages" / "pretrain" / "target+w-imagenet" / "pretrain.json").read_text())
    assert provenance["encoder_weights"]["arch"] == "resnet18"


def test_encoder_weights_with_the_paper_s_unet_are_refused_at_the_config():
    with pytest.raises(EndopatError, match="encoder_weights need a model.arch with published encoder weights"):
        study_from_dict({**TINY_STUDY, "weights": {"w": "x.pth"},
                         "methods": [{"name": "baseline"}, {"name": "ImageNet", "encoder_weights": "w"}]})


def test_a_missing_weights_file_stops_the_study_before_any_stage(tmp_path):
    from endopat.study.runner import run_study

    cfg = {**TINY_STUDY, "synth": [], "weights": {"imagenet": str(tmp_path / "nope.pth")},
           "methods": [{"name": "baseline"}, {"name": "ImageNet", "encoder_weights": "imagenet"}],
           "model": {"arch": "resnet18", "image_size": [32, 32]}}
    with pytest.raises(EndopatError, match="nope.pth: encoder weights file not found"):
        run_study(study_from_dict(cfg), tmp_path / "run", progress=False, log=lambda *a: None)
    assert not (tmp_path / "run" / "stages").exists()


def test_selection_strategies_draw_as_many_labels_from_the_training_pool(tmp_path):
    import json

    from endopat.study.runner import run_study

    cfg = {**TINY_STUDY, "synth": TINY_STUDY["synth"][:1], "extra_labeled": {}, "fractions": ["1/2"], "subsets": 2,
           "methods": [{"name": "baseline"}, {"name": "diverse", "selection": "diverse"},
                       {"name": "PAT diverse", "pretrain": "target", "selection": "diverse"},
                       {"name": "hybrid", "selection": "hybrid"}], "overlays": 0}
    out = tmp_path / "run"
    assert run_study(study_from_dict(cfg), out, progress=False, log=lambda *a: None)["cells"] == 8
    split = json.loads((out / "split.json").read_text())
    pool, (random0, random1) = set(split["train"]), split["subsets"]["1/2"]
    for method in ("diverse", "pat-diverse", "hybrid"):
        chosen = [json.loads((out / "cells" / method / f"f1-2_s{j}" / "selection.json").read_text()) for j in (0, 1)]
        assert [len(c["ids"]) for c in chosen] == [len(random0), len(random1)]
        assert all(set(c["ids"]) <= pool and len(set(c["ids"])) == len(c["ids"]) for c in chosen)
    diverse = json.loads((out / "cells" / "pat-diverse" / "f1-2_s0" / "selection.json").read_text())
    assert diverse["embedding"].endswith("pretrained.pt")
    hybrid = json.loads((out / "cells" / "hybrid" / "f1-2_s0" / "selection.json").read_text())
    assert hybrid["ids"][: len(hybrid["round1"])] == hybrid["round1"] == random0[: len(random0) // 2]
    assert "hybrid" in (out / "report" / "table1.csv").read_text()
    md = (out / "report" / "report.md").read_text()
    assert "## Label selection" in md and "| PAT diverse | PAT |" not in md  # PAT has no random twin here
    assert "| diverse | baseline |" in md and "| hybrid | baseline |" in md


def test_labeling_rounds_grow_one_labeled_set_chosen_by_each_round_s_model_and_compare_with_random_rounds(
        tmp_path):
    import json

    from endopat.study.runner import run_study

    rounds = [2, 4, 6]
    cfg = {**TINY_STUDY, "synth": [{**TINY_STUDY["synth"][0], "frames": 16}], "extra_labeled": {}, "fractions": ["1"],
           "subsets": 2, "methods": [{"name": "baseline"},
                       {"name": "random rounds", "selection": {"strategy": "random", "rounds": rounds}},
                       {"name": "hybrid rounds", "selection": {"strategy": "hybrid", "rounds": rounds}}],
           "overlays": 0}
    out = tmp_path / "run"
    counts = run_study(study_from_dict(cfg), out, progress=False, log=lambda *a: None, workers=2)
    assert counts["cells"] == 1 + 2 * 2 * len(rounds)  # baseline: the one subset of all 8 frames
    pool = set(json.loads((out / "split.json").read_text())["train"])
    for method in ("random-rounds", "hybrid-rounds"):
        for j in (0, 1):
            chain = [json.loads(p.read_text()) for p in
                     sorted((out / "cells" / method).glob(f"*_s{j}/selection.json"), key=lambda p: len(
                         json.loads(p.read_text())["ids"]))]
            assert [len(c["ids"]) for c in chain] == rounds
            assert all(set(a["ids"]) < set(b["ids"]) <= pool for a, b in zip(chain, chain[1:]))  # nested
            assert chain[0]["chosen_with"] is None
            if method == "hybrid-rounds":  # later rounds chosen by the round before's fine-tuned model
                assert all(c["chosen_with"].endswith("run/best.pt") for c in chain[1:])
    labels = {json.loads(p.read_text())["labels"] for p in (out / "cells" / "hybrid-rounds").glob("*/cell.json")}
    assert labels == set(rounds)
    md = (out / "report" / "report.md").read_text()
    assert "## Label selection" in md and "| hybrid rounds | random rounds |" in md
    selection = (out / "report" / "selection.csv").read_text().splitlines()
    assert len(selection) == 1 + len(rounds)  # a difference per round


def test_rounds_must_grow_and_fit_the_pool():
    with pytest.raises(EndopatError, match="increasing"):
        study_from_dict({**TINY_STUDY, "methods": [{"name": "r", "selection": {"strategy": "random", "rounds": [4, 2]}}]})


def test_a_method_with_its_own_fractions_gets_cells_at_those_only():
    cfg = grid_config(methods=[{"name": "baseline"}, {"name": "PAT", "pretrain": "target", "fractions": ["1/4"]}])
    got = {(c.method.name, c.fraction) for c in cells(cfg, fake_split())}
    assert got == {("baseline", "1"), ("baseline", "1/2"), ("baseline", "1/4"), ("PAT", "1/4")}


def test_a_method_fraction_the_study_does_not_have_is_an_error():
    with pytest.raises(EndopatError, match=r"method 'PAT': fractions \['1/8'\] are not among"):
        grid_config(methods=[{"name": "baseline"}, {"name": "PAT", "pretrain": "target", "fractions": ["1/8"]}])


def test_a_multi_class_study_reports_every_class_with_its_differences_and_savings(shared_data, tmp_path):
    import csv

    from endopat.study.runner import run_study

    src = shared_data / "endoscapes-seg50-dev"
    stems = sorted(p.stem for p in (src / "images").glob("*.jpg"))
    picked = [s for v in sorted({s.split("_")[0] for s in stems})[:5] for s in [x for x in stems if x.startswith(v + "_")][:2]]
    for stem in picked:
        for sub, ext in (("images", ".jpg"), ("masks", ".png")):
            (tmp_path / "endo" / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy(src / sub / f"{stem}{ext}", tmp_path / "endo" / sub / f"{stem}{ext}")
    shutil.copy(src / "classes.txt", tmp_path / "endo" / "classes.txt")
    cfg = study_from_dict({"name": "anatomy", "labeled": {"path": str(tmp_path / "endo")}, "fractions": ["1", "1/2"],
                           "subsets": 1, "methods": [{"name": "baseline"}, {"name": "again"}],
                           "model": {"features": [4, 4, 8, 8, 16, 4], "image_size": [32, 48]},
                           "finetune": {"epochs": 1, "min_samples_per_epoch": 4}, "overlays": 2})
    run_study(cfg, tmp_path / "run", progress=False, log=lambda *a: None)
    rep = tmp_path / "run" / "report"
    with open(rep / "per_class.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["class"] for r in rows} <= {"cystic_plate", "calot_triangle", "cystic_artery", "cystic_duct",
                                          "gallbladder", "tool"} and {"gallbladder", "tool"} <= {r["class"] for r in rows}
    assert any(r["method"] == "again" and r["dice_diff"] for r in rows)
    assert (rep / "per_class_savings.csv").is_file() and "## Per class" in (rep / "report.md").read_text()
    assert (rep / "curves_gallbladder.png").is_file()
    page = (rep / "report.html").read_text()
    assert "<h2>Per class</h2>" in page and "<td>gallbladder</td>" in page
    assert (rep / "overlays.png").is_file() and not (rep / "overlays.error.txt").exists()


def test_rows_added_to_a_finished_run_run_alone_and_the_finished_cells_are_kept(finished, tmp_path):
    from endopat.study.runner import run_study

    out = tmp_path / "run"
    shutil.copytree(finished[0], out)
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/*/metrics.csv")}
    logged = []
    longer = study_from_dict({**TINY_STUDY, "methods": [*TINY_STUDY["methods"], {"name": "PAT-contrastive", "pretrain": "target",
                                                                      "task": "contrastive"}]})
    counts = run_study(longer, out, progress=False, log=logged.append)
    assert counts == {"cells": 15, "run": 3, "skipped": 12}
    assert {p: p.stat().st_mtime_ns for p in out.glob("cells/*/*/metrics.csv") if p in stamps} == stamps
    assert any("1 row(s) added to this run (PAT-contrastive)" in line for line in logged)
    assert "PAT-contrastive" in (out / "report" / "table1.csv").read_text()


@pytest.mark.parametrize("methods, named", [
    ([{"name": "baseline"}, {"name": "PAT", "pretrain": "target", "lr": 1e-4}], "methods"),  # a saved row changed
    ([{"name": "baseline"}], "methods")])  # a saved row left out
def test_a_saved_row_changed_or_left_out_is_a_changed_config(tmp_path, methods, named):
    from endopat.study.runner import check_same_study

    saved = study_from_dict({**TINY_STUDY, "methods": [{"name": "baseline"}, {"name": "PAT", "pretrain": "target"}]})
    (tmp_path / "study.json").write_text(saved.model_dump_json())
    with pytest.raises(EndopatError, match=f"another config \\(changed: {named}\\); resume it with the same config \\(rows may be added\\)"):
        check_same_study(study_from_dict({**TINY_STUDY, "methods": methods}), tmp_path)


def class_study_cells(duct: dict, gallbladder, fractions=(("1", 8),)) -> list[dict]:
    """Cells of a baseline (1 pretraining run) and PAT (2) with per-image scores of two classes:
    the duct's DSC by (method, fraction), the gallbladder's by the label count."""
    return [{"method": m, "fraction": f, "subset": 0, "pretrain_rep": p, "repeat": r, "labels": n,
             "rows": [{"id": f"i{i}", "dice": 0.5, "iou": 0.4, "gt_duct": 1, "iou_duct": 0.1,
                       "dice_duct": duct[m, f] + 0.001 * (i + r + p), "gt_gallbladder": 1,
                       "dice_gallbladder": gallbladder(n) + 0.01 * (i + r + p), "iou_gallbladder": 0.5}
                      for i in range(6)]}
            for m, reps in (("baseline", 1), ("PAT", 2)) for f, n in fractions
            for p in range(reps) for r in range(2)]


def test_no_class_savings_are_read_where_the_baseline_does_not_segment_the_class(tmp_path):
    from endopat.labels import Labels
    from endopat.study.report import summaries
    from endopat.study.report_classes import UNSEGMENTED, per_class

    # the baseline segments the duct with 8 labels, not with 4; PAT scores a little on it with 4
    duct = {("baseline", "1"): 0.3, ("baseline", "1/2"): 0.0, ("PAT", "1"): 0.3, ("PAT", "1/2"): 0.02}
    cells = class_study_cells(duct, lambda n: 0.3 * n / 8, (("1", 8), ("1/2", 4)))
    _, savings = per_class(cells, Labels(("background", "duct", "gallbladder")), "baseline", 0, 8,
                           ["baseline", "PAT"], summaries, tmp_path)
    at = {(r["class"], r["baseline_labels"]): r for r in savings if r["method"] == "PAT"}
    assert at["duct", 4]["labels_text"] == UNSEGMENTED and at["duct", 4]["saved_pct"] is None
    assert at["duct", 8]["labels_text"] != UNSEGMENTED and at["gallbladder", 4]["labels_text"] != UNSEGMENTED


def test_a_class_neither_model_segments_is_named_so_not_left_unresolved(tmp_path):
    from endopat.labels import Labels
    from endopat.study.report import summaries
    from endopat.study.report_classes import per_class

    cells = class_study_cells({("baseline", "1"): 0.0, ("PAT", "1"): 0.0}, lambda n: 0.6)
    rows, _ = per_class(cells, Labels(("background", "duct", "gallbladder")), "baseline", 0, 8,
                        ["baseline", "PAT"], summaries, tmp_path)
    verdict = {r["class"]: r["verdict"] for r in rows if r["method"] == "PAT"}
    assert verdict["duct"].startswith("neither segments it") and not verdict["gallbladder"].startswith("neither")


def test_the_endoscapes_confirmation_study_draws_fresh_label_subsets_on_the_same_split(
        shared_data, monkeypatch, tmp_path):
    from endopat.study.config import load_study
    from endopat.study.runner import prepare

    monkeypatch.setenv("ENDOPAT_SHARED_DATA", str(shared_data))
    root = Path(__file__).parents[1] / "examples"
    discovery, confirmation = (prepare(load_study(root / name), tmp_path / name, log=lambda *a: None).split
                               for name in ("endoscapes.yaml", "endoscapes-fixmatch5.yaml"))
    assert (confirmation.train, confirmation.val, confirmation.test) == (discovery.train, discovery.val, discovery.test)
    fresh = confirmation.subsets["5/279"]
    assert len(fresh) == 6 and not {i for s in fresh for i in s} & {i for s in discovery.subsets["5/279"] for i in s}
