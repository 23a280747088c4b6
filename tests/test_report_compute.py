import json

import pytest

from endopat.report.compute import compute_rows, markdown


def _run_folder(tmp_path, stages: dict[str, float]):
    for key, seconds in stages.items():
        folder = tmp_path / "stages" / key
        folder.mkdir(parents=True)
        (folder / "done.json").write_text(json.dumps({"stage": key, "seconds": seconds}))
    return tmp_path


def test_the_compute_table_sums_each_stage_and_each_methods_cells_and_the_total(tmp_path):
    out = _run_folder(tmp_path, {"pretrain/target": 360.0, "pretrain/other": 1800.0})
    cells = [{"method": "PAT", "seconds": 120.0}, {"method": "baseline", "seconds": 60.0},
             {"method": "PAT", "seconds": 240.0}]
    rows = {r["what"]: r for r in compute_rows(out, cells, ["baseline", "PAT"])}
    assert rows["stage pretrain/other"]["seconds"] == 1800.0
    assert (rows["cells of PAT"]["runs"], rows["cells of PAT"]["minutes_per_run"]) == (2, pytest.approx(3.0))
    assert (rows["total"]["runs"], rows["total"]["hours"]) == (5, pytest.approx(2580 / 3600))
    assert list(rows)[2:4] == ["cells of baseline", "cells of PAT"]  # the config's method order


def test_a_run_folder_where_no_run_recorded_its_time_has_no_compute_section(tmp_path):
    assert compute_rows(tmp_path, [{"method": "PAT"}], ["PAT"]) == []
    assert markdown([]) == []


def test_a_study_still_running_says_how_many_of_each_row_s_cells_are_done(tmp_path):
    cells = [{"method": "PAT", "seconds": 120.0}, {"method": "baseline", "seconds": 60.0}]
    rows = compute_rows(tmp_path, cells, ["baseline", "PAT", "mean teacher"],
                        {"baseline": 1, "PAT": 4, "mean teacher": 2})
    lines = "\n".join(markdown(rows))
    assert "| cells of baseline | 1 | " in lines  # finished: the count alone
    assert "| cells of PAT | 1 of 4 | " in lines
    assert "| cells of mean teacher | 0 of 2 | 0.00 | - |" in lines  # not started yet


def test_the_hours_to_come_are_each_row_s_cells_left_at_its_rate_and_the_mean_rate_for_rows_not_begun(tmp_path):
    cells = [{"method": "PAT", "seconds": 360.0}, {"method": "baseline", "seconds": 60.0}]
    rows = {r["what"]: r for r in compute_rows(tmp_path, cells, ["baseline", "PAT", "mean teacher"],
                                               {"baseline": 1, "PAT": 4, "mean teacher": 2})}
    assert rows["cells of baseline"]["hours_to_come"] == 0
    assert rows["cells of PAT"]["hours_to_come"] == pytest.approx(3 * 360 / 3600)
    assert rows["cells of mean teacher"]["hours_to_come"] == pytest.approx(2 * 210 / 3600)  # the mean cell: 210 s
    assert rows["total"]["hours_to_come"] == pytest.approx((1080 + 420) / 3600)
    assert "| cells of PAT | 1 of 4 | 0.10 | 6.0 | 0.30 |" in "\n".join(markdown(list(rows.values())))


def test_a_finished_study_s_compute_table_has_no_hours_to_come(tmp_path):
    rows = compute_rows(tmp_path, [{"method": "PAT", "seconds": 60.0}], ["PAT"], {"PAT": 1})
    assert "to come" not in "\n".join(markdown(rows))


def test_a_row_not_begun_takes_the_rate_of_its_own_kind_of_cell(tmp_path):
    cells = [{"method": "PAT", "seconds": 60.0}, {"method": "mean teacher", "seconds": 600.0}]
    kinds = {"PAT": "supervised", "mean teacher": "semi", "fixmatch": "semi"}
    rows = {r["what"]: r for r in compute_rows(tmp_path, cells, list(kinds), {"PAT": 1, "mean teacher": 1,
                                                                            "fixmatch": 3}, kinds)}
    assert rows["cells of fixmatch"]["hours_to_come"] == pytest.approx(3 * 600 / 3600)


def test_cells_computed_on_more_than_one_machine_are_named_with_their_counts(tmp_path):
    a, b = {"device": "cpu", "cpu": "AVX2", "torch": "2.13.0"}, {"device": "cpu", "cpu": "AVX512", "torch": "2.13.0"}
    cells = [{"method": "PAT", "seconds": 60.0, "machine": a}, {"method": "PAT", "seconds": 60.0, "machine": a},
             {"method": "baseline", "seconds": 60.0, "machine": b}]
    lines = "\n".join(markdown(compute_rows(tmp_path, cells, ["baseline", "PAT"]), cells))
    assert "more than one machine" in lines
    assert "- 2 cells: device cpu, cpu AVX2, torch 2.13.0" in lines
    assert "- 1 cells: device cpu, cpu AVX512, torch 2.13.0" in lines


def test_cells_of_one_machine_or_of_none_recorded_say_nothing_of_machines(tmp_path):
    a = {"device": "cpu", "cpu": "AVX2"}
    cells = [{"method": "PAT", "seconds": 60.0, "machine": a}, {"method": "PAT", "seconds": 60.0}]
    assert "machine" not in "\n".join(markdown(compute_rows(tmp_path, cells, ["PAT"]), cells))
