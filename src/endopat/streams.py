"""Iterators that overlap work: a stage in a thread of its own, items in batches."""

from __future__ import annotations

import queue
import threading
from typing import Iterator


def threaded(it: Iterator, maxsize: int = 16) -> Iterator:
    """Run the iterator ``it`` in a background thread, ``maxsize`` items ahead (exceptions re-raised).

    Decoding, inference and encoding then overlap: PyAV and PyTorch release the GIL in their C code.
    """
    q: queue.Queue = queue.Queue(maxsize)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for item in it:
                if stop.is_set():
                    return
                q.put((True, item))
        except BaseException as err:  # handed to the consumer
            q.put((False, err))
        finally:
            q.put((True, done))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()


def batches(it: Iterator, size: int) -> Iterator[list]:
    batch = []
    for item in it:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
