"""Whether an evaluation run produced anything: a run where nothing could be scored must not exit 0."""

from __future__ import annotations

from typing import Any


def evaluation_failure(report: dict[str, Any]) -> str | None:
    """Why ``report`` (of :func:`run_benchmark`) is a failure: a model that could not be loaded, or a
    model for which every task failed or was skipped. None when every model scored something."""
    models = report.get("models", [])
    if not models:
        return "no model was evaluated"
    failed = [m for m in models if m.get("status") != "ok"]
    if failed:
        more = f" (and {len(failed) - 1} more models)" if len(failed) > 1 else ""
        return f"model {failed[0].get('name')!r} could not be loaded: {failed[0].get('reason')}{more}"
    for model in models:
        tasks = model.get("tasks") or {}
        if not any(result.get("status") == "ok" for result in tasks.values()):
            first = next(iter(tasks.items()), None)
            detail = f" (first: {first[0]}: {first[1].get('reason')})" if first else " (no tasks)"
            return f"model {model.get('name')!r}: no task could be evaluated{detail}"
    return None
