"""The serving index (``sciembed.serve.PaperIndex``, docs/SERVING.md) from sharded embeddings.

Never all vectors in memory: an IVF-PQ index is trained on an evenly spread sample, then the data
files are added one at a time, each joined with the paper metadata of its input shard (read again,
chunk by chunk, as the embedding job read it). Only the index's compressed codes stay in memory.
A killed build resumes: it reopens the index, and papers already committed are skipped.
"""

from __future__ import annotations

import itertools
import json
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from ..data import Paper, read_papers
from ..data.progress import progress_bar
from ..embed.metadata import EmbeddingMetadata, metadata_of_schema, require_same_space
from .layout import MANIFEST, MANIFEST_FORMAT


@dataclass
class IndexBuildReport:
    index: Path
    kind: str
    added: int = 0
    skipped_existing: int = 0
    sample: int = 0
    files: int = 0
    largest_batch: int = 0  # the most vectors held at once outside the index (sample or one data file)
    peak_rss_mib: float = 0.0  # resource.getrusage: the process's peak resident memory
    seconds: float = 0.0
    rss_after_file_mib: list[float] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.added} papers added to {self.kind} index {self.index} ({self.skipped_existing} already there) "
            f"from {self.files} data files in {self.seconds:.1f} s; trained on {self.sample} vectors; at most "
            f"{self.largest_batch} vectors loaded at once; peak RSS {self.peak_rss_mib:.0f} MiB"
        )


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def read_manifest(embeddings: Path) -> dict[str, Any]:
    path = embeddings / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{embeddings}: no {MANIFEST}; is the embedding job finished?")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path}: not a sciembed sharded-embeddings manifest")
    return manifest


def _vectors(table) -> np.ndarray:
    column = table.column("embedding").combine_chunks()
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(-1, column.type.list_size).astype(np.float32, copy=False)


def training_sample(embeddings: Path, files: list[str], total: int, size: int) -> np.ndarray:
    """About ``size`` vectors spread evenly over all data files (every k-th row), read file by file."""
    stride = max(1, -(-total // max(1, size)))  # ceil: at most ``size`` rows
    parts, offset = [], 0
    for name in files:
        table = pq.read_table(embeddings / name)
        first = (-offset) % stride
        parts.append(_vectors(table)[first::stride])
        offset += table.num_rows
    sample = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
    return sample


def _papers_by_chunk(path: str, id_field: str | None, skip_invalid: bool, chunk_size: int) -> Iterator[list[Paper]]:
    papers = read_papers(path, id_field=id_field, skip_invalid=skip_invalid)
    while chunk := list(itertools.islice(papers, chunk_size)):
        yield chunk


def _chunk_index(name: str) -> int:
    return int(Path(name).stem.rsplit("-", 1)[1])


def build_index(
    embeddings: str | Path,
    index_folder: str | Path,
    kind: str = "auto",
    params: dict[str, Any] | None = None,
    sample_size: int = 100_000,
    commit_every: int = 1_000_000,
    show_progress: bool = True,
) -> IndexBuildReport:
    """Build (or resume building) a ``PaperIndex`` from a finished ``embed_shards`` output folder.

    ``kind``: as ``PaperIndex.create`` (``auto`` picks by size; ``ivfpq`` trains on ``sample_size``
    vectors). ``commit_every``: papers between commits (each commit rewrites the FAISS file).
    """
    from ..serve import ModelInfo, PaperIndex
    from ..serve.layout import MANIFEST as INDEX_MANIFEST

    started = time.perf_counter()
    embeddings, index_folder = Path(embeddings), Path(index_folder)
    manifest = read_manifest(embeddings)
    job = manifest["job"]
    fmt = job["embedding_format"]
    total = int(manifest["counts"]["rows"])
    files = [o["file"] for i in manifest["inputs"] for o in i["outputs"]]
    # Folders written before the data files carried metadata have none: nothing to check then.
    expected = manifest.get("embedding_metadata")
    expected = EmbeddingMetadata.from_json(expected) if expected else None
    if (index_folder / INDEX_MANIFEST).exists():
        index = PaperIndex.open(index_folder, writable=True)
        index.check_model(job["model_fingerprint"], job["dimension"])
    else:
        info = ModelInfo(
            name=manifest["model"]["name"],
            fingerprint=job["model_fingerprint"],
            dimension=int(job["dimension"]),
            source=manifest["model"]["source"],
        )
        index = PaperIndex.create(index_folder, info, formats=(fmt,), kind=kind, expected_size=total, params=params)
    if fmt not in index.formats:
        raise ValueError(f"{index_folder} holds formats {list(index.formats)}, the embeddings are {fmt}")
    report = IndexBuildReport(index=index_folder, kind=index.manifest.kind)
    try:
        if not index.manifest.trained:
            sample = training_sample(embeddings, files, total, sample_size)
            report.sample = len(sample)
            report.largest_batch = len(sample)
            index.train(sample)
            del sample
        staged = 0
        progress = progress_bar(total, show_progress, desc="indexing", unit="vec")
        for entry in manifest["inputs"]:
            chunks = _papers_by_chunk(
                entry["input"]["path"], job["id_field"], entry["skipped"] > 0, int(job["chunk_size"])
            )
            for position, output in enumerate(entry["outputs"]):
                if _chunk_index(output["file"]) != position:
                    raise ValueError(f"{embeddings / MANIFEST}: outputs of {entry['unit']} are not chunks 0, 1, ...")
                papers = {p.paper_id: p for p in next(chunks)}
                table = pq.read_table(embeddings / output["file"])
                if expected is not None:  # a data file of another model or format is never indexed
                    require_same_space(expected, metadata_of_schema(table.schema), embeddings / output["file"])
                ids = table.column("paper_id").to_pylist()
                vectors = _vectors(table)
                report.largest_batch = max(report.largest_batch, len(ids))
                added = index.add([papers[i] for i in ids], {fmt: vectors}, job["model_fingerprint"], commit=False)
                report.added += added.added
                report.skipped_existing += added.skipped_existing
                report.files += 1
                staged += added.added
                if staged >= commit_every:
                    index.commit()
                    staged = 0
                report.rss_after_file_mib.append(round(current_rss_mib(), 1))
                progress.update(len(ids))
        progress.close()
        index.commit()
    finally:
        index.close()
    report.peak_rss_mib = peak_rss_mib()
    report.seconds = time.perf_counter() - started
    return report
