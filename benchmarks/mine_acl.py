"""Mine stage-1 triplets from the full ACL (AAN 2013) citation graph and time it.

Usage (from the repository root): ``.venv/bin/python benchmarks/mine_acl.py [--output DIR]``.
Prints papers / queries / triplets / seconds and writes them to ``benchmarks/results/mine_acl.json``.
The goal: under 2 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from sciembed.data.triplets import count_triplets, read_triplets
from sciembed.train.mining import MiningConfig, mine_to_files

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "acl"
PAPERS = [DATA / "anthology-papers.jsonl.gz", DATA / "scisummnet-papers.jsonl"]
EDGES = DATA / "aan-citations-2013.txt"
RESULTS = ROOT / "benchmarks" / "results" / "mine_acl.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, help="keep the mined files here (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-results", action="store_true", help="do not write the results file")
    args = parser.parse_args()
    missing = [p for p in [*PAPERS, EDGES] if not p.exists()]
    if missing:
        print(f"ACL data not found ({', '.join(map(str, missing))}); nothing to measure", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.output or Path(tmp)
        start = time.perf_counter()
        report = mine_to_files(PAPERS, EDGES, out_dir, MiningConfig(seed=args.seed), progress=False)
        mine_seconds = time.perf_counter() - start

        start = time.perf_counter()
        read_back = sum(1 for _ in read_triplets(out_dir / "train.jsonl"))
        read_back += count_triplets(out_dir / "dev.jsonl")
        read_seconds = time.perf_counter() - start
        size_mb = sum((out_dir / f).stat().st_size for f in ("train.jsonl", "dev.jsonl")) / 2**20

    results = {
        "papers": report.papers_read,
        "graph_papers": report.graph_papers,
        "graph_edges": report.graph_edges,
        "heldout_excluded": report.heldout_excluded,
        "queries_total": report.queries_total,
        "queries_used": report.queries_used,
        "queries_skipped_no_text": report.queries_skipped_no_text,
        "queries_skipped_no_positives": report.queries_skipped_no_positives,
        "triplets": report.triplets,
        "hard_negatives": report.hard_negatives,
        "easy_negatives": report.easy_negatives,
        "hard_filled_with_easy": report.hard_filled_with_easy,
        "train_triplets": report.train_triplets,
        "dev_triplets": report.dev_triplets,
        "seconds": round(mine_seconds, 2),
        "read_back_seconds": round(read_seconds, 2),
        "read_back_triplets": read_back,
        "output_mb": round(size_mb, 1),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(
        f"papers {results['papers']}  queries {results['queries_used']}  triplets {results['triplets']}  "
        f"seconds {results['seconds']} (read back {read_back} in {results['read_back_seconds']} s, "
        f"{os.cpu_count()} CPUs)"
    )
    if not args.no_results:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
