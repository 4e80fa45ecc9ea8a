"""Whether an evaluation run produced anything: a run where nothing could be scored must not exit 0."""

from __future__ import annotations

from .results import SuiteResult


def evaluation_failure(report: SuiteResult) -> str | None:
    """Why ``report`` (of :func:`run_benchmark`) is a failure: a model that could not be loaded, or a
    model for which every task failed or was skipped. None when every model scored something."""
    if not report.models:
        return "no model was evaluated"
    failed = [m for m in report.models if not m.ok]
    if failed:
        more = f" (and {len(failed) - 1} more models)" if len(failed) > 1 else ""
        return f"model {failed[0].name!r} could not be loaded: {failed[0].reason}{more}"
    for model in report.models:
        if not any(result.ok for result in model.tasks.values()):
            first = next(iter(model.tasks.items()), None)
            detail = f" (first: {first[0]}: {first[1].reason})" if first else " (no tasks)"
            return f"model {model.name!r}: no task could be evaluated{detail}"
    return None
