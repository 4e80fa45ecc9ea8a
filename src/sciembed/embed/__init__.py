"""Embedding jobs: files of papers in, Parquet files of vectors out."""

from .job import EmbedReport, embed_file
from .writer import OutputError, ResumableParquetWriter, embedding_table, read_embeddings

__all__ = ["EmbedReport", "OutputError", "ResumableParquetWriter", "embed_file", "embedding_table", "read_embeddings"]
