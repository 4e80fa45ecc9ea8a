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
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from sciembed.serve.loadgen import corpus_sample, process_tree_cpu_s, run_load  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    index: Path, model: str | None, port: int, workers: int = 1, fast_path: bool = True
) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    command = [sys.executable, "-m", "sciembed", "serve", str(index), "--port", str(port), "--workers", str(workers)]
    if model:
        command += ["--model", model]
    if not fast_path:
        command += ["--no-fast-path"]
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


def markdown(results: list[dict], meta: dict) -> str:
    lines = [
        f"Loopback load test, {meta['date']}, {meta['device']}; index {meta['index']} ({meta['papers']} papers, "
        f"{meta['kind']}), {meta.get('workers', 1)} server worker(s), "
        f"fast path {'on' if meta.get('fast_path', True) else 'off'}; `{meta['command']}`",
        "",
        "| workload | clients | offered req/s | requests/s | p50 ms | p99 ms | errors | requests "
        "| server CPU ms/request | load average 1/5/15 min | client |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        offered = r.get("offered_rate") or "closed loop"
        lines.append(
            f"| {r['workload']} | {r['clients']} | {offered} | {r['requests_per_s']} | {r['p50_ms']} | {r['p99_ms']} | "
            f"{r['errors']} | {r['requests']} | {r.get('server_cpu_ms')} | "
            f"{' / '.join(str(x) for x in r['load_average'])} | {r['transport']} |"
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
    parser.add_argument("--workers", type=int, default=1, help="`sciembed serve --workers`")
    parser.add_argument("--rates", default="", help="also run open loop at these total requests/s (comma-separated)")
    parser.add_argument("--rate-workloads", default="search", help="the workloads of the open-loop runs")
    parser.add_argument("--transport", default="raw", choices=("raw", "httpx"), help="the load generator's client")
    parser.add_argument("--no-fast-path", action="store_true", help="`sciembed serve --no-fast-path` (FastAPI only)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    ids, titles = corpus_sample(args.index, 5000, args.seed)
    port = free_port()
    server = start_server(args.index, args.model, port, args.workers, fast_path=not args.no_fast_path)
    base = f"http://127.0.0.1:{port}"
    try:
        health = httpx.get(f"{base}/health").json()
        common = dict(
            transport=args.transport,
            warm_every_connection=args.workers > 1,
            server_cpu=lambda: process_tree_cpu_s(server.pid),
        )
        loads = run_load(base, args.workloads.split(","), args.clients, args.seconds, ids, titles, args.seed, **common)
        for rate in [float(r) for r in args.rates.split(",") if r]:
            paced = args.rate_workloads.split(",")
            loads += run_load(base, paced, args.clients, args.seconds, ids, titles, args.seed, rate=rate, **common)
        results = [r.to_dict() for r in loads]
    finally:
        server.terminate()
        server.wait(timeout=30)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "index": str(args.index),
        "papers": health["papers"],
        "kind": health["kind"],
        "workers": args.workers,
        "fast_path": not args.no_fast_path,
        "command": "python " + " ".join(sys.argv),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve_load.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    (args.out / "serve_load.md").write_text(markdown(results, meta))
    print(markdown(results, meta))


if __name__ == "__main__":
    main()
