"""sciembed-lite: converters that build the benchmark's local task folders from ``../shared/data``.

The task list ships with the package (``evaluate/lite/sciembed_lite.jsonl``); its local paths are
relative to the folder built here (default ``.cache/sciembed-lite/``, ``$SCIEMBED_LITE_DIR``). Building
is deterministic (seed 42) and happens once: a ``manifest.json`` records the version and the data
root, and a later call reuses the folder. A source that is missing is recorded in the manifest and its
tasks fail at evaluation time with that reason; the other tasks still build.

The AAN cite / co-cite tasks use exactly the held-out citing papers of
:func:`sciembed.data.citations.heldout_queries` (training code excludes them); the lite training
splits of the other ACL tasks exclude them as well.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import random
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from ..data import normalize_whitespace, read_papers
from ..data.citations import CitationGraph, heldout_queries, read_citation_graph

LITE_VERSION = 4
SEED = 42
TASKS_FILE = "tasks.jsonl"
PACKAGED_TASKS = "sciembed_lite.jsonl"
REPO_ROOT = Path(__file__).resolve().parents[3]

# Sizes: MiniLM embeds about 6 abstracts (~290 tokens) per CPU-second, so the whole benchmark is kept
# near 1M tokens per model (about 3,500 abstract-length documents; AAN papers are mostly titles).
ARXIV_CLASSES = 10
ARXIV_PER_CLASS = 60
ARXIV_MULTI_LABELS = 20
ICLR_PAPERS = 600
ACL_YEAR_PAPERS = 600
AAN_COUNT_PAPERS = 600
AAN_QUERIES = 200
AAN_POSITIVES = 5
AAN_NEGATIVES = 25
AAN_NEGATIVE_POOL = 1500  # negatives of both AAN proximity tasks come from one shared pool of papers
SPECTER_QUERIES = 150
SPECTER_EXTRA_NEGATIVES = 8
SEARCH_QUERIES = 60
SCITLDR_PAPERS = 300
SCITLDR_CANDIDATES = 300  # every TLDR ranks all 300 papers (30 random ones were trivially easy)


def default_data_root() -> Path:
    """``$SCIEMBED_DATA``, else ``../shared/data`` from the working directory, else from the checkout."""
    if os.environ.get("SCIEMBED_DATA"):
        return Path(os.environ["SCIEMBED_DATA"])
    for root in (Path.cwd() / ".." / "shared" / "data", REPO_ROOT.parent / "shared" / "data"):
        if root.is_dir():
            return root.resolve()
    return (Path.cwd() / ".." / "shared" / "data").resolve()


def default_lite_dir() -> Path:
    if os.environ.get("SCIEMBED_LITE_DIR"):
        return Path(os.environ["SCIEMBED_LITE_DIR"])
    return Path.cwd() / ".cache" / "sciembed-lite"


def packaged_task_lines() -> list[str]:
    return (
        resources.files("sciembed.evaluate").joinpath("lite").joinpath(PACKAGED_TASKS).read_text("utf-8").splitlines()
    )


# ---- writers ------------------------------------------------------------------------------------------
def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def _write_ranking(folder: Path, rows: Iterable[dict[str, Any]], qrels: Iterable[dict[str, Any]]) -> None:
    """A proximity / search task: queries with their candidates, and the relevance judgements."""
    _write_jsonl(folder / "meta.jsonl", rows)
    _write_jsonl(folder / "test_qrel.jsonl", qrels)


def _write_labels(folder: Path, split: str, rows: Iterable[tuple[str, Any]]) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["paper_id", "label"])
        for pid, label in rows:
            writer.writerow([pid, json.dumps(label) if isinstance(label, list) else label])
            count += 1
    return count


def _doc(pid: str, title: str | None, abstract: str | None, **extra: Any) -> dict[str, Any]:
    row = {
        "doc_id": str(pid),
        "title": normalize_whitespace(title) if title else None,
        "abstract": normalize_whitespace(abstract) if abstract else None,
    }
    row.update({k: v for k, v in extra.items() if v is not None})
    return row


def _split(ids: list[str], rng: random.Random, test_fraction: float = 1 / 3) -> tuple[list[str], list[str]]:
    ids = list(ids)
    rng.shuffle(ids)
    n_test = int(round(len(ids) * test_fraction))
    return ids[n_test:], ids[:n_test]


def _stratified_split(labels: dict[str, str], rng: random.Random) -> tuple[list[str], list[str]]:
    by_class: dict[str, list[str]] = defaultdict(list)
    for pid in sorted(labels):
        by_class[labels[pid]].append(pid)
    train, test = [], []
    for label in sorted(by_class):
        members = by_class[label]
        rng.shuffle(members)
        n_test = max(1, int(round(len(members) / 3))) if len(members) >= 2 else 0
        test += members[:n_test]
        train += members[n_test:]
    return train, test


# ---- sources ------------------------------------------------------------------------------------------
class Sources:
    """Lazy, memoised readers of the shared data (several tasks use the ACL files)."""

    def __init__(self, root: Path):
        self.root = root
        self._acl: dict[str, dict[str, Any]] | None = None
        self._graph: CitationGraph | None = None
        self._heldout: list[str] | None = None

    def path(self, relative: str) -> Path:
        path = self.root / relative
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing from the shared data")
        return path

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
                with open(summ, encoding="utf-8") as handle:
                    for line in handle:
                        rec = json.loads(line)
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


# ---- builders (one per source; each returns {task folder: counts}) ----------------------------------
def build_arxiv(src: Sources, out: Path) -> dict[str, Any]:
    rng = random.Random(SEED)
    by_primary: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with gzip.open(src.path("arxiv/papers-2025-2026.jsonl.gz"), "rt", encoding="utf-8") as handle:
        for line in handle:
            rec = json.loads(line)
            cats = rec.get("categories") or []
            if cats and rec.get("abstract") and rec.get("title"):
                by_primary[cats[0]].append(rec)
    top = sorted(by_primary, key=lambda c: (-len(by_primary[c]), c))[:ARXIV_CLASSES]
    chosen: list[dict[str, Any]] = []
    for cat in sorted(top):
        pool = sorted(by_primary[cat], key=lambda r: r["id"])
        chosen += rng.sample(pool, min(ARXIV_PER_CLASS, len(pool)))
    folder = out / "arxiv"
    _write_jsonl(folder / "meta.jsonl", (_doc(r["id"], r["title"], r["abstract"]) for r in chosen))
    primary = {r["id"]: r["categories"][0] for r in chosen}
    train, test = _stratified_split(primary, rng)
    _write_labels(folder / "primary", "train", ((p, primary[p]) for p in train))
    _write_labels(folder / "primary", "test", ((p, primary[p]) for p in test))
    counts = Counter(c for r in chosen for c in dict.fromkeys(r["categories"]))
    keep = {c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:ARXIV_MULTI_LABELS]}
    multi = {r["id"]: sorted(c for c in set(r["categories"]) if c in keep) for r in chosen}
    n_train = _write_labels(folder / "multilabel", "train", ((p, multi[p]) for p in train if multi[p]))
    n_test = _write_labels(folder / "multilabel", "test", ((p, multi[p]) for p in test if multi[p]))
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


def _scirepeval_classification(
    src: Sources, out: Path, name: str, label_of: Callable[[dict], Any], multi: bool
) -> dict[str, Any]:
    rng = random.Random(SEED)
    records = json.loads(src.path(f"scirepeval-sample/{name}.json").read_text(encoding="utf-8"))
    folder = out / name
    docs = {str(r["corpus_id"]): r for r in records}
    _write_jsonl(folder / "meta.jsonl", (_doc(pid, r.get("title"), r.get("abstract")) for pid, r in docs.items()))
    labels = {pid: label_of(r) for pid, r in docs.items()}
    if multi:
        train, test = _split(sorted(labels), rng)
    else:
        train, test = _stratified_split(labels, rng)
    _write_labels(folder, "train", ((p, labels[p]) for p in train))
    _write_labels(folder, "test", ((p, labels[p]) for p in test))
    return {name: {"documents": len(docs), "train": len(train), "test": len(test)}}


def build_fos(src: Sources, out: Path) -> dict[str, Any]:
    return _scirepeval_classification(src, out, "fos_small", lambda r: list(r["labels_text"]), True)


def build_mesh(src: Sources, out: Path) -> dict[str, Any]:
    return _scirepeval_classification(src, out, "mesh_small", lambda r: r["descriptor"], False)


def build_iclr(src: Sources, out: Path) -> dict[str, Any]:
    rng = random.Random(SEED)
    with open(src.path("iclr2021/paperlist.tsv"), newline="", encoding="utf-8") as handle:
        papers = {r["paper_id"]: r for r in csv.DictReader(handle, delimiter="\t")}
    scores: dict[str, float] = {}
    with open(src.path("iclr2021/ratings.tsv"), newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            values = [float(row[k]) for k in row if k not in ("paper_id", "decision") and row[k] not in (None, "")]
            if values and row["paper_id"] in papers and papers[row["paper_id"]].get("abstract"):
                scores[row["paper_id"]] = round(sum(values) / len(values), 4)
    chosen = sorted(rng.sample(sorted(scores), min(ICLR_PAPERS, len(scores))))
    folder = out / "iclr2021_score"
    _write_jsonl(folder / "meta.jsonl", (_doc(p, papers[p]["title"], papers[p]["abstract"]) for p in chosen))
    train, test = _split(chosen, rng)
    _write_labels(folder, "train", ((p, scores[p]) for p in train))
    _write_labels(folder, "test", ((p, scores[p]) for p in test))
    return {"iclr2021_score": {"documents": len(chosen), "train": len(train), "test": len(test)}}


def build_acl_year(src: Sources, out: Path) -> dict[str, Any]:
    rng = random.Random(SEED)
    acl = src.acl()
    heldout = set(src.heldout()) if (src.root / "acl" / "aan-citations-2013.txt").is_file() else set()
    pool = sorted(p for p, r in acl.items() if r["abstract"] and r["year"] and p not in heldout)
    chosen = sorted(rng.sample(pool, min(ACL_YEAR_PAPERS, len(pool))))
    folder = out / "acl_year"
    _write_jsonl(folder / "meta.jsonl", (_doc(p, acl[p]["title"], acl[p]["abstract"]) for p in chosen))
    train, test = _split(chosen, rng)
    _write_labels(folder, "train", ((p, int(acl[p]["year"])) for p in train))
    _write_labels(folder, "test", ((p, int(acl[p]["year"])) for p in test))
    return {"acl_year": {"documents": len(chosen), "train": len(train), "test": len(test)}}


def build_aan(src: Sources, out: Path) -> dict[str, Any]:
    """AAN citation count (regression), citation prediction and co-citation (proximity)."""
    rng = random.Random(SEED)
    acl, graph = src.acl(), src.graph()
    heldout = src.heldout()
    heldout_set = set(heldout)
    with_text = sorted(p for p in graph.papers() if p in acl)
    cited_by = graph.cited_by()
    info: dict[str, Any] = {}

    def doc(pid: str) -> dict[str, Any]:
        return _doc(pid, acl[pid]["title"], acl[pid]["abstract"])

    # one pool of AAN papers (held-out citing papers excluded) feeds the citation-count task and the
    # negatives of both proximity tasks, so the three tasks share most of their documents
    pool = sorted(rng.sample([p for p in with_text if p not in heldout_set], AAN_NEGATIVE_POOL))
    # citation count: log(1 + inbound citations in the AAN graph)
    chosen = sorted(rng.sample(pool, min(AAN_COUNT_PAPERS, len(pool))))
    folder = out / "aan_citation_count"
    _write_jsonl(folder / "meta.jsonl", (doc(p) for p in chosen))
    train, test = _split(chosen, rng)
    label = {p: round(math.log1p(len(cited_by.get(p, ()))), 6) for p in chosen}
    _write_labels(folder, "train", ((p, label[p]) for p in train))
    _write_labels(folder, "test", ((p, label[p]) for p in test))
    info["aan_citation_count"] = {"documents": len(chosen), "train": len(train), "test": len(test)}

    # split the held-out citing papers between the two proximity tasks (no query paper in both)
    order = list(heldout)
    rng.shuffle(order)
    cite_queries = sorted(order[:AAN_QUERIES])
    cocite_queries = order[AAN_QUERIES:]  # taken in this (shuffled) order until AAN_QUERIES are found

    def negatives(exclude: set[str], n: int, avoid_cocited_with: str | None = None) -> list[str]:
        picked: list[str] = []
        while len(picked) < n:
            cand = pool[rng.randrange(len(pool))]
            if cand in exclude or cand in picked:
                continue
            if avoid_cocited_with is not None and cited_by.get(cand, set()) & cited_by.get(avoid_cocited_with, set()):
                continue
            picked.append(cand)
        return picked

    def write_proximity(name: str, rows: list[tuple[str, list[str], list[str]]]) -> None:
        _write_ranking(
            out / name,
            ({"query": doc(q), "candidates": [doc(c) for c in pos + neg]} for q, pos, neg in rows),
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
        rows.append((q, pos, negatives(set(graph.cites[q]) | {q}, AAN_NEGATIVES)))
    write_proximity("aan_cite", rows)

    rows = []
    anchors: set[str] = set()
    for q in cocite_queries:  # each anchor (query) paper once, so that query ids stay unique
        cited = sorted(c for c in graph.cites[q] if c in acl)
        free = [c for c in cited if c not in anchors]
        if len(rows) == AAN_QUERIES or not free:
            continue
        anchor = free[rng.randrange(len(free))]
        anchors.add(anchor)
        others = [c for c in cited if c != anchor]
        pos = sorted(rng.sample(others, min(AAN_POSITIVES, len(others))))
        rows.append((anchor, pos, negatives(set(graph.cites[q]) | {q, anchor}, AAN_NEGATIVES, anchor)))
    write_proximity("aan_cocite", rows)
    info["aan_heldout_queries"] = len(heldout)
    return info


def build_specter(src: Sources, out: Path) -> dict[str, Any]:
    rng = random.Random(SEED)
    triplets = json.loads(src.path("scirepeval-sample/specter_small.json").read_text(encoding="utf-8"))
    triplets = rng.sample(triplets, min(SPECTER_QUERIES, len(triplets)))
    docs: dict[str, dict[str, Any]] = {}
    groups: dict[str, dict[str, Any]] = {}
    for t in triplets:
        q, p, n = (str(t[k]["corpus_id"]) for k in ("query", "pos", "neg"))
        for key, pid in (("query", q), ("pos", p), ("neg", n)):
            docs.setdefault(pid, _doc(pid, t[key].get("title"), t[key].get("abstract")))
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
    _write_ranking(out / "specter_small", rows, qrels)
    return {"specter_small": {"queries": len(rows), "documents": len(docs), "pairs": len(qrels)}}


def build_search(src: Sources, out: Path) -> dict[str, Any]:
    rng = random.Random(SEED)
    rows, qrels, docs = [], [], set()
    with open(src.path("scirepeval-sample/search_small.jsonl"), encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    keep = set(rng.sample(range(len(records)), min(SEARCH_QUERIES, len(records))))
    for index, rec in enumerate(records):
        if index in keep:
            qid = f"search-{index}"
            cands = []
            for c in rec["candidates"]:
                cid = str(c["corpus_id"])
                year = int(c["year"]) if isinstance(c.get("year"), (int, float)) else c.get("year")
                cands.append(_doc(cid, c.get("title"), c.get("abstract"), venue=c.get("venue") or None, year=year))
                qrels.append({"query_id": qid, "cand_id": cid, "score": int(c.get("score", 0))})
                docs.add(cid)
            rows.append({"query": rec["query"], "doc_id": qid, "candidates": cands})
    _write_ranking(out / "search_small", rows, qrels)
    return {"search_small": {"queries": len(rows), "documents": len(docs), "pairs": len(qrels)}}


def build_scitldr(src: Sources, out: Path) -> dict[str, Any]:
    rng = random.Random(SEED)
    papers = []
    with open(src.path("scitldr/test.jsonl"), encoding="utf-8") as handle:
        for line in handle:
            rec = json.loads(line)
            if rec.get("target") and rec.get("source"):
                papers.append(rec)
    papers.sort(key=lambda r: r["paper_id"])
    papers = sorted(rng.sample(papers, min(SCITLDR_PAPERS, len(papers))), key=lambda r: r["paper_id"])
    ids = [r["paper_id"] for r in papers]
    by_id = {r["paper_id"]: _doc(r["paper_id"], r.get("title"), " ".join(r["source"])) for r in papers}
    rows, qrels = [], []
    for rec in papers:
        pid = rec["paper_id"]
        qid = f"tldr-{pid}"
        others = [d for d in rng.sample(ids, min(len(ids), SCITLDR_CANDIDATES + 1)) if d != pid]
        cands = [pid] + others[: SCITLDR_CANDIDATES - 1]
        rows.append(
            {"query": normalize_whitespace(rec["target"][0]), "doc_id": qid, "candidates": [by_id[c] for c in cands]}
        )
        qrels += [{"query_id": qid, "cand_id": c, "score": int(c == pid)} for c in cands]
    _write_ranking(out / "scitldr", rows, qrels)
    return {"scitldr": {"queries": len(rows), "documents": len(ids), "candidates_per_query": SCITLDR_CANDIDATES}}


BUILDERS: dict[str, Callable[[Sources, Path], dict[str, Any]]] = {
    "arxiv": build_arxiv,
    "fos_small": build_fos,
    "mesh_small": build_mesh,
    "iclr2021": build_iclr,
    "acl_year": build_acl_year,
    "aan": build_aan,
    "specter_small": build_specter,
    "search_small": build_search,
    "scitldr": build_scitldr,
}


def build_lite(
    data_root: str | Path | None = None,
    out_dir: str | Path | None = None,
    force: bool = False,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Build (or reuse) the sciembed-lite folder; returns the path of its ``tasks.jsonl``."""
    root = Path(data_root) if data_root is not None else default_data_root()
    out = Path(out_dir) if out_dir is not None else default_lite_dir()
    manifest_path = out / "manifest.json"
    tasks_path = out / TASKS_FILE
    lines = packaged_task_lines()
    if not force and manifest_path.is_file() and tasks_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("version") == LITE_VERSION and manifest.get("data_root") == str(root.resolve()):
            tasks_path.write_text("\n".join(lines) + "\n")  # keep the task list current
            return tasks_path
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    manifest: dict[str, Any] = {
        "version": LITE_VERSION,
        "data_root": str(root.resolve()),
        "seed": SEED,
        "built": {},
        "failed": {},
    }
    start = time.perf_counter()
    src = Sources(root)
    for name, builder in BUILDERS.items():
        try:
            manifest["built"].update(builder(src, out))
        except (OSError, ValueError, KeyError) as exc:
            manifest["failed"][name] = f"{type(exc).__name__}: {exc}"
            if log:
                log(f"sciembed-lite: could not build {name}: {exc}")
    manifest["build_s"] = round(time.perf_counter() - start, 2)
    tasks_path.write_text("\n".join(lines) + "\n")
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return tasks_path
