"""Training data and training: stage-1 citation triplets mined from a citation graph, and the trainer.

The trainer (``train_base``, ``Trainer``, configs ...) imports torch, so it is loaded lazily: importing
``sciembed.train`` for the miner stays light.
"""

from ..data.triplets import Triplet, count_triplets, read_triplets, write_triplets
from .mining import (
    MiningConfig,
    MiningReport,
    is_dev_query,
    load_paper_files,
    mine_to_files,
    mine_triplets,
    paper_fields,
)

_LAZY = {
    "BaseTrainConfig": "config",
    "ConfigError": "config",
    "LoopConfig": "config",
    "OptimConfig": "config",
    "load_config": "config",
    "triplet_margin_loss": "losses",
    "Trainer": "loop",
    "TrainTask": "loop",
    "TrainState": "checkpoint",
    "TripletTask": "stage1",
    "train_base": "stage1",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BaseTrainConfig",
    "ConfigError",
    "LoopConfig",
    "OptimConfig",
    "TrainState",
    "TrainTask",
    "Trainer",
    "TripletTask",
    "load_config",
    "train_base",
    "triplet_margin_loss",
    "MiningConfig",
    "MiningReport",
    "Triplet",
    "count_triplets",
    "is_dev_query",
    "load_paper_files",
    "mine_to_files",
    "mine_triplets",
    "paper_fields",
    "read_triplets",
    "write_triplets",
]
