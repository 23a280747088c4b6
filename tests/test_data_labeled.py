import numpy as np
import pytest
from PIL import Image

from endopat.data.labeled import group_of, load_mask, load_pairs
from endopat.data.masks import MaskFormat
from endopat.data.readers import open_labeled
from endopat.data.readers import read_labeled
from endopat.data.readers.generic import read as read_generic
from endopat.errors import EndopatError


def write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def make_generic(root, n=2, size=(20, 30), mask_values=(0, 255)):
    for i in range(n):
        write(root / "images" / f"vid{i}_f00{i}.png", np.full((*size, 3), 100, np.uint8))
        m = np.full(size, mask_values[0], np.uint8)
        m[:5] = mask_values[1]
        write(root / "masks" / f"vid{i}_f00{i}.png", m)
    return root


def test_generic_reader_pairs_images_and_masks_by_stem(tmp_path):
    samples = read_generic(make_generic(tmp_path))
    assert [s.id for s in samples] == ["vid0_f000", "vid1_f001"]
    assert all(s.masks[0].stem == s.image.stem for s in samples)


def test_groups_come_from_the_video_part_of_the_stem():
    assert group_of("target_vid03_f012") == "target_vid03"
    assert group_of("t80_VID03_000030") == "t80_VID03"
    assert group_of("frame001") == "frame001"


def test_split_folders_are_read_separately(tmp_path):
    make_generic(tmp_path / "train")
    make_generic(tmp_path / "val", n=1)
    splits = open_labeled(tmp_path)
    assert {k: len(v) for k, v in splits.items()} == {"train": 2, "val": 1}


def test_masks_with_zero_one_values_are_accepted(tmp_path):
    _, masks = load_pairs(read_generic(make_generic(tmp_path, mask_values=(0, 1))), (20, 30))
    assert masks[:, :5].all() and not masks[:, 5:].any()


def test_pairs_are_resized_to_the_network_size(tmp_path):
    images, masks = load_pairs(read_generic(make_generic(tmp_path)), (16, 16))
    assert images.shape == (2, 16, 16, 3) and masks.shape == (2, 16, 16) and masks.dtype == np.uint8


def test_an_image_without_a_mask_is_an_error_naming_it(tmp_path):
    make_generic(tmp_path)
    (tmp_path / "masks" / "vid1_f001.png").unlink()
    with pytest.raises(EndopatError, match="vid1_f001.png: no mask"):
        read_labeled(tmp_path)
    kept = [s for s in read_labeled(tmp_path, keep_bad=True) if s.problem]
    assert [s.id for s in kept] == ["vid1_f001"]


def test_a_mask_of_another_size_is_an_error_naming_both_files(tmp_path):
    make_generic(tmp_path)
    write(tmp_path / "masks" / "vid0_f000.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(EndopatError, match=r"vid0_f000.png: mask size 10x10 != image size 30x20"):
        load_pairs(read_generic(tmp_path), (16, 16))


TRUTH = np.zeros((24, 32), bool)
TRUTH[4:14, 6:20] = True


def _save_mask(path, kind):
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "8-bit 0/255":
        Image.fromarray(TRUTH.astype(np.uint8) * 255).save(path)
    elif kind == "8-bit 0/1":
        Image.fromarray(TRUTH.astype(np.uint8)).save(path)
    elif kind == "16-bit 0/65535":
        Image.fromarray(TRUTH.astype(np.uint16) * 65535).save(path)
    elif kind == "JPEG":
        Image.fromarray(TRUTH.astype(np.uint8) * 255).save(path, quality=60)
    elif kind == "RGB grey":
        Image.fromarray(np.repeat(TRUTH[..., None].astype(np.uint8) * 255, 3, axis=2)).save(path)
    return path


@pytest.mark.parametrize("kind", ["8-bit 0/255", "8-bit 0/1", "16-bit 0/65535", "JPEG", "RGB grey"])
def test_masks_as_users_have_them_read_as_the_instrument_they_show(tmp_path, kind):
    from endopat.data.labeled import Sample

    mask = _save_mask(tmp_path / ("m.jpg" if kind == "JPEG" else "m.png"), kind)
    got = load_mask(Sample(tmp_path / "i.png", (mask,), "g", "i"), TRUTH.shape)
    assert (got == TRUTH).mean() > (0.99 if kind == "JPEG" else 1 - 1e-9)


def _colour_mask(tmp_path):
    rgb = np.zeros((*TRUTH.shape, 3), np.uint8)
    rgb[TRUTH] = (255, 0, 0)
    rgb[20:, :4] = (0, 255, 0)  # another class: tissue
    write(tmp_path / "c.png", rgb)
    return tmp_path / "c.png"


def test_a_colour_coded_mask_needs_a_class_map_and_reads_with_one(tmp_path):
    from endopat.data.labeled import Sample

    path = _colour_mask(tmp_path)
    with pytest.raises(EndopatError, match=r"c.png: colour-coded mask \(3 colours.*--class-map"):
        load_mask(Sample(tmp_path / "i.png", (path,), "g", "i"), TRUTH.shape)
    fmt = MaskFormat.parse(class_map="255,0,0=instrument;0,255,0=background;0,0,0=background")
    assert (load_mask(Sample(tmp_path / "i.png", (path,), "g", "i", mask_format=fmt), TRUTH.shape) == TRUTH).all()
    partial = MaskFormat.parse(class_map={"255,0,0": "instrument"})
    with pytest.raises(EndopatError, match=r"mask values \(0,0,0\), \(0,255,0\) are not in the class map"):
        load_mask(Sample(tmp_path / "i.png", (path,), "g", "i", mask_format=partial), TRUTH.shape)


def test_a_palette_mask_with_a_multi_class_map_reads_class_ids_in_the_map_s_order(tmp_path):
    from endopat.data.labeled import Sample

    path = _colour_mask(tmp_path)
    fmt = MaskFormat.parse(class_map="0,0,0=background;255,0,0=tool;0,255,0=liver")
    sample = Sample(tmp_path / "i.png", (path,), "g", "i").with_format(fmt)
    assert sample.labels.names == ("background", "tool", "liver")
    ids = load_mask(sample, TRUTH.shape)
    assert (ids[TRUTH] == 1).all() and (ids[20:, :4] == 2).all() and ids.dtype == np.uint8
    ignoring = MaskFormat.parse(class_map="0,0,0=background;255,0,0=tool;0,255,0=ignore")
    ids = load_mask(Sample(tmp_path / "i.png", (path,), "g", "i").with_format(ignoring), TRUTH.shape)
    assert (ids[20:, :4] == 255).all() and ignoring.labels.names == ("background", "tool")


def test_a_grey_level_class_map_reads_label_values(tmp_path):
    from endopat.data.labeled import Sample

    labels = np.where(TRUTH, 7, 3).astype(np.uint8)
    write(tmp_path / "l.png", labels)
    fmt = MaskFormat.parse(class_map={"7": "instrument", "3": "background"})
    assert (load_mask(Sample(tmp_path / "i.png", (tmp_path / "l.png",), "g", "i", mask_format=fmt),
                      TRUTH.shape) == TRUTH).all()


@pytest.mark.parametrize("threshold, class_map, message", [
    (1.5, None, "mask threshold 1.5 must be between 0 and 1"),
    (0.5, "255,0=instrument", "key '255,0' is not a value"),
    (0.5, "255= ", "is empty: name a class"),
    (0.5, "0=background", "names no foreground class"),
    (0.5, "red", "write VALUE=CLASS"),
    (0.5, "1=background;2=two words!", "class name 'two words!'"),
])
def test_a_bad_threshold_or_class_map_is_a_one_line_error(threshold, class_map, message):
    with pytest.raises(EndopatError, match=message):
        MaskFormat.parse(threshold, class_map)


def test_a_grey_mask_is_thresholded_at_the_configured_share_of_its_range(tmp_path):
    from endopat.data.labeled import Sample

    write(tmp_path / "s.png", np.where(TRUTH, 100, 0).astype(np.uint8))  # a soft mask at 100/255
    sample = Sample(tmp_path / "i.png", (tmp_path / "s.png",), "g", "i")
    assert not load_mask(sample, TRUTH.shape).any()  # 100 < 0.5 * 255
    low = Sample(tmp_path / "i.png", (tmp_path / "s.png",), "g", "i", mask_format=MaskFormat(threshold=0.3))
    assert (load_mask(low, TRUTH.shape) == TRUTH).all()


def test_a_corrupt_image_is_an_error_naming_it(tmp_path):
    make_generic(tmp_path)
    (tmp_path / "images" / "vid0_f000.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(EndopatError, match="vid0_f000.png: not a readable image"):
        load_pairs(read_generic(tmp_path), (16, 16))


def test_an_empty_images_folder_is_an_error(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(EndopatError, match="no images found"):
        read_generic(tmp_path)


def test_skip_bad_leaves_out_a_bad_sample_and_counts_it(tmp_path):
    make_generic(tmp_path, n=3)
    write(tmp_path / "masks" / "vid1_f001.png", np.zeros((10, 10), np.uint8))
    logged = []
    images, masks = load_pairs(read_generic(tmp_path), (16, 16), skip_bad=True, log=logged.append)
    assert len(images) == len(masks) == 2
    assert any("vid1_f001.png" in m for m in logged) and logged[-1] == "skipped 1 bad sample(s) of 3"


def test_chunks_regroup_one_clip_into_runs_of_consecutive_frames():
    from endopat.data.labeled import Sample, chunked

    clip = [Sample(f"f{k}.png", (), "video00", f"video00/frame_{k:03d}") for k in (5, 1, 3, 0, 2, 4)]
    groups = {s.id[-3:]: s.group for s in chunked(clip, 2)}
    assert groups == {"000": "video00_c00", "001": "video00_c00", "002": "video00_c01", "003": "video00_c01",
                      "004": "video00_c02", "005": "video00_c02"}


def test_skip_bad_leaves_out_the_real_frame_without_a_mask(shared_data):
    with pytest.raises(EndopatError, match="frame_633_endo.png: no watershed mask"):
        open_labeled(shared_data / "cholecseg8k-sample")
    samples = open_labeled(shared_data / "cholecseg8k-sample", skip_bad=True)["all"]
    assert len(samples) == 72 and not any(s.problem for s in samples)
