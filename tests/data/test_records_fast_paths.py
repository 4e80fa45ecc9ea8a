"""The fast paths of text cleaning (they run per field per document on the GPU host thread) give
exactly what the plain definitions give."""

import random

import pytest

from sciembed.data.records import (
    ZERO_WIDTH,
    Paper,
    _field_text,
    as_item_list,
    as_paper,
    has_field_text,
    is_missing,
    normalize_whitespace,
)

ALPHABET = "ab \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u2003\u3000é" + ZERO_WIDTH


def _random_texts(count: int, seed: int = 0):
    rng = random.Random(seed)
    for _ in range(count):
        yield "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 9)))


def test_normalize_whitespace_equals_split_join():
    for text in _random_texts(50_000):
        assert normalize_whitespace(text) == " ".join(text.split()), repr(text)


def test_is_missing_equals_removing_zero_width_then_strip():
    table = str.maketrans("", "", ZERO_WIDTH)
    for text in _random_texts(50_000, seed=1):
        assert is_missing(text) == (not text.translate(table).strip()), repr(text)


@pytest.mark.parametrize(
    "value",
    ["", " ", "\u200b", " \u200b x", "x", None, float("nan"), 0, 2.5, [], [""], ["", "y"], ("\u200b",), ["\u200b a"]],
)
def test_has_field_text_agrees_with_field_text(value):
    assert has_field_text(value) == bool(_field_text(value))


def test_as_item_list_checks_types_and_leaves_conversion_to_as_paper():
    items = as_item_list([{"paper_id": "a", "title": "t"}, "a query", Paper(paper_id="p", title="x")])
    assert isinstance(items[0], dict)  # converted later, on the engine's host thread
    assert as_item_list("one query") == ["one query"]
    with pytest.raises(TypeError, match="item 1: expected a Paper"):
        as_item_list([{"paper_id": "a", "title": "t"}, 3.5])
    assert as_paper({"title": "no id"}, 4).paper_id == "4"  # encoding needs no id
    with pytest.raises(ValueError, match="item 4: id field 'sha' must be"):
        as_paper({"sha": 2.5, "title": "bad id"}, 4)
