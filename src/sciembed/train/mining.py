"""Stage-1 training triplets mined from a citation graph (SPECTER / SPECTER2 recipe).

For each citing paper (the query):

* positives are the papers it cites (optionally also the papers citing it);
* hard negatives are cited by a paper the query cites, but neither cited by the query nor citing it;
* easy negatives are random papers that are not linked to the query by a citation; when papers
  carry fields of study or categories they are drawn as SPECTER2 does, in turn one sharing no
  field with the query, one sharing a field, one with the same fields.

SPECTER's defaults: 5 triplets per query, 2 with hard and 3 with easy negatives; missing hard
negatives are replaced by easy ones (and counted). Papers without text are never used and are
counted; excluded papers (by default the held-out AAN evaluation queries of
:func:`sciembed.data.citations.heldout_queries`) appear in no role, and their citation edges are
dropped before mining so that no held-out edge shapes a triplet. Output is deterministic for a
seed: queries are handled in sorted order, each with its own generator seeded from
``(seed, hash(query id))``, so a query's triplets do not depend on dict order or on the other
queries mined with it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.citations import CitationGraph, heldout_queries, read_citation_graph
from ..data.progress import progress_bar
from ..data.readers import ReadReport, iter_parsed
from ..data.records import (
    DEFAULT_TEXT_FIELDS,
    ID_FIELD_CANDIDATES,
    Paper,
    is_missing,
    paper_from_dict,
)
from ..data.triplets import Triplet, TripletWriter

#: Id fields tried, in order, when reading papers files for mining: the one order of every reader.
MINING_ID_FIELDS = ID_FIELD_CANDIDATES
#: Paper fields that hold fields of study / categories (the first one present is used).
FIELD_KEYS = ("fields_of_study", "mag_field_of_study", "s2_fields_of_study", "s2fieldsofstudy", "categories")
#: SPECTER2's easy negatives, taken in turn: no field shared, one shared, the same fields.
EASY_KINDS = ("no_shared_field", "shared_field", "same_fields")
DEV_SALT = "sciembed-dev-v1"
_MAX_TRIES = 48


@dataclass(frozen=True)
class MiningConfig:
    """How many triplets to mine per query and how.

    ``easy_per_query`` defaults to ``triplets_per_query - hard_per_query``; when given, the two
    must add up to ``triplets_per_query``. ``easy_pool`` is ``"graph"`` (papers of the citation
    graph: the same population as queries and positives, so that "has an abstract" or "is recent"
    cannot tell negatives apart) or ``"papers"`` (every paper with text).
    """

    triplets_per_query: int = 5
    hard_per_query: int = 2
    easy_per_query: int | None = None
    include_citing_as_positive: bool = False
    max_positives_per_query: int | None = None
    seed: int = 42
    dev_fraction: float = 0.05
    easy_pool: str = "graph"
    field_aware: bool = True
    field_keys: tuple[str, ...] = FIELD_KEYS
    text_fields: tuple[str, ...] = DEFAULT_TEXT_FIELDS

    def __post_init__(self) -> None:
        if self.triplets_per_query < 1:
            raise ValueError(f"triplets_per_query must be at least 1, got {self.triplets_per_query}")
        if not 0 <= self.hard_per_query <= self.triplets_per_query:
            raise ValueError(
                f"hard_per_query must be between 0 and triplets_per_query ({self.triplets_per_query}), "
                f"got {self.hard_per_query}"
            )
        easy = self.triplets_per_query - self.hard_per_query
        if self.easy_per_query is None:
            object.__setattr__(self, "easy_per_query", easy)
        elif self.easy_per_query != easy:
            raise ValueError(
                f"hard_per_query ({self.hard_per_query}) + easy_per_query ({self.easy_per_query}) must equal "
                f"triplets_per_query ({self.triplets_per_query})"
            )
        if self.max_positives_per_query is not None and self.max_positives_per_query < 1:
            raise ValueError(f"max_positives_per_query must be at least 1, got {self.max_positives_per_query}")
        if not 0.0 <= self.dev_fraction < 1.0:
            raise ValueError(f"dev_fraction must be in [0, 1), got {self.dev_fraction}")
        if self.easy_pool not in ("graph", "papers"):
            raise ValueError(f"easy_pool must be 'graph' or 'papers', got {self.easy_pool!r}")
        object.__setattr__(self, "field_keys", tuple(self.field_keys))
        object.__setattr__(self, "text_fields", tuple(self.text_fields))


@dataclass
class MiningReport:
    """What a mining run read, skipped and wrote."""

    papers_files: list[str] = field(default_factory=list)
    papers_read: int = 0
    papers_no_text: int = 0
    papers_invalid: int = 0
    invalid_examples: list[str] = field(default_factory=list)
    abstracts_merged: int = 0
    edges_file: str | None = None
    graph_papers: int = 0
    graph_edges: int = 0
    excluded_papers: int = 0
    heldout_excluded: int = 0
    edges_dropped_excluded: int = 0
    easy_pool_size: int = 0
    queries_total: int = 0
    queries_excluded: int = 0
    queries_skipped_no_text: int = 0
    queries_skipped_no_positives: int = 0
    queries_used: int = 0
    queries_short: int = 0
    cited_without_text: int = 0
    triplets: int = 0
    hard_negatives: int = 0
    easy_negatives: int = 0
    hard_filled_with_easy: int = 0
    easy_kinds: dict[str, int] = field(default_factory=dict)
    easy_kind_fallbacks: int = 0
    train_queries: int = 0
    train_triplets: int = 0
    dev_queries: int = 0
    dev_triplets: int = 0
    seconds: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"papers: {self.papers_read} with text read from {len(self.papers_files) or '?'} file(s), "
            f"{self.papers_no_text} skipped for no text, {self.papers_invalid} invalid, "
            f"{self.abstracts_merged} abstracts merged from later files",
            f"graph: {self.graph_papers} papers, {self.graph_edges} edges; "
            f"excluded {self.excluded_papers} papers ({self.heldout_excluded} held-out evaluation queries), "
            f"{self.edges_dropped_excluded} of their edges dropped",
            f"queries: {self.queries_used} used of {self.queries_total} citing papers; "
            f"skipped {self.queries_skipped_no_text} for no text, "
            f"{self.queries_skipped_no_positives} for no positives with text, "
            f"{self.queries_excluded} excluded; {self.queries_short} got fewer triplets than asked",
            f"triplets: {self.triplets} ({self.hard_negatives} hard, {self.easy_negatives} easy negatives; "
            f"{self.hard_filled_with_easy} hard slots filled with easy ones)",
            f"split: train {self.train_triplets} triplets / {self.train_queries} queries, "
            f"dev {self.dev_triplets} triplets / {self.dev_queries} queries",
        ]
        if self.easy_kinds:
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.easy_kinds.items()))
            lines.append(f"easy negatives by kind: {kinds} ({self.easy_kind_fallbacks} fell back to another kind)")
        if self.seconds:
            lines.append(f"time: {self.seconds:.1f} s")
        for example in self.invalid_examples:
            lines.append(f"  invalid: {example}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- helpers


def _stable_hash(text: str, salt: str = "") -> int:
    return int.from_bytes(hashlib.blake2b(f"{salt}:{text}".encode(), digest_size=8).digest(), "big")


def is_dev_query(paper_id: str, fraction: float, salt: str = DEV_SALT) -> bool:
    """A stable hash draw: the same queries land in the dev split on every machine and run."""
    if fraction <= 0:
        return False
    return _stable_hash(paper_id, salt) % 1_000_000 < round(fraction * 1_000_000)


def paper_fields(paper: Paper, keys: Sequence[str] = FIELD_KEYS) -> frozenset[str]:
    """Fields of study or categories of a paper (empty when unknown).

    Accepts a list of strings, a list of ``{"category": ...}`` objects (S2) or a string of
    codes separated by white space or commas (arXiv's raw ``categories``).
    """
    for key in keys:
        value = paper.extra.get(key)
        if value is None:
            continue
        if isinstance(value, str):
            items: Iterable[Any] = value.replace(",", " ").replace(";", " ").split()
        elif isinstance(value, (list, tuple, set, frozenset)):
            items = value
        else:
            continue
        out = set()
        for item in items:
            if isinstance(item, dict):
                item = item.get("category")
            if isinstance(item, str) and item.strip():
                out.add(item.strip())
        if out:
            return frozenset(out)
    return frozenset()


def _has_text(paper: Paper, text_fields: Sequence[str]) -> bool:
    return paper.has_text(text_fields)


def drop_papers(graph: CitationGraph, exclude: set[str]) -> tuple[CitationGraph, int]:
    """A copy of ``graph`` without the excluded papers and their edges, and how many edges were dropped."""
    kept = CitationGraph()
    dropped = 0
    for citing, cited_set in graph.cites.items():
        if citing in exclude:
            dropped += len(cited_set)
            continue
        keep = {c for c in cited_set if c not in exclude and c != citing}
        dropped += len(cited_set) - len(keep)
        if keep:
            kept.cites[citing] = keep
    return kept, dropped


class _EasySampler:
    """Draws easy negatives from a fixed, sorted pool; field-aware when the pool has fields."""

    def __init__(self, pool: list[str], papers: Mapping[str, Paper], config: MiningConfig):
        self.pool = pool
        self.fields: list[frozenset[str]] = []
        self.by_field: dict[str, list[int]] = defaultdict(list)
        self.by_set: dict[frozenset[str], list[int]] = defaultdict(list)
        self.with_fields: list[int] = []
        if config.field_aware:
            for index, pid in enumerate(pool):
                fos = paper_fields(papers[pid], config.field_keys)
                self.fields.append(fos)
                if fos:
                    self.with_fields.append(index)
                    self.by_set[fos].append(index)
                    for name in fos:
                        self.by_field[name].append(index)
        self.field_aware = bool(self.with_fields)

    # Each draw returns a pool index or None; ``blocked`` holds paper ids that may not be drawn.
    @staticmethod
    def _draw(rng, lists: Sequence[Sequence[int]], ok) -> int | None:
        """Rejection-sample an acceptable index from the concatenation of ``lists``; when that keeps
        failing, enumerate the acceptable ones (rare, exact)."""
        sizes = [len(x) for x in lists]
        total = sum(sizes)
        if total == 0:
            return None
        for _ in range(_MAX_TRIES):
            j = int(rng.integers(total))
            for part, size in zip(lists, sizes, strict=True):
                if j < size:
                    index = part[j]
                    break
                j -= size
            if ok(index):
                return index
        allowed = sorted({i for part in lists for i in part if ok(i)})
        if not allowed:
            return None
        return allowed[int(rng.integers(len(allowed)))]

    def draw(self, rng, kind: str, qfields: frozenset[str], blocked: set[str]) -> int | None:
        pool, fos = self.pool, self.fields

        def free(i: int) -> bool:
            return pool[i] not in blocked

        if kind == "random":
            return self._draw(rng, [range(len(pool))], free)
        if kind == "same_fields":
            return self._draw(rng, [self.by_set.get(qfields, [])], free)
        if kind == "no_shared_field":
            return self._draw(rng, [self.with_fields], lambda i: free(i) and not (fos[i] & qfields))
        if kind == "shared_field":
            lists = [self.by_field.get(name, []) for name in sorted(qfields)]
            return self._draw(rng, lists, lambda i: free(i) and fos[i] != qfields)
        raise ValueError(f"unknown easy-negative kind {kind!r}")


def _query_rng(seed: int, query_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, _stable_hash(query_id, "sciembed-mining")])


def mine_triplets(
    papers: Mapping[str, Paper],
    graph: CitationGraph,
    config: MiningConfig | None = None,
    exclude: Iterable[str] = frozenset(),
    report: MiningReport | None = None,
    progress: bool = False,
    extra_hard: Mapping[str, Iterable[str]] | None = None,
) -> Iterator[Triplet]:
    """Yield training triplets mined from ``graph`` over the papers with text in ``papers``.

    ``extra_hard`` adds hard-negative candidates per query (SPECTER's ``data.json`` lists
    citations of citations with count 1; they pass the same checks as two-hop papers).

    ``exclude``: paper ids that may appear in no role (their edges are dropped first).
    Counts go to ``report`` as the generator runs.
    """
    config = config or MiningConfig()
    report = report if report is not None else MiningReport()
    exclude_set = set(exclude)
    report.config = asdict(config)
    report.excluded_papers = len(exclude_set)
    report.graph_papers = len(graph.papers())
    report.graph_edges = graph.num_edges()
    report.queries_excluded = sum(1 for q in graph.cites if q in exclude_set)

    work, report.edges_dropped_excluded = drop_papers(graph, exclude_set) if exclude_set else (graph, 0)
    cites = work.cites
    cited_by = work.cited_by()
    text_fields = config.text_fields

    text_cache: dict[str, bool] = {}

    def usable(pid: str) -> bool:
        ok = text_cache.get(pid)
        if ok is None:
            paper = papers.get(pid)
            ok = paper is not None and pid not in exclude_set and _has_text(paper, text_fields)
            text_cache[pid] = ok
        return ok

    if config.easy_pool == "graph":
        pool = sorted(pid for pid in work.papers() if usable(pid))
    else:
        pool = sorted(pid for pid in papers if usable(pid))
    report.easy_pool_size = len(pool)
    sampler = _EasySampler(pool, papers, config)
    kinds_count: Counter[str] = Counter(report.easy_kinds)

    # Every citing paper of the input graph is a candidate query (one whose citations were all
    # excluded is counted as having no positives).
    queries = sorted(q for q in graph.cites if q not in exclude_set)
    report.queries_total = len(graph.cites)
    try:
        yield from _mine_queries(
            queries,
            papers,
            cites,
            cited_by,
            usable,
            pool,
            sampler,
            config,
            report,
            kinds_count,
            progress,
            extra_hard or {},
        )
    finally:
        report.easy_kinds = dict(kinds_count)


def _mine_queries(
    queries, papers, cites, cited_by, usable, pool, sampler, config, report, kinds_count, progress, extra_hard
) -> Iterator[Triplet]:
    iterator = progress_bar(iterable=queries, show=progress, desc="mining triplets", unit="query", mininterval=0.5)
    n_total = config.triplets_per_query
    empty: set[str] = set()
    for q in iterator:
        if not usable(q):
            report.queries_skipped_no_text += 1
            continue
        cited = cites.get(q, empty)
        citing = cited_by.get(q, empty)
        positives = sorted(c for c in cited if c != q and usable(c))
        report.cited_without_text += len(cited) - len(positives)
        if config.include_citing_as_positive:
            positives += sorted(c for c in citing if c != q and c not in cited and usable(c))
        if not positives:
            report.queries_skipped_no_positives += 1
            continue
        rng = _query_rng(config.seed, q)
        cap = config.max_positives_per_query
        if cap is not None and len(positives) > cap:
            chosen = np.sort(rng.choice(len(positives), size=cap, replace=False))
            positives = [positives[int(i)] for i in chosen]

        blocked = {q} | cited | citing
        two_hop = {h for c in cited for h in cites.get(c, ())}
        two_hop.update(extra_hard.get(q, ()))
        hard_candidates = sorted(two_hop - blocked)
        hard_candidates = [h for h in hard_candidates if usable(h)]
        n_hard = min(config.hard_per_query, len(hard_candidates))
        negatives: list[str] = []
        if n_hard:
            picks = rng.choice(len(hard_candidates), size=n_hard, replace=False)
            negatives = [hard_candidates[int(i)] for i in picks]
        shortfall = config.hard_per_query - n_hard
        n_hard_used = len(negatives)

        taken = blocked | set(negatives)
        qfields = paper_fields(papers[q], config.field_keys) if sampler.field_aware else frozenset()
        for slot in range(config.easy_per_query + shortfall):
            if qfields:
                first = EASY_KINDS[slot % len(EASY_KINDS)]
                order = [first, *(k for k in EASY_KINDS if k != first), "random"]
            else:
                order = ["random"]
            for attempt, kind in enumerate(order):
                index = sampler.draw(rng, kind, qfields, taken)
                if index is not None:
                    if attempt:
                        report.easy_kind_fallbacks += 1
                    kinds_count[kind] += 1
                    neg = pool[index]
                    negatives.append(neg)
                    taken.add(neg)
                    break
            else:
                break  # the pool is exhausted for this query
        n_easy_used = len(negatives) - n_hard_used
        report.hard_filled_with_easy += min(shortfall, n_easy_used)

        if len(negatives) < n_total:
            report.queries_short += 1
        if not negatives:
            continue
        report.queries_used += 1
        report.hard_negatives += n_hard_used
        report.easy_negatives += n_easy_used
        order_pos = rng.permutation(len(positives))
        query_paper = papers[q]
        for i, neg in enumerate(negatives):
            pos = positives[int(order_pos[i % len(positives)])]
            report.triplets += 1
            yield Triplet(query=query_paper, pos=papers[pos], neg=papers[neg])


# ----------------------------------------------------------------------------- files


def load_paper_files(
    paths: Sequence[str | Path],
    id_fields: Sequence[str | None] | str | None = None,
    skip_invalid: bool = False,
    report: MiningReport | None = None,
    text_fields: Sequence[str] = DEFAULT_TEXT_FIELDS,
) -> dict[str, Paper]:
    """Read and merge papers files: the first non-empty title and abstract of an id win.

    ``id_fields``: one id field for every file, one per file, or ``None`` to take the first of
    paper_id / corpus_id / doc_id / id / acl_id / sha. Records with no text are skipped and
    counted; other bad records raise :class:`InvalidRecordError` (``file:line``) unless
    ``skip_invalid``.
    """
    report = report if report is not None else MiningReport()
    if isinstance(id_fields, str) or id_fields is None:
        per_file: list[str | None] = [id_fields] * len(paths)
    else:
        per_file = list(id_fields)
        if len(per_file) == 1:
            per_file = per_file * len(paths)
        if len(per_file) != len(paths):
            raise ValueError(f"{len(per_file)} id fields given for {len(paths)} papers files")
    papers: dict[str, Paper] = {}
    for path, id_field in zip(paths, per_file, strict=True):
        report.papers_files.append(str(path))

        def parse(record: Any, _line: int, id_field: str | None = id_field) -> Paper | None:
            paper = paper_from_dict(record, id_field, require_text=False)
            return paper if paper.has_text(text_fields) else None

        read = ReadReport()
        for _, paper in iter_parsed(path, parse, skip_invalid, read):
            if paper is None:
                report.papers_no_text += 1
                continue
            previous = papers.get(paper.paper_id)
            if previous is None:
                papers[paper.paper_id] = paper
                continue
            merged = _merge(previous, paper)
            if merged is not previous:
                if is_missing(previous.abstract) and not is_missing(merged.abstract):
                    report.abstracts_merged += 1
                papers[paper.paper_id] = merged
        report.papers_invalid += read.skipped
        report.invalid_examples.extend(read.skipped_examples[: 20 - len(report.invalid_examples)])
    report.papers_read = len(papers)
    return papers


def _merge(first: Paper, later: Paper) -> Paper:
    title = later.title if is_missing(first.title) else first.title
    abstract = later.abstract if is_missing(first.abstract) else first.abstract
    new_keys = [k for k in later.extra if k not in first.extra]
    if title is first.title and abstract is first.abstract and not new_keys:
        return first
    extra = dict(first.extra)
    for key in new_keys:
        extra[key] = later.extra[key]
    return Paper(paper_id=first.paper_id, title=title, abstract=abstract, extra=extra)


def mine_to_files(
    papers_paths: str | Path | Sequence[str | Path],
    edges_path: str | Path,
    out_dir: str | Path,
    config: MiningConfig | None = None,
    *,
    id_fields: Sequence[str | None] | str | None = None,
    exclude_heldout: bool = True,
    exclude: Iterable[str] = (),
    skip_invalid: bool = False,
    compress: bool = False,
    progress: bool = True,
) -> MiningReport:
    """Mine triplets into ``out_dir/train.jsonl``, ``out_dir/dev.jsonl`` (``.jsonl.gz`` with
    ``compress``) and ``out_dir/report.json``.

    With ``exclude_heldout`` the held-out evaluation queries
    (:func:`sciembed.data.citations.heldout_queries` over the papers with text) are excluded in
    every role, as are the ids in ``exclude``. Queries go to dev by a stable hash of their id
    (``config.dev_fraction``).
    """
    start = time.perf_counter()
    config = config or MiningConfig()
    report = MiningReport()
    if isinstance(papers_paths, (str, Path)):
        papers_paths = [papers_paths]
    papers = load_paper_files(papers_paths, id_fields, skip_invalid, report, config.text_fields)
    graph = read_citation_graph(edges_path)
    report.edges_file = str(edges_path)
    extra_hard: dict[str, set[str]] = {}
    if Path(edges_path).suffix not in (".txt", ".csv", ".tsv"):
        # SPECTER's data.json: its count-1 entries are citations of citations, i.e. hard negatives
        with_indirect = read_citation_graph(edges_path, direct_only=False)
        for q, listed in with_indirect.cites.items():
            indirect = listed - graph.cites.get(q, set())
            if indirect:
                extra_hard[q] = indirect

    excluded = set(exclude)
    if exclude_heldout:
        with_text = [pid for pid, paper in papers.items() if _has_text(paper, config.text_fields)]
        heldout = heldout_queries(graph, with_text)
        report.heldout_excluded = len(heldout)
        excluded.update(heldout)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = ".jsonl.gz" if compress else ".jsonl"
    train_path, dev_path = out_dir / f"train{suffix}", out_dir / f"dev{suffix}"
    train_queries: set[str] = set()
    dev_queries: set[str] = set()
    with TripletWriter(train_path) as train, TripletWriter(dev_path) as dev:
        for triplet in mine_triplets(papers, graph, config, excluded, report, progress, extra_hard):
            qid = triplet.query.paper_id
            if is_dev_query(qid, config.dev_fraction):
                dev.write(triplet)
                dev_queries.add(qid)
            else:
                train.write(triplet)
                train_queries.add(qid)
        if train.count == 0:  # raised inside the block: neither file is left behind
            raise ValueError(
                f"{train_path}: no training triplets mined ({len(papers)} papers with text, "
                f"{graph.num_edges()} citation edges in {edges_path}); do the papers' ids match the edges'?"
            )
    report.train_triplets, report.dev_triplets = train.count, dev.count
    report.train_queries, report.dev_queries = len(train_queries), len(dev_queries)
    report.seconds = round(time.perf_counter() - start, 3)
    report.outputs = {"train": str(train_path), "dev": str(dev_path), "report": str(out_dir / "report.json")}
    (out_dir / "report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return report


__all__ = [
    "EASY_KINDS",
    "FIELD_KEYS",
    "MiningConfig",
    "MiningReport",
    "drop_papers",
    "is_dev_query",
    "load_paper_files",
    "mine_to_files",
    "mine_triplets",
    "paper_fields",
]
