"""Citation graphs: readers for edge files and the held-out split shared by training and evaluation.

Formats: ``citing,cited`` lines (AAN uses ``citing , cited``), SPECTER's ``data.json``
(``{query: {cited: {"count": 5|1}}}``; count 5 = direct citation) and S2ORC metadata lines with
``outbound_citations`` / ``inbound_citations`` lists.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidRecordError
from .readers import iter_raw_records

HELDOUT_SALT = "sciembed-heldout-v1"
HELDOUT_PERCENT = 10
HELDOUT_MIN_CITED = 5
SPECTER_DIRECT_CITATION = 5


@dataclass
class CitationGraph:
    """Directed citation edges ``citing -> cited`` (no self-citations, no duplicates)."""

    cites: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def add(self, citing: str, cited: str) -> None:
        if citing != cited:
            self.cites[citing].add(cited)

    def cited_by(self) -> dict[str, set[str]]:
        inbound: dict[str, set[str]] = defaultdict(set)
        for citing, cited_set in self.cites.items():
            for cited in cited_set:
                inbound[cited].add(citing)
        return inbound

    def papers(self) -> set[str]:
        nodes = set(self.cites)
        for cited in self.cites.values():
            nodes |= cited
        return nodes

    def num_edges(self) -> int:
        return sum(len(v) for v in self.cites.values())

    def edges(self) -> Iterator[tuple[str, str]]:
        for citing in sorted(self.cites):
            for cited in sorted(self.cites[citing]):
                yield citing, cited


def _read_edge_lines(path: Path, graph: CitationGraph) -> None:
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            parts = [p.strip() for p in text.replace("\t", ",").split(",")]
            if len(parts) != 2 or not all(parts):
                raise InvalidRecordError(str(path), line_no, f"expected 'citing,cited', got {text[:80]!r}")
            if line_no == 1 and parts[0].lower() in ("citing", "source", "src"):
                continue  # a header line
            graph.add(parts[0], parts[1])


def _read_specter_data(path: Path, graph: CitationGraph, direct_only: bool) -> None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidRecordError(str(path), exc.lineno, f"invalid JSON ({exc.msg})") from None
    for query, cited in data.items():
        for paper_id, info in cited.items():
            count = info.get("count", SPECTER_DIRECT_CITATION) if isinstance(info, dict) else SPECTER_DIRECT_CITATION
            if not direct_only or count >= SPECTER_DIRECT_CITATION:
                graph.add(str(query), str(paper_id))


def _read_s2orc(path: Path, graph: CitationGraph) -> None:
    for line, record in iter_raw_records(path):
        if isinstance(record, InvalidRecordError):
            raise record
        paper_id = record.get("paper_id")
        if paper_id is None:
            raise InvalidRecordError(str(path), line, "missing paper_id")
        for cited in record.get("outbound_citations") or []:
            graph.add(str(paper_id), str(cited))
        for citing in record.get("inbound_citations") or []:
            graph.add(str(citing), str(paper_id))


def read_citation_graph(path: str | Path, direct_only: bool = True) -> CitationGraph:
    """Read any supported edge file; ``direct_only`` keeps only SPECTER's count-5 (direct) citations."""
    path = Path(path)
    graph = CitationGraph()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix in (".txt", ".csv", ".tsv"):
        _read_edge_lines(path, graph)
    else:
        with open(path, "rb") as handle:
            head = handle.read(1 << 16).lstrip()
        # Decided on the first bytes, not on detect_format: a pretty-printed data.json is one JSON
        # object, which detect_format (rightly, for papers) calls "json".
        if head.startswith(b"["):
            raise ValueError(f"{path}: a JSON array is not a citation graph format")
        if head.startswith(b"{") and b"outbound_citations" not in head and b"inbound_citations" not in head:
            _read_specter_data(path, graph, direct_only)
        else:
            _read_s2orc(path, graph)
    return graph


def is_heldout(paper_id: str, percent: int = HELDOUT_PERCENT, salt: str = HELDOUT_SALT) -> bool:
    """A stable, order-independent hash draw: the same papers are held out on every machine and run."""
    digest = hashlib.blake2b(f"{salt}:{paper_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100 < percent


def heldout_queries(
    graph: CitationGraph, has_text: Iterable[str], min_cited: int = HELDOUT_MIN_CITED, percent: int = HELDOUT_PERCENT
) -> list[str]:
    """Citing papers held out for evaluation (cite / co-cite tasks); training must never use them.

    A paper qualifies when it has text and cites at least ``min_cited`` papers with text; of those a
    stable hash draw keeps ``percent`` percent.
    """
    text = set(has_text)
    queries = []
    for citing in sorted(graph.cites):
        if citing not in text or not is_heldout(citing, percent):
            continue
        if sum(1 for c in graph.cites[citing] if c in text) >= min_cited:
            queries.append(citing)
    return queries
