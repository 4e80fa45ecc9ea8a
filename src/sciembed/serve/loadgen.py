"""A loopback load generator for `sciembed serve`: many concurrent keep-alive clients for a fixed time.

Used by ``benchmarks/serve_load.py`` (long runs on a large index) and ``tests/serve/test_load.py`` (a bounded run in
CI). One workload at a time: ``clients`` asyncio tasks, each with its own keep-alive connection (a minimal
HTTP/1.1 client, or one shared httpx pool), send requests back to back until the time is up (closed loop: with
32 clients, mean latency = 32 / throughput), or, with ``rate``, at a fixed total rate spread evenly over the
clients (open loop: each request has a scheduled time and its latency counts from then, so a server that falls
behind shows its queueing delay instead of slowing the clients down). Every answer that is not a 200 (and
every transport error) counts as an error, 5xx answers are also counted on their own.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

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
    transport: str = "raw"
    # CPU seconds the server's processes spent during the timed run, per request, in ms (None: not measured).
    # On a shared machine it moves much less with the other jobs than latency does.
    server_cpu_ms: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return (
            f"{self.workload}: {self.requests_per_s:.1f} req/s, p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, "
            f"{self.errors} errors ({self.server_errors} 5xx), {self.requests} requests, {self.clients} clients, "
            f"{self.seconds:.1f} s, load average {self.load_average[0]:.1f}"
            + (f", offered {self.offered_rate:g} req/s" if self.offered_rate else "")
            + (f", server CPU {self.server_cpu_ms:.2f} ms/request" if self.server_cpu_ms is not None else "")
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


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # path and query string
    body: bytes | None = None  # JSON


def _get(path: str, params: dict) -> Request:
    return Request("GET", f"{path}?{urlencode(params)}")


def request_maker(workload: str, ids: Sequence[str], titles: Sequence[str], rng: random.Random) -> Callable:
    """A function () -> :class:`Request`, one request of ``workload`` per call."""
    counter = iter(range(10**12))
    pool = list(titles[:QUERY_POOL])
    ids = list(ids)
    if workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {', '.join(WORKLOADS)}; got {workload!r}")

    def make() -> Request:
        if workload == "search":
            return _get("/graph/v1/paper/search", {"query": rng.choice(pool), "limit": 10})
        if workload == "search_uncached":  # unique text: every query runs the query encoder
            return _get("/graph/v1/paper/search", {"query": f"{rng.choice(titles)} {next(counter)}", "limit": 10})
        if workload == "lookup":
            return _get(f"/graph/v1/paper/{quote(rng.choice(ids), safe='/:')}", {"fields": "title,year,abstract"})
        body = json.dumps({"ids": rng.sample(ids, min(BATCH_IDS, len(ids)))}).encode()
        return Request("POST", f"/graph/v1/paper/batch?{urlencode({'fields': 'title,year'})}", body)

    return make


class RawConnection:
    """One keep-alive HTTP/1.1 connection, spoken directly over asyncio streams.

    A request costs the load generator about a tenth of a millisecond of CPU this way, against several
    with httpx (measured: httpx took about as much CPU per request as the server answering it), so on a
    2-core machine the generator leaves the cores to the server it measures. Reads ``Content-Length``
    or chunked bodies.
    """

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, request: Request) -> int:
        reused = self.writer is not None
        try:
            return await self._send(request)
        except asyncio.IncompleteReadError as exc:
            if not reused or exc.partial:
                raise
            # the server closed the idle keep-alive connection (uvicorn: after 5 s) before it saw the
            # request: send it again on a new one, as HTTP clients do
            return await self._send(request)

    async def _send(self, request: Request) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"{request.method} {request.target} HTTP/1.1\r\nHost: {self.host}\r\n"
        if request.body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(request.body)}\r\n"
        self.writer.write(head.encode("latin-1") + b"\r\n" + (request.body or b""))
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
            if "content-length" in headers:
                await self.reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding") == "chunked":
                while size := int((await self.reader.readuntil(b"\r\n")).strip(), 16):
                    await self.reader.readexactly(size + 2)
                await self.reader.readuntil(b"\r\n")
            if headers.get("connection") == "close":
                await self.close()
            return status
        except BaseException:
            await self.close()  # the connection's state is unknown: the next request opens a new one
            raise

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def run_workload(
    base: str,
    workload: str,
    clients: int,
    seconds: float,
    ids,
    titles,
    seed: int = 0,
    rate: float | None = None,
    transport: str = "raw",
    warm_every_connection: bool = False,
    server_cpu: Callable[[], float | None] | None = None,
) -> LoadResult:
    """``transport``: ``raw`` (:class:`RawConnection`, one per client) or ``httpx`` (one shared pool).
    ``warm_every_connection``: before a ``search`` run, every connection sends every pool query (each
    server worker process has its own query cache and keeps the connections it accepted); otherwise
    each pool query is sent once. ``server_cpu``: the server's CPU seconds so far (e.g.
    :func:`process_tree_cpu_s`), read before and after the timed run."""
    import httpx

    make = request_maker(workload, ids, titles, random.Random(seed))
    latencies: list[float] = []
    errors: dict[str, int] = {}
    url = urlsplit(base)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        connections = [RawConnection(url.hostname, url.port) for _ in range(clients)]

        async def send(slot: int, request: Request) -> int:
            if transport == "raw":
                return await asyncio.wait_for(connections[slot].send(request), 60)
            response = await client.request(request.method, request.target, content=request.body)
            return response.status_code

        for _ in range(WARMUP_REQUESTS):  # the first call of each kind builds lazy state (model, caches)
            await send(0, make())
        if workload == "search":  # every pool query once, so the timed run measures cached queries
            pool = [
                _get("/graph/v1/paper/search", {"query": q, "limit": 10}) for q in dict.fromkeys(titles[:QUERY_POOL])
            ]
            queue: asyncio.Queue = asyncio.Queue()
            for request in pool:
                queue.put_nowait(request)

            async def warm(slot: int) -> None:
                while not queue.empty():
                    await send(slot, queue.get_nowait())
                if warm_every_connection:  # rotated, so the workers' first misses are spread and batched
                    for request in pool[slot:] + pool[:slot]:
                        await send(slot, request)

            await asyncio.gather(*(warm(slot) for slot in range(clients)))
        cpu_before = server_cpu() if server_cpu is not None else None
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
                    status = await send(slot, make())
                    key = None if status == 200 else str(status)
                except (httpx.HTTPError, OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
                    key = type(exc).__name__
                latencies.append(time.perf_counter() - started)
                if key is not None:
                    errors[key] = errors.get(key, 0) + 1

        began = time.monotonic()
        await asyncio.gather(*(worker(slot) for slot in range(clients)))
        elapsed = time.monotonic() - began
        cpu_after = server_cpu() if server_cpu is not None else None
        for connection in connections:
            await connection.close()
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
        transport=transport,
        server_cpu_ms=(
            round(1000 * (cpu_after - cpu_before) / max(1, len(latencies)), 3)
            if cpu_before is not None and cpu_after is not None
            else None
        ),
    )


def process_tree_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` and its descendants (e.g. uvicorn's supervisor and its
    worker processes), from Linux's /proc; None where there is no /proc."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return None
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        parents[int(entry)], ticks[int(entry)] = int(fields[1]), int(fields[11]) + int(fields[12])
    if pid not in ticks:
        return None
    tree, frontier = {pid}, [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier and child not in tree]
        tree.update(children)
        frontier = children
    return sum(ticks[p] for p in tree) / os.sysconf("SC_CLK_TCK")


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
    transport: str = "raw",
    warm_every_connection: bool = False,
    server_cpu: Callable[[], float | None] | None = None,
) -> list[LoadResult]:
    """Each workload in turn; ``report`` gets each result's one-line summary as it finishes."""
    results = []
    for workload in workloads:
        result = asyncio.run(
            run_workload(
                base, workload, clients, seconds, ids, titles, seed, rate, transport, warm_every_connection, server_cpu
            )
        )
        if report is not None:
            report(result.line())
        results.append(result)
    return results
