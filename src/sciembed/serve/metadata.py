"""Paper records -> the metadata columns the API serves (S2 field names: title, year, venue, authors ...).

Input records come from many corpora (ACL, arXiv, Paperscape, S2ORC, OHSUMED ...); each keeps its own
field names, so the common columns are picked from the usual spellings and everything else is kept in
``extra`` (JSON) without loss.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..data import Paper

DATE_FIELDS = ("publication_date", "publicationDate", "date", "published")
FIELD_OF_STUDY_FIELDS = ("fields_of_study", "fieldsOfStudy", "mag_field_of_study", "categories", "label", "field")
URL_FIELDS = ("url", "link")
# input field -> S2 externalIds key (https://api.semanticscholar.org/api-docs/graph: externalIds)
EXTERNAL_ID_FIELDS = {
    "doi": "DOI",
    "arxiv_id": "ArXiv",
    "arxiv": "ArXiv",
    "acl_id": "ACL",
    "pubmed_id": "PubMed",
    "pmid": "PubMed",
    "pmc_id": "PubMedCentral",
    "mag_id": "MAG",
    "dblp_id": "DBLP",
}
# S2 id prefixes (``DOI:10.18653/...``) -> externalIds key; CorpusId is our integer row id
ID_PREFIXES = {
    "doi": "DOI",
    "arxiv": "ArXiv",
    "acl": "ACL",
    "pmid": "PubMed",
    "pmcid": "PubMedCentral",
    "mag": "MAG",
    "dblp": "DBLP",
}
_YEAR = re.compile(r"(1[89]\d\d|2\d\d\d)")
_ARXIV_NEW = re.compile(r"^\d{4}\.\d{4,5}(v\d+)?$")
_ARXIV_OLD = re.compile(r"^[a-z\-]+(\.[A-Z]{2})?/\d{7}(v\d+)?$")


@dataclass(frozen=True)
class PaperRow:
    paper_id: str
    title: str | None
    abstract: str | None
    year: int | None
    venue: str | None
    publication_date: str | None
    authors: list[str]
    fields_of_study: list[str]
    external_ids: dict[str, str]
    url: str | None
    extra: dict[str, Any]


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = " ".join(str(value).split())
    return text or None


def _year(value: Any, date: str | None) -> int | None:
    for candidate in (value, date):
        if candidate is None:
            continue
        match = _YEAR.search(str(candidate))
        if match:
            return int(match.group(1))
    return None


def _author_name(author: Any) -> str | None:
    if isinstance(author, dict):
        if author.get("name"):
            return _text(author["name"])
        parts = [author.get("first"), *(author.get("middle") or []), author.get("last")]
        return _text(" ".join(p for p in parts if p))
    return _text(author)


def _authors(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = re.split(r",| and ", value)
    if not isinstance(value, list):
        return []
    return [name for name in (_author_name(a) for a in value) if name]


def _string_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [part for part in re.split(r"[;,]", value)] if ("," in value or ";" in value) else [value]
    if not isinstance(value, list):
        value = [value]
    return [t for t in (_text(v) for v in value) if t]


def _external_ids(paper: Paper, extra: dict[str, Any]) -> dict[str, str]:
    ids: dict[str, str] = {}
    given = extra.get("external_ids") or extra.get("externalIds")
    if isinstance(given, dict):
        ids.update({str(k): str(v) for k, v in given.items() if v not in (None, "")})
    for name, key in EXTERNAL_ID_FIELDS.items():
        value = _text(extra.get(name))
        if value and key not in ids:
            ids[key] = value
    if "ArXiv" not in ids and (_ARXIV_NEW.match(paper.paper_id) or _ARXIV_OLD.match(paper.paper_id)):
        ids["ArXiv"] = paper.paper_id
    return ids


def _first(extra: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        if extra.get(name) not in (None, "", []):
            return extra[name]
    return None


def paper_row(paper: Paper | dict[str, Any]) -> PaperRow:
    if isinstance(paper, dict):
        from ..data.records import paper_from_dict

        paper = paper_from_dict(paper)
    extra = dict(paper.extra)
    date = _text(_first(extra, DATE_FIELDS))
    used = {"year", "venue", "authors", *DATE_FIELDS, *FIELD_OF_STUDY_FIELDS, *URL_FIELDS}
    return PaperRow(
        paper_id=paper.paper_id,
        title=_text(paper.title),
        abstract=_text(paper.abstract),
        year=_year(extra.get("year"), date),
        venue=_text(extra.get("venue") or extra.get("journal")),
        publication_date=date,
        authors=_authors(extra.get("authors")),
        fields_of_study=_string_list(_first(extra, FIELD_OF_STUDY_FIELDS)),
        external_ids=_external_ids(paper, extra),
        url=_text(_first(extra, URL_FIELDS)),
        extra={k: v for k, v in extra.items() if k not in used and _jsonable(v)},
    )


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def split_prefixed_id(paper_id: str) -> tuple[str, str] | None:
    """``DOI:10.1/x`` -> (``DOI``, ``10.1/x``); ``CorpusId:12`` -> (``CorpusId``, ``12``); else None."""
    prefix, sep, rest = paper_id.partition(":")
    if not sep or not rest:
        return None
    if prefix.lower() == "corpusid":
        return "CorpusId", rest
    key = ID_PREFIXES.get(prefix.lower())
    return (key, rest) if key else None


def normalise_external_id(key: str, value: str) -> str:
    """DOIs are case-insensitive; arXiv ids are looked up without a version suffix as well."""
    return value.lower() if key == "DOI" else value
