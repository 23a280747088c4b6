from pathlib import Path

import pytest

from endopat.data.labeled import Sample
from endopat.data.splits import Split, label_subsets, make_split
from endopat.errors import EndopatError


def samples(groups=8, per_group=10):
    return [Sample(Path(f"g{g}_{i}.png"), (), f"g{g}", f"g{g}_{i}") for g in range(groups) for i in range(per_group)]


def test_train_val_and_test_share_no_group():
    s = samples()
    split = make_split(s, seed=1)
    group = {x.id: x.group for x in s}
    sets = [{group[i] for i in part} for part in (split.train, split.val, split.test)]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert len(split.train) + len(split.val) + len(split.test) == len(s)


def test_the_same_seed_gives_the_same_split_and_another_seed_another():
    assert make_split(samples(), seed=3).to_json() == make_split(samples(), seed=3).to_json()
    assert make_split(samples(), seed=3).test != make_split(samples(), seed=4).test


def test_subsets_of_one_fraction_are_disjoint_and_of_the_right_size():
    train = [f"x{i}" for i in range(64)]
    subsets = label_subsets(train, seed=0)
    assert {k: len(v) for k, v in subsets.items()} == {"1": 1, "1/2": 2, "1/4": 4, "1/8": 5, "1/16": 5}
    for k, size in (("1/2", 32), ("1/8", 8), ("1/16", 4)):
        ids = [i for sub in subsets[k] for i in sub]
        assert len(ids) == len(set(ids)) and all(len(sub) == size for sub in subsets[k])


def test_a_dataset_test_split_is_kept_as_test():
    s = samples()
    s = [Sample(x.image, x.masks, x.group, x.id, split="test" if x.group == "g0" else None) for x in s]
    split = make_split(s, seed=0)
    assert {i.split("_")[0] for i in split.test} == {"g0"}


def test_named_test_and_validation_groups_are_kept_and_the_rest_trains():
    split = make_split(samples(groups=3), seed=0, test_groups=["g2"], val_groups=["g1"])
    parts = [{i.split("_")[0] for i in ids} for ids in (split.train, split.val, split.test)]
    assert parts == [{"g0"}, {"g1"}, {"g2"}]


def test_a_named_group_missing_from_the_data_is_an_error_listing_the_groups():
    with pytest.raises(EndopatError, match="no group 'g9'.*g0, g1, g2"):
        make_split(samples(groups=3), test_groups=["g9"])


def test_split_files_round_trip_and_resolve_to_samples(tmp_path):
    s = samples()
    split = make_split(s, seed=0)
    loaded = Split.load(split.save(tmp_path / "split.json"))
    assert loaded.subsets == split.subsets
    assert [x.id for x in loaded.resolve(s, loaded.subset("1/8", 2))] == loaded.subsets["1/8"][2]


def test_too_few_videos_cannot_be_split():
    with pytest.raises(EndopatError, match="at least 3 groups"):
        make_split(samples(groups=2))


def test_a_split_naming_unknown_samples_is_an_error():
    split = make_split(samples(), seed=0)
    with pytest.raises(EndopatError, match="not in the data"):
        split.resolve(samples(groups=3), split.train)


def test_subsets_drawn_by_video_take_each_frame_from_another_video_while_there_are_enough():
    from endopat.data.splits import label_subsets

    train = [f"v{v}_f{f}" for v in range(6) for f in range(5)]
    groups = {i: i.split("_")[0] for i in train}
    subsets = label_subsets(train, ["1/10", "1/5"], 2, seed=3, groups=groups)
    for fraction, size in (("1/10", 3), ("1/5", 6)):
        a, b = subsets[fraction]
        assert len(a) == len(b) == size and not set(a) & set(b)
        assert len({groups[i] for i in a}) == size  # one frame per video
    a, b = subsets["1/10"]
    assert not {groups[i] for i in a} & {groups[i] for i in b}  # 3 + 3 of 6 videos: disjoint videos



def test_a_damaged_split_file_names_every_bad_field_on_one_line(tmp_path):
    path = tmp_path / "split.json"
    path.write_text('{"train": [1], "val": [], "seed": "x"}')
    with pytest.raises(EndopatError) as err:
        Split.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: not a split file (") and "\n" not in message
    assert all(f"'{field}'" in message for field in ("train.0", "test", "seed"))
