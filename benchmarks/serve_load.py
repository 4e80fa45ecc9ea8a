"""Loopback load test of `sciembed serve`: many concurrent clients for a fixed time per endpoint.

    python benchmarks/serve_load.py --index runs/demo-index [--clients 32] [--seconds 20] [--out benchmarks/results]

Starts the real service (uvicorn, one process) on a free loopback port, then for each workload runs
``--clients`` concurrent HTTP/1.1 keep-alive clients (asyncio + httpx, in this process) for
``--seconds`` and reports requests/s, p50/p99 latency and errors (any non-200 answer or transport
error). Workloads:

* ``search``: `GET /graph/v1/paper/search` with real paper titles as queries from a pool of 256
  (after the first round they are answered from the service's query-embedding cache, as repeated
  queries are in practice);
* ``search_uncached``: every query unique (title + a counter), so each one runs the query encoder;
* ``lookup``: `GET /graph/v1/paper/{id}?fields=title,year,abstract` for random ids;
* ``batch``: `POST /graph/v1/paper/batch` with 100 random ids, fields title,year.

The load generator shares the machine's cores with the server; that is part of what is measured.
Writes ``serve_load.json`` and ``serve_load.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(index: Path, model: str | None, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    command = [sys.executable, "-m", "sciembed", "serve", str(index), "--port", str(port)]
    if model:
        command += ["--model", model]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited: {server.stdout.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    server.terminate()
    raise RuntimeError("server did not start within 300 s")


def corpus_sample(index: Path, n: int, seed: int) -> tuple[list[str], list[str]]:
    """(paper ids, titles) of random indexed papers, read straight from the index's SQLite."""
    import sqlite3

    db = sqlite3.connect(f"file:{index / 'papers.sqlite'}?mode=ro", uri=True)
    rows = db.execute("SELECT paper_id, title FROM papers WHERE title IS NOT NULL ORDER BY random() LIMIT ?", (n,))
    rows = rows.fetchall()
    db.close()
    random.Random(seed).shuffle(rows)
    return [r[0] for r in rows], [r[1] for r in rows]


def request_maker(workload: str, ids: list[str], titles: list[str], rng: random.Random):
    counter = iter(range(10**9))
    pool = titles[:256]

    def make(client: httpx.AsyncClient):
        if workload == "search":
            return client.get("/graph/v1/paper/search", params={"query": rng.choice(pool), "limit": 10})
        if workload == "search_uncached":
            query = f"{rng.choice(titles)} {next(counter)}"
            return client.get("/graph/v1/paper/search", params={"query": query, "limit": 10})
        if workload == "lookup":
            paper_id = rng.choice(ids)
            return client.get(f"/graph/v1/paper/{paper_id}", params={"fields": "title,year,abstract"})
        if workload == "batch":
            return client.post(
                "/graph/v1/paper/batch", params={"fields": "title,year"}, json={"ids": rng.sample(ids, 100)}
            )
        raise ValueError(workload)

    return make


async def run_workload(base: str, workload: str, clients: int, seconds: float, ids, titles, seed: int) -> dict:
    make = request_maker(workload, ids, titles, random.Random(seed))
    latencies: list[float] = []
    errors: dict[str, int] = {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        for _ in range(3):  # warm up: the first call of each kind loads lazily built state (model, caches)
            await make(client)
        stop = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < stop:
                started = time.perf_counter()
                try:
                    response = await make(client)
                    ok = response.status_code == 200
                    key = None if ok else str(response.status_code)
                except httpx.HTTPError as exc:
                    ok, key = False, type(exc).__name__
                latencies.append(time.perf_counter() - started)
                if not ok:
                    errors[key] = errors.get(key, 0) + 1

        began = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.monotonic() - began
    ms = np.asarray(latencies) * 1000
    return {
        "workload": workload,
        "clients": clients,
        "seconds": round(elapsed, 2),
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "errors": sum(errors.values()),
        "error_kinds": errors,
    }


def markdown(results: list[dict], meta: dict) -> str:
    lines = [
        f"Loopback load test, {meta['date']}, {meta['device']}; index {meta['index']} ({meta['papers']} papers, "
        f"{meta['kind']}); `{meta['command']}`",
        "",
        "| workload | clients | requests/s | p50 ms | p99 ms | errors | requests |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['workload']} | {r['clients']} | {r['requests_per_s']} | {r['p50_ms']} | {r['p99_ms']} | "
            f"{r['errors']} | {r['requests']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--model", default=None)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workloads", default="search,search_uncached,lookup,batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    ids, titles = corpus_sample(args.index, 5000, args.seed)
    port = free_port()
    server = start_server(args.index, args.model, port)
    base = f"http://127.0.0.1:{port}"
    try:
        health = httpx.get(f"{base}/health").json()
        results = []
        for workload in args.workloads.split(","):
            result = asyncio.run(run_workload(base, workload, args.clients, args.seconds, ids, titles, args.seed))
            print(json.dumps(result), flush=True)
            results.append(result)
    finally:
        server.terminate()
        server.wait(timeout=30)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "index": str(args.index),
        "papers": health["papers"],
        "kind": health["kind"],
        "command": "python " + " ".join(sys.argv),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve_load.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    (args.out / "serve_load.md").write_text(markdown(results, meta))
    print(markdown(results, meta))


if __name__ == "__main__":
    main()
