"""Serving-test helpers and fixtures (test modules import the fixtures; a conftest here would shadow the root one).

A small real-text index, built with the tiny random model through `sciembed index build`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faiss")
pytest.importorskip("fastapi")

from typer.testing import CliRunner  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample" / "scisummnet-sample.jsonl"
N_PAPERS = 60
FIELDS = ("Computational Linguistics", "Machine Learning", "Information Retrieval")


def corpus_records() -> list[dict]:
    """Real ACL titles/abstracts (the sample shipped in the repo) plus ids of the shapes S2 accepts."""
    records = []
    with open(SAMPLE) as handle:
        for i, line in enumerate(handle):
            if i == N_PAPERS:
                break
            raw = json.loads(line)
            record = {
                "paper_id": raw["acl_id"],
                "title": raw["title"],
                "abstract": raw["abstract"],
                "year": 1995 + i % 20,
                "fields_of_study": [FIELDS[i % 3]],
                "authors": [f"Author {i}", "Second Author"],
                "doi": f"10.18653/v1/{raw['acl_id']}",
                "venue": "ACL",
            }
            records.append(record)
    records[0]["paper_id"] = "hep-th/9601001"  # an old-style arXiv id: a slash in the path
    return records


@pytest.fixture(scope="session")
def papers_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("papers") / "papers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in corpus_records()))
    return path


@pytest.fixture(scope="session")
def serve_model_folder(tmp_path_factory) -> Path:
    """The tiny random model with mean pooling: its CLS vectors are all alike, mean-pooled ones rank."""
    from conftest import make_tiny_model

    from sciembed.model import save_model

    folder = tmp_path_factory.mktemp("models") / "tiny-mean"
    save_model(make_tiny_model(pooling="mean", formats=("proximity", "classification", "adhoc_query")), folder)
    return folder


@pytest.fixture(scope="session")
def index_folder(tmp_path_factory, serve_model_folder, papers_file) -> Path:
    from sciembed.cli import app

    out = tmp_path_factory.mktemp("index") / "idx"
    result = CliRunner().invoke(
        app,
        ["index", "build", str(papers_file), str(out), "--model", str(serve_model_folder), "--chunk-size", "25"],
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def tiny_encoder(serve_model_folder):
    import sciembed

    return sciembed.load(str(serve_model_folder))


def make_client(index_folder, encoder, **config):
    from fastapi.testclient import TestClient

    from sciembed.serve import PaperIndex
    from sciembed.serve.app import ServeConfig, create_app

    index = PaperIndex.open(index_folder)
    return TestClient(create_app(index, encoder, ServeConfig(**config)))


@pytest.fixture(scope="session")
def client(index_folder, tiny_encoder):
    with make_client(index_folder, tiny_encoder) as test_client:
        yield test_client


def exact_neighbours(index_folder, query: np.ndarray, k: int) -> list[str]:
    from sciembed.serve import PaperIndex

    index = PaperIndex.open(index_folder)
    try:
        rows = list(range(index.store.max_row_id() + 1))
        stored = index.vectors("proximity", rows)
        matrix = np.stack([stored[r] for r in rows])
        matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
        order = np.argsort(-(matrix @ (query / np.linalg.norm(query))), kind="stable")[:k]
        records = index.get_rows([rows[i] for i in order])
        return [r["paper_id"] for r in records]
    finally:
        index.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving_in_thread(app, timeout: float = 30.0):
    """A real uvicorn server for ``app`` on a free loopback port, in a thread of this process (no second
    interpreter to start, so a test does not wait for torch to import again); yields its base URL."""
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def running_server(index_folder: Path, model_folder: Path, *extra: str, key: str | None = None):
    """`sciembed serve` as a real uvicorn process on a free loopback port; yields its base URL."""
    import httpx

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    command = [sys.executable, "-m", "sciembed", "serve", str(index_folder), "--port", str(port)]
    command += ["--model", str(model_folder), *extra]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    headers = {"x-api-key": key} if key else {}
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                if httpx.get(f"{base}/health", headers=headers, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.3)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
