"""Serving: a paper index (SQLite metadata + FAISS vectors), an S2-compatible API and a search page."""

from .index import AddReport, PaperIndex, SearchHit, model_info_of
from .layout import IndexManifest, ModelInfo

__all__ = ["AddReport", "IndexManifest", "ModelInfo", "PaperIndex", "SearchHit", "model_info_of"]
