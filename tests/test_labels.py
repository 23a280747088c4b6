import pytest

from endopat.errors import EndopatError
from endopat.labels import BINARY, Labels, common_labels


def test_the_binary_target_is_background_and_instrument():
    assert BINARY.names == ("background", "instrument") and BINARY.is_binary and BINARY.foreground == (1,)


def test_a_classes_txt_reads_ids_names_and_the_ignore_line(tmp_path):
    (tmp_path / "classes.txt").write_text("1 gallbladder\n0 background\n# a comment\n\n2 tool\n255 ignore\n")
    labels = Labels.read(tmp_path / "classes.txt")
    assert labels.names == ("background", "gallbladder", "tool") and labels.ignore == 255


@pytest.mark.parametrize("text, message", [
    ("0 background\n2 tool\n", "must be 0..1"),
    ("0 background\n0 tool\n", "id 0 is named twice"),
    ("background\n", "is not 'ID NAME'"),
    ("0 background\n", "at least two classes"),
    ("0 background\n1 a\x01b\n", "class name"),
])
def test_a_bad_classes_txt_is_a_one_line_error_naming_the_file(tmp_path, text, message):
    (tmp_path / "classes.txt").write_text(text)
    with pytest.raises(EndopatError, match=message) as err:
        Labels.read(tmp_path / "classes.txt")
    assert str(tmp_path / "classes.txt") in str(err.value) and "\n" not in str(err.value)


def test_a_class_list_survives_its_dictionary_form():
    labels = Labels(("background", "liver", "tool"), ((0, 0, 0), (1, 2, 3), (4, 5, 6)), ignore=200)
    assert Labels.from_dict(labels.to_dict()) == labels


def test_a_checkpoint_without_classes_is_binary():
    assert Labels.from_dict(None) == BINARY


def test_class_names_match_without_case_spaces_or_underscores():
    assert Labels(("background", "cystic_duct")).id_of("Cystic Duct") == 1


def test_an_unknown_class_name_lists_the_classes():
    with pytest.raises(EndopatError, match="the classes: background, instrument"):
        BINARY.id_of("liver")


def test_ids_outside_the_class_list_are_an_error_naming_the_file():
    import numpy as np

    with pytest.raises(EndopatError, match="m.png: mask values 7 are not class ids"):
        Labels(("background", "a", "b")).check_ids(np.array([[0, 7, 255]], np.uint8), "m.png")


def test_sources_with_different_classes_are_refused():
    with pytest.raises(EndopatError, match="disagree on the classes"):
        common_labels([BINARY, Labels(("background", "tool"))])


@pytest.mark.parametrize("labels", [{"names": "background,tool"}, {"names": ["background"]}, {"names": [1, 2]},
                                    {"names": ["background", "tool"], "colours": [[0, 0]]}, ["background", "tool"],
                                    {"names": ["background", "tool"], "ignore": 1}])
def test_a_checkpoint_with_a_malformed_class_list_is_a_one_line_error_naming_it(tmp_path, labels):
    from endopat.checkpoints import save_checkpoint
    from endopat.config import ModelConfig
    from endopat.networks import build_unet
    from endopat.segmenter import Segmenter

    cfg = ModelConfig(features=(4, 4, 8, 8, 16, 4), image_size=(32, 32))
    save_checkpoint(tmp_path / "best.pt", kind="segmenter", model_cfg=cfg, state_dict=build_unet(cfg).state_dict(),
                    labels=labels)
    with pytest.raises(EndopatError) as err:
        Segmenter(tmp_path / "best.pt")
    assert str(err.value).startswith(str(tmp_path / "best.pt")) and "\n" not in str(err.value)
