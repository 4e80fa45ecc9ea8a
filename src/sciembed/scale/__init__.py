"""Distributed embedding on Ray Data: many input shards -> sharded Parquet + one manifest.

Needs the ``ray`` extra (``pip install sciembed[ray]``). See :func:`embed_shards`.
"""

from .job import ScaleOptions, ScaleReport, embed_shards
from .layout import MANIFEST_FORMAT, OutputLayout

__all__ = ["MANIFEST_FORMAT", "OutputLayout", "ScaleOptions", "ScaleReport", "embed_shards"]
