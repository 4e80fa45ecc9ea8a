"""sciembed evaluate: a SciRepEval-style harness (task registry, evaluators, baselines, sciembed-lite).

Imports ``sciembed.model`` and ``sciembed.data`` only (never ``sciembed.train``).
"""

from .baselines import BM25Model, EmbeddingModel, RandomModel, Ranker, SciEmbedEvalModel, resolve_model
from .benchmark import (
    averages,
    evaluate_task,
    load_task_data,
    markdown_table,
    read_results,
    run_benchmark,
    write_reports,
)
from .cache import EmbeddingCache
from .classification import classify, evaluate_classification
from .loaders import TaskDataError, load_documents, load_labels, load_qrels, load_reviewers
from .metrics import classification_metric, kendall_tau, regression_metric, trec_measures
from .registry import TaskFileError, TaskSpec, parse_task, parse_task_lines, read_task_file
from .regression import evaluate_regression, regress
from .results import Average, Comparison, ItemScores, ModelResult, SuiteResult, TaskResult
from .retrieval import rank_by_distance
from .reviewer import evaluate_reviewer_matching, rank_reviewers, reviewer_score
from .tasks import load_tasks

__all__ = [
    "Average",
    "Comparison",
    "ItemScores",
    "ModelResult",
    "SuiteResult",
    "TaskResult",
    "BM25Model",
    "EmbeddingCache",
    "EmbeddingModel",
    "RandomModel",
    "Ranker",
    "SciEmbedEvalModel",
    "TaskDataError",
    "TaskFileError",
    "TaskSpec",
    "averages",
    "classification_metric",
    "classify",
    "evaluate_classification",
    "evaluate_regression",
    "evaluate_reviewer_matching",
    "evaluate_task",
    "kendall_tau",
    "load_documents",
    "load_labels",
    "load_qrels",
    "load_reviewers",
    "load_task_data",
    "load_tasks",
    "markdown_table",
    "parse_task",
    "parse_task_lines",
    "rank_by_distance",
    "rank_reviewers",
    "read_results",
    "read_task_file",
    "regress",
    "regression_metric",
    "resolve_model",
    "reviewer_score",
    "run_benchmark",
    "trec_measures",
    "write_reports",
]
