"""Isolated virtual environments for libraries sciembed must interoperate with but never depend on
(AdapterHub's ``adapters`` pins its own transformers 4.x), and isolated package folders for ones the
CPU test environment lacks (Triton, for its CPU interpreter). Built once per package version and kept
under ~/.cache/sciembed-test-venvs, so later test runs only pay for starting the interpreter."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

VENVS = Path(os.environ.get("SCIEMBED_TEST_VENVS", Path.home() / ".cache" / "sciembed-test-venvs"))
# torch first and pinned: this version is the local CPU wheel; a library's own torch requirement
# would otherwise pull a multi-GB CUDA build.
TORCH = "torch==2.13.0"
COMPLETE = ".sciembed-complete"


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=1200,
    )


def _built_once(folder: Path, steps) -> None:
    """Run ``steps(folder)`` unless ``folder`` is complete; one builder at a time (two test runs at
    once build it once), a half-built folder from a killed run is removed, a failing step skips
    with its message and pip's last words."""
    VENVS.mkdir(parents=True, exist_ok=True)
    with open(VENVS / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / COMPLETE).is_file():
            return
        shutil.rmtree(folder, ignore_errors=True)
        for what, result in steps(folder):
            if result.returncode != 0:
                shutil.rmtree(folder, ignore_errors=True)
                pytest.skip(f"{what}: {result.stderr.strip()[-400:]}")
        (folder / COMPLETE).write_text(folder.name + "\n")


def isolated_venv(requirement: str) -> Path:
    """The python of a venv holding ``torch`` and ``requirement`` (e.g. ``adapters==1.3.0``), or skip."""
    folder = VENVS / requirement.replace("==", "-")
    python = folder / "bin" / "python"

    def steps(folder: Path):
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=300)
        for step in (TORCH, requirement):
            yield f"{step} cannot be installed in an isolated venv", _pip(python, step)

    _built_once(folder, steps)
    return python


def isolated_packages(requirement: str) -> Path:
    """A folder holding ``requirement`` alone (``pip install --no-deps --target``), to put on a
    subprocess's PYTHONPATH, or skip where it cannot be installed."""
    folder = VENVS / (requirement.replace("==", "-") + "-target")

    def steps(folder: Path):
        yield (
            f"{requirement} cannot be installed",
            _pip(Path(sys.executable), "--no-deps", "--target", str(folder), requirement),
        )

    _built_once(folder, steps)
    return folder


TRITON = "triton==3.6.0"  # the GPU machine's Triton (torch 2.11)
SRC = Path(__file__).resolve().parents[1] / "src"


def run_in_triton_interpreter(code: str, timeout: int = 600) -> str:
    """Run ``code`` in a fresh interpreter with TRITON set up for its CPU interpreter
    (``TRITON_INTERPRET=1``: kernels execute on CPU tensors) and sciembed importable; fails the
    test with its stderr if it exits non-zero, else returns its stdout."""
    folder = isolated_packages(TRITON)
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": os.pathsep.join([str(folder), str(SRC)])}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
