"""Running a generator on a background thread, ahead of its consumer, with errors handed over."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_END = object()


class _Raised:
    def __init__(self, error: BaseException):
        self.error = error


def _put(out: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put ``item`` unless the consumer has stopped; False if it has."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def ahead(items: Iterable[T], depth: int, name: str) -> Iterator[T]:
    """``items`` produced on a thread of its own, up to ``depth`` items ahead of the consumer.

    An exception raised while producing reaches the consumer at that point of the sequence. Closing
    the returned generator (or leaving its loop) stops and joins the thread, which closes ``items``.
    """
    out: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _put(out, item, stop):
                    return
            _put(out, _END, stop)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            _put(out, _Raised(exc), stop)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # an inner ahead() stops its own thread

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
