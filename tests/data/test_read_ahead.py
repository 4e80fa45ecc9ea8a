import threading

import pytest

from sciembed.data.read_ahead import read_ahead


def test_items_come_in_order_and_all_of_them():
    assert list(read_ahead(iter(range(1000)), depth=3)) == list(range(1000))
    assert list(read_ahead(iter([]))) == []


def test_an_error_is_raised_in_place_of_its_item():
    def source():
        yield 1
        yield 2
        raise ValueError("line 3: invalid JSON")

    got = []
    with pytest.raises(ValueError, match="line 3"):
        for item in read_ahead(source()):
            got.append(item)
    assert got == [1, 2]


def test_the_next_item_is_produced_while_the_consumer_holds_this_one():
    produced_second = threading.Event()

    def source():
        yield "first"
        produced_second.set()
        yield "second"

    items = read_ahead(source(), depth=1)
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
    items = read_ahead(source(), depth=2, name="test-read-ahead")
    assert next(items) == 0
    items.close()
    assert closed.is_set()
    assert "test-read-ahead" not in {t.name for t in threading.enumerate()} - before
