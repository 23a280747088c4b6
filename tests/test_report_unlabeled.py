import pytest

from endopat.report.unlabeled import kept_share, markdown, shares

HEADER = "epoch,train_loss,val_loss,val_dice,lr,unlabeled_loss\n"


def _cell(tmp_path, name: str, rows: list[tuple[float, float, float]], method="mean teacher", fraction="1/2"):
    """A finished cell whose run's history has (train_loss, val_loss, unlabeled_loss) per epoch."""
    run = tmp_path / name / "run"
    run.mkdir(parents=True)
    (run / "history.csv").write_text(HEADER + "".join(f"{i + 1},{t},{v},0.5,0.001,{u}\n"
                                                      for i, (t, v, u) in enumerate(rows)))
    return {"method": method, "fraction": fraction, "folder": str(tmp_path / name)}


def test_the_share_is_read_at_the_epoch_the_run_kept_not_the_last(tmp_path):
    cell = _cell(tmp_path, "a", [(2.0, 1.0, 0.2), (1.0, 0.5, 0.05), (1.0, 0.6, 0.5)])
    assert kept_share(tmp_path / "a" / "run" / "history.csv") == (pytest.approx(0.05), 2, 3)
    assert shares([cell], ["mean teacher"])[0]["share_median"] == pytest.approx(0.05)


def test_each_semi_row_and_fraction_gets_the_median_and_range_of_its_runs(tmp_path):
    cells = [_cell(tmp_path, n, [(1.0, 1.0, s)]) for n, s in (("a", 0.01), ("b", 0.03), ("c", 0.02))]
    cells.append(_cell(tmp_path, "d", [(1.0, 1.0, 0.9)], method="baseline"))
    (row,) = shares(cells, ["mean teacher"])
    assert (row["runs"], row["read"], row["share_median"], row["share_min"], row["share_max"]) == (
        3, 3, pytest.approx(0.02), pytest.approx(0.01), pytest.approx(0.03))


@pytest.mark.parametrize("damage", [None, b"", b"\xff\xfe\x00garbage", b"epoch,train_loss\n1,2\n",
                                    (HEADER + "1,x,1.0,0.5,0.001,0.1\n").encode(), (HEADER + "1,0,1.0,0.5,0.001,0.1\n").encode()])
def test_a_missing_or_damaged_history_is_counted_as_not_read(tmp_path, damage):
    good = _cell(tmp_path, "good", [(1.0, 1.0, 0.1)])
    bad = _cell(tmp_path, "bad", [(1.0, 1.0, 0.1)])
    history = tmp_path / "bad" / "run" / "history.csv"
    history.unlink() if damage is None else history.write_bytes(damage)
    (row,) = shares([good, bad], ["mean teacher"])
    assert (row["runs"], row["read"], row["share_median"]) == (2, 1, pytest.approx(0.1))


def test_a_row_with_no_history_read_says_so_in_the_report(tmp_path):
    (row,) = shares([{"method": "fixmatch", "fraction": "1/2", "folder": str(tmp_path / "gone")}], ["fixmatch"])
    assert row["share_median"] is None
    assert "| fixmatch | 1/2 | 0 of 1 | - | - - - | - |" in "\n".join(markdown([row]))


def test_a_study_without_semi_rows_has_no_section():
    assert shares([{"method": "baseline", "fraction": "1", "folder": "x"}], []) == [] and markdown([]) == []


def test_shares_are_shown_as_percentages_to_one_decimal(tmp_path):
    rows = shares([_cell(tmp_path, "a", [(1.0, 1.0, 0.0137)])], ["mean teacher"])
    assert "| mean teacher | 1/2 | 1 of 1 | 1.4% | 1.4% - 1.4% | 1 of 1 |" in "\n".join(markdown(rows))


def test_rows_follow_the_given_method_order_and_the_most_labels_first(tmp_path):
    cells = [_cell(tmp_path, f"{m}{f}", [(1.0, 1.0, 0.1)], method=m, fraction=f)
             for m in ("b", "a") for f in ("1/8", "1/2")]
    assert [(r["method"], r["fraction"]) for r in shares(cells, ["a", "b"])] == [
        ("a", "1/2"), ("a", "1/8"), ("b", "1/2"), ("b", "1/8")]
