"""Dataset recipes: the sciembed-lite validation suite (``lite``) and what training must leave out
(``heldout``). Recipes read ``../shared/data``; they may use ``sciembed.data`` and ``sciembed.evaluate``,
and the core library never imports them (``evaluate.tasks`` reaches ``lite`` through one loader hook).
"""

from .heldout import excluded_ids
from .lite import TRAINING_SOURCES, build_lite, default_data_root, default_lite_dir

__all__ = ["TRAINING_SOURCES", "build_lite", "default_data_root", "default_lite_dir", "excluded_ids"]
