"""Paper records: the unit every stage of sciembed passes around."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TEXT_FIELDS = ("title", "abstract")
ID_FIELD_CANDIDATES = ("paper_id", "corpus_id", "doc_id", "id")

_WHITESPACE = re.compile(r"\s+")


def normalize_whitespace(text: str) -> str:
    """Collapse runs of white space (arXiv listings carry hard line breaks).

    ``str.split()`` splits on exactly the characters that ``re``'s ``\\s`` matches for str patterns
    (``str.isspace``), so this equals ``_WHITESPACE.sub(" ", text).strip()``, at about a third of the
    cost (it ran per field per document on the GPU path's producer thread).
    """
    return " ".join(text.split())


def _field_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN from Parquet/pandas
        return ""
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
        return any(_field_text(self.get(name)) for name in fields)

    def to_dict(self) -> dict[str, Any]:
        return {"paper_id": self.paper_id, "title": self.title, "abstract": self.abstract, **self.extra}


def find_id_field(record: dict[str, Any], id_field: str | None) -> str | None:
    """The id field to use: the configured one, else the first known candidate present."""
    if id_field is not None:
        return id_field if record.get(id_field) not in (None, "") else None
    for name in ID_FIELD_CANDIDATES:
        if record.get(name) not in (None, ""):
            return name
    return None


def paper_from_dict(record: dict[str, Any], id_field: str | None = None) -> Paper:
    """Build a Paper from a raw record; raises ``ValueError`` with the reason when it is unusable."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    key = find_id_field(record, id_field)
    if key is None:
        wanted = id_field or " / ".join(ID_FIELD_CANDIDATES)
        raise ValueError(f"missing id field ({wanted})")
    title = record.get("title")
    abstract = record.get("abstract")
    extra = {k: v for k, v in record.items() if k not in (key, "title", "abstract")}
    paper = Paper(
        paper_id=str(record[key]),
        title=None if title is None else str(title),
        abstract=None if abstract is None else str(abstract),
        extra=extra,
    )
    if not paper.has_text():
        raise ValueError(f"paper {paper.paper_id!r} has neither title nor abstract")
    return paper


def as_paper(item: Paper | dict[str, Any] | str, index: int = 0) -> Paper:
    """Accept a Paper, a raw dict, or a plain string (a search query) wherever papers are expected."""
    if isinstance(item, Paper):
        return item
    if isinstance(item, str):
        return Paper(paper_id=str(index), title=item)
    return paper_from_dict(item)
