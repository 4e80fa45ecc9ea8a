"""S2 Graph API ``fields=`` parsing and paper JSON, from our metadata records.

S2 always returns ``paperId``; without ``fields`` it returns ``paperId`` and ``title``. Unknown fields
are a 400 with S2's message. ``embedding`` (and ``embedding.specter_v1`` / ``embedding.specter_v2``,
which S2 clients ask for) is this index's proximity vector; ``embedding.<format>`` picks a stored format.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

PAPER_FIELDS = (
    "paperId",
    "corpusId",
    "externalIds",
    "url",
    "title",
    "abstract",
    "venue",
    "year",
    "authors",
    "fieldsOfStudy",
    "publicationDate",
)
DEFAULT_FIELDS = ("paperId", "title")
S2_EMBEDDING_ALIASES = ("specter_v1", "specter_v2")
MAX_FIELDS_LENGTH = 2000


class FieldError(ValueError):
    """A ``fields`` value S2 would refuse (400)."""


@dataclass(frozen=True)
class FieldSelection:
    fields: tuple[str, ...]
    embedding_format: str | None  # the stored format to return as ``embedding``
    embedding_label: str | None  # what S2 calls the model in ``embedding.model``
    score: bool = False  # our extension: the similarity score, for search and recommendations


def parse_fields(
    value: str | None, formats: Sequence[str], default_format: str, allow_score: bool = False
) -> FieldSelection:
    if value is None or not value.strip():
        return FieldSelection(DEFAULT_FIELDS, None, None)
    if len(value) > MAX_FIELDS_LENGTH:
        raise FieldError(f"fields must be at most {MAX_FIELDS_LENGTH} characters")
    wanted = [part.strip() for part in value.split(",") if part.strip()]
    fields: list[str] = ["paperId"]
    unknown: list[str] = []
    embedding_format = embedding_label = None
    score = False
    for name in wanted:
        if name in PAPER_FIELDS:
            if name not in fields:
                fields.append(name)
        elif name == "embedding" or name.startswith("embedding."):
            variant = name.partition(".")[2]
            if not variant:
                embedding_format, embedding_label = default_format, None
            elif variant in S2_EMBEDDING_ALIASES:
                embedding_format, embedding_label = default_format, None
            elif variant in formats:
                embedding_format, embedding_label = variant, variant
            else:
                unknown.append(name)
        elif name == "score" and allow_score:
            score = True
        else:
            unknown.append(name)
    if unknown:
        raise FieldError(f"Unrecognized or unsupported fields: [{', '.join(unknown)}]")
    return FieldSelection(tuple(fields), embedding_format, embedding_label, score)


def paper_json(
    record: dict[str, Any],
    selection: FieldSelection,
    model_name: str,
    vector: np.ndarray | None = None,
    score: float | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in selection.fields:
        if name == "paperId":
            out[name] = record["paper_id"]
        elif name == "corpusId":
            out[name] = int(record["row_id"])
        elif name == "externalIds":
            out[name] = {**record["external_ids"], "CorpusId": int(record["row_id"])}
        elif name == "url":
            out[name] = record["url"]
        elif name == "title":
            out[name] = record["title"]
        elif name == "abstract":
            out[name] = record["abstract"]
        elif name == "venue":
            out[name] = record["venue"] or ""
        elif name == "year":
            out[name] = record["year"]
        elif name == "authors":
            out[name] = [{"authorId": None, "name": a} for a in record["authors"]]
        elif name == "fieldsOfStudy":
            out[name] = record["fields_of_study"] or None
        elif name == "publicationDate":
            out[name] = record["publication_date"]
    if selection.embedding_format is not None:
        label = f"{model_name}/{selection.embedding_label}" if selection.embedding_label else model_name
        out["embedding"] = None if vector is None else {"model": label, "vector": [float(x) for x in vector]}
    if selection.score and score is not None:
        out["score"] = round(float(score), 6)
    return out
