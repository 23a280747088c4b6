import numpy as np
import pytest

from endopat.data.synth import SITES, SceneGenerator, SynthSpec, generate, video_roles


def scene(site="target", seed=3):
    return SceneGenerator(SITES[site], 64, np.random.default_rng(seed))


def test_the_same_seed_gives_the_same_frames_and_masks():
    a, b = scene().frame(5), scene().frame(5)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_other_seeds_give_other_scenes():
    assert not np.array_equal(scene(seed=1).frame(0)[0], scene(seed=2).frame(0)[0])


def test_everything_outside_the_field_of_view_is_black_and_unlabeled():
    s = scene()
    rgb, mask = s.frame(0)
    assert (rgb[~s.fov] == 0).all() and not mask[~s.fov].any()


def test_instruments_are_grey_and_tissue_is_red_in_lab():
    import torch

    from endopat.colour import rgb_to_lab

    inst_chroma, tissue_a = [], []
    for seed in range(6):
        s = scene(seed=seed)
        rgb, mask = s.frame(0)
        lab = rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)[0].numpy()
        chroma = np.hypot(lab[1], lab[2])
        inst_chroma.append(np.median(chroma[mask]))
        tissue_a.append(np.median(lab[1][s.fov & ~mask]))
    assert np.median(inst_chroma) < 10 and np.median(tissue_a) > 20


def test_sites_differ_in_colour():
    t = scene("target").frame(0)[0].reshape(-1, 3).mean(0)
    o = scene("other").frame(0)[0].reshape(-1, 3).mean(0)
    assert np.abs(t - o).max() > 10


def test_labeled_videos_are_split_train_val_test():
    assert video_roles(8) == ["train"] * 5 + ["val"] + ["test"] * 2
    with pytest.raises(ValueError):
        video_roles(2)


def test_generate_writes_videos_and_split_frames_with_matching_masks(tmp_path):
    m = generate(tmp_path, SynthSpec(size=64, videos=3, unlabeled_videos=1, frames=4, label_every=2))
    assert [v["role"] for v in m["videos"]] == ["train", "val", "test", "unlabeled"]
    assert sorted(p.name for p in (tmp_path / "unlabeled").iterdir()) == [
        "target_vid00.mp4", "target_vid03.mp4"]
    for split in ("train", "val", "test"):
        imgs = sorted(p.name for p in (tmp_path / "labeled" / split / "images").iterdir())
        masks = sorted(p.name for p in (tmp_path / "labeled" / split / "masks").iterdir())
        assert imgs == masks and len(imgs) == 2
