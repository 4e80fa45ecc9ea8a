"""Our stage-2 training mixture, built from ``../shared/data`` and never from sciembed-lite test items.

Tasks (seed 42, each capped):

* ``arxiv_primary`` (classification, CE): arXiv primary category among the most frequent ones;
* ``arxiv_categories`` (multi-label, BCE): all arXiv categories among the most frequent ones;
* ``acl_year`` (regression, MSE): ACL Anthology publication year;
* ``aan_citations`` (regression, MSE): log(1 + inbound citations) in the AAN 2013 graph;
* ``acl_citation_triplets`` (proximity, triplet): SPECTER-style triplets mined from the AAN graph;
* ``arxiv_title_search`` (ad-hoc search, triplet): an arXiv title (query) -> its abstract alone;
* ``paperscape_category`` (classification, CE): Paperscape (physics 1991-96, titles) primary category;
* ``paperscape_triplets`` (proximity, triplet): triplets mined from the Paperscape citation graph;
* ``scitldr_search`` (ad-hoc search, triplet): SciTLDR *train* TLDR (query) -> its paper vs a random paper.

Never used, so that out-of-training evaluation has data no mixture has seen: OHSUMED, the keyphrase
collections, ICLR 2021, the SciRepEval and SPECTER samples and the S2ORC sample.

Excluded everywhere: every paper that a sciembed-lite task uses as a test item (classification /
regression ``test.csv`` papers, proximity / search query papers), every SciTLDR test paper and the
held-out AAN citing papers of :func:`sciembed.data.citations.heldout_queries` (as the lite AAN
tasks and the triplet miner define them). The classification / regression tasks also leave out
every other document of the lite tasks (their SVM training splits), except ``aan_citations``,
whose graph papers are mostly lite AAN candidates. Counts go to ``report.json``.

Output (``--output``, default ``data/mixture``): ``papers.jsonl.gz`` (id, title, abstract), one
``<task>.jsonl.gz`` per task (papers referenced by id), ``stage2.yaml`` (a complete stage-2 config)
and ``report.json``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from ...data import normalize_whitespace
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
}
PAPERSCAPE_CLASSES = 12
ARXIV_PRIMARY_CLASSES = 20
ARXIV_MULTI_LABELS = 40
SCITLDR_NEGATIVES = 2
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


# ---- what sciembed-lite tests on ------------------------------------------------------------------------
def lite_exclusions(data_root: Path, lite_dir: Path | None = None) -> dict[str, set[str]]:
    """``{"test": ids of lite test items, "documents": every lite document id}`` (builds lite if needed)."""
    from ...recipes.lite import build_lite

    tasks_path = build_lite(data_root, lite_dir)
    folder = tasks_path.parent
    test: set[str] = set()
    documents: set[str] = set()
    for line in tasks_path.read_text().splitlines():
        if not line.strip():
            continue
        task = json.loads(line)
        meta, target = folder / task["data"]["meta"], folder / task["data"]["test"]
        if meta.is_file():
            with open(meta, encoding="utf-8") as handle:
                for raw in handle:
                    rec = json.loads(raw)
                    if "candidates" in rec:
                        query = rec["query"]
                        if isinstance(query, dict):
                            test.add(str(query["doc_id"]))
                            documents.add(str(query["doc_id"]))
                        documents.update(str(c["doc_id"]) for c in rec["candidates"])
                    else:
                        documents.add(str(rec["doc_id"]))
        test_csv = target / "test.csv"
        if test_csv.is_file():
            with open(test_csv, newline="", encoding="utf-8") as handle:
                test.update(row["paper_id"] for row in csv.DictReader(handle))
    return {"test": test, "documents": documents}


def _paperscape_papers(root: Path) -> dict[str, dict[str, Any]]:
    papers: dict[str, dict[str, Any]] = {}
    with gzip.open(root / "paperscape" / "papers-1991-1996.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            rec = json.loads(line)
            papers[str(rec["paper_id"])] = {
                "title": _clean(rec.get("title")),
                "categories": rec.get("categories") or [],
            }
    return papers


# ---- the builder ----------------------------------------------------------------------------------------
class _Mixture:
    def __init__(self, root: Path, out: Path, caps: dict[str, int], exclude_test: set[str], exclude_docs: set[str]):
        self.root, self.out, self.caps = root, out, caps
        self.exclude_test, self.exclude_docs = exclude_test, exclude_docs
        self.papers: dict[str, dict[str, Any]] = {}
        self.report: dict[str, Any] = {"seed": SEED, "tasks": {}, "excluded": {}}
        self.tasks: list[dict[str, Any]] = []

    def add_paper(self, namespace: str, pid: str, title: Any, abstract: Any) -> str:
        key = f"{namespace}:{pid}"
        if key not in self.papers:
            self.papers[key] = {"paper_id": key, "title": _clean(title), "abstract": _clean(abstract)}
        return key

    def keep(self, pid: str, strict: bool, counter: Counter) -> bool:
        if pid in self.exclude_test:
            counter["lite_test_items"] += 1
            return False
        if strict and pid in self.exclude_docs:
            counter["other_lite_documents"] += 1
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


def build_mixture(
    data_root: str | Path | None = None,
    output: str | Path = DEFAULT_OUTPUT,
    caps: dict[str, int] | None = None,
    lite_dir: str | Path | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Write the training mixture (see the module docstring); returns the report."""
    from ...data.citations import heldout_queries, read_citation_graph
    from ...recipes.sources import Sources, default_data_root
    from ..mining import MiningConfig, mine_triplets

    say = log or (lambda _m: None)
    root = Path(data_root) if data_root is not None else default_data_root()
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    lite = lite_exclusions(root, Path(lite_dir) if lite_dir is not None else None)
    src = Sources(root)
    acl = src.acl()
    graph = read_citation_graph(root / "acl" / "aan-citations-2013.txt")
    heldout = set(src.heldout())
    # the miner's definition (papers with any text) as well, in case the two differ
    heldout |= set(heldout_queries(graph, [p for p, r in acl.items() if r["title"] or r["abstract"]]))
    scitldr_test = {json.loads(x)["paper_id"] for x in (root / "scitldr" / "test.jsonl").read_text().splitlines() if x}
    exclude_test = lite["test"] | heldout | scitldr_test
    mix = _Mixture(root, out, {**DEFAULT_CAPS, **(caps or {})}, exclude_test, lite["documents"])
    mix.report["excluded"] = {
        "lite_test_items": len(lite["test"]),
        "lite_documents": len(lite["documents"]),
        "aan_heldout_citing_papers": len(heldout),
        "scitldr_test_papers": len(scitldr_test),
    }

    # arXiv: primary category (CE) and categories (BCE)
    arxiv: list[dict[str, Any]] = []
    excluded: Counter = Counter()
    with gzip.open(root / "arxiv" / "papers-2025-2026.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            rec = json.loads(line)
            if rec.get("categories") and _clean(rec.get("title")) and _clean(rec.get("abstract")):
                if mix.keep(str(rec["id"]), True, excluded):
                    arxiv.append(rec)
    arxiv.sort(key=lambda r: r["id"])
    primary = Counter(r["categories"][0] for r in arxiv)
    top = sorted(c for c, _ in sorted(primary.items(), key=lambda kv: (-kv[1], kv[0]))[:ARXIV_PRIMARY_CLASSES])
    rows = [
        {"paper": mix.add_paper("arxiv", r["id"], r["title"], r["abstract"]), "label": r["categories"][0]}
        for r in arxiv
        if r["categories"][0] in top
    ]
    mix.write_task(
        "arxiv_primary",
        "classification",
        rows,
        excluded,
        f"arXiv 2025-2026: primary category among the {len(top)} most frequent",
        labels=top,
    )
    counts = Counter(c for r in arxiv for c in dict.fromkeys(r["categories"]))
    keep = sorted(c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:ARXIV_MULTI_LABELS])
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
        excluded,
        f"arXiv 2025-2026: all categories among the {len(keep)} most frequent",
        labels=keep,
    )

    # arXiv: title (query, [QRY]) -> its abstract alone ([PRX]) vs another paper's abstract
    rng = random.Random(f"{SEED}:arxiv_title_search")
    abstracts = [mix.add_paper("arxiv-abs", r["id"], None, r["abstract"]) for r in arxiv]
    rows = []
    for key, rec in zip(abstracts, arxiv, strict=True):
        neg = key
        while neg == key:
            neg = abstracts[rng.randrange(len(abstracts))]
        rows.append({"query": _clean(rec["title"]), "pos": key, "neg": neg})
    mix.write_task(
        "arxiv_title_search",
        "adhoc_search",
        rows,
        excluded,
        "arXiv 2025-2026: a title (query, [QRY]) -> its abstract without the title ([PRX]) vs a random one",
    )

    # ACL publication year (MSE)
    excluded = Counter()
    rows = [
        {"paper": mix.add_paper("acl", p, r["title"], r["abstract"]), "label": int(r["year"])}
        for p, r in sorted(acl.items())
        if r["abstract"] and r["year"] and mix.keep(p, True, excluded)
    ]
    mix.write_task("acl_year", "regression", rows, excluded, "ACL Anthology papers with abstracts: publication year")

    # AAN citation counts (MSE on log1p)
    excluded = Counter()
    cited_by = graph.cited_by()
    rows = [
        {
            "paper": mix.add_paper("acl", p, acl[p]["title"], acl[p]["abstract"]),
            "label": round(math.log1p(len(cited_by.get(p, ()))), 6),
        }
        for p in sorted(graph.papers())
        if p in acl and (acl[p]["title"] or acl[p]["abstract"]) and mix.keep(p, False, excluded)
    ]
    mix.write_task("aan_citations", "regression", rows, excluded, "AAN 2013 graph: log(1 + inbound citations)")

    # ACL citation triplets (proximity)
    papers = {
        p: Paper(paper_id=p, title=r["title"], abstract=r["abstract"])
        for p, r in acl.items()
        if r["title"] or r["abstract"]
    }
    excluded = Counter({"lite_test_items_or_heldout": sum(1 for p in exclude_test if p in papers)})
    rows = []
    for t in mine_triplets(
        papers, graph, MiningConfig(seed=SEED, triplets_per_query=5, hard_per_query=2), exclude=exclude_test
    ):
        rows.append(
            {
                role: mix.add_paper("acl", getattr(t, role).paper_id, getattr(t, role).title, getattr(t, role).abstract)
                for role in ("query", "pos", "neg")
            }
        )
    mix.write_task(
        "acl_citation_triplets",
        "proximity",
        rows,
        excluded,
        "SPECTER-style triplets from the AAN graph (5 per query, 2 hard + 3 easy negatives)",
    )

    # Paperscape (physics, titles only): primary category (CE) and citation triplets (proximity)
    physics = _paperscape_papers(root)
    pgraph = read_citation_graph(root / "paperscape" / "citations-1991-1996.txt")
    p_heldout = set(heldout_queries(pgraph, [p for p, r in physics.items() if r["title"]]))
    mix.report["excluded"]["paperscape_heldout_citing_papers"] = len(p_heldout)
    excluded = Counter({"heldout_citing_papers": len(p_heldout)})
    primary = Counter(r["categories"][0] for r in physics.values() if r["categories"])
    top = sorted(c for c, _ in sorted(primary.items(), key=lambda kv: (-kv[1], kv[0]))[:PAPERSCAPE_CLASSES])
    rows = [
        {"paper": mix.add_paper("paperscape", p, r["title"], None), "label": r["categories"][0]}
        for p, r in sorted(physics.items())
        if r["categories"] and r["categories"][0] in top and p not in p_heldout and mix.keep(p, True, excluded)
    ]
    mix.write_task(
        "paperscape_category",
        "classification",
        rows,
        excluded,
        f"Paperscape arXiv 1991-1996 (physics, titles): primary category among the {len(top)} most frequent",
        labels=top,
    )
    p_papers = {p: Paper(paper_id=p, title=r["title"]) for p, r in physics.items() if r["title"]}
    p_exclude = p_heldout | {p for p in p_papers if p in exclude_test}
    excluded = Counter({"lite_test_items_or_heldout": len(p_exclude)})
    rows = [
        {
            role: mix.add_paper("paperscape", getattr(t, role).paper_id, getattr(t, role).title, None)
            for role in ("query", "pos", "neg")
        }
        for t in mine_triplets(
            p_papers, pgraph, MiningConfig(seed=SEED, triplets_per_query=5, hard_per_query=2), exclude=p_exclude
        )
    ]
    mix.write_task(
        "paperscape_triplets",
        "proximity",
        rows,
        excluded,
        "SPECTER-style triplets from the Paperscape physics graph (titles; held-out citing papers excluded)",
    )

    # SciTLDR train: TLDR -> paper (ad-hoc search)
    excluded = Counter()
    train = [json.loads(x) for x in (root / "scitldr" / "train.jsonl").read_text().splitlines() if x]
    train = [r for r in train if r.get("source") and r.get("target") and mix.keep(r["paper_id"], True, excluded)]
    train.sort(key=lambda r: r["paper_id"])
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
        excluded,
        "SciTLDR-A train: a TLDR (query, [QRY]) -> its paper vs a random train paper ([PRX])",
    )

    # papers table: only those used by the written (capped) tasks
    used: set[str] = set()
    for task in mix.tasks:
        with gzip.open(out / task["data"], "rt", encoding="utf-8") as handle:
            for line in handle:
                rec = json.loads(line)
                for role in ("paper", "query", "pos", "neg"):
                    if role in rec and isinstance(rec[role], str) and rec[role] in mix.papers:
                        used.add(rec[role])
    _write_jsonl_gz(out / "papers.jsonl.gz", (mix.papers[k] for k in sorted(used)))
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
        f"{sum(mix.report['bytes'].values()) / 1e6:.1f} MB in {out}"
    )
    return mix.report
