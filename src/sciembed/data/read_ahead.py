"""Produce the items of an iterator on a background thread, a bounded number ahead of the consumer.

An embedding job reads and parses the next chunk of papers (gzip and JSON release the GIL only in
part) while the model encodes the current one, instead of leaving the GPU idle between chunks.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()


def read_ahead(items: Iterator[T], depth: int = 1, name: str = "sciembed-read-ahead") -> Iterator[T]:
    """The items of ``items`` in order, produced by a thread up to ``depth`` items ahead.

    An exception raised while producing an item is raised here in that item's place (so a bad record
    surfaces exactly where it would without the thread). Closing this generator early stops the
    thread and closes ``items`` on it.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_END, None))
        except BaseException as exc:  # handed to the consumer, raised there
            put((None, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item, error = slots.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        # The thread notices between two items; a read blocked on a pipe must not hang an interrupt.
        thread.join(timeout=10)
