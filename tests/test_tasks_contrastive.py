import numpy as np
import pytest
import torch

from conftest import TINY_MODEL, run_cli

from endopat.tasks.contrastive import ContrastiveSettings, PairDataset, augment_views


class FakeStore:
    """A frame store stand-in: frame i is filled with the value i."""

    def __init__(self, counts, kind="videos"):
        self.meta = {"kind": kind, "sources": [{"path": f"v{i}", "frames": n} for i, n in enumerate(counts)]}
        self.n = sum(counts)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.full((4, 4, 3), i, dtype=np.uint8)


@pytest.mark.parametrize("window", [1, 3])
def test_a_temporal_partner_is_a_nearby_frame_of_the_same_video(window):
    torch.manual_seed(0)
    ds = PairDataset(FakeStore([5, 7]), window)
    video = np.repeat([0, 1], [5, 7])
    for i in range(len(ds)):
        for _ in range(10):
            j = ds.partner(i)
            assert abs(j - i) <= window and video[j] == video[i]


def test_without_a_window_or_for_images_both_views_come_from_the_same_frame():
    assert all(PairDataset(FakeStore([6]), 0).partner(i) == i for i in range(6))
    assert all(PairDataset(FakeStore([1] * 6, kind="images"), 3).partner(i) == i for i in range(6))


def test_a_pair_item_holds_the_frame_and_its_partner():
    item = PairDataset(FakeStore([6]), 0)[4]
    assert item.shape == (2, 4, 4, 3) and int(item[0, 0, 0, 0]) == int(item[1, 0, 0, 0]) == 4


def test_views_keep_the_shape_and_range_and_differ_from_each_other():
    torch.manual_seed(0)
    lab = torch.rand(4, 3, 32, 32) * 2 - 1
    a, b = augment_views(lab, ContrastiveSettings()), augment_views(lab, ContrastiveSettings())
    assert a.shape == lab.shape and a.abs().max() <= 1
    assert not torch.allclose(a, b)


def test_the_task_trains_the_encoder_and_leaves_the_decoder_as_it_was(monkeypatch, tmp_path, tiny_data):
    from endopat.networks import ARCHS

    groups = ARCHS["basic_unet"].groups
    DECODER, ENCODER = groups["decoder"], groups["encoder"]

    def weights(steps):
        args = ["pretrain", "-u", tiny_data / "unlabeled", "-o", tmp_path / f"s{steps}", "-c", tmp_path / "c.yaml",
                "--task", "contrastive", "--steps", steps, "--batch-size", 4, "--no-progress"]
        assert run_cli(monkeypatch, *args) == 0
        return torch.load(tmp_path / f"s{steps}" / "pretrained.pt", weights_only=True)["state_dict"]

    (tmp_path / "c.yaml").write_text(TINY_MODEL)
    one, three = weights(1), weights(3)
    assert all(torch.equal(one[k], three[k]) for k in one if k.startswith(DECODER))
    assert any(not torch.equal(one[k], three[k]) for k in one if k.startswith(ENCODER))
