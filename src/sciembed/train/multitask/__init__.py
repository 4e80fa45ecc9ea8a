"""Stage 2: training tasks as data, task heads, mixed proportional batching, adapter training and the
multi-task baseline (SciRepEval / SPECTER2 recipe), and the training mixture built from ../shared/data."""

from .config import TASK_FORMATS, Stage2Config, TaskConfig, load_stage2_config
from .data import MixedBatches, TaskExamples, load_all_examples, load_task_examples
from .heads import HeadConfig, TaskHead, head_loss, load_heads, save_heads, triplet_loss
from .trainer import Stage2Module, Stage2Result, Stage2Task, plot_curves, prepare_model, train_stage2

__all__ = [
    "TASK_FORMATS",
    "HeadConfig",
    "MixedBatches",
    "Stage2Config",
    "Stage2Module",
    "Stage2Result",
    "Stage2Task",
    "TaskConfig",
    "TaskExamples",
    "TaskHead",
    "head_loss",
    "load_all_examples",
    "load_heads",
    "load_stage2_config",
    "load_task_examples",
    "plot_curves",
    "prepare_model",
    "save_heads",
    "train_stage2",
    "triplet_loss",
]
