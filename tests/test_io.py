import os

import numpy as np
import pytest
from PIL import Image

from endopat.errors import EndopatError
from endopat.io import TEMP_MARK, atomic_path, list_images, read_cache, read_record, remove_leftovers, write_png


def _leftover(folder, name="vid02_f036.png"):
    """The temporary file a write killed inside ``atomic_path`` leaves behind."""
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(folder / name) as tmp:
            Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp, format="PNG")
            os.link(tmp, tmp.with_name(tmp.name + "-kept"))  # what a SIGKILL would leave: the file itself
            raise KeyboardInterrupt
    kept = next(folder.glob(f"*{TEMP_MARK}*-kept"))
    return kept.rename(str(kept)[: -len("-kept")])


def test_a_temporary_file_is_hidden_and_named_as_ours(tmp_path):
    tmp = _leftover(tmp_path)
    assert tmp.name.startswith(".vid02_f036.png.") and TEMP_MARK in tmp.name and tmp.suffix == ".png"


def test_listing_images_skips_a_leftover_temporary_file(tmp_path):
    write_png(tmp_path / "real.png", np.zeros((4, 4, 3), np.uint8))
    _leftover(tmp_path)
    assert [p.name for p in list_images(tmp_path)] == ["real.png"]


def test_a_resumed_run_removes_its_leftovers_and_nothing_else(tmp_path):
    (tmp_path / "deep").mkdir()
    _leftover(tmp_path / "deep")
    (tmp_path / ".hidden-user-file.png").write_bytes(b"x")
    write_png(tmp_path / "real.png", np.zeros((4, 4, 3), np.uint8))
    assert remove_leftovers(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [".hidden-user-file.png", "real.png"]


def test_the_generic_reader_does_not_take_a_leftover_for_a_frame_without_mask(tmp_path):
    from endopat.data.readers import read_labeled

    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
        write_png(tmp_path / sub / "v1_f000.png", np.zeros((4, 4), np.uint8))
    _leftover(tmp_path / "images")
    assert [s.id for s in read_labeled(tmp_path)] == ["v1_f000"]


@pytest.mark.parametrize("content", [b"", b"\xff\xfe", b"[1, 2]", b'{"ids": [1]}', b'{"ids": "a"}'])
def test_a_damaged_record_is_one_line_naming_the_file(tmp_path, content):
    path = tmp_path / "selection.json"
    path.write_bytes(content)
    with pytest.raises(EndopatError, match=r"selection.json: not a readable selection \(") as err:
        read_record(path, "selection", dict[str, list[str]])
    assert "\n" not in str(err.value)


def test_a_missing_or_damaged_cache_reads_as_none_to_be_computed_again(tmp_path):
    path = tmp_path / "store.json"
    assert read_cache(path, dict[str, int]) is None
    path.write_text('{"count": "many"}')
    assert read_cache(path, dict[str, int]) is None
    path.write_text('{"count": 3}')
    assert read_cache(path, dict[str, int]) == {"count": 3}
