"""A bounded loopback load test: a real uvicorn server of the API under 32 concurrent clients.

Search, paper lookup and batch, 2 s each, against the small tiny-model index; asserts no errors and no
5xx and prints requests/s and p50/p99 latency. The server runs in a thread of the test process (its
interpreter has torch imported already, so the test takes seconds); the clients share that process,
so the numbers are lower than a separate server's. The full-size measurement is benchmarks/serve_load.py.
"""

from __future__ import annotations

import os
import time

from servehelpers import (  # noqa: F401  (fixtures)
    N_PAPERS,
    index_folder,
    papers_file,
    serve_model_folder,
    serving_in_thread,
    tiny_encoder,
)

from sciembed.serve import PaperIndex
from sciembed.serve.app import create_app
from sciembed.serve.loadgen import corpus_sample, process_tree_cpu_s, run_load

CLIENTS = 32
SECONDS = 2.0
WORKLOADS = ("search", "lookup", "batch")


def test_concurrent_clients_get_no_errors(index_folder, tiny_encoder, capsys):
    ids, titles = corpus_sample(index_folder, N_PAPERS, seed=0)
    assert len(ids) >= N_PAPERS // 2
    lines = []
    with PaperIndex.open(index_folder) as index, serving_in_thread(create_app(index, tiny_encoder)) as base:
        started = time.monotonic()
        results = run_load(base, WORKLOADS, CLIENTS, SECONDS, ids, titles, report=lines.append)
        elapsed = time.monotonic() - started
    with capsys.disabled():
        print(f"\nloopback load test (uvicorn, tiny model, {len(ids)} papers):\n  " + "\n  ".join(lines))
    assert [r.workload for r in results] == list(WORKLOADS)
    assert elapsed < len(WORKLOADS) * SECONDS + 8  # bounded: the clients stop when the time is up
    for result in results:
        assert result.server_errors == 0, result.line()
        assert result.errors == 0, result.error_kinds
        assert result.requests >= CLIENTS, result.line()  # every client got answers
        assert 0 < result.p50_ms <= result.p99_ms


def test_open_loop_sends_at_the_offered_rate(index_folder, tiny_encoder):
    """With a rate, requests go out on a schedule (not back to back): about rate x seconds of them."""
    ids, titles = corpus_sample(index_folder, N_PAPERS, seed=0)
    with PaperIndex.open(index_folder) as index, serving_in_thread(create_app(index, tiny_encoder)) as base:
        meter = lambda: process_tree_cpu_s(os.getpid())  # noqa: E731  (the server is a thread of this process)
        (result,) = run_load(base, ("lookup",), 8, 1.5, ids, titles, report=None, rate=40.0, server_cpu=meter)
    assert result.errors == 0 and result.offered_rate == 40.0
    assert result.server_cpu_ms is not None and result.server_cpu_ms > 0  # server and clients here: both count
    assert 40 <= result.requests <= 40 * 1.5 + 8  # the schedule, plus the clients' last requests in flight


def test_process_tree_cpu_counts_children():
    """The server's CPU of benchmarks/serve_load.py: the process and its descendants (uvicorn's workers)."""
    import subprocess
    import sys

    busy = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\ntime.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", busy])
    try:
        deadline = time.monotonic() + 20
        own = process_tree_cpu_s(child.pid)
        while own < 0.3 and time.monotonic() < deadline:  # the child burns 0.3 s, then sleeps
            time.sleep(0.1)
            own = process_tree_cpu_s(child.pid)
        assert own >= 0.3
        assert process_tree_cpu_s(os.getpid()) >= own  # the child is a descendant of this process
    finally:
        child.kill()
        child.wait()
    assert process_tree_cpu_s(child.pid) is None  # gone
