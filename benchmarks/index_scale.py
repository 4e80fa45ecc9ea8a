"""Index benchmark: the full real corpus of ../shared/data, and 1M+ vectors (real + synthetic).

    python benchmarks/index_scale.py --vectors /work/bench/real-emb --model models/sciembed-minilm \
        [--total 1000000] [--real-kinds flat,ivfflat] [--kinds ivfflat] [--keep runs/index-1m] \
        [--out benchmarks/results/index_scale]

Corpus: every paper with a title in ../shared/data (ACL Anthology, arXiv 2025-26, Paperscape 1991-96,
OHSUMED, ICLR 2021, SciTLDR, S2ORC sample): about 210k papers, ids kept as published.
Vectors: a folder of model embeddings as benchmarks/embed_corpus.py writes it (``ids.txt.gz`` with
``source:id`` lines + float16 ``emb-NNN.npy`` parts; real sciembed-minilm proximity vectors), a Parquet
file of model embeddings (``sciembed embed``), or ``rp`` / ``lsa`` = TF-IDF of title + abstract reduced
to 384 dimensions (real neighbourhoods, *not* model embeddings; CPU-cheap).
Synthetic vectors (to reach ``--total``) are a random real vector plus isotropic Gaussian noise of norm
0.6, renormalised (cosine ~0.86 to its source; real papers' nearest real neighbour has median cosine
0.75), so they stay inside the corpus's clusters; each synthetic paper carries its source's title and
abstract (so lookups return realistic sizes) and an id ``synthetic-N``.

Every index is built through ``PaperIndex`` (SQLite metadata + raw vectors + FAISS, chunked adds, one
commit, which also calibrates efSearch / nprobe). Two query sets, neither indexed: 500 held-out real
papers' proximity vectors, and, with ``--model``, the titles of the same 500 papers embedded as search
queries (the ``adhoc_query`` adapter) as the API embeds them. Latency: one query per
``PaperIndex.search`` call (including the SQLite id lookup), FAISS on one thread, as the server runs it.
Recall@10 is against exact inner-product search over the same vectors. Reports build time, RSS growth,
size on disk, p50/p99 latency and recall@10, and sweeps HNSW ``efSearch`` / IVF ``nprobe``. Writes
``index_scale.json``, ``index_scale.md`` and ``index_scale.png``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from sciembed.serve import ModelInfo, PaperIndex  # noqa: E402
from sciembed.serve import vectors as faiss_io  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
SOURCES = (
    ("acl/anthology-papers.jsonl.gz", "paper_id"),
    ("arxiv/papers-2025-2026.jsonl.gz", "id"),
    ("paperscape/papers-1991-1996.jsonl.gz", "paper_id"),
    ("ohsumed/ohsumed-23.jsonl.gz", "doc_id"),
    ("s2orc-sample/metadata.jsonl", "paper_id"),
    ("scitldr/train.jsonl", "paper_id"),
    ("scitldr/dev.jsonl", "paper_id"),
    ("scitldr/test.jsonl", "paper_id"),
)
QUERIES = 500
K = 10
CHUNK = 50_000


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def read_corpus(shared: Path) -> list[dict]:
    papers: dict[str, dict] = {}
    for relative, id_field in SOURCES:
        path = shared / relative
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                paper_id = str(record.get(id_field) or "")
                title = record.get("title")
                abstract = record.get("abstract")
                if isinstance(abstract, list):  # SciTLDR: abstract sentences
                    abstract = " ".join(abstract)
                if not paper_id or not title or paper_id in papers:
                    continue
                papers[paper_id] = {"paper_id": paper_id, "title": title, "abstract": abstract, "source": relative}
    iclr = shared / "iclr2021" / "paperlist.tsv"
    for line in iclr.read_text(encoding="utf-8").splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) >= 5 and parts[0] not in papers:
            papers[parts[0]] = {"paper_id": parts[0], "title": parts[1], "abstract": parts[4], "source": "iclr2021"}
    return list(papers.values())


def text_vectors(papers: list[dict], dim: int, seed: int, method: str) -> np.ndarray:
    """TF-IDF of title + abstract, reduced to ``dim``: by a truncated SVD (lsa) or a Gaussian random
    projection (rp, which preserves cosines up to JL error and costs one sparse product)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [f"{p['title']} {p['abstract'] or ''}" for p in papers]
    tfidf = TfidfVectorizer(max_features=200_000, min_df=2, sublinear_tf=True, stop_words="english", dtype=np.float32)
    matrix = tfidf.fit_transform(texts)
    if method == "lsa":
        from sklearn.decomposition import TruncatedSVD

        reduced = TruncatedSVD(n_components=dim, n_iter=4, random_state=seed).fit_transform(matrix)
    else:
        projection = np.random.default_rng(seed).normal(size=(matrix.shape[1], dim)).astype(np.float32)
        reduced = matrix @ projection
    return faiss_io.normalise(np.asarray(reduced, dtype=np.float32))


PREFIX_SOURCES = {"acl": "acl/", "arxiv": "arxiv/", "paperscape": "paperscape/", "ohsumed": "ohsumed/"}


def folder_vectors(papers: list[dict], folder: Path) -> tuple[list[dict], np.ndarray]:
    """benchmarks/embed_corpus.py output: ``source:id`` ids in row order and float16 parts."""
    with gzip.open(folder / "ids.txt.gz", "rt") as handle:
        ids = [line.rstrip("\n") for line in handle]
    parts = sorted(folder.glob("emb-*.npy"))
    matrix = np.concatenate([np.load(p) for p in parts]).astype(np.float32)
    if len(matrix) != len(ids):
        raise ValueError(f"{folder}: {len(ids)} ids but {len(matrix)} vectors")
    by_id = {p["paper_id"]: p for p in papers}
    kept, rows = [], []
    for row, prefixed in enumerate(ids):
        source, _, raw = prefixed.partition(":")
        paper = by_id.get(raw)
        if paper is not None and paper["source"].startswith(PREFIX_SOURCES.get(source, "?")):
            kept.append({**paper, "paper_id": prefixed})
            rows.append(row)
    print(f"{folder}: {len(ids)} vectors, {len(kept)} matched to papers of ../shared/data", flush=True)
    return kept, faiss_io.normalise(matrix[rows])


def query_vectors(model: str, papers: list[dict]) -> tuple[np.ndarray, ModelInfo]:
    """The papers' titles embedded as search queries (adhoc_query), as the API embeds a query."""
    from sciembed import load

    encoder = load(model)
    started = time.perf_counter()
    queries = encoder.encode([p["title"] for p in papers], format="adhoc_query", show_progress=False)
    print(f"{len(papers)} title queries embedded in {time.perf_counter() - started:.1f} s", flush=True)
    source = str(Path(model).resolve()) if Path(model).exists() else model
    info = ModelInfo(name=encoder.name, fingerprint=encoder.fingerprint, dimension=encoder.dimension, source=source)
    return faiss_io.normalise(queries), info


def check_same_model(model: str, papers: list[dict], vectors: np.ndarray) -> float:
    """Re-embed a few papers with ``model`` on this machine: the given vectors must be its proximity vectors."""
    from sciembed import load

    own = faiss_io.normalise(load(model).encode(papers, format="proximity", show_progress=False))
    worst = float(np.min(np.sum(own * vectors, axis=1)))
    if worst < 0.99:
        raise ValueError(f"the vectors are not {model}'s proximity embeddings (cosine {worst:.3f} on a sample)")
    return worst


def parquet_vectors(papers: list[dict], path: Path) -> tuple[list[dict], np.ndarray]:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["paper_id", "embedding"])
    ids = table.column("paper_id").to_pylist()
    column = table.column("embedding").combine_chunks()
    flat = np.asarray(column.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(len(ids), -1)
    row = {paper_id: i for i, paper_id in enumerate(ids)}
    kept = [p for p in papers if p["paper_id"] in row]
    return kept, faiss_io.normalise(flat[[row[p["paper_id"]] for p in kept]])


def synthetic(real: np.ndarray, n: int, seed: int, noise: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Real vectors plus isotropic noise of norm ~noise: new points inside the corpus's clusters.
    Returns (vectors, index of each one's source)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, real.shape[1]), np.float32)
    sources = rng.integers(0, len(real), n)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        base = real[sources[start:stop]]
        jitter = rng.normal(scale=noise / np.sqrt(real.shape[1]), size=base.shape).astype(np.float32)
        out[start:stop] = faiss_io.normalise(base + jitter)
    return out, sources


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    import faiss

    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    return flat.search(queries, k)[1]


def build(
    folder: Path, kind: str, papers: list[dict], vectors: np.ndarray, info: ModelInfo, held_out_queries=None
) -> tuple[PaperIndex, dict]:
    before, started = rss_mb(), time.perf_counter()
    index = PaperIndex.create(folder, info, kind=kind, expected_size=len(papers))
    if faiss_io.needs_training(kind):
        rng = np.random.default_rng(0)
        wanted = faiss_io.TRAIN_MAX_POINTS_PER_LIST * int(index.manifest.params["nlist"])
        index.train(vectors[np.sort(rng.choice(len(vectors), min(len(vectors), wanted), replace=False))])
        print(f"  {kind}: trained in {time.perf_counter() - started:.1f} s", flush=True)
    for start in range(0, len(papers), CHUNK):
        chunk = slice(start, start + CHUNK)
        index.add(papers[chunk], {"proximity": vectors[chunk]}, fingerprint=info.fingerprint, commit=False)
        print(f"  {kind}: {min(start + CHUNK, len(papers))}/{len(papers)} added", flush=True)
    if held_out_queries is not None and kind in faiss_io.SEARCH_KNOBS:
        index.set_held_out_queries(*held_out_queries)  # what `sciembed index build` stores: indexed titles
    index.commit()  # writes the FAISS file and calibrates efSearch / nprobe
    seconds = time.perf_counter() - started
    disk = sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 1e6
    stats = {"build_s": round(seconds, 1), "rss_growth_mb": round(rss_mb() - before), "disk_mb": round(disk)}
    stats["calibration"] = index.manifest.params.get("calibration")
    return index, stats


def faiss_candidates(index: PaperIndex) -> int:
    """How many candidates PaperIndex.search asks FAISS for at k = K (more where it re-ranks)."""
    params = index.manifest.params
    if index.manifest.kind not in faiss_io.RERANKED:
        return K
    return max(K, min(K * int(params.get("rerank", 1)), faiss_io.RERANK_MAX))


def measure(index: PaperIndex, queries: np.ndarray, truth: np.ndarray, row_of: dict[str, int]) -> dict:
    index.search("proximity", queries[:20], K)  # warm up
    latencies, faiss_ms, recalls = [], [], []
    wanted = faiss_candidates(index)
    faiss_index = index._indexes["proximity"]
    threads = faiss_io.set_threads(1)  # as the server searches
    try:
        for query, true in zip(queries, truth, strict=True):
            started = time.perf_counter()
            faiss_io.search(faiss_index, query[None, :], wanted)  # FAISS alone (no re-rank, no SQLite)
            faiss_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            hits = index.search("proximity", query[None, :], K)[0]
            latencies.append((time.perf_counter() - started) * 1000)
            recalls.append(len({row_of[h.paper_id] for h in hits} & set(true.tolist())) / K)
    finally:
        faiss_io.set_threads(threads)
    return {
        "p50_ms": round(float(np.percentile(latencies, 50)), 3),
        "p99_ms": round(float(np.percentile(latencies, 99)), 3),
        "faiss_p50_ms": round(float(np.percentile(faiss_ms, 50)), 3),
        "recall_at_10": round(float(np.mean(recalls)), 4),
        "load_average": round(os.getloadavg()[0], 2),
    }


SWEEPS = {
    "hnsw": ("efSearch", (32, 64, 128, 256, 512)),
    "ivfflat": ("nprobe", (4, 8, 16, 32, 64, 128)),
    "ivfpqfs": ("nprobe", (32, 64, 96, 128, 192, 256, 384, 512)),
}


def sweep(index: PaperIndex, kind: str, query_sets: dict, row_of) -> list[dict]:
    name, values = SWEEPS.get(kind, ("", ()))
    rows = []
    for value in values:
        faiss_io.configure(index._indexes["proximity"], kind, {**index.manifest.params, name: value})
        row = {name: value}
        for label, (queries, truth) in query_sets.items():
            row[label] = measure(index, queries, truth, row_of)
        rows.append(row)
        print(f"  {kind} {name}={value}: {row}", flush=True)
    faiss_io.configure(index._indexes["proximity"], kind, index.manifest.params)
    return rows


def rerank_sweep(index: PaperIndex, query_sets: dict, row_of) -> list[dict]:
    """Candidates re-ranked per result (x k) at the calibrated nprobe."""
    from dataclasses import replace

    kept, rows = index.manifest, []
    for rerank in (5, 10, 20, 40):
        index.manifest = replace(kept, params={**kept.params, "rerank": rerank})
        row = {"rerank": rerank, **{label: measure(index, q, t, row_of) for label, (q, t) in query_sets.items()}}
        rows.append(row)
        print(f"  rerank={rerank}: {row}", flush=True)
    index.manifest = kept
    return rows


def run_size(
    label, papers, vectors, query_sets, kinds, work: Path, info: ModelInfo, keep: Path | None, held_out=None
) -> list[dict]:
    started = time.perf_counter()
    names = list(query_sets)
    top = exact_top(vectors, np.concatenate([query_sets[n] for n in names]), K)
    truths = {n: (query_sets[n], top[i * QUERIES : (i + 1) * QUERIES]) for i, n in enumerate(names)}
    print(f"{label}: exact ground truth in {time.perf_counter() - started:.1f} s", flush=True)
    row_of = {p["paper_id"]: i for i, p in enumerate(papers)}  # rows are added in order from 0
    results = []
    for kind in kinds:
        folder = keep if keep is not None and kind == kinds[-1] else work / f"{label}-{kind}"
        index, stats = build(folder, kind, papers, vectors, info, held_out)
        result = {"corpus": label, "vectors": len(papers), "kind": index.manifest.kind}
        result["params"] = {k: v for k, v in index.manifest.params.items() if k != "calibration"}
        result.update(stats)
        result["queries"] = {name: measure(index, q, t, row_of) for name, (q, t) in truths.items()}
        result["load_average"] = [round(x, 2) for x in os.getloadavg()]
        result["sweep"] = sweep(index, index.manifest.kind, truths, row_of)
        if index.manifest.kind in faiss_io.RERANKED:
            result["rerank_sweep"] = rerank_sweep(index, truths, row_of)
        print(json.dumps({k: v for k, v in result.items() if k != "sweep"}), flush=True)
        results.append(result)
        index.close()
        if folder != keep:
            shutil.rmtree(folder)
    return results


def markdown(results: list[dict], meta: dict) -> str:
    names = list(results[0]["queries"])
    lines = [
        f"Index benchmark, {meta['date']}, {meta['device']}; vectors: {meta['vectors']}; queries: "
        f"{', '.join(names)}; `{meta['command']}`",
        "",
        "| corpus | vectors | kind | params (after calibration) | build s | RSS growth MB | disk MB | "
        + " | ".join(f"{n}: p50 ms / p99 ms / recall@10" for n in names)
        + " | load avg |",
        "|---|---|---|---|---|---|---|" + "---|" * len(names) + "---|",
    ]
    for r in results:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items())
        cells = " | ".join(
            f"{q['p50_ms']} / {q['p99_ms']} (FAISS {q.get('faiss_p50_ms', '-')}) / **{q['recall_at_10']}**"
            for q in (r["queries"][n] for n in names)
        )
        lines.append(
            f"| {r['corpus']} | {r['vectors']:,} | {r['kind']} | {params} | {r['build_s']} | {r['rss_growth_mb']} | "
            f"{r['disk_mb']} | {cells} | {r['load_average'][0]} |"
        )
    for r in results:
        if r.get("calibration"):
            lines.append(f"\n{r['corpus']} {r['kind']} calibration (indexed vectors as queries): {r['calibration']}")
        if r["sweep"]:
            knob = next(iter(r["sweep"][0]))
            for n in names:
                cells = "; ".join(f"{s[knob]}: {s[n]['recall_at_10']} / {s[n]['p50_ms']} ms" for s in r["sweep"])
                lines.append(f"\n{r['corpus']} {r['kind']} sweep, {n} queries ({knob}: recall@10 / p50): {cells}")
        for row in r.get("rerank_sweep", []):
            cells = "; ".join(f"{n}: {row[n]['recall_at_10']} / {row[n]['p50_ms']} ms" for n in names)
            lines.append(f"\n{r['corpus']} {r['kind']} rerank x{row['rerank']} (recall@10 / p50): {cells}")
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        if not r["sweep"]:
            continue
        knob = next(iter(r["sweep"][0]))
        for n, style in zip(r["queries"], ("-o", "--s"), strict=False):
            xs = [s[n]["p50_ms"] for s in r["sweep"]]
            ys = [s[n]["recall_at_10"] for s in r["sweep"]]
            ax.plot(xs, ys, style, label=f"{r['corpus']} {r['vectors']:,} {r['kind']}, {n} queries")
            for s, x, y in zip(r["sweep"], xs, ys, strict=True):
                ax.annotate(str(s[knob]), (x, y), fontsize=7, xytext=(3, -8), textcoords="offset points")
            chosen = r["queries"][n]
            ax.plot([chosen["p50_ms"]], [chosen["recall_at_10"]], "k*", markersize=10)
    ax.axhline(0.95, color="grey", lw=0.8, ls=":")
    ax.axvline(5.0, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency per query, ms (PaperIndex.search, 1 FAISS thread)")
    ax.set_ylabel("recall@10 vs exact search")
    ax.set_title("IVF nprobe / HNSW efSearch sweep (numbers); * = calibrated setting")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument(
        "--vectors", default="rp", help="an embed_corpus.py folder, a Parquet of model embeddings, or rp / lsa"
    )
    parser.add_argument("--model", default=None, help="the model of the vectors: title queries, spot check, index info")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--total", type=int, default=1_000_000, help="vectors in the large run (0: skip it)")
    parser.add_argument("--real-kinds", default="flat,ivfflat", help="kinds for the real corpus")
    parser.add_argument("--kinds", default="ivfflat", help="kinds for the large run (the last one is kept)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the large run's last index here (serve_load)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N real papers (a smoke run)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: temporary)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "index_scale")
    args = parser.parse_args()

    started = time.perf_counter()
    papers = read_corpus(args.shared)
    print(f"read {len(papers)} real papers in {time.perf_counter() - started:.1f} s", flush=True)
    source = Path(args.vectors)
    if source.is_dir():
        papers, vectors = folder_vectors(papers, source)
        description = f"model embeddings {args.vectors} (fp16 parts)"
    elif args.vectors in ("lsa", "rp"):
        started = time.perf_counter()
        vectors = text_vectors(papers, args.dim, args.seed, args.vectors)
        print(f"{args.vectors} vectors {vectors.shape} in {time.perf_counter() - started:.1f} s", flush=True)
        description = f"TF-IDF reduced to {args.dim} dimensions ({args.vectors}), not model embeddings"
    else:
        papers, vectors = parquet_vectors(papers, source)
        description = f"model embeddings {args.vectors}"
    if args.limit:  # a smoke run
        papers, vectors = papers[: args.limit], vectors[: args.limit]
    info = ModelInfo(name=source.stem, fingerprint="vectors-" + "0" * 56, dimension=vectors.shape[1])
    rng = np.random.default_rng(args.seed)
    held_out = rng.choice(len(papers), QUERIES, replace=False)
    query_sets = {"held-out paper": vectors[held_out]}
    if args.model:
        sample = [papers[i] for i in held_out[:8]]
        print(f"spot check: min cosine {check_same_model(args.model, sample, vectors[held_out[:8]]):.4f}", flush=True)
        query_sets["title query"], info = query_vectors(args.model, [papers[i] for i in held_out])
    mask = np.ones(len(papers), bool)
    mask[held_out] = False
    papers = [p for p, keep in zip(papers, mask, strict=True) if keep]
    vectors = vectors[mask]
    calibration = None
    if args.model:  # other papers' titles as the build's calibration queries (indexed; own paper left out)
        chosen = np.random.default_rng(args.seed + 7).choice(len(papers), 300, replace=False)
        calibration_vectors, _ = query_vectors(args.model, [papers[i] for i in chosen])
        calibration = ([papers[i]["paper_id"] for i in chosen], calibration_vectors)

    work = args.work or Path(tempfile.mkdtemp(prefix="index-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    real_kinds = [k for k in args.real_kinds.split(",") if k]
    results = run_size("real", papers, vectors, query_sets, real_kinds, work, info, None, calibration)
    if args.total > len(papers):
        extra = args.total - len(papers)
        more, sources = synthetic(vectors, extra, args.seed + 1)
        big_papers = papers + [
            {
                "paper_id": f"synthetic-{i}",
                "title": papers[s]["title"],
                "abstract": papers[s].get("abstract"),
                "source": "synthetic",
            }
            for i, s in enumerate(sources)
        ]
        big = np.concatenate([vectors, more])
        del more
        results += run_size(
            "real+synthetic", big_papers, big, query_sets, args.kinds.split(","), work, info, args.keep, calibration
        )
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared)",
        "vectors": description,
        "command": "python " + " ".join(sys.argv),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "index_scale.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    (args.out / "index_scale.md").write_text(markdown(results, meta))
    plot(results, args.out / "index_scale.png")
    print(markdown(results, meta))


if __name__ == "__main__":
    main()
