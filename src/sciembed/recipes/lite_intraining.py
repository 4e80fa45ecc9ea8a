"""Builders of the sciembed-lite tasks on sources that training uses (ACL / AAN, Paperscape, arXiv,
SciTLDR, OHSUMED since mixture v4): every document they write is excluded from training
(:func:`sciembed.recipes.heldout.excluded_ids`).

Each builder returns ``{task folder: counts}``. The AAN and Paperscape citation tasks use exactly the
held-out citing papers of :func:`sciembed.data.citations.heldout_queries`.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import iter_records, normalize_whitespace
from .lite_io import (
    doc,
    random_split,
    stratified_sample,
    stratified_split,
    write_jsonl,
    write_labels,
    write_ranking,
    write_supervised,
)
from .sources import Sources

SEED = 42
ARXIV_CLASSES = 10
ARXIV_PER_CLASS = 60
ARXIV_MULTI_LABELS = 20
AAN_POSITIVES = 5
AAN_NEGATIVES = 25
SCITLDR_PAPERS = 300
SCITLDR_CANDIDATES = 300  # every TLDR ranks all 300 papers (30 random ones were trivially easy)
PHYSICS_POSITIVES = 5
PHYSICS_NEGATIVES = 25


@dataclass(frozen=True)
class GraphTaskSizes:
    """How many papers the in-training graph tasks (and OHSUMED) take (the defaults build sciembed-lite;
    the tests' small synthetic sources need smaller numbers so that papers remain for training)."""

    acl_year_papers: int = 600
    aan_count_papers: int = 600
    aan_queries: int = 200
    aan_negative_pool: int = 1500  # negatives of both AAN proximity tasks come from one shared pool of papers
    physics_queries: int = 300
    physics_negative_pool: int = 2000
    ohsumed_train: int = 1000  # stratified samples of OHSUMED's given train / test splits (CPU budget)
    ohsumed_test: int = 1500


DEFAULT_SIZES = GraphTaskSizes()


def build_arxiv(src: Sources, out: Path) -> dict[str, Any]:
    rng = random.Random(SEED)
    by_primary: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in iter_records(src.path("arxiv/papers-2025-2026.jsonl.gz")):
        cats = rec.get("categories") or []
        if cats and rec.get("abstract") and rec.get("title"):
            by_primary[cats[0]].append(rec)
    top = sorted(by_primary, key=lambda c: (-len(by_primary[c]), c))[:ARXIV_CLASSES]
    chosen: list[dict[str, Any]] = []
    for cat in sorted(top):
        pool = sorted(by_primary[cat], key=lambda r: r["id"])
        chosen += rng.sample(pool, min(ARXIV_PER_CLASS, len(pool)))
    folder = out / "arxiv"
    write_jsonl(folder / "meta.jsonl", (doc(r["id"], r["title"], r["abstract"]) for r in chosen))
    primary = {r["id"]: r["categories"][0] for r in chosen}
    train, test = stratified_split(primary, rng)
    write_labels(folder / "primary", "train", ((p, primary[p]) for p in train))
    write_labels(folder / "primary", "test", ((p, primary[p]) for p in test))
    counts = Counter(c for r in chosen for c in dict.fromkeys(r["categories"]))
    keep = {c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:ARXIV_MULTI_LABELS]}
    multi = {r["id"]: sorted(c for c in set(r["categories"]) if c in keep) for r in chosen}
    n_train = write_labels(folder / "multilabel", "train", ((p, multi[p]) for p in train if multi[p]))
    n_test = write_labels(folder / "multilabel", "test", ((p, multi[p]) for p in test if multi[p]))
    return {
        "arxiv": {
            "documents": len(chosen),
            "classes": len(top),
            "primary_train": len(train),
            "primary_test": len(test),
            "multilabel_labels": len(keep),
            "multilabel_train": n_train,
            "multilabel_test": n_test,
        }
    }


def build_acl_year(src: Sources, out: Path, sizes: GraphTaskSizes = DEFAULT_SIZES) -> dict[str, Any]:
    rng = random.Random(SEED)
    acl = src.acl()
    heldout = set(src.heldout()) if (src.root / "acl" / "aan-citations-2013.txt").is_file() else set()
    pool = sorted(p for p, r in acl.items() if r["abstract"] and r["year"] and p not in heldout)
    chosen = sorted(rng.sample(pool, min(sizes.acl_year_papers, len(pool))))
    folder = out / "acl_year"
    write_jsonl(folder / "meta.jsonl", (doc(p, acl[p]["title"], acl[p]["abstract"]) for p in chosen))
    train, test = random_split(chosen, rng)
    write_labels(folder, "train", ((p, int(acl[p]["year"])) for p in train))
    write_labels(folder, "test", ((p, int(acl[p]["year"])) for p in test))
    return {"acl_year": {"documents": len(chosen), "train": len(train), "test": len(test)}}


def _negatives(rng: random.Random, pool: list[str], exclude: set[str], n: int, reject=lambda _c: False) -> list[str]:
    picked: list[str] = []
    available = {c for c in pool if c not in exclude}
    if len(available) < 2 * n:  # small pools (synthetic test data): settle for what there is
        available = {c for c in available if not reject(c)}
        if len(available) <= n:
            return sorted(available)
    while len(picked) < n:
        cand = pool[rng.randrange(len(pool))]
        if cand in exclude or cand in picked or reject(cand):
            continue
        picked.append(cand)
    return picked


def build_aan(src: Sources, out: Path, sizes: GraphTaskSizes = DEFAULT_SIZES) -> dict[str, Any]:
    """AAN citation count (regression), citation prediction and co-citation (proximity)."""
    rng = random.Random(SEED)
    acl, graph = src.acl(), src.graph()
    heldout = src.heldout()
    heldout_set = set(heldout)
    with_text = sorted(p for p in graph.papers() if p in acl)
    cited_by = graph.cited_by()
    info: dict[str, Any] = {}

    def adoc(pid: str) -> dict[str, Any]:
        return doc(pid, acl[pid]["title"], acl[pid]["abstract"])

    # one pool of AAN papers (held-out citing papers excluded) feeds the citation-count task and the
    # negatives of both proximity tasks, so the three tasks share most of their documents
    free = [p for p in with_text if p not in heldout_set]
    pool = sorted(rng.sample(free, min(sizes.aan_negative_pool, len(free))))
    chosen = sorted(rng.sample(pool, min(sizes.aan_count_papers, len(pool))))
    folder = out / "aan_citation_count"
    write_jsonl(folder / "meta.jsonl", (adoc(p) for p in chosen))
    train, test = random_split(chosen, rng)
    label = {p: round(math.log1p(len(cited_by.get(p, ()))), 6) for p in chosen}
    write_labels(folder, "train", ((p, label[p]) for p in train))
    write_labels(folder, "test", ((p, label[p]) for p in test))
    info["aan_citation_count"] = {"documents": len(chosen), "train": len(train), "test": len(test)}

    # split the held-out citing papers between the two proximity tasks (no query paper in both)
    order = list(heldout)
    rng.shuffle(order)
    cite_queries = sorted(order[: sizes.aan_queries])
    cocite_queries = order[sizes.aan_queries :]  # taken in this (shuffled) order until aan_queries are found

    def write_proximity(name: str, rows: list[tuple[str, list[str], list[str]]]) -> None:
        write_ranking(
            out / name,
            ({"query": adoc(q), "candidates": [adoc(c) for c in pos + neg]} for q, pos, neg in rows),
            ({"query_id": q, "cand_id": c, "score": int(c in pos)} for q, pos, neg in rows for c in pos + neg),
        )
        info[name] = {
            "queries": len(rows),
            "candidates_per_query": AAN_POSITIVES + AAN_NEGATIVES,
            "documents": len({x for q, p, n in rows for x in [q, *p, *n]}),
        }

    rows = []
    for q in cite_queries:
        cited = sorted(c for c in graph.cites[q] if c in acl)
        pos = sorted(rng.sample(cited, min(AAN_POSITIVES, len(cited))))
        rows.append((q, pos, _negatives(rng, pool, set(graph.cites[q]) | {q}, AAN_NEGATIVES)))
    write_proximity("aan_cite", rows)

    rows = []
    anchors: set[str] = set()
    for q in cocite_queries:  # each anchor (query) paper once, so that query ids stay unique
        cited = sorted(c for c in graph.cites[q] if c in acl)
        free = [c for c in cited if c not in anchors]
        if len(rows) == sizes.aan_queries or not free:
            continue
        anchor = free[rng.randrange(len(free))]
        anchors.add(anchor)
        others = [c for c in cited if c != anchor]
        pos = sorted(rng.sample(others, min(AAN_POSITIVES, len(others))))

        def cocited(cand: str, anchor: str = anchor) -> bool:
            return bool(cited_by.get(cand, set()) & cited_by.get(anchor, set()))

        rows.append((anchor, pos, _negatives(rng, pool, set(graph.cites[q]) | {q, anchor}, AAN_NEGATIVES, cocited)))
    write_proximity("aan_cocite", rows)
    info["aan_heldout_queries"] = len(heldout)
    return info


def build_scitldr(src: Sources, out: Path) -> dict[str, Any]:
    rng = random.Random(SEED)
    papers = []
    for rec in iter_records(src.path("scitldr/test.jsonl")):
        if rec.get("target") and rec.get("source"):
            papers.append(rec)
    papers.sort(key=lambda r: r["paper_id"])
    papers = sorted(rng.sample(papers, min(SCITLDR_PAPERS, len(papers))), key=lambda r: r["paper_id"])
    ids = [r["paper_id"] for r in papers]
    by_id = {r["paper_id"]: doc(r["paper_id"], r.get("title"), " ".join(r["source"])) for r in papers}
    # compact: the papers once, then the TLDR queries; the candidates are in test_qrel.jsonl
    rows, qrels = [by_id[p] for p in ids], []
    for rec in papers:
        pid = rec["paper_id"]
        qid = f"tldr-{pid}"
        others = [d for d in rng.sample(ids, min(len(ids), SCITLDR_CANDIDATES + 1)) if d != pid]
        cands = [pid] + others[: SCITLDR_CANDIDATES - 1]
        rows.append({"query": normalize_whitespace(rec["target"][0]), "doc_id": qid, "candidates": []})
        qrels += [{"query_id": qid, "cand_id": c, "score": int(c == pid)} for c in cands]
    write_ranking(out / "scitldr", rows, qrels)
    n_cands = min(SCITLDR_CANDIDATES, len(ids))
    return {"scitldr": {"queries": len(papers), "documents": len(ids), "candidates_per_query": n_cands}}


def build_paperscape(src: Sources, out: Path, sizes: GraphTaskSizes = DEFAULT_SIZES) -> dict[str, Any]:
    """Physics citation prediction: a held-out Paperscape citing paper (title only) -> 5 papers it cites
    among 30 candidates; the 25 negatives come from a shared pool, of the query's primary category
    where the pool has enough (harder than random physics papers)."""
    rng = random.Random(SEED)
    papers, graph = src.physics(), src.physics_graph()
    heldout = src.physics_heldout()
    heldout_set = set(heldout)
    queries = sorted(rng.sample(heldout, min(sizes.physics_queries, len(heldout))))
    cited_by_query = {c for q in queries for c in graph.cites[q]}
    candidates = sorted(p for p in papers if p not in heldout_set and p not in cited_by_query)
    pool = sorted(rng.sample(candidates, min(sizes.physics_negative_pool, len(candidates))))

    def primary(pid: str) -> str:
        cats = papers[pid].get("categories") or ["?"]
        return cats[0]

    by_category: dict[str, list[str]] = defaultdict(list)
    for pid in pool:
        by_category[primary(pid)].append(pid)
    docs: dict[str, dict[str, Any]] = {}
    qrels: list[dict[str, Any]] = []
    for q in queries:
        cited = sorted(c for c in graph.cites[q] if c in papers)
        pos = sorted(rng.sample(cited, min(PHYSICS_POSITIVES, len(cited))))
        same = by_category.get(primary(q), [])
        exclude = set(graph.cites[q]) | {q}
        source = same if len(set(same) - exclude) >= 2 * PHYSICS_NEGATIVES else pool
        neg = _negatives(rng, source, exclude, PHYSICS_NEGATIVES)
        for pid in [q, *pos, *neg]:
            docs.setdefault(pid, doc(pid, papers[pid]["title"], None))
        qrels += [{"query_id": q, "cand_id": c, "score": int(c in pos)} for c in pos + neg]
    folder = out / "paperscape_cite"
    write_jsonl(folder / "meta.jsonl", (docs[p] for p in sorted(docs)))
    write_jsonl(folder / "test_qrel.jsonl", qrels)
    return {
        "paperscape_cite": {
            "queries": len(queries),
            "candidates_per_query": PHYSICS_POSITIVES + PHYSICS_NEGATIVES,
            "documents": len(docs),
            "heldout_citing_papers": len(heldout),
        }
    }


def build_ohsumed(src: Sources, out: Path, sizes: GraphTaskSizes = DEFAULT_SIZES) -> dict[str, Any]:
    """OHSUMED 23 disease categories: stratified samples of the given train and test splits (in training
    since mixture v4, which trains on the other OHSUMED papers)."""
    rng = random.Random(SEED)
    records: dict[str, dict[str, Any]] = {}
    for rec in iter_records(src.path("ohsumed/ohsumed-23.jsonl.gz")):
        title = rec.get("title")
        if rec.get("label") and (title or rec.get("abstract")) and not src.is_trained(title, besides="ohsumed"):
            records[str(rec["doc_id"])] = rec
    by_split = {s: {p: r["label"] for p, r in records.items() if r.get("split") == s} for s in ("train", "test")}
    train = stratified_sample(by_split["train"], sizes.ohsumed_train, rng)
    test = stratified_sample(by_split["test"], sizes.ohsumed_test, rng)
    labels = {p: records[p]["label"] for p in train + test}
    rows = (doc(p, records[p].get("title"), records[p].get("abstract")) for p in sorted(labels))
    counts = write_supervised(out / "ohsumed", rows, labels, train, test)
    counts["classes"] = len(set(labels.values()))
    return {"ohsumed": counts}
