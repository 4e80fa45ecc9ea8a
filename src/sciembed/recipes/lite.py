"""sciembed-lite: the validation suite built from ``../shared/data`` (a recipe, not part of the core library).

The task list ships in the package (``recipes/tasks/sciembed_lite.jsonl``); each line names the data
``sources`` it is built from, and its ``in_training`` mark follows from them: a task is in-training
when any of its sources is one that a training mixture uses (:data:`TRAINING_SOURCES`). Supervised
tasks get ``cv_seeds`` (several shuffled grid-search folds, mean over seeds) unless the line sets it.

``build_lite`` writes a self-contained folder (default ``.cache/sciembed-lite/``,
``$SCIEMBED_LITE_DIR``): ``tasks.jsonl`` with paths relative to it, one folder per task and
``manifest.json``. Carry that folder anywhere and run ``sciembed evaluate --tasks <folder>/tasks.jsonl``
without ``../shared``. Building is deterministic (seed 42) and happens once: the manifest records the
version and the data root, and a later call reuses the folder. The folder appears only complete
(built under a temporary name, then renamed). A missing source is recorded in the manifest and its
tasks fail at evaluation time with that reason; the other tasks still build.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

from . import lite_intraining as inside
from . import lite_outside as outside
from .lite_intraining import DEFAULT_SIZES, GraphTaskSizes
from .sources import Sources, default_data_root

LITE_VERSION = 7
SEED = 42
TASKS_FILE = "tasks.jsonl"
PACKAGED_TASKS = "sciembed_lite.jsonl"
CV_SEEDS = 5
# Sources that some training mixture (stage 1 or stage 2) uses: their tasks are in-training.
TRAINING_SOURCES = frozenset({"acl", "paperscape", "arxiv", "scitldr", "ohsumed"})

# builders taking a GraphTaskSizes (the others have fixed sizes)
SIZED_BUILDERS = frozenset({"acl_year", "aan", "paperscape", "ohsumed"})
BUILDERS: dict[str, Callable[..., dict[str, Any]]] = {
    "arxiv": inside.build_arxiv,
    "acl_year": inside.build_acl_year,
    "aan": inside.build_aan,
    "scitldr": inside.build_scitldr,
    "paperscape": inside.build_paperscape,
    "fos_small": outside.build_fos,
    "mesh_small": outside.build_mesh,
    "specter_small": outside.build_specter,
    "search_small": outside.build_search,
    "iclr2021": outside.build_iclr,
    "ohsumed": inside.build_ohsumed,
    "s2orc": outside.build_s2orc,
    "keyphrase": outside.build_keyphrase,
}

__all__ = [
    "LITE_VERSION",
    "TRAINING_SOURCES",
    "build_lite",
    "default_data_root",
    "default_lite_dir",
    "packaged_task_lines",
    "suite_task_lines",
]


def default_lite_dir() -> Path:
    if os.environ.get("SCIEMBED_LITE_DIR"):
        return Path(os.environ["SCIEMBED_LITE_DIR"])
    return Path.cwd() / ".cache" / "sciembed-lite"


def packaged_task_lines() -> list[str]:
    """The task list as shipped (with ``sources``, without marks)."""
    text = resources.files("sciembed.recipes").joinpath("tasks").joinpath(PACKAGED_TASKS).read_text("utf-8")
    return [line for line in text.splitlines() if line.strip()]


def mark(task: dict[str, Any], training_sources: frozenset[str] = TRAINING_SOURCES) -> dict[str, Any]:
    """A task line with ``in_training`` from its sources and the suite's ``cv_seeds``."""
    sources = task.get("sources")
    if not sources:
        raise ValueError(f"task {task.get('name')!r}: the suite's task lines must name their 'sources'")
    out = dict(task)
    out["in_training"] = bool(set(sources) & training_sources)
    if task["type"] in ("classification", "regression"):
        out.setdefault("cv_seeds", CV_SEEDS)
    return out


def suite_task_lines() -> list[str]:
    """The ``tasks.jsonl`` lines that a built suite folder holds."""
    return [json.dumps(mark(json.loads(line)), ensure_ascii=False) for line in packaged_task_lines()]


def _reusable(out: Path, root: Path, sizes: GraphTaskSizes | None) -> bool:
    manifest_path = out / "manifest.json"
    if not (manifest_path.is_file() and (out / TASKS_FILE).is_file()):
        return False
    manifest = json.loads(manifest_path.read_text())
    built_sizes = manifest.get("sizes", asdict(DEFAULT_SIZES))  # older manifests: the default sizes
    same_data = manifest.get("version") == LITE_VERSION and manifest.get("data_root") == str(root.resolve())
    return same_data and (sizes is None or built_sizes == asdict(sizes))


def build_lite(
    data_root: str | Path | None = None,
    out_dir: str | Path | None = None,
    force: bool = False,
    log: Callable[[str], None] | None = None,
    sizes: GraphTaskSizes | None = None,
) -> Path:
    """Build (or reuse) the sciembed-lite folder; returns the path of its ``tasks.jsonl``.

    ``sizes``: how many papers the in-training graph tasks take; None: reuse a folder whatever sizes
    built it, build with the defaults (a folder built with other explicit sizes is rebuilt)."""
    sizes_given = sizes
    sizes = sizes or DEFAULT_SIZES
    root = Path(data_root) if data_root is not None else default_data_root()
    out = Path(out_dir) if out_dir is not None else default_lite_dir()
    lines = suite_task_lines()
    if not force and _reusable(out, root, sizes_given):
        (out / TASKS_FILE).write_text("\n".join(lines) + "\n")  # keep the task list current
        return out / TASKS_FILE
    work = out.with_name(f".{out.name}.building-{os.getpid()}")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    manifest: dict[str, Any] = {
        "version": LITE_VERSION,
        "data_root": str(root.resolve()),
        "seed": SEED,
        "training_sources": sorted(TRAINING_SOURCES),
        "sizes": asdict(sizes),
        "built": {},
        "failed": {},
    }
    start = time.perf_counter()
    src = Sources(root)
    for name, builder in BUILDERS.items():
        if name in SIZED_BUILDERS:
            builder = partial(builder, sizes=sizes)
        try:
            manifest["built"].update(builder(src, work))
        except (OSError, ValueError, KeyError) as exc:
            manifest["failed"][name] = f"{type(exc).__name__}: {exc}"
            if log:
                log(f"sciembed-lite: could not build {name}: {exc}")
    manifest["build_s"] = round(time.perf_counter() - start, 2)
    (work / TASKS_FILE).write_text("\n".join(lines) + "\n")
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(work, out)
    return out / TASKS_FILE
