"""Our stage-2 training mixture (v4), built from ``../shared/data`` and never from an evaluation document.

Tasks (seed 42, each capped):

* ``arxiv_primary`` (classification, CE): arXiv primary category among the most frequent ones;
* ``arxiv_categories`` (multi-label, BCE): all arXiv categories among the most frequent ones;
* ``arxiv_title_search`` (ad-hoc search, triplet): an arXiv title (query) -> its abstract alone;
* ``acl_year`` (regression, MSE): ACL Anthology publication year;
* ``acl_venue`` (classification, CE): ACL Anthology venue, read from the paper id (v3);
* ``acl_title_search`` (ad-hoc search, triplet): an ACL title (query) -> its abstract alone (v3);
* ``aan_citations`` (regression, MSE): log(1 + inbound citations) in the AAN 2013 graph;
* ``acl_citation_triplets`` (proximity, triplet): SPECTER-style triplets mined from the AAN graph;
* ``paperscape_category`` (classification, CE): Paperscape (physics 1991-96, titles) primary category;
* ``paperscape_citations`` (regression, MSE): log(1 + inbound citations) in the Paperscape graph (v3);
* ``paperscape_triplets`` (proximity, triplet): triplets mined from the Paperscape citation graph;
* ``scitldr_search`` (ad-hoc search, triplet): SciTLDR train + dev (dev: v3) TLDR -> its paper vs a random one;
* ``ohsumed_category`` (classification, CE): OHSUMED (MEDLINE 1991) disease category, 23 classes (v4);
* ``ohsumed_title_search`` (ad-hoc search, triplet): an OHSUMED title (query) -> its abstract alone (v4).

Never used, so that out-of-training evaluation has data no mixture has seen: the keyphrase
collections, ICLR 2021, the SciRepEval samples (MeSH: the biomedical check), the SPECTER sample and
the S2ORC sample. OHSUMED has neither citations nor numbers, so it fits no proximity or regression task.

Excluded everywhere, in every role (:func:`sciembed.recipes.heldout.excluded_ids`): every document of
every in-training suite task (queries, candidates, SVM train and test items), every held-out AAN and
Paperscape citing paper (also those no task uses), every SciTLDR test paper, and every OHSUMED paper
whose title is that of an excluded one (OHSUMED holds a few papers twice under two ids). Citation counts are counted
on the graphs without the excluded papers. The build re-reads what it wrote and fails on any leak.
Counts go to ``report.json``.

Output (``--output``, default ``data/mixture``): ``papers.jsonl.gz`` (id, title, abstract), one
``<task>.jsonl.gz`` per task (papers referenced by id), ``stage2.yaml`` (a complete stage-2 config)
and ``report.json``.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import random
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from ...data import iter_records, normalize_whitespace
from ...data.records import Paper

SEED = 42
DEFAULT_CAPS = {
    "arxiv_primary": 15000,
    "arxiv_categories": 8000,
    "acl_year": 12000,
    "aan_citations": 10000,
    "acl_citation_triplets": 20000,
    "paperscape_category": 12000,
    "paperscape_triplets": 20000,
    "arxiv_title_search": 12000,
    "scitldr_search": 6000,
    "ohsumed_category": 6000,
    "ohsumed_title_search": 6000,
    "acl_venue": 10000,
    "acl_title_search": 8000,
    "paperscape_citations": 10000,
}
PAPERSCAPE_CLASSES = 12
ARXIV_PRIMARY_CLASSES = 20
ARXIV_MULTI_LABELS = 40
ACL_VENUE_CLASSES = 12
SCITLDR_NEGATIVES = 2
# old-style ACL ids: the letter is the venue (W: workshops, too mixed to be one class)
ACL_VENUE_LETTERS = {
    "P": "acl", "N": "naacl", "D": "emnlp", "C": "coling", "E": "eacl", "L": "lrec", "S": "semeval",
    "Q": "tacl", "J": "cl", "K": "conll", "R": "ranlp", "I": "ijcnlp",
}  # fmt: skip
# paper-id namespace of the mixture -> the data source whose exclusions apply
NAMESPACE_SOURCES = {
    "arxiv": "arxiv", "arxiv-abs": "arxiv", "acl": "acl", "acl-abs": "acl", "paperscape": "paperscape",
    "tldr": "scitldr", "ohsumed": "ohsumed", "ohsumed-abs": "ohsumed",
}  # fmt: skip
DEFAULT_OUTPUT = Path("data") / "mixture"


def _gz_writer(path: Path):
    raw = open(path, "wb")
    return raw, io.TextIOWrapper(gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0), encoding="utf-8")


def _write_jsonl_gz(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    raw, handle = _gz_writer(path)
    count = 0
    with raw, handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
            count += 1
    return count


def _clean(text: Any) -> str | None:
    if text is None or (isinstance(text, float) and text != text):
        return None
    text = normalize_whitespace(str(text))
    return text or None


def _paperscape_papers(root: Path) -> dict[str, dict[str, Any]]:
    papers: dict[str, dict[str, Any]] = {}
    for rec in iter_records(root / "paperscape" / "papers-1991-1996.jsonl.gz"):
        papers[str(rec["paper_id"])] = {
            "title": _clean(rec.get("title")),
            "categories": rec.get("categories") or [],
        }
    return papers


# ---- the builder ----------------------------------------------------------------------------------------
class _Mixture:
    def __init__(self, root: Path, out: Path, caps: dict[str, int], excluded: dict[str, set[str]]):
        self.root, self.out, self.caps = root, out, caps
        self.excluded = excluded
        self.papers: dict[str, dict[str, Any]] = {}
        self.report: dict[str, Any] = {"seed": SEED, "tasks": {}, "excluded": {}}
        self.tasks: list[dict[str, Any]] = []

    def add_paper(self, namespace: str, pid: str, title: Any, abstract: Any) -> str:
        source = NAMESPACE_SOURCES[namespace]
        if pid in self.excluded.get(source, ()):  # the guard behind every task's own filter
            raise AssertionError(f"{source} paper {pid} is an evaluation document and must not reach training")
        key = f"{namespace}:{pid}"
        if key not in self.papers:
            self.papers[key] = {"paper_id": key, "title": _clean(title), "abstract": _clean(abstract)}
        return key

    def keep(self, source: str, pid: str, counter: Counter) -> bool:
        if pid in self.excluded.get(source, ()):
            counter["evaluation_documents"] += 1
            return False
        return True

    def write_task(
        self, name: str, fmt: str, rows: list[dict[str, Any]], excluded: Counter, description: str, **extra: Any
    ) -> None:
        rng = random.Random(f"{SEED}:{name}")
        available = len(rows)
        rng.shuffle(rows)
        rows = rows[: self.caps.get(name, len(rows))]
        path = self.out / f"{name}.jsonl.gz"
        _write_jsonl_gz(path, rows)
        if rows:  # a task with no example left (all excluded) is reported, not trained
            self.tasks.append(
                {
                    "name": name,
                    "format": fmt,
                    "data": path.name,
                    "max_examples": len(rows),
                    "description": description,
                    **extra,
                }
            )
        self.report["tasks"][name] = {
            "format": fmt,
            "examples": len(rows),
            "available": available,
            "excluded": dict(excluded),
            **extra,
        }


def acl_venue(paper_id: str) -> str | None:
    """The venue of an ACL Anthology id (``P05-1013`` -> ``acl``, ``2020.emnlp-main.1`` -> ``emnlp``);
    ``None`` for workshops of the old id style and letters without one venue."""
    match = re.match(r"^\d{4}\.([a-z0-9]+)-", paper_id)
    if match:
        return match.group(1)
    return ACL_VENUE_LETTERS.get(paper_id[:1]) if re.match(r"^[A-Z]\d{2}-\d+$", paper_id) else None


def _top(counts: Counter, n: int) -> list[str]:
    return sorted(c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n])


def _search_rows(rng: random.Random, queries: list[str | None], keys: list[str]) -> list[dict[str, Any]]:
    """A query -> its own document vs a random other document of the same list."""
    rows = []
    for query, key in zip(queries, keys, strict=True):
        neg = key
        while neg == key:
            neg = keys[rng.randrange(len(keys))]
        rows.append({"query": _clean(query), "pos": key, "neg": neg})
    return rows


def _inbound(graph: Any, excluded: set[str]) -> dict[str, int]:
    """Inbound citations counted on the graph without the excluded papers (nor their edges)."""
    from ..mining import drop_papers

    visible, _ = drop_papers(graph, excluded)
    return {paper: len(citing) for paper, citing in visible.cited_by().items()}


def mixture_source_ids(folder: str | Path) -> dict[str, set[str]]:
    """``{source: ids}`` of every paper a built mixture holds (its ``papers.jsonl.gz``), by data source."""
    used: dict[str, set[str]] = {}
    for rec in iter_records(Path(folder) / "papers.jsonl.gz"):
        namespace, pid = rec["paper_id"].split(":", 1)
        used.setdefault(NAMESPACE_SOURCES[namespace], set()).add(pid)
    return used


def build_mixture(
    data_root: str | Path | None = None,
    output: str | Path = DEFAULT_OUTPUT,
    caps: dict[str, int] | None = None,
    lite_dir: str | Path | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Write the training mixture (see the module docstring); returns the report."""
    from ...data.citations import heldout_queries, read_citation_graph
    from ...recipes.heldout import excluded_ids, training_leaks
    from ...recipes.sources import Sources, default_data_root, title_key
    from ..mining import MiningConfig, mine_triplets

    say = log or (lambda _m: None)
    root = Path(data_root) if data_root is not None else default_data_root()
    final = Path(output)
    # built under a temporary name beside the output, renamed when complete
    out = final.parent / f"{final.name}.partial-{os.getpid()}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    strict = excluded_ids(root, Path(lite_dir) if lite_dir is not None else None)
    excluded = {source: set(ids) for source, ids in strict.items()}
    src = Sources(root)
    acl = src.acl()
    graph = read_citation_graph(root / "acl" / "aan-citations-2013.txt")
    # the miner's definition of held-out citing papers (papers with any text) as well, should the two differ
    excluded.setdefault("acl", set()).update(
        heldout_queries(graph, [p for p, r in acl.items() if r["title"] or r["abstract"]])
    )
    scitldr_test = {r["paper_id"] for r in iter_records(root / "scitldr" / "test.jsonl")}
    excluded.setdefault("scitldr", set()).update(scitldr_test)
    physics = _paperscape_papers(root)
    pgraph = read_citation_graph(root / "paperscape" / "citations-1991-1996.txt")
    excluded.setdefault("paperscape", set()).update(
        heldout_queries(pgraph, [p for p, r in physics.items() if r["title"]])
    )
    excluded.setdefault("arxiv", set())
    excluded.setdefault("ohsumed", set())
    mix = _Mixture(root, out, {**DEFAULT_CAPS, **(caps or {})}, excluded)
    mix.report["excluded"] = {
        "rule": "sciembed.recipes.excluded_ids: every document of every in-training suite task (queries, "
        "candidates, train and test items) and every held-out citing paper, plus SciTLDR test papers",
        **{source: len(ids) for source, ids in sorted(excluded.items())},
    }

    # arXiv: primary category (CE) and categories (BCE)
    arxiv: list[dict[str, Any]] = []
    counter: Counter = Counter()
    for rec in iter_records(root / "arxiv" / "papers-2025-2026.jsonl.gz"):
        if rec.get("categories") and _clean(rec.get("title")) and _clean(rec.get("abstract")):
            if mix.keep("arxiv", str(rec["id"]), counter):
                arxiv.append(rec)
    arxiv.sort(key=lambda r: r["id"])
    top = _top(Counter(r["categories"][0] for r in arxiv), ARXIV_PRIMARY_CLASSES)
    rows = [
        {"paper": mix.add_paper("arxiv", r["id"], r["title"], r["abstract"]), "label": r["categories"][0]}
        for r in arxiv
        if r["categories"][0] in top
    ]
    mix.write_task(
        "arxiv_primary",
        "classification",
        rows,
        counter,
        f"arXiv 2025-2026: primary category among the {len(top)} most frequent",
        labels=top,
    )
    keep = _top(Counter(c for r in arxiv for c in dict.fromkeys(r["categories"])), ARXIV_MULTI_LABELS)
    keep_set = set(keep)
    rows = []
    for r in arxiv:
        labels = sorted(c for c in set(r["categories"]) if c in keep_set)
        if labels:
            rows.append({"paper": mix.add_paper("arxiv", r["id"], r["title"], r["abstract"]), "label": labels})
    mix.write_task(
        "arxiv_categories",
        "multi_label",
        rows,
        counter,
        f"arXiv 2025-2026: all categories among the {len(keep)} most frequent",
        labels=keep,
    )

    # arXiv: title (query, [QRY]) -> its abstract alone ([PRX]) vs another paper's abstract
    rows = _search_rows(
        random.Random(f"{SEED}:arxiv_title_search"),
        [r["title"] for r in arxiv],
        [mix.add_paper("arxiv-abs", r["id"], None, r["abstract"]) for r in arxiv],
    )
    mix.write_task(
        "arxiv_title_search",
        "adhoc_search",
        rows,
        counter,
        "arXiv 2025-2026: a title (query, [QRY]) -> its abstract without the title ([PRX]) vs a random one",
    )

    # ACL: publication year (MSE), venue (CE), title -> abstract search
    counter = Counter()
    with_abstract = [(p, r) for p, r in sorted(acl.items()) if r["abstract"] and mix.keep("acl", p, counter)]
    rows = [
        {"paper": mix.add_paper("acl", p, r["title"], r["abstract"]), "label": int(r["year"])}
        for p, r in with_abstract
        if r["year"]
    ]
    mix.write_task("acl_year", "regression", rows, counter, "ACL Anthology papers with abstracts: publication year")
    venues = {p: acl_venue(p) for p, _ in with_abstract}
    top = _top(Counter(v for v in venues.values() if v), ACL_VENUE_CLASSES)
    rows = [
        {"paper": mix.add_paper("acl", p, r["title"], r["abstract"]), "label": venues[p]}
        for p, r in with_abstract
        if venues[p] in top
    ]
    mix.write_task(
        "acl_venue",
        "classification",
        rows,
        counter,
        f"ACL Anthology papers with abstracts: venue (from the id) among the {len(top)} most frequent",
        labels=top,
    )
    titled = [(p, r) for p, r in with_abstract if _clean(r["title"])]
    rows = _search_rows(
        random.Random(f"{SEED}:acl_title_search"),
        [r["title"] for _, r in titled],
        [mix.add_paper("acl-abs", p, None, r["abstract"]) for p, r in titled],
    )
    mix.write_task(
        "acl_title_search",
        "adhoc_search",
        rows,
        counter,
        "ACL Anthology: a title (query, [QRY]) -> its abstract without the title ([PRX]) vs a random one",
    )

    # AAN citation counts (MSE on log1p), counted without the excluded papers' citations
    counter = Counter()
    inbound = _inbound(graph, excluded["acl"])
    rows = [
        {
            "paper": mix.add_paper("acl", p, acl[p]["title"], acl[p]["abstract"]),
            "label": round(math.log1p(inbound.get(p, 0)), 6),
        }
        for p in sorted(graph.papers())
        if p in acl and (acl[p]["title"] or acl[p]["abstract"]) and mix.keep("acl", p, counter)
    ]
    mix.write_task(
        "aan_citations", "regression", rows, counter, "AAN 2013 graph: log(1 + inbound citations from training papers)"
    )

    # ACL citation triplets (proximity)
    papers = {
        p: Paper(paper_id=p, title=r["title"], abstract=r["abstract"])
        for p, r in acl.items()
        if r["title"] or r["abstract"]
    }
    counter = Counter({"evaluation_documents": sum(1 for p in excluded["acl"] if p in papers)})
    rows = [
        {
            role: mix.add_paper("acl", getattr(t, role).paper_id, getattr(t, role).title, getattr(t, role).abstract)
            for role in ("query", "pos", "neg")
        }
        for t in mine_triplets(
            papers, graph, MiningConfig(seed=SEED, triplets_per_query=5, hard_per_query=2), exclude=excluded["acl"]
        )
    ]
    mix.write_task(
        "acl_citation_triplets",
        "proximity",
        rows,
        counter,
        "SPECTER-style triplets from the AAN graph (5 per query, 2 hard + 3 easy negatives)",
    )

    # Paperscape (physics, titles only): primary category (CE), citation counts (MSE), triplets (proximity)
    counter = Counter()
    titled_physics = {p: r for p, r in sorted(physics.items()) if r["title"] and mix.keep("paperscape", p, counter)}
    top = _top(Counter(r["categories"][0] for r in titled_physics.values() if r["categories"]), PAPERSCAPE_CLASSES)
    rows = [
        {"paper": mix.add_paper("paperscape", p, r["title"], None), "label": r["categories"][0]}
        for p, r in titled_physics.items()
        if r["categories"] and r["categories"][0] in top
    ]
    mix.write_task(
        "paperscape_category",
        "classification",
        rows,
        counter,
        f"Paperscape arXiv 1991-1996 (physics, titles): primary category among the {len(top)} most frequent",
        labels=top,
    )
    inbound = _inbound(pgraph, excluded["paperscape"])
    rows = [
        {"paper": mix.add_paper("paperscape", p, titled_physics[p]["title"], None), "label": round(math.log1p(n), 6)}
        for p, n in ((p, inbound.get(p, 0)) for p in sorted(pgraph.papers()))
        if p in titled_physics
    ]
    mix.write_task(
        "paperscape_citations",
        "regression",
        rows,
        counter,
        "Paperscape 1991-1996 graph (titles): log(1 + inbound citations from training papers)",
    )
    p_papers = {p: Paper(paper_id=p, title=r["title"]) for p, r in physics.items() if r["title"]}
    counter = Counter({"evaluation_documents": sum(1 for p in excluded["paperscape"] if p in p_papers)})
    rows = [
        {
            role: mix.add_paper("paperscape", getattr(t, role).paper_id, getattr(t, role).title, None)
            for role in ("query", "pos", "neg")
        }
        for t in mine_triplets(
            p_papers,
            pgraph,
            MiningConfig(seed=SEED, triplets_per_query=5, hard_per_query=2),
            exclude=excluded["paperscape"],
        )
    ]
    mix.write_task(
        "paperscape_triplets",
        "proximity",
        rows,
        counter,
        "SPECTER-style triplets from the Paperscape physics graph (titles; held-out citing papers excluded)",
    )

    # SciTLDR train and dev: TLDR -> paper (ad-hoc search); the test split is the suite's
    counter = Counter()
    train = [
        r
        for split in ("train", "dev")
        if (root / "scitldr" / f"{split}.jsonl").is_file()
        for r in iter_records(root / "scitldr" / f"{split}.jsonl")
    ]
    train = [r for r in train if r.get("source") and r.get("target") and mix.keep("scitldr", r["paper_id"], counter)]
    train = sorted({r["paper_id"]: r for r in train}.values(), key=lambda r: r["paper_id"])
    rng = random.Random(SEED)
    ids = [mix.add_paper("tldr", r["paper_id"], r.get("title"), " ".join(r["source"])) for r in train]
    rows = []
    for key, rec in zip(ids, train, strict=True):
        for tldr in dict.fromkeys(_clean(t) for t in rec["target"]):
            for _ in range(SCITLDR_NEGATIVES):
                neg = key
                while neg == key:
                    neg = ids[rng.randrange(len(ids))]
                rows.append({"query": tldr, "pos": key, "neg": neg})
    mix.write_task(
        "scitldr_search",
        "adhoc_search",
        rows,
        counter,
        "SciTLDR-A train + dev: a TLDR (query, [QRY]) -> its paper vs a random train/dev paper ([PRX])",
    )

    # OHSUMED (v4): disease category (CE), title -> abstract search; a paper that OHSUMED holds twice
    # (the same title under two ids) stays out when either copy is an evaluation document
    counter = Counter()
    ohsumed_file = root / "ohsumed" / "ohsumed-23.jsonl.gz"
    medline = sorted(iter_records(ohsumed_file), key=lambda r: str(r["doc_id"])) if ohsumed_file.is_file() else []
    evaluated = {str(r["doc_id"]) for r in medline} & excluded["ohsumed"]
    held_titles = {title_key(r.get("title")) for r in medline if str(r["doc_id"]) in evaluated} - {""}
    twins = {str(r["doc_id"]) for r in medline if title_key(r.get("title")) in held_titles} - evaluated
    counter["of_which_same_title_twins"] = len(twins)  # also counted as evaluation_documents
    excluded["ohsumed"].update(twins)
    medline = [
        r
        for r in medline
        if r.get("label") and _clean(r.get("title")) and _clean(r.get("abstract"))
        and mix.keep("ohsumed", str(r["doc_id"]), counter)
    ]  # fmt: skip
    labels = sorted({r["label"] for r in medline})
    rows = [
        {"paper": mix.add_paper("ohsumed", str(r["doc_id"]), r["title"], r["abstract"]), "label": r["label"]}
        for r in medline
    ]
    mix.write_task(
        "ohsumed_category",
        "classification",
        rows,
        counter,
        f"OHSUMED MEDLINE 1991 abstracts: disease category ({len(labels)} MeSH classes)",
        labels=labels,
    )
    rows = (
        _search_rows(
            random.Random(f"{SEED}:ohsumed_title_search"),
            [r["title"] for r in medline],
            [mix.add_paper("ohsumed-abs", str(r["doc_id"]), None, r["abstract"]) for r in medline],
        )
        if len(medline) > 1
        else []
    )
    mix.write_task(
        "ohsumed_title_search",
        "adhoc_search",
        rows,
        counter,
        "OHSUMED: a title (query, [QRY]) -> its abstract without the title ([PRX]) vs a random one",
    )

    # papers table: only those used by the written (capped) tasks
    used: set[str] = set()
    for task in mix.tasks:
        for rec in iter_records(out / task["data"]):
            for role in ("paper", "query", "pos", "neg"):
                if role in rec and isinstance(rec[role], str) and rec[role] in mix.papers:
                    used.add(rec[role])
    _write_jsonl_gz(out / "papers.jsonl.gz", (mix.papers[k] for k in sorted(used)))
    leaks = training_leaks(mixture_source_ids(out), strict)
    if leaks:  # cannot happen through add_paper; this re-reads what was written
        raise AssertionError(f"evaluation documents in the mixture: { {s: ids[:5] for s, ids in leaks.items()} }")
    config = {"papers": "papers.jsonl.gz", "tasks": mix.tasks}
    (out / "stage2.yaml").write_text(
        "# generated by `sciembed train build-mixture` (seed 42); paths relative to this folder\n"
        + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    )
    mix.report["papers"] = len(used)
    mix.report["bytes"] = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}
    (out / "report.json").write_text(json.dumps(mix.report, indent=2) + "\n")
    for name, info in mix.report["tasks"].items():
        say(
            f"{name:24s} {info['format']:15s} {info['examples']:6d} of {info['available']:6d}"
            f"  excluded {info['excluded']}"
        )
    say(
        f"excluded: {mix.report['excluded']}; papers: {len(used)}; "
        f"{sum(mix.report['bytes'].values()) / 1e6:.1f} MB in {final}"
    )
    if final.exists():
        shutil.rmtree(final)
    os.replace(out, final)
    return mix.report
