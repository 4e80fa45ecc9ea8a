"""A loopback load generator for `sciembed serve`: many concurrent keep-alive clients for a fixed time.

Used by ``benchmarks/serve_load.py`` (long runs on a large index) and ``tests/serve/test_load.py``
(a bounded run in CI). One workload at a time: ``clients`` asyncio tasks share one httpx connection
pool and send requests back to back until the time is up (closed loop: with 32 clients, mean latency =
32 / throughput), or, with ``rate``, at a fixed total rate spread evenly over the clients (open loop:
each request has a scheduled time and its latency counts from then, so a server that falls behind
shows its queueing delay instead of slowing the clients down). Every answer that is not a 200 (and
every transport error) counts as an error, 5xx answers are also counted on their own.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

WORKLOADS = ("search", "search_uncached", "lookup", "batch")
QUERY_POOL = 256  # distinct queries of the `search` workload: repeated, as real queries are
BATCH_IDS = 100
WARMUP_REQUESTS = 3


@dataclass(frozen=True)
class LoadResult:
    workload: str
    clients: int
    seconds: float
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-200 answers + transport errors
    server_errors: int  # 5xx answers
    error_kinds: dict[str, int] = field(default_factory=dict)
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)  # os.getloadavg() when the workload ended
    offered_rate: float | None = None  # requests/s asked for (open loop), None: back to back

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return (
            f"{self.workload}: {self.requests_per_s:.1f} req/s, p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, "
            f"{self.errors} errors ({self.server_errors} 5xx), {self.requests} requests, {self.clients} clients, "
            f"{self.seconds:.1f} s, load average {self.load_average[0]:.1f}"
            + (f", offered {self.offered_rate:g} req/s" if self.offered_rate else "")
        )


def corpus_sample(index_folder: Path, n: int, seed: int) -> tuple[list[str], list[str]]:
    """(paper ids, titles) of up to ``n`` random indexed papers, read-only from the index's SQLite."""
    db = sqlite3.connect(f"file:{Path(index_folder) / 'papers.sqlite'}?mode=ro", uri=True)
    try:
        total = db.execute("SELECT MAX(row_id) FROM papers").fetchone()[0] or 0
        rng = random.Random(seed)
        wanted = sorted(rng.sample(range(total + 1), min(total + 1, 4 * n)))  # cheaper than ORDER BY random()
        rows = []
        for start in range(0, len(wanted), 900):
            chunk = wanted[start : start + 900]
            marks = ",".join("?" * len(chunk))
            rows += db.execute(
                f"SELECT paper_id, title FROM papers WHERE title IS NOT NULL AND row_id IN ({marks})", chunk
            ).fetchall()
    finally:
        db.close()
    rng.shuffle(rows)
    rows = rows[:n]
    return [r[0] for r in rows], [r[1] for r in rows]


def request_maker(workload: str, ids: Sequence[str], titles: Sequence[str], rng: random.Random) -> Callable:
    """A function (httpx.AsyncClient) -> awaitable response for one request of ``workload``."""
    counter = iter(range(10**12))
    pool = list(titles[:QUERY_POOL])
    ids = list(ids)
    if workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {', '.join(WORKLOADS)}; got {workload!r}")

    def make(client):
        if workload == "search":
            return client.get("/graph/v1/paper/search", params={"query": rng.choice(pool), "limit": 10})
        if workload == "search_uncached":  # unique text: every query runs the query encoder
            query = f"{rng.choice(titles)} {next(counter)}"
            return client.get("/graph/v1/paper/search", params={"query": query, "limit": 10})
        if workload == "lookup":
            return client.get(f"/graph/v1/paper/{rng.choice(ids)}", params={"fields": "title,year,abstract"})
        return client.post(
            "/graph/v1/paper/batch",
            params={"fields": "title,year"},
            json={"ids": rng.sample(ids, min(BATCH_IDS, len(ids)))},
        )

    return make


async def run_workload(
    base: str, workload: str, clients: int, seconds: float, ids, titles, seed: int = 0, rate: float | None = None
) -> LoadResult:
    import httpx

    make = request_maker(workload, ids, titles, random.Random(seed))
    latencies: list[float] = []
    errors: dict[str, int] = {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        for _ in range(WARMUP_REQUESTS):  # the first call of each kind builds lazy state (model, caches)
            await make(client)
        if workload == "search":  # every pool query once, so the timed run measures cached queries
            gate = asyncio.Semaphore(clients)

            async def once(query: str) -> None:
                async with gate:
                    await client.get("/graph/v1/paper/search", params={"query": query, "limit": 10})

            await asyncio.gather(*(once(q) for q in dict.fromkeys(titles[:QUERY_POOL])))
        stop = time.monotonic() + seconds

        began_at = time.perf_counter()

        async def worker(slot: int) -> None:
            sent = 0
            while time.monotonic() < stop:
                started = time.perf_counter()
                if rate:  # this client's n-th request is due at (n * clients + slot) / rate
                    due = began_at + (sent * clients + slot) / rate
                    sent += 1
                    if due > started:
                        await asyncio.sleep(due - started)
                    started = due
                try:
                    response = await make(client)
                    key = None if response.status_code == 200 else str(response.status_code)
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                latencies.append(time.perf_counter() - started)
                if key is not None:
                    errors[key] = errors.get(key, 0) + 1

        began = time.monotonic()
        await asyncio.gather(*(worker(slot) for slot in range(clients)))
        elapsed = time.monotonic() - began
    ms = np.asarray(latencies or [float("nan")]) * 1000
    return LoadResult(
        workload=workload,
        clients=clients,
        seconds=round(elapsed, 2),
        requests=len(latencies),
        requests_per_s=round(len(latencies) / elapsed, 1),
        p50_ms=round(float(np.percentile(ms, 50)), 2),
        p99_ms=round(float(np.percentile(ms, 99)), 2),
        errors=sum(errors.values()),
        server_errors=sum(n for k, n in errors.items() if k.startswith("5")),
        error_kinds=errors,
        load_average=tuple(round(x, 2) for x in os.getloadavg()),
        offered_rate=rate,
    )


def run_load(
    base: str,
    workloads: Sequence[str],
    clients: int,
    seconds: float,
    ids,
    titles,
    seed: int = 0,
    report=print,
    rate: float | None = None,
) -> list[LoadResult]:
    """Each workload in turn; ``report`` gets each result's one-line summary as it finishes."""
    results = []
    for workload in workloads:
        result = asyncio.run(run_workload(base, workload, clients, seconds, ids, titles, seed, rate))
        if report is not None:
            report(result.line())
        results.append(result)
    return results
