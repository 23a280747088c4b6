"""Video decoding and encoding with PyAV, streaming: one frame in memory at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from endopat.errors import EndopatError, describe, reading
from endopat.io import atomic_path


def _open(path: Path):
    import av  # heavy: imported when a video is read or written

    if not path.is_file():
        raise EndopatError(f"{path}: video not found")
    with reading(path, "video"):
        container = av.open(str(path))
        streams = container.streams.video
    if not streams:
        container.close()
        raise EndopatError(f"{path}: no video stream")
    return container


def video_info(path: str | Path) -> dict:
    """Frame size, rate and (container-reported, possibly approximate) frame count."""
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 0) or None
        return {"width": stream.width, "height": stream.height, "fps": rate, "frames": stream.frames}


def iter_frames(
    path: str | Path, stride: int = 1, size: tuple[int, int] | None = None, start: int = 0
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, RGB uint8 (H, W, 3))`` for every ``stride``-th frame from index ``start``,
    decoded one at a time (the frames before ``start`` are decoded, not converted: a frame's index
    is its place in the decoding order, which a seek to a keyframe would not tell for sure).

    ``size`` is ``(height, width)``; frames are resized by FFmpeg's scaler when given. A video that
    decodes no frame at all, or breaks before its first frame, is an error naming the file; a video
    that breaks later (truncated) yields what it could and then raises.
    """
    path = Path(path)
    n = -1
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for n, frame in enumerate(container.decode(stream)):
                if n < start or n % stride:
                    continue
                if size is not None:
                    frame = frame.reformat(width=size[1], height=size[0])
                yield n, frame.to_ndarray(format="rgb24")
        except Exception as err:  # noqa: BLE001 - any bytes (errors.reading): one line naming the file
            raise EndopatError(f"{path}: video is corrupt after frame {n} ({describe(err)})") from None
    if n < 0:
        raise EndopatError(f"{path}: video has no frames")


def count_packets(path: str | Path) -> int | None:
    """The video packets (one a frame) of a video endopat wrote, read without decoding; None when
    it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with _open(path) as container:
            return sum(1 for p in container.demux(container.streams.video[0]) if p.size)
    except Exception:  # noqa: BLE001 - any bytes: the caller makes the file again
        return None


def concat_videos(parts: Sequence[Path], path: str | Path) -> int:
    """Join videos that :func:`write_video` wrote with one frame size and rate into one file,
    atomically, without re-encoding (each part starts on a keyframe; its packets are shifted to
    follow the parts before); returns the number of frames."""
    import av  # heavy: imported when a video is read or written

    path = Path(path)
    count = 0
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as out:
        stream, offset = None, 0
        for part in parts:
            with _open(part) as container:
                source = container.streams.video[0]
                stream = stream or out.add_stream_from_template(source)
                end = offset
                for packet in container.demux(source):
                    if not packet.size:  # the demuxer's end-of-stream marker
                        continue
                    packet.pts += offset
                    packet.dts += offset
                    end = max(end, packet.pts + packet.duration)
                    packet.stream = stream
                    out.mux(packet)
                    count += 1
                offset = end
    return count


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: int = 25, crf: int = 18,
                preset: str = "medium") -> int:
    """Encode RGB uint8 frames to H.264 (mp4, x264 ``preset``) atomically; returns the number of
    frames written."""
    import av  # heavy: imported when a video is read or written

    path = Path(path)
    count = 0
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = None
            for frame in frames:
                if stream is None:
                    h, w = frame.shape[:2]
                    stream = container.add_stream("libx264", rate=fps)
                    stream.width, stream.height = w - w % 2, h - h % 2
                    stream.pix_fmt = "yuv420p"
                    stream.options = {"crf": str(crf), "preset": preset}
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                for packet in stream.encode(vf):
                    container.mux(packet)
                count += 1
            if stream is not None:
                for packet in stream.encode():
                    container.mux(packet)
        if count == 0:
            raise EndopatError(f"{path}: no frames to write")
    return count
