import numpy as np
import pytest
from PIL import Image

from endopat.data.frames import build_store
from endopat.data.store import FrameStore
from endopat.data.video import iter_frames, write_video
from endopat.errors import EndopatError


def frames(n, size=32):
    return [np.full((size, size, 3), 10 * i, np.uint8) for i in range(n)]


def test_a_store_from_a_video_folder_holds_frames_at_the_requested_size(tmp_path):
    write_video(tmp_path / "vids" / "a.mp4", frames(5))
    write_video(tmp_path / "vids" / "b.mp4", frames(3))
    store = build_store(tmp_path / "vids", tmp_path / "store", (16, 16))
    assert len(store) == 8 and store[0].shape == (16, 16, 3)
    assert [s["frames"] for s in store.meta["sources"]] == [5, 3]


def test_a_store_from_images_keeps_pixel_values(tmp_path):
    for i in range(3):
        (tmp_path / "imgs").mkdir(exist_ok=True)
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(tmp_path / "imgs" / f"{i}.png")
    store = build_store(tmp_path / "imgs", tmp_path / "store", (16, 16))
    assert [int(store[i][0, 0, 0]) for i in range(3)] == [0, 40, 80]


def test_an_existing_store_is_reused_not_rebuilt(tmp_path):
    write_video(tmp_path / "v.mp4", frames(3))
    build_store(tmp_path / "v.mp4", tmp_path / "store", (16, 16))
    stamp = (tmp_path / "store" / "frames.u8").stat().st_mtime_ns
    build_store(tmp_path / "v.mp4", tmp_path / "store", (16, 16))
    assert (tmp_path / "store" / "frames.u8").stat().st_mtime_ns == stamp



def test_a_store_whose_store_json_is_damaged_is_decoded_again(tmp_path):
    write_video(tmp_path / "v.mp4", frames(3))
    build_store(tmp_path / "v.mp4", tmp_path / "store", (16, 16))
    (tmp_path / "store" / "store.json").write_bytes(b"\xff{ half a file")
    assert len(build_store(tmp_path / "v.mp4", tmp_path / "store", (16, 16))) == 3

def test_a_store_folder_can_itself_be_the_source(tmp_path):
    write_video(tmp_path / "v.mp4", frames(3))
    build_store(tmp_path / "v.mp4", tmp_path / "store", (16, 16))
    assert len(build_store(tmp_path / "store", tmp_path / "other", (16, 16))) == 3


def test_a_corrupt_video_is_an_error_naming_it(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    with pytest.raises(EndopatError, match="bad.mp4"):
        list(iter_frames(tmp_path / "bad.mp4"))


def test_a_folder_without_videos_or_images_is_an_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(EndopatError, match="no videos"):
        build_store(tmp_path, tmp_path / "store", (16, 16))


def test_an_unfinished_store_is_not_mistaken_for_a_store(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "frames.u8").write_bytes(b"\x00" * 10)
    with pytest.raises(EndopatError, match="not a frame store"):
        FrameStore(tmp_path / "store")


def disc_frame(size=64, radius=20):
    yy, xx = np.mgrid[:size, :size]
    f = np.zeros((size, size, 3), np.uint8)
    f[(yy - 32) ** 2 + (xx - 32) ** 2 <= radius**2] = 150
    return f


def test_the_field_of_view_box_is_the_lit_disc():
    from endopat.data.frames import detect_fov

    top, left, h, w = detect_fov([disc_frame()])
    assert abs(top - 12) <= 1 and abs(left - 12) <= 1 and abs(h - 41) <= 2 and abs(w - 41) <= 2


def test_a_frame_lit_to_the_edges_is_not_cropped():
    from endopat.data.frames import detect_fov

    assert detect_fov([np.full((16, 16, 3), 90, np.uint8)]) is None


def test_crop_fov_removes_the_black_border_before_resizing(tmp_path):
    write_video(tmp_path / "v.mp4", [disc_frame() for _ in range(3)])
    plain = build_store(tmp_path / "v.mp4", tmp_path / "a", (32, 32))
    cropped = build_store(tmp_path / "v.mp4", tmp_path / "b", (32, 32), crop_fov=True)
    dark = lambda s: (s[0].max(axis=2) < 20).mean()  # noqa: E731
    assert dark(cropped) < dark(plain) - 0.2


def test_skip_bad_logs_a_broken_video_and_keeps_the_good_ones(tmp_path):
    write_video(tmp_path / "vids" / "good.mp4", frames(4))
    (tmp_path / "vids" / "broken.mp4").write_bytes(b"garbage" * 100)
    with pytest.raises(EndopatError, match="broken.mp4"):
        build_store(tmp_path / "vids", tmp_path / "s1", (16, 16))
    logged = []
    store = build_store(tmp_path / "vids", tmp_path / "s2", (16, 16), skip_bad=True, log=logged.append)
    assert len(store) == 4 and any("broken.mp4" in m for m in logged)
    assert len(store.meta["skipped"]) == 1


def test_a_failed_build_leaves_no_store_behind(tmp_path):
    (tmp_path / "vids").mkdir()
    (tmp_path / "vids" / "broken.mp4").write_bytes(b"garbage")
    with pytest.raises(EndopatError):
        build_store(tmp_path / "vids", tmp_path / "s", (16, 16))
    assert not (tmp_path / "s" / "store.json").exists()


def test_an_empty_video_is_an_error(tmp_path):
    import av

    with av.open(str(tmp_path / "empty.mp4"), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 16, 16, "yuv420p"
    with pytest.raises(EndopatError, match="empty.mp4"):
        build_store(tmp_path / "empty.mp4", tmp_path / "s", (16, 16))


def test_real_robotic_clip_decodes_every_frame(shared_data, tmp_path):
    store = build_store(shared_data / "endovis17" / "unlabeled" / "robotic_clip.mp4", tmp_path / "s",
                        (64, 96), crop_fov=True)
    assert len(store) == 20 and store[0].mean() > 20
