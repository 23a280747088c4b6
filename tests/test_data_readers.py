import numpy as np
import pytest
from PIL import Image

from endopat.data.labeled import load_image, load_mask, load_pairs
from endopat.data.readers import detect_layout, read_labeled
from endopat.errors import EndopatError


def write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def rgb(h=12, w=16):
    return np.full((h, w, 3), 120, np.uint8)


def test_endovis17_mask_is_the_union_of_all_label_folders_but_other(tmp_path):
    ds = tmp_path / "instrument_dataset_1"
    write(ds / "left_frames" / "frame000.png", rgb())
    a = np.zeros((12, 16), np.uint8)
    a[0, :] = 10
    b = np.zeros((12, 16), np.uint8)
    b[1, :] = 30
    other = np.zeros((12, 16), np.uint8)
    other[2, :] = 40
    write(ds / "ground_truth" / "Left_Prograsp_Forceps_labels" / "frame000.png", a)
    write(ds / "ground_truth" / "Right_Prograsp_Forceps_labels" / "frame000.png", b)
    write(ds / "ground_truth" / "Other_labels" / "frame000.png", other)
    assert detect_layout(tmp_path) == "endovis17"
    (s,) = read_labeled(tmp_path)
    mask = load_mask(s, (12, 16))
    assert mask[:2].all() and not mask[2:].any()
    assert s.group == "instrument_dataset_1"


def test_endovis17_crop_cuts_image_and_mask_alike(tmp_path):
    ds = tmp_path / "instrument_dataset_2"
    img = np.zeros((1080, 1920, 3), np.uint8)
    img[28:1052, 320:1600] = 200
    write(ds / "left_frames" / "frame000.png", img)
    write(ds / "ground_truth" / "X_labels" / "frame000.png", (img[..., 0] > 0).astype(np.uint8) * 20)
    (s,) = read_labeled(tmp_path, crop=True)
    image = load_image(s)
    assert image.shape == (1024, 1280, 3) and (image == 200).all()
    assert load_mask(s, image.shape[:2]).all()


def test_robustmis_frame_without_mask_has_no_instrument(tmp_path):
    f1 = tmp_path / "Prokto" / "1" / "10"
    f2 = tmp_path / "Prokto" / "1" / "20"
    write(f1 / "raw.png", rgb())
    inst = np.zeros((12, 16), np.uint8)
    inst[3:5, 3:5] = 2
    write(f1 / "instrument_instances.png", inst)
    write(f2 / "raw.png", rgb())
    assert detect_layout(tmp_path) == "robustmis19"
    s1, s2 = read_labeled(tmp_path)
    assert load_mask(s1, (12, 16)).sum() == 4 and not load_mask(s2, (12, 16)).any()
    assert s1.group == s2.group == "Prokto/1"


def test_kvasir_reads_channel_zero_and_its_own_split(tmp_path):
    write(tmp_path / "images" / "ckcu8.jpg", rgb())
    write(tmp_path / "images" / "ckcu9.jpg", rgb())
    m = np.zeros((12, 16, 3), np.uint8)
    m[:4, :, 0] = 255
    write(tmp_path / "masks" / "ckcu8.png", m)
    write(tmp_path / "masks" / "ckcu9.png", m)
    (tmp_path / "train.txt").write_text("ckcu8\n")
    (tmp_path / "test.txt").write_text("ckcu9\n")
    assert detect_layout(tmp_path) == "kvasir"
    s8, s9 = read_labeled(tmp_path)
    assert (s8.split, s9.split) == ("train", "test")
    assert load_mask(s8, (12, 16))[:4].all() and not load_mask(s8, (12, 16))[4:].any()


def test_cholecseg8k_instruments_are_watershed_values_31_and_32_even_in_rgba(tmp_path):
    d = tmp_path / "video01" / "video01_00080"
    write(d / "frame_80_endo.png", rgb())
    ws = np.full((12, 16, 4), 50, np.uint8)
    ws[..., 3] = 255
    ws[0, :, :3] = 31
    ws[1, :, :3] = 32
    ws[2, :, :3] = 33
    write(d / "frame_80_endo_watershed_mask.png", ws)
    assert detect_layout(tmp_path) == "cholecseg8k"
    (s,) = read_labeled(tmp_path)
    mask = load_mask(s, (12, 16))
    assert mask[:2].all() and not mask[2:].any() and s.group == "video01"


def test_an_unrecognised_layout_is_an_error_naming_the_folder(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(EndopatError, match="unrecognised layout"):
        detect_layout(tmp_path)


def test_real_endovis17_sample_reads_with_part_labels(shared_data):
    samples = read_labeled(shared_data / "endovis17")
    assert len(samples) == 5 and {s.group for s in samples} == {"instrument_dataset_1"}
    images, masks = load_pairs(samples, (64, 80))
    assert 0.01 < masks.mean() < 0.6


def test_real_cholec80_sample_reads_as_generic_layout(shared_data):
    samples = read_labeled(shared_data / "cholec80-sample")
    assert len(samples) == 10 and {s.group for s in samples} == {"t80_VID03"}
    _, masks = load_pairs(samples, (48, 80))
    assert (masks.reshape(10, -1).sum(1) == 0).sum() >= 1  # one frame without any tool


@pytest.mark.parametrize("folder, encoding", [
    ("cholecseg8k-sample", "watershed classes: instrument = 31 (grasper), 32 (L-hook)"),
    ("endovis17", "part/instance labels 0/10/20/30: instrument where > 0"),
    ("cholec80-sample", "8-bit 0/255"),  # its one frame without a tool reads "all 0"
])
def test_inspect_names_each_reader_s_own_mask_encoding_on_real_samples(shared_data, folder, encoding):
    from endopat.data.inspect import inspect_source

    report = inspect_source(shared_data / folder)
    found = {e for split in report["splits"].values() for e in split["mask_encodings"]}
    assert found - {"8-bit all 0 (no instrument)"} == {encoding}


def test_real_endovis17_parts_read_as_shaft_wrist_and_claspers(shared_data):
    samples = read_labeled(shared_data / "endovis17", "endovis17-parts")
    assert samples[0].labels.names == ("background", "shaft", "wrist", "claspers")
    raw = np.asarray(Image.open(samples[0].masks[0]))
    mask = load_mask(samples[0], raw.shape)
    for value, class_id in ((0, 0), (10, 1), (20, 2), (30, 3)):
        assert (mask[raw == value] == class_id).all() and (raw == value).any()


def test_endovis17_types_come_from_the_label_folder_names(tmp_path):
    ds = tmp_path / "instrument_dataset_1"
    write(ds / "left_frames" / "frame000.png", rgb())
    a, b = np.zeros((12, 16), np.uint8), np.zeros((12, 16), np.uint8)
    a[0, :], b[1, :] = 10, 30
    write(ds / "ground_truth" / "Maryland_Bipolar_Forceps_labels" / "frame000.png", a)
    write(ds / "ground_truth" / "Monopolar_Curved_Scissors_labels" / "frame000.png", b)
    (s,) = read_labeled(tmp_path, "endovis17-types")
    mask = load_mask(s, (12, 16))
    assert s.labels.names[mask[0, 0]] == "bipolar_forceps" and s.labels.names[mask[1, 0]] == "monopolar_curved_scissors"
    assert not mask[2:].any()


def test_an_endovis17_label_folder_without_a_type_is_a_one_line_error(shared_data):
    (s, *_) = read_labeled(shared_data / "endovis17", "endovis17-types")
    with pytest.raises(EndopatError, match="Instruments_labels: no instrument type"):
        load_mask(s, (1080, 1920))


@pytest.mark.parametrize("layout, value, name", [
    ("cholecseg8k-13", 31, "grasper"), ("cholecseg8k-13", 22, "gallbladder"), ("cholecseg8k-13", 50, "black_background"),
    ("cholecseg8k-8", 32, "instrument"), ("cholecseg8k-8", 31, "instrument"), ("cholecseg8k-8", 21, "liver"),
])
def test_real_cholecseg8k_watershed_values_read_as_their_classes(shared_data, layout, value, name):
    samples = [s for s in read_labeled(shared_data / "cholecseg8k-sample", layout, keep_bad=True) if not s.problem]
    for s in samples:
        raw = np.asarray(Image.open(s.masks[0]))[..., 0]
        if (raw == value).any():
            mask = load_mask(s, raw.shape)
            assert (mask[raw == value] == s.labels.id_of(name)).all()
            assert (mask[np.isin(raw, (0, 255))] == 255).all()  # the undocumented values: ignored
            return
    raise AssertionError(f"value {value} in no mask of the sample")


def test_a_class_id_mask_without_a_class_list_says_how_to_name_the_classes(tmp_path):
    write(tmp_path / "images" / "v1_f0.png", rgb())
    write(tmp_path / "masks" / "v1_f0.png", np.array([[0, 1, 2, 3] * 4] * 12, np.uint8))
    (s,) = read_labeled(tmp_path)
    with pytest.raises(EndopatError, match="look like class ids.*classes.txt") as err:
        load_mask(s, (12, 16))
    assert "v1_f0.png" in str(err.value)


def test_inspect_lists_the_classes_and_a_mask_with_values_outside_them(tmp_path):
    from endopat.data.inspect import inspect_source

    for k, values in enumerate(([0, 1, 2, 255], [0, 1, 9, 2])):
        write(tmp_path / "images" / f"v{k}_f0.png", rgb())
        write(tmp_path / "masks" / f"v{k}_f0.png", np.array([values * 4] * 12, np.uint8))
    (tmp_path / "classes.txt").write_text("0 background\n1 liver\n2 tool\n255 ignore\n")
    report = inspect_source(tmp_path)
    split = report["splits"]["all"]
    assert list(split["classes"]) == ["background", "liver", "tool"] and split["classes"]["liver"]["frames"] == 1
    assert len(report["problems"]) == 1 and "v1_f0.png: mask values 9 are not class ids" in report["problems"][0]
