"""Training data and training: stage-1 citation triplets mined from a citation graph."""

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

__all__ = [
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
