"""Lazy, memoised readers of ``../shared/data`` for the sciembed-lite builders (several tasks share a source)."""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import iter_records, normalize_whitespace, read_papers
from ..data.citations import CitationGraph, heldout_queries, read_citation_graph

REPO_ROOT = Path(__file__).resolve().parents[3]
KEYPHRASE_COLLECTIONS = {"inspec": "Inspec", "kdd": "kdd", "www": "www"}  # task key -> folder in the zip
TITLE_ONLY_WORDS = 25  # a one-line KDD / WWW document this short is a title without abstract
MIN_MATCH_TITLE = 25  # shorter normalised titles ("Introduction", ...) are not matched across sources
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def title_key(title: str | None) -> str:
    """Lower-cased letters and digits of a title, single-spaced (matches one paper across sources)."""
    return _NON_ALNUM.sub(" ", (title or "").lower()).strip()


def default_data_root() -> Path:
    """``$SCIEMBED_DATA``, else ``../shared/data`` from the working directory, else from the checkout."""
    if os.environ.get("SCIEMBED_DATA"):
        return Path(os.environ["SCIEMBED_DATA"])
    for root in (Path.cwd() / ".." / "shared" / "data", REPO_ROOT.parent / "shared" / "data"):
        if root.is_dir():
            return root.resolve()
    return (Path.cwd() / ".." / "shared" / "data").resolve()


@dataclass(frozen=True)
class KeyphraseDoc:
    doc_id: str
    title: str | None
    abstract: str | None
    keyphrases: tuple[str, ...]  # lower-cased, white space normalised, in file order, unique


def _split_document(text: str) -> tuple[str | None, str | None]:
    """Inspec: first line title, the rest abstract; KDD / WWW: one line, title and abstract run together."""
    lines = [normalize_whitespace(x) for x in text.splitlines()]
    lines = [x for x in lines if x]
    if not lines:
        return None, None
    if len(lines) > 1:
        return lines[0], " ".join(lines[1:])
    if len(lines[0].split()) <= TITLE_ONLY_WORDS:
        return lines[0], None
    return None, lines[0]


class Sources:
    """The shared data folder, read once per build."""

    def __init__(self, root: Path):
        self.root = root
        self._acl: dict[str, dict[str, Any]] | None = None
        self._graph: CitationGraph | None = None
        self._heldout: list[str] | None = None
        self._physics: dict[str, dict[str, Any]] | None = None
        self._physics_graph: CitationGraph | None = None
        self._physics_heldout: list[str] | None = None
        self._trained_titles: dict[str, frozenset[str]] | None = None

    def path(self, relative: str) -> Path:
        path = self.root / relative
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing from the shared data")
        return path

    # ---- ACL Anthology and the AAN graph (in training) ----------------------------------------------------
    def acl(self) -> dict[str, dict[str, Any]]:
        """ACL Anthology papers by id (abstracts completed from ScisummNet where missing)."""
        if self._acl is None:
            papers: dict[str, dict[str, Any]] = {}
            for paper in read_papers(self.path("acl/anthology-papers.jsonl.gz"), skip_invalid=True):
                papers[paper.paper_id] = {
                    "title": paper.title,
                    "abstract": paper.abstract,
                    "year": paper.extra.get("year"),
                }
            summ = self.root / "acl" / "scisummnet-papers.jsonl"
            if summ.is_file():
                for rec in iter_records(summ):
                    pid = rec.get("acl_id")
                    if pid in papers and not papers[pid]["abstract"] and rec.get("abstract"):
                        papers[pid]["abstract"] = rec["abstract"]
            self._acl = papers
        return self._acl

    def graph(self) -> CitationGraph:
        if self._graph is None:
            self._graph = read_citation_graph(self.path("acl/aan-citations-2013.txt"))
        return self._graph

    def heldout(self) -> list[str]:
        """The held-out AAN citing papers (exactly what training excludes)."""
        if self._heldout is None:
            self._heldout = heldout_queries(self.graph(), self.acl().keys())
        return self._heldout

    # ---- Paperscape physics graph (in training) -----------------------------------------------------------
    def physics(self) -> dict[str, dict[str, Any]]:
        """Paperscape papers by arXiv id: title, categories, year (no abstracts)."""
        if self._physics is None:
            papers: dict[str, dict[str, Any]] = {}
            for rec in iter_records(self.path("paperscape/papers-1991-1996.jsonl.gz")):
                if rec.get("paper_id") and rec.get("title"):
                    papers[str(rec["paper_id"])] = rec
            self._physics = papers
        return self._physics

    def physics_graph(self) -> CitationGraph:
        if self._physics_graph is None:
            self._physics_graph = read_citation_graph(self.path("paperscape/citations-1991-1996.txt"))
        return self._physics_graph

    def physics_heldout(self) -> list[str]:
        """Held-out Paperscape citing papers: the same stable hash draw as for AAN."""
        if self._physics_heldout is None:
            self._physics_heldout = heldout_queries(self.physics_graph(), self.physics().keys())
        return self._physics_heldout

    # ---- documents of training sources in other collections ----------------------------------------------
    def trained_titles(self) -> dict[str, frozenset[str]]:
        """Title keys of every paper of a training source, by source (ACL Anthology, Paperscape, arXiv
        2025-26, all SciTLDR splits, OHSUMED); sources absent from the data folder contribute nothing."""
        if self._trained_titles is None:
            titles: dict[str, set[str]] = {}
            if (self.root / "acl" / "anthology-papers.jsonl.gz").is_file():
                titles["acl"] = {title_key(r["title"]) for r in self.acl().values()}
            if (self.root / "paperscape" / "papers-1991-1996.jsonl.gz").is_file():
                titles["paperscape"] = {title_key(r["title"]) for r in self.physics().values()}
            for source, paths in (
                ("arxiv", ["arxiv/papers-2025-2026.jsonl.gz"]),
                ("scitldr", [f"scitldr/{split}.jsonl" for split in ("train", "dev", "test")]),
                ("ohsumed", ["ohsumed/ohsumed-23.jsonl.gz"]),
            ):
                for relative in paths:
                    if (self.root / relative).is_file():
                        titles.setdefault(source, set()).update(
                            title_key(r.get("title")) for r in iter_records(self.root / relative)
                        )
            self._trained_titles = {
                source: frozenset(t for t in keys if len(t) >= MIN_MATCH_TITLE) for source, keys in titles.items()
            }
        return self._trained_titles

    def is_trained(self, title: str | None, besides: str | None = None) -> bool:
        """Whether a paper of another collection is also a paper of a training source (``besides``: a
        source not to count, the collection's own when it is a training source itself)."""
        key = title_key(title)
        return any(key in keys for source, keys in self.trained_titles().items() if source != besides)

    # ---- keyphrase collections (never trained on) -----------------------------------------------------
    def keyphrase(self, key: str) -> list[KeyphraseDoc]:
        """The documents of one keyphrase collection with their gold keyphrases, sorted by id."""
        folder = KEYPHRASE_COLLECTIONS[key]
        archive = self.path(f"keyphrase/{folder}.zip")
        texts: dict[str, str] = {}
        keys: dict[str, tuple[str, ...]] = {}
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                parts = name.split("/")
                if len(parts) != 3 or not parts[2]:
                    continue
                stem, _, ext = parts[2].rpartition(".")
                raw = zf.read(name).decode("utf-8", errors="replace")
                if parts[1] == "docsutf8" and ext == "txt":
                    texts[stem] = raw
                elif parts[1] == "keys" and ext == "key":
                    phrases = (normalize_whitespace(x).lower() for x in raw.splitlines())
                    keys[stem] = tuple(dict.fromkeys(p for p in phrases if p))
        docs = []
        for stem in sorted(texts):
            title, abstract = _split_document(texts[stem])
            if (title or abstract) and keys.get(stem) and not self.is_trained(title):
                docs.append(KeyphraseDoc(f"{key}-{stem}", title, abstract, keys[stem]))
        if not docs:
            raise ValueError(f"{archive}: no documents with keyphrases")
        return docs
