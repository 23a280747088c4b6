import numpy as np

from endopat.data.video import concat_videos, count_packets, iter_frames, write_video


def frames(n, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def test_a_video_round_trips_every_frame(tmp_path):
    assert write_video(tmp_path / "v.mp4", frames(7)) == 7
    got = list(iter_frames(tmp_path / "v.mp4"))
    assert [i for i, _ in got] == list(range(7)) and got[0][1].shape == (32, 32, 3)


def test_a_stride_keeps_every_nth_frame(tmp_path):
    write_video(tmp_path / "v.mp4", frames(7))
    assert [i for i, _ in iter_frames(tmp_path / "v.mp4", stride=3)] == [0, 3, 6]


def test_frames_from_a_start_keep_their_indices_in_the_video(tmp_path):
    write_video(tmp_path / "v.mp4", frames(7))
    whole = dict(iter_frames(tmp_path / "v.mp4"))
    late = list(iter_frames(tmp_path / "v.mp4", start=4))
    assert [i for i, _ in late] == [4, 5, 6] and all(np.array_equal(f, whole[i]) for i, f in late)


def test_joined_videos_decode_to_the_frames_of_their_parts_in_order(tmp_path):
    parts = [tmp_path / f"p{k}.mp4" for k in range(3)]
    for k, (part, n) in enumerate(zip(parts, (4, 4, 2))):
        write_video(part, frames(n, seed=k), fps=10)
    assert concat_videos(parts, tmp_path / "all.mp4") == 10
    want = [f for p in parts for _, f in iter_frames(p)]
    got = [f for _, f in iter_frames(tmp_path / "all.mp4")]
    assert len(got) == 10 and all(np.array_equal(a, b) for a, b in zip(got, want))
    assert count_packets(tmp_path / "all.mp4") == 10


def test_a_damaged_or_missing_video_has_no_packet_count(tmp_path):
    write_video(tmp_path / "v.mp4", frames(3))
    data = (tmp_path / "v.mp4").read_bytes()
    (tmp_path / "v.mp4").write_bytes(data[: len(data) // 2])
    assert count_packets(tmp_path / "v.mp4") is None and count_packets(tmp_path / "none.mp4") is None
