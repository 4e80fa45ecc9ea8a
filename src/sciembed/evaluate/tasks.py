"""Resolve a ``--tasks`` argument: ``lite`` (the sciembed-lite suite, built from ../shared/data on first
use), a built suite folder, or a task file."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path

from .registry import TaskSpec, read_task_file, select_tasks

LITE_NAMES = ("lite", "sciembed-lite")
TASKS_FILE = "tasks.jsonl"
# The one hook into the recipes package: a named suite is built by its recipe (evaluate never
# imports recipes otherwise; a built folder or task file needs nothing but this package).
LITE_RECIPE = "sciembed.recipes.lite"


def build_named_suite(
    data_root: str | Path | None = None,
    lite_dir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Build (or reuse) sciembed-lite through its recipe; returns its ``tasks.jsonl``."""
    recipe = import_module(LITE_RECIPE)
    return recipe.build_lite(data_root=data_root, out_dir=lite_dir, log=log)


def resolve_task_file(
    spec: str | Path = "lite",
    data_root: str | Path | None = None,
    lite_dir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    if str(spec).lower() in LITE_NAMES:
        return build_named_suite(data_root, lite_dir, log)
    path = Path(spec)
    return path / TASKS_FILE if path.is_dir() else path


def load_tasks(
    spec: str | Path = "lite",
    names: list[str] | None = None,
    data_root: str | Path | None = None,
    lite_dir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> list[TaskSpec]:
    """The tasks of ``spec`` (``lite``, a built suite folder or a ``scirepeval_tasks.jsonl``-style file),
    optionally only those in ``names``."""
    return select_tasks(read_task_file(resolve_task_file(spec, data_root, lite_dir, log)), names)
