"""``engine.threads.ahead``: a generator run on a thread ahead of its consumer (the engine's producer
and the embedding job's reader)."""

import threading

import pytest

from sciembed.engine.threads import ahead


def test_items_come_in_order_and_all_of_them():
    assert list(ahead(iter(range(1000)), 3, "test")) == list(range(1000))
    assert list(ahead(iter([]), 1, "test")) == []


def test_an_error_is_raised_in_place_of_its_item():
    def source():
        yield 1
        yield 2
        raise ValueError("line 3: invalid JSON")

    got = []
    with pytest.raises(ValueError, match="line 3"):
        for item in ahead(source(), 1, "test"):
            got.append(item)
    assert got == [1, 2]


def test_the_next_item_is_produced_while_the_consumer_holds_this_one():
    produced_second = threading.Event()

    def source():
        yield "first"
        produced_second.set()
        yield "second"

    items = ahead(source(), 1, "test")
    assert next(items) == "first"
    assert produced_second.wait(5), "the thread did not read ahead"
    assert list(items) == ["second"]


def test_closing_early_stops_the_thread_and_closes_the_source():
    closed = threading.Event()

    def source():
        try:
            yield from range(10**9)
        finally:
            closed.set()

    before = {t.name for t in threading.enumerate()}
    items = ahead(source(), 2, "test-read-ahead")
    assert next(items) == 0
    items.close()
    assert closed.is_set()
    assert "test-read-ahead" not in {t.name for t in threading.enumerate()} - before
