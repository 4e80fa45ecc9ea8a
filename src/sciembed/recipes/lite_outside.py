"""Builders of the sciembed-lite tasks on sources that no training mixture uses (out-of-training):
SciRepEval samples, ICLR 2021, the S2ORC sample and the keyphrase collections (OHSUMED, used by
mixture v4, moved to :mod:`sciembed.recipes.lite_intraining` in suite v7).

Each builder returns ``{task folder: counts}``; every split is seeded (``SEED``).
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..data import iter_records
from .lite_io import (
    doc,
    random_split,
    stratified_split,
    write_jsonl,
    write_labels,
    write_ranking,
    write_supervised,
)
from .sources import KEYPHRASE_COLLECTIONS, KeyphraseDoc, Sources

SEED = 42
SPECTER_QUERIES = 200  # all of specter_small
SPECTER_EXTRA_NEGATIVES = 8
SEARCH_QUERIES = 100  # all of search_small
S2ORC_MIN_FIELD = 10  # MAG fields with fewer papers are left out of the field-of-study task
KEYPHRASE_HARD = 20  # BM25 top candidates of the same collection (the gold paper excluded)
KEYPHRASE_RANDOM = 10
KEYPHRASE_GENERIC_DF = 0.02  # a keyphrase in more than 2% of a collection's papers says little
KEYPHRASE_MIN_SHARED = 2
KEYPHRASE_POSITIVES = 5
KEYPHRASE_PROX_HARD = 10
KEYPHRASE_PROX_RANDOM = 15


# ---- SciRepEval samples ---------------------------------------------------------------------------------
def _scirepeval_classification(
    src: Sources, out: Path, name: str, label_of: Callable[[dict], Any], multi: bool
) -> dict[str, Any]:
    rng = random.Random(SEED)
    records = json.loads(src.path(f"scirepeval-sample/{name}.json").read_text(encoding="utf-8"))
    docs = {str(r["corpus_id"]): r for r in records if not src.is_trained(r.get("title"))}
    labels = {pid: label_of(r) for pid, r in docs.items()}
    train, test = random_split(sorted(labels), rng) if multi else stratified_split(labels, rng)
    rows = (doc(pid, r.get("title"), r.get("abstract")) for pid, r in docs.items())
    return {name: write_supervised(out / name, rows, labels, train, test)}


def build_fos(src: Sources, out: Path) -> dict[str, Any]:
    return _scirepeval_classification(src, out, "fos_small", lambda r: list(r["labels_text"]), True)


def build_mesh(src: Sources, out: Path) -> dict[str, Any]:
    return _scirepeval_classification(src, out, "mesh_small", lambda r: r["descriptor"], False)


def build_specter(src: Sources, out: Path) -> dict[str, Any]:
    rng = random.Random(SEED)
    triplets = json.loads(src.path("scirepeval-sample/specter_small.json").read_text(encoding="utf-8"))
    triplets = rng.sample(triplets, min(SPECTER_QUERIES, len(triplets)))
    docs: dict[str, dict[str, Any]] = {}
    groups: dict[str, dict[str, Any]] = {}
    for t in triplets:
        if any(src.is_trained(t[k].get("title")) for k in ("query", "pos", "neg")):
            continue  # a paper that training also uses: the triplet leaves the out-of-training task
        q, p, n = (str(t[k]["corpus_id"]) for k in ("query", "pos", "neg"))
        for key, pid in (("query", q), ("pos", p), ("neg", n)):
            docs.setdefault(pid, doc(pid, t[key].get("title"), t[key].get("abstract")))
        group = groups.setdefault(q, {"pos": [], "neg": []})
        group["pos"].append(p)
        group["neg"].append(n)
    all_ids = sorted(docs)
    rows, qrels = [], []
    for q in sorted(groups):
        pos = list(dict.fromkeys(groups[q]["pos"]))
        neg = [n for n in dict.fromkeys(groups[q]["neg"]) if n not in pos]
        taken = set(pos) | set(neg) | {q}
        extra = [d for d in rng.sample(all_ids, len(all_ids)) if d not in taken][:SPECTER_EXTRA_NEGATIVES]
        cands = pos + neg + extra
        rows.append({"query": docs[q], "candidates": [docs[c] for c in cands]})
        qrels += [{"query_id": q, "cand_id": c, "score": int(c in pos)} for c in cands]
    write_ranking(out / "specter_small", rows, qrels)
    return {"specter_small": {"queries": len(rows), "documents": len(docs), "pairs": len(qrels)}}


def build_search(src: Sources, out: Path) -> dict[str, Any]:
    rng = random.Random(SEED)
    rows, qrels, docs = [], [], set()
    records = list(iter_records(src.path("scirepeval-sample/search_small.jsonl")))
    keep = set(rng.sample(range(len(records)), min(SEARCH_QUERIES, len(records))))
    for index, rec in enumerate(records):
        if index in keep:
            qid = f"search-{index}"
            cands = []
            for c in rec["candidates"]:
                if src.is_trained(c.get("title")):
                    continue
                cid = str(c["corpus_id"])
                year = int(c["year"]) if isinstance(c.get("year"), (int, float)) else c.get("year")
                cands.append(doc(cid, c.get("title"), c.get("abstract"), venue=c.get("venue") or None, year=year))
                qrels.append({"query_id": qid, "cand_id": cid, "score": int(c.get("score", 0))})
                docs.add(cid)
            rows.append({"query": rec["query"], "doc_id": qid, "candidates": cands})
    write_ranking(out / "search_small", rows, qrels)
    return {"search_small": {"queries": len(rows), "documents": len(docs), "pairs": len(qrels)}}


# ---- ICLR 2021, S2ORC ------------------------------------------------------------------------
def build_iclr(src: Sources, out: Path) -> dict[str, Any]:
    """Mean reviewer rating of every ICLR 2021 submission with an abstract; half train, half test."""
    rng = random.Random(SEED)
    with open(src.path("iclr2021/paperlist.tsv"), newline="", encoding="utf-8") as handle:
        papers = {r["paper_id"]: r for r in csv.DictReader(handle, delimiter="\t")}
    scores: dict[str, float] = {}
    with open(src.path("iclr2021/ratings.tsv"), newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            values = [float(row[k]) for k in row if k not in ("paper_id", "decision") and row[k] not in (None, "")]
            if values and row["paper_id"] in papers and papers[row["paper_id"]].get("abstract"):
                scores[row["paper_id"]] = round(sum(values) / len(values), 4)
    scores = {p: v for p, v in scores.items() if not src.is_trained(papers[p]["title"])}
    chosen = sorted(scores)
    train, test = random_split(chosen, rng, test_fraction=0.5)
    rows = (doc(p, papers[p]["title"], papers[p]["abstract"]) for p in chosen)
    return {"iclr2021_score": write_supervised(out / "iclr2021_score", rows, scores, train, test)}


def build_s2orc(src: Sources, out: Path) -> dict[str, Any]:
    """The S2ORC sample: MAG field of study (first field), publication year, log(1 + citations)."""
    rng = random.Random(SEED)
    records: dict[str, dict[str, Any]] = {}
    for rec in iter_records(src.path("s2orc-sample/metadata.jsonl")):
        if rec.get("paper_id") and rec.get("title") and not src.is_trained(rec["title"]):
            records[str(rec["paper_id"])] = rec
    folder = out / "s2orc"
    write_jsonl(folder / "meta.jsonl", (doc(p, r["title"], r.get("abstract")) for p, r in sorted(records.items())))
    info: dict[str, Any] = {}
    fields = {p: r["mag_field_of_study"][0] for p, r in records.items() if r.get("mag_field_of_study")}
    common = {f for f, n in Counter(fields.values()).items() if n >= S2ORC_MIN_FIELD}
    fields = {p: f for p, f in fields.items() if f in common}
    targets = {
        "fos": (fields, lambda ids: stratified_split({p: fields[p] for p in ids}, rng, 0.5)),
        "year": (
            {p: int(r["year"]) for p, r in records.items() if isinstance(r.get("year"), int)},
            lambda ids: random_split(sorted(ids), rng, 0.5),
        ),
        "citations": (
            {p: round(math.log1p(len(r.get("inbound_citations") or [])), 6) for p, r in records.items()},
            lambda ids: random_split(sorted(ids), rng, 0.5),
        ),
    }
    for name, (labels, split) in targets.items():
        train, test = split(list(labels))
        write_labels(folder / name, "train", ((p, labels[p]) for p in train))
        write_labels(folder / name, "test", ((p, labels[p]) for p in test))
        info[f"s2orc_{name}"] = {"documents": len(labels), "train": len(train), "test": len(test)}
    info["s2orc_fos"]["classes"] = len(common)
    return info


# ---- keyphrase collections -------------------------------------------------------------------------------
class _Bm25:
    """BM25 (bm25s, Lucene defaults) over one collection's title + abstract."""

    def __init__(self, docs: list[KeyphraseDoc]):
        import bm25s

        self._bm25s = bm25s
        corpus = [" ".join(x for x in (d.title, d.abstract) if x) for d in docs]
        self.corpus = corpus
        self.retriever = bm25s.BM25()
        self.retriever.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False)

    def ranking(self, query: str) -> np.ndarray:
        tokens = self._bm25s.tokenize([query], stopwords="en", return_ids=False, show_progress=False)[0]
        known = [t for t in tokens if t in self.retriever.vocab_dict]
        scores = self.retriever.get_scores(known) if known else np.zeros(len(self.corpus), dtype=np.float32)
        return np.argsort(-np.asarray(scores), kind="stable")


def _keyphrase_query(d: KeyphraseDoc) -> str:
    return ", ".join(d.keyphrases)


def _search_qrels(docs: list[KeyphraseDoc], bm25: _Bm25, rng: random.Random) -> list[dict[str, Any]]:
    """Keyphrases of a paper -> the paper, among its BM25-hardest and some random papers of the collection."""
    qrels = []
    for i, d in enumerate(docs):
        order = [j for j in bm25.ranking(_keyphrase_query(d)).tolist() if j != i]
        hard = order[:KEYPHRASE_HARD]
        rest = order[KEYPHRASE_HARD:]
        randoms = rng.sample(rest, min(KEYPHRASE_RANDOM, len(rest)))
        qid = f"kpq-{d.doc_id}"
        qrels.append({"query_id": qid, "cand_id": d.doc_id, "score": 1})
        qrels += [{"query_id": qid, "cand_id": docs[j].doc_id, "score": 0} for j in hard + randoms]
    return qrels


def _proximity_qrels(docs: list[KeyphraseDoc], bm25: _Bm25, rng: random.Random) -> list[dict[str, Any]]:
    """A paper -> papers of its collection sharing >= 2 specific keyphrases with it, among BM25-hard and
    random papers that share none."""
    df = Counter(p for d in docs for p in d.keyphrases)
    max_df = max(3, int(KEYPHRASE_GENERIC_DF * len(docs)))
    holders: dict[str, list[int]] = {}
    for i, d in enumerate(docs):
        for p in d.keyphrases:
            holders.setdefault(p, []).append(i)
    qrels = []
    for i, d in enumerate(docs):
        shared = Counter(j for p in d.keyphrases if df[p] <= max_df for j in holders[p] if j != i)
        positives = sorted((j for j, n in shared.items() if n >= KEYPHRASE_MIN_SHARED), key=lambda j: (-shared[j], j))
        if not positives:
            continue
        positives = positives[:KEYPHRASE_POSITIVES]
        related = {j for p in d.keyphrases for j in holders[p]}  # any shared keyphrase, generic ones too
        unrelated = [
            j for j in bm25.ranking(" ".join(x for x in (d.title, d.abstract) if x)).tolist() if j not in related
        ]
        hard = unrelated[:KEYPHRASE_PROX_HARD]
        rest = unrelated[KEYPHRASE_PROX_HARD:]
        randoms = rng.sample(rest, min(KEYPHRASE_PROX_RANDOM, len(rest)))
        qrels += [{"query_id": d.doc_id, "cand_id": docs[j].doc_id, "score": 1} for j in positives]
        qrels += [{"query_id": d.doc_id, "cand_id": docs[j].doc_id, "score": 0} for j in hard + randoms]
    return qrels


def build_keyphrase(src: Sources, out: Path) -> dict[str, Any]:
    """Inspec, KDD, WWW: one shared documents file (papers and keyphrase queries), one search task per
    collection and one proximity task over all three."""
    folder = out / "keyphrase"
    doc_rows: list[dict[str, Any]] = []
    query_rows: list[dict[str, Any]] = []
    proximity: list[dict[str, Any]] = []
    info: dict[str, Any] = {}
    for key in KEYPHRASE_COLLECTIONS:
        rng = random.Random(f"{SEED}:{key}")
        docs = src.keyphrase(key)
        bm25 = _Bm25(docs)
        doc_rows += [doc(d.doc_id, d.title, d.abstract) for d in docs]
        query_rows += [{"query": _keyphrase_query(d), "doc_id": f"kpq-{d.doc_id}", "candidates": []} for d in docs]
        qrels = _search_qrels(docs, bm25, rng)
        write_jsonl(folder / f"search_{key}" / "test_qrel.jsonl", qrels)
        info[f"keyphrase_search_{key}"] = {
            "queries": len(docs),
            "documents": len(docs),
            "candidates_per_query": 1 + KEYPHRASE_HARD + KEYPHRASE_RANDOM,
        }
        prox = _proximity_qrels(docs, bm25, rng)
        proximity += prox
        info.setdefault("keyphrase_proximity", {})[f"{key}_queries"] = len({r["query_id"] for r in prox})
    write_jsonl(folder / "meta.jsonl", doc_rows + query_rows)
    write_jsonl(folder / "proximity" / "test_qrel.jsonl", proximity)
    info["keyphrase_proximity"]["queries"] = len({r["query_id"] for r in proximity})
    info["keyphrase_proximity"]["pairs"] = len(proximity)
    info["keyphrase_documents"] = len(doc_rows)
    return info
