"""Index benchmark: the full real corpus of ../shared/data, and 1M+ vectors (real + synthetic).

    python benchmarks/index_scale.py [--vectors lsa | --vectors EMBEDDINGS.parquet] [--total 1000000]
                                     [--kinds hnsw,ivfpq] [--out benchmarks/results/index_scale]

Corpus: every paper with a title in ../shared/data (ACL Anthology, arXiv 2025-26, Paperscape 1991-96,
OHSUMED, ICLR 2021, SciTLDR, S2ORC sample): about 210k papers, ids kept as published.
Vectors: ``rp`` (default, CPU-cheap) or ``lsa`` = TF-IDF of title + abstract reduced to 384 dimensions
by a Gaussian random projection or a truncated SVD: real documents, real topical neighbourhoods, but
*not* model embeddings; or a Parquet file of model embeddings of the same papers (``sciembed embed``,
e.g. from the GPU machine, where 210k papers take under a minute).
Synthetic vectors (to reach ``--total``) are real vectors plus Gaussian noise (cosine ~0.85 to their
source), so they keep the corpus's cluster structure.

Every index is built through ``PaperIndex`` (SQLite metadata + raw vectors + FAISS, chunked adds,
one commit); queries are 500 held-out real papers (not indexed) through ``PaperIndex.search``
(single-query calls, including the SQLite id lookup). Recall@10 is against exact inner-product search
over the same vectors. Reports build time, RSS growth, size on disk, p50/p99 latency and recall@10;
HNSW ``efSearch`` and IVF ``nprobe`` are swept. Writes ``index_scale.json`` and ``index_scale.md``.
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


def parquet_vectors(papers: list[dict], path: Path) -> tuple[list[dict], np.ndarray]:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["paper_id", "embedding"])
    ids = table.column("paper_id").to_pylist()
    column = table.column("embedding").combine_chunks()
    flat = np.asarray(column.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(len(ids), -1)
    row = {paper_id: i for i, paper_id in enumerate(ids)}
    kept = [p for p in papers if p["paper_id"] in row]
    return kept, faiss_io.normalise(flat[[row[p["paper_id"]] for p in kept]])


def synthetic(real: np.ndarray, n: int, seed: int, noise: float = 0.6) -> np.ndarray:
    """Real vectors plus isotropic noise of norm ~noise: new points inside the corpus's clusters."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, real.shape[1]), np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        base = real[rng.integers(0, len(real), stop - start)]
        jitter = rng.normal(scale=noise / np.sqrt(real.shape[1]), size=base.shape).astype(np.float32)
        out[start:stop] = faiss_io.normalise(base + jitter)
    return out


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    import faiss

    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    return flat.search(queries, k)[1]


def build(folder: Path, kind: str, papers: list[dict], vectors: np.ndarray, info: ModelInfo) -> tuple[PaperIndex, dict]:
    before, started = rss_mb(), time.perf_counter()
    index = PaperIndex.create(folder, info, kind=kind, expected_size=len(papers))
    if faiss_io.needs_training(kind):
        rng = np.random.default_rng(0)
        index.train(vectors[rng.choice(len(vectors), min(len(vectors), 100_000), replace=False)])
    for start in range(0, len(papers), CHUNK):
        chunk = slice(start, start + CHUNK)
        index.add(papers[chunk], {"proximity": vectors[chunk]}, fingerprint=info.fingerprint, commit=False)
        print(f"  {kind}: {min(start + CHUNK, len(papers))}/{len(papers)} added", flush=True)
    index.commit()
    seconds = time.perf_counter() - started
    disk = sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 1e6
    return index, {"build_s": round(seconds, 1), "rss_growth_mb": round(rss_mb() - before), "disk_mb": round(disk)}


def measure(index: PaperIndex, queries: np.ndarray, truth: np.ndarray, row_of: dict[str, int]) -> dict:
    index.search("proximity", queries[:20], K)  # warm up
    latencies, recalls = [], []
    for query, true in zip(queries, truth, strict=True):
        started = time.perf_counter()
        hits = index.search("proximity", query[None, :], K)[0]
        latencies.append((time.perf_counter() - started) * 1000)
        recalls.append(len({row_of[h.paper_id] for h in hits} & set(true.tolist())) / K)
    return {
        "p50_ms": round(float(np.percentile(latencies, 50)), 3),
        "p99_ms": round(float(np.percentile(latencies, 99)), 3),
        "recall_at_10": round(float(np.mean(recalls)), 4),
    }


def sweep(index: PaperIndex, kind: str, queries, truth, row_of) -> list[dict]:
    name, values = {"hnsw": ("efSearch", (32, 64, 96, 128, 192)), "ivfpq": ("nprobe", (8, 16, 32, 64))}.get(
        kind, ("", ())
    )
    rows = []
    for value in values:
        faiss_io.configure(index._indexes["proximity"], kind, {**index.manifest.params, name: value})
        rows.append({name: value, **measure(index, queries, truth, row_of)})
        print(f"  {kind} {name}={value}: {rows[-1]}", flush=True)
    faiss_io.configure(index._indexes["proximity"], kind, index.manifest.params)
    return rows


def run_size(label, papers, vectors, queries, kinds, work: Path, info: ModelInfo) -> list[dict]:
    truth_started = time.perf_counter()
    truth = exact_top(vectors, queries, K)
    print(f"{label}: exact ground truth in {time.perf_counter() - truth_started:.1f} s", flush=True)
    row_of = {p["paper_id"]: i for i, p in enumerate(papers)}  # rows are added in order from 0
    results = []
    for kind in kinds:
        folder = work / f"{label}-{kind}"
        index, stats = build(folder, kind, papers, vectors, info)
        stats.update(measure(index, queries, truth, row_of))
        result = {"corpus": label, "vectors": len(papers), "kind": index.manifest.kind, "params": index.manifest.params}
        result.update(stats)
        result["sweep"] = sweep(index, index.manifest.kind, queries, truth, row_of)
        print(json.dumps({k: v for k, v in result.items() if k != "sweep"}), flush=True)
        results.append(result)
        index.close()
        shutil.rmtree(folder)
    return results


def markdown(results: list[dict], meta: dict) -> str:
    lines = [
        f"Index benchmark, {meta['date']}, {meta['device']}; vectors: {meta['vectors']}; `{meta['command']}`",
        "",
        "| corpus | vectors | kind | params | build s | RSS growth MB | disk MB | p50 ms | p99 ms | recall@10 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items())
        lines.append(
            f"| {r['corpus']} | {r['vectors']:,} | {r['kind']} | {params} | {r['build_s']} | {r['rss_growth_mb']} | "
            f"{r['disk_mb']} | {r['p50_ms']} | {r['p99_ms']} | {r['recall_at_10']} |"
        )
    for r in results:
        if r["sweep"]:
            name = next(k for k in r["sweep"][0] if k not in ("p50_ms", "p99_ms", "recall_at_10"))
            cells = "; ".join(f"{s[name]}: {s['recall_at_10']} / {s['p50_ms']} ms" for s in r["sweep"])
            lines.append(f"\n{r['corpus']} {r['kind']} sweep ({name}: recall@10 / p50): {cells}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--vectors", default="rp", help="rp or lsa (TF-IDF reduced), or a Parquet of model embeddings")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--total", type=int, default=1_000_000, help="vectors in the large run (0: skip it)")
    parser.add_argument("--real-kinds", default="hnsw", help="kinds for the real corpus")
    parser.add_argument("--kinds", default="hnsw", help="kinds for the large run (hnsw, ivfpq)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work", type=Path, default=None, help="scratch folder, keeps the LSA vectors (default: temporary)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "index_scale")
    args = parser.parse_args()

    started = time.perf_counter()
    papers = read_corpus(args.shared)
    print(f"read {len(papers)} real papers in {time.perf_counter() - started:.1f} s", flush=True)
    if args.vectors in ("lsa", "rp"):
        started = time.perf_counter()
        cache = args.work / f"{args.vectors}-{args.dim}-{len(papers)}.npy" if args.work else None
        if cache is not None and cache.is_file():
            vectors = np.load(cache)
        else:
            vectors = text_vectors(papers, args.dim, args.seed, args.vectors)
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.save(cache, vectors)
        print(f"{args.vectors} vectors {vectors.shape} in {time.perf_counter() - started:.1f} s", flush=True)
        info = ModelInfo(name=f"tfidf-{args.vectors}", fingerprint=f"{args.vectors}-" + "0" * 60, dimension=args.dim)
    else:
        papers, vectors = parquet_vectors(papers, Path(args.vectors))
        info = ModelInfo(name=Path(args.vectors).stem, fingerprint="parquet-" + "0" * 56, dimension=vectors.shape[1])
    rng = np.random.default_rng(args.seed)
    held_out = rng.choice(len(papers), QUERIES, replace=False)
    mask = np.ones(len(papers), bool)
    mask[held_out] = False
    queries = vectors[held_out]
    papers = [p for p, keep in zip(papers, mask, strict=True) if keep]
    vectors = vectors[mask]

    work = args.work or Path(tempfile.mkdtemp(prefix="index-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    results = run_size("real", papers, vectors, queries, args.real_kinds.split(","), work, info)
    if args.total > len(papers):
        extra = args.total - len(papers)
        more = synthetic(vectors, extra, args.seed + 1)
        big_papers = papers + [{"paper_id": f"synthetic-{i}", "title": f"synthetic paper {i}"} for i in range(extra)]
        big = np.concatenate([vectors, more])
        del more
        results += run_size("real+synthetic", big_papers, big, queries, args.kinds.split(","), work, info)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, faiss threads default",
        "vectors": "TF-IDF + SVD (LSA) of the real papers"
        if args.vectors == "lsa"
        else f"model embeddings {args.vectors}",
        "command": "python " + " ".join(sys.argv),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "index_scale.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    (args.out / "index_scale.md").write_text(markdown(results, meta))
    print(markdown(results, meta))


if __name__ == "__main__":
    main()
