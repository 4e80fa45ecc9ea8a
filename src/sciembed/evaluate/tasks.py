"""Resolve a ``--tasks`` argument: ``lite`` (built from ../shared/data on first use) or a task file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .lite_build import build_lite
from .registry import TaskSpec, read_task_file, select_tasks

LITE_NAMES = ("lite", "sciembed-lite")


def load_tasks(
    spec: str | Path = "lite",
    names: list[str] | None = None,
    data_root: str | Path | None = None,
    lite_dir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> list[TaskSpec]:
    """The tasks of ``spec`` (``lite`` or a path to a ``scirepeval_tasks.jsonl``-style file), optionally
    only those in ``names``."""
    if str(spec).lower() in LITE_NAMES:
        path = build_lite(data_root=data_root, out_dir=lite_dir, log=log)
    else:
        path = Path(spec)
    return select_tasks(read_task_file(path), names)
