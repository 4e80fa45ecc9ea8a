"""Paper records: the unit every stage of sciembed passes around.

One set of rules for every reader (papers, triplets, evaluation documents, mining, training):
ids come from :func:`resolve_id` (one order of id fields) and must be strings or integers; text
fields must be strings (or integers); ``None``, NaN, empty, white-space-only and zero-width-only
values all mean "missing".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TEXT_FIELDS = ("title", "abstract")
#: The one order in which id fields are looked up, by every reader of sciembed.
ID_FIELD_CANDIDATES = ("paper_id", "corpus_id", "doc_id", "id", "acl_id", "sha")
#: Fields a model's ``text_fields`` may name (``sciembed.json``); a typo there would embed nothing.
KNOWN_TEXT_FIELDS = ("title", "abstract", "venue", "year", "authors", "keywords", "tldr", "full_text", "body")
#: Characters that render as nothing; text made only of them (and white space) is missing text.
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
_ZERO_WIDTH_TABLE = str.maketrans("", "", ZERO_WIDTH)
# What str.split() splits on inside ASCII besides single spaces (str.isspace for code points < 128).
_ASCII_BREAK = re.compile("[\t\n\r\x0b\x0c\x1c-\x1f]|  ")


def normalize_whitespace(text: str) -> str:
    """Collapse runs of white space (arXiv listings carry hard line breaks).

    ``str.split()`` splits on exactly the characters that ``re``'s ``\\s`` matches for str patterns
    (``str.isspace``), so this equals ``re.sub(r"\\s+", " ", text).strip()``, at about a third of the
    cost (it ran per field per document on the GPU path's producer thread).
    """
    if text.isascii() and text[:1] != " " and text[-1:] != " " and _ASCII_BREAK.search(text) is None:
        return text  # already normalised (titles, most abstracts outside arXiv): no split and join
    return " ".join(text.split())


def is_missing(value: Any) -> bool:
    """``None``, NaN, and strings that are empty, white space or zero-width characters only."""
    if value is None:
        return True
    if isinstance(value, float):
        return value != value
    if isinstance(value, str):
        stripped = value.strip()
        if not stripped:
            return True
        if stripped[0] not in ZERO_WIDTH:  # a visible character: the common case, no full-text scan
            return False
        return not stripped.translate(_ZERO_WIDTH_TABLE).strip()
    return False


def has_field_text(value: Any) -> bool:
    """Whether :func:`_field_text` of ``value`` is non-empty, without building that text."""
    if isinstance(value, (list, tuple)):
        return any(not is_missing(v) for v in value)
    return not is_missing(value)


def _decode(value: Any, name: str) -> Any:
    if isinstance(value, (bytes, bytearray)):  # binary Parquet columns
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{name!r} is binary and not valid UTF-8 ({exc.reason})") from None
    return value


def text_value(value: Any, name: str) -> str | None:
    """A text field as a string, ``None`` when missing; raises ``ValueError`` for other types."""
    value = _decode(value, name)
    if is_missing(value):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"{name!r} must be a string, got {type(value).__name__} {_short(value)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _id_value(record: dict[str, Any], key: str) -> str | None:
    value = _decode(record.get(key), key)
    if is_missing(value):
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"id field {key!r} must be a string or an integer, got {type(value).__name__} {_short(value)}")
    return str(value).strip()


def resolve_id(
    record: dict[str, Any], id_field: str | None = None, candidates: Sequence[str] = ID_FIELD_CANDIDATES
) -> tuple[str, str]:
    """``(field, id)`` of a record: ``id_field`` if given, else the first candidate that is present.

    Raises ``ValueError`` when the id is missing or is not a string or an integer.
    """
    for key in (id_field,) if id_field is not None else candidates:
        paper_id = _id_value(record, key)
        if paper_id is not None:
            return key, paper_id
    raise ValueError(f"missing id field ({id_field or ' / '.join(candidates)})")


def _field_text(value: Any) -> str:
    """Text of any field for embedding (extra fields such as venue or year too); ``""`` when missing."""
    if is_missing(value):
        return ""
    if isinstance(value, (list, tuple)):  # e.g. authors, keywords
        return normalize_whitespace(", ".join(str(v) for v in value if not is_missing(v)))
    return normalize_whitespace(str(value))


@dataclass(frozen=True)
class Paper:
    """A paper as sciembed sees it: an id, a title, an optional abstract and any other fields."""

    paper_id: str
    title: str | None = None
    abstract: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def get(self, name: str) -> Any:
        if name == "title":
            return self.title
        if name == "abstract":
            return self.abstract
        if name in ("paper_id", "id"):
            return self.paper_id
        return self.extra.get(name)

    def text(self, sep: str, fields: Sequence[str] = DEFAULT_TEXT_FIELDS) -> str:
        """Non-empty fields joined by `` sep `` (SciRepEval's input format)."""
        parts = [t for name in fields if (t := _field_text(self.get(name)))]
        return f" {sep} ".join(parts)

    def has_text(self, fields: Sequence[str] = DEFAULT_TEXT_FIELDS) -> bool:
        return any(has_field_text(self.get(name)) for name in fields)

    def to_dict(self) -> dict[str, Any]:
        return {"paper_id": self.paper_id, "title": self.title, "abstract": self.abstract, **self.extra}


def paper_from_dict(
    record: Any,
    id_field: str | None = None,
    require_text: bool = True,
    candidates: Sequence[str] = ID_FIELD_CANDIDATES,
) -> Paper:
    """Build a Paper from a raw record; raises ``ValueError`` with the reason when it is unusable."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    key, paper_id = resolve_id(record, id_field, candidates)
    try:
        title = text_value(record.get("title"), "title")
        abstract = text_value(record.get("abstract"), "abstract")
    except ValueError as exc:
        raise ValueError(f"paper {paper_id!r}: {exc}") from None
    extra = {k: v for k, v in record.items() if k not in (key, "title", "abstract")}
    paper = Paper(paper_id=paper_id, title=title, abstract=abstract, extra=extra)
    if require_text and not paper.has_text():
        raise ValueError(f"paper {paper_id!r} has neither title nor abstract")
    return paper


def as_paper(item: Paper | dict[str, Any] | str, index: int = 0) -> Paper:
    """Accept a Paper, a raw dict, or a plain string (a search query) wherever papers are expected.

    Only the text is used where papers are encoded, so a dict needs no id (``{"title": ..., "abstract":
    ...}`` as in SPECTER2's model card): without one it takes its position, as a string does."""
    if isinstance(item, Paper):
        return item
    if isinstance(item, str):
        return Paper(paper_id=str(index), title=item)
    if isinstance(item, dict):
        try:
            if all(is_missing(item.get(key)) for key in ID_FIELD_CANDIDATES):
                return paper_from_dict({**item, "paper_id": str(index)})
            return paper_from_dict(item)
        except ValueError as exc:
            raise ValueError(f"item {index}: {exc}") from None
    raise TypeError(f"item {index}: expected a Paper, a dict or a string, got {type(item).__name__}")


def as_item_list(
    papers: Paper | dict[str, Any] | str | Iterable[Paper | dict[str, Any] | str],
) -> list[Paper | dict[str, Any] | str]:
    """The inputs of ``encode`` as a list whose items have the right types (not yet converted): a
    bare string or dict or Paper is one item (one query). A dict's fields are checked when it is
    converted (:func:`as_paper`), on the engine's host thread, where that work overlaps the device."""
    if isinstance(papers, (str, dict, Paper)):
        return [papers]
    if isinstance(papers, (bytes, bytearray)):
        raise TypeError("expected papers or strings, got bytes (decode them first)")
    items = papers if isinstance(papers, list) else list(papers)
    for index, item in enumerate(items):
        if not isinstance(item, (Paper, dict, str)):
            raise TypeError(f"item {index}: expected a Paper, a dict or a string, got {type(item).__name__}")
    return items


def as_paper_list(papers: Paper | dict[str, Any] | str | Iterable[Paper | dict[str, Any] | str]) -> list[Paper]:
    """The inputs of ``encode`` as papers: a bare string or dict or Paper is one item (one query)."""
    return [as_paper(p, i) for i, p in enumerate(as_item_list(papers))]


def string_values(value: Any) -> list[str]:
    """Every string inside a JSON value, depth first (e.g. to check a tokenizer on whole records)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in string_values(v)]
    if isinstance(value, list):
        return [s for v in value for s in string_values(v)]
    return []


def as_field_list(fields: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``fields`` of ``encode``: one field name or a list of them (``None``: the model's own)."""
    if fields is None:
        return None
    names = (fields,) if isinstance(fields, str) else tuple(fields)
    bad = [f for f in names if not isinstance(f, str) or not f]
    if bad or not names:
        raise ValueError(f"fields must be field names such as 'title' or ['title', 'abstract'], got {fields!r}")
    return names
