"""Concurrency, interruption and a full disk with real ``python -m sciembed embed`` processes (issue 12).

A process is frozen with SIGSTOP while it holds the output's lock, so "a second process arrives while
the first is writing" happens every time, not by luck of timing.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sciembed.embed import embed_file
from sciembed.model import load_model

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
CHUNK, BATCH = 20, 4


def write_papers(path: Path, n: int) -> Path:
    with open(path, "w") as handle:
        for i in range(n):
            handle.write(
                json.dumps({"paper_id": f"id{i}", "title": f"Paper {i}", "abstract": f"word{i} " * 150}) + "\n"
            )
    return path


def command(src: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sciembed", "embed", str(src), str(out), "--model", str(model),
            "--chunk-size", str(CHUNK), "--batch-size", str(BATCH), "--device", "cpu", *extra]  # fmt: skip


def clean_run(src: Path, out: Path, model: Path, format: str = "proximity") -> pq.Table:
    embed_file(load_model(model), src, out, format=format, chunk_size=CHUNK, batch_size=BATCH, device="cpu",
               show_progress=False)  # fmt: skip
    return pq.read_table(out)


def wait_for(condition, what: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def lock_owner(out: Path) -> str:
    try:
        return (out.parent / f".{out.name}.lock").read_text().strip()
    except FileNotFoundError:
        return ""


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error")]


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".lock")]


def test_a_second_writer_is_refused_while_the_first_writes(tmp_path, tiny_model_folder):
    src = write_papers(tmp_path / "p.jsonl", 200)
    out = tmp_path / "out.parquet"
    first = subprocess.Popen(command(src, out, tiny_model_folder), env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_for(lambda: lock_owner(out) == str(first.pid) or first.poll() is not None, "the first writer's lock")
        os.kill(first.pid, signal.SIGSTOP)
        second = subprocess.run(command(src, out, tiny_model_folder, "--format", "classification"), env=ENV,
                                capture_output=True, text=True, timeout=300)  # fmt: skip
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert second.returncode == 2, second.stderr
    assert error_lines(second.stderr) == [f"error: {out}: in use by pid {first.pid} "
                                          "(another job writes this output; wait for it or pick another)"]  # fmt: skip
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert pq.read_table(out).equals(clean_run(src, tmp_path / "clean.parquet", tiny_model_folder))
    assert not leftovers(tmp_path) and not (tmp_path / "out.parquet.parts").exists()


def test_ctrl_c_then_two_resumers_give_the_uninterrupted_file(tmp_path, tiny_model_folder):
    src = write_papers(tmp_path / "p.jsonl", 300)
    out = tmp_path / "out.parquet"
    parts = tmp_path / "out.parquet.parts"
    job = subprocess.Popen(command(src, out, tiny_model_folder), env=ENV, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)  # fmt: skip
    wait_for(lambda: len(list(parts.glob("part-*.parquet"))) >= 2 or job.poll() is not None, "two finished parts")
    job.send_signal(signal.SIGINT)
    _, stderr = job.communicate(timeout=120)
    assert job.returncode == 130, stderr
    assert error_lines(stderr) == [
        "error: interrupted (Ctrl-C); finished work is kept: run the same command again to resume"
    ]
    assert not out.exists()

    resumer = subprocess.Popen(command(src, out, tiny_model_folder), env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_for(lambda: lock_owner(out) == str(resumer.pid) or resumer.poll() is not None, "the resumer's lock")
        os.kill(resumer.pid, signal.SIGSTOP)
        other = subprocess.run(command(src, out, tiny_model_folder), env=ENV, capture_output=True, text=True,
                               timeout=300)  # fmt: skip
    finally:
        os.kill(resumer.pid, signal.SIGCONT)
    assert other.returncode == 2 and f"in use by pid {resumer.pid}" in other.stderr, other.stderr
    stdout, stderr = resumer.communicate(timeout=300)
    assert resumer.returncode == 0, stderr
    assert "resumed: " in stdout and "wrote 300 embeddings" in stdout
    assert pq.read_table(out).equals(clean_run(src, tmp_path / "clean.parquet", tiny_model_folder))
    assert not leftovers(tmp_path) and not parts.exists()


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"), reason="no file size limits on this platform")
def test_a_full_disk_leaves_no_partial_file_and_the_rerun_completes(tmp_path, tiny_model_folder):
    src = write_papers(tmp_path / "p.jsonl", 100)
    out = tmp_path / "out.parquet"
    # Parts (20 rows) fit under the limit; the final file (100 rows) does not: it fails at the end.
    limited = subprocess.run(command(src, out, tiny_model_folder), env=ENV, capture_output=True, text=True,
                             timeout=300, preexec_fn=_limit_file_size(12_000))  # fmt: skip
    assert limited.returncode == 2, limited.stderr
    (line,) = error_lines(limited.stderr)
    assert line.startswith(f"error: {out}: cannot write: file too large"), line
    assert not out.exists() and not leftovers(tmp_path)
    assert len(list((tmp_path / "out.parquet.parts").glob("part-*.parquet"))) == 5  # kept for the rerun
    rerun = subprocess.run(command(src, out, tiny_model_folder), env=ENV, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed: 5 finished chunks kept" in rerun.stdout
    assert pq.read_table(out).equals(clean_run(src, tmp_path / "clean.parquet", tiny_model_folder))
