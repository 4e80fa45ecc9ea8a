"""``sciembed index build`` / ``index add``: a papers file (and optionally its Parquet embeddings) into an index.

Papers are read, embedded and staged chunk by chunk; the FAISS files are written (atomically, as one new
generation) at the end of the file, and before that only when the staged papers are at least as many as the
committed ones (a checkpoint). Each commit rewrites every FAISS file whole, so committing every chunk made a
build quadratic in its size (a 1M-vector IVF file is 1.5 GB); with checkpoints at doubling sizes the files are
written O(log n) times, about twice the final size in all, and a killed build still keeps at least half of
its finished work. The same command resumes it (ids already in the index are skipped).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from ..data import Paper, ReadReport, read_papers
from ..model import canonical_format
from .index import PaperIndex, model_info_of
from .vectors import normalise

HELD_OUT_QUERIES = 300  # indexed papers' titles embedded as search queries: the calibration of search's recall
QUERY_FORMAT = "adhoc_query"  # what the API embeds a search query with
SPOT_CHECK_PAPERS = 8
SPOT_CHECK_MIN_COSINE = 0.99  # fp16 / ONNX int8 embeddings of the same model stay above this


@dataclass(frozen=True)
class ReadOptions:
    """How papers are read and embedded (the `sciembed embed` options of the same names)."""

    id_field: str | None = None
    skip_invalid: bool = False
    chunk_size: int = 10_000  # papers read and embedded per step (the granularity of checkpoints)
    batch_size: int = 32
    device: str | None = None


@dataclass
class BuildReport:
    folder: Path
    added: int = 0
    skipped_existing: int = 0
    embedded: int = 0
    read: ReadReport = field(default_factory=ReadReport)
    kind: str = ""

    def summary(self) -> str:
        text = f"{self.read.summary()}\nindex {self.folder} ({self.kind}): {self.added} papers added"
        if self.skipped_existing:
            text += f", {self.skipped_existing} already present"
        if self.embedded:
            text += f", {self.embedded} embedded with the model"
        return text


def read_embeddings(path: Path, dimension: int) -> dict[str, np.ndarray]:
    """``paper_id -> vector`` from a ``sciembed embed`` Parquet file (paper_id, embedding)."""
    try:
        table = pq.read_table(path, columns=["paper_id", "embedding"])
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: not a Parquet file with paper_id and embedding columns ({exc})") from None
    ids = table.column("paper_id").to_pylist()
    column = table.column("embedding").combine_chunks()
    width = getattr(column.type, "list_size", None)
    if width is None:
        lengths = {len(v) for v in column.to_pylist()[:1000]}
        width = lengths.pop() if len(lengths) == 1 else -1
    if width != dimension:
        raise ValueError(f"{path}: embeddings have dimension {width}, the model's is {dimension}")
    flat = np.asarray(column.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(len(ids), dimension)
    out: dict[str, np.ndarray] = {}
    for row, paper_id in enumerate(ids):
        if paper_id is None:
            raise ValueError(f"{path}: row {row} has no paper_id")
        out[str(paper_id)] = flat[row]
    return out


def _check_provenance(encoder: Any, path: Path) -> None:
    """A file whose metadata names another model, adapter or dimension is refused before any work
    (files without metadata still meet the spot check)."""
    from ..embed.metadata import metadata_for, read_metadata, require_same_space

    found = read_metadata(path)
    if found is not None and hasattr(encoder, "fingerprint"):
        require_same_space(metadata_for(encoder, "proximity"), found, path)


def spot_check(encoder: Any, papers: Sequence[Paper], given: np.ndarray, format: str, source: Path) -> None:
    """Re-embed a few papers: vectors made by another model (or format) are refused, not indexed."""
    own = encoder.encode(list(papers), format=format, show_progress=False)
    cosine = np.sum(normalise(own) * normalise(given), axis=1)
    worst = int(np.argmin(cosine))
    if cosine[worst] < SPOT_CHECK_MIN_COSINE:
        raise ValueError(
            f"{source}: the vector of paper {papers[worst].paper_id} is not what {encoder.name} computes for it "
            f"(cosine {cosine[worst]:.3f} on a re-embedded sample); embeddings from another model or format "
            "cannot be added to this index"
        )


def training_sample(given: dict[str, np.ndarray], index: PaperIndex, seed: int = 0) -> dict[str, np.ndarray]:
    """An even random sample of the given embeddings, as many as the IVF lists train on, for every format."""
    from .vectors import TRAIN_MAX_POINTS_PER_LIST

    wanted = TRAIN_MAX_POINTS_PER_LIST * int(index.manifest.params.get("nlist", 1))
    keys = list(given)
    chosen = np.random.default_rng(seed).choice(len(keys), min(len(keys), wanted), replace=False)
    sample = np.stack([given[keys[i]] for i in np.sort(chosen)])
    return {fmt: sample for fmt in index.formats}


def store_held_out_queries(index: PaperIndex, encoder: Any, papers: Sequence[Paper], seed: int = 0) -> None:
    """Titles of up to HELD_OUT_QUERIES of these (just added) papers as search queries, once per index:
    calibration then measures search's recall on real queries whose own paper it leaves out."""
    from .index import HELD_OUT_QUERIES as FILE
    from .vectors import SEARCH_KNOBS

    if index.manifest.kind not in SEARCH_KNOBS or (index.folder / FILE).exists():
        return
    if QUERY_FORMAT not in tuple(getattr(encoder, "formats", ())):
        return
    titled = [p for p in papers if p.title and p.title.strip()]
    if not titled:
        return
    rng = np.random.default_rng(seed)
    chosen = [titled[i] for i in np.sort(rng.choice(len(titled), min(len(titled), HELD_OUT_QUERIES), replace=False))]
    vectors = encoder.encode([p.title for p in chosen], format=QUERY_FORMAT, show_progress=False)
    index.set_held_out_queries([p.paper_id for p in chosen], vectors)


def _chunks(papers: Iterator[Paper], size: int) -> Iterator[list[Paper]]:
    while chunk := list(itertools.islice(papers, size)):
        yield chunk


def count_papers(path: Path, id_field: str | None, skip_invalid: bool) -> int:
    return sum(1 for _ in read_papers(path, id_field=id_field, skip_invalid=skip_invalid))


def add_file(
    index: PaperIndex,
    encoder: Any,
    papers_path: Path,
    embeddings_path: Path | None = None,
    options: ReadOptions = ReadOptions(),
    progress: Any = None,
) -> BuildReport:
    """Add every paper of ``papers_path``; proximity vectors from ``embeddings_path`` where given."""
    index.check_model(encoder.fingerprint, encoder.dimension)
    report = BuildReport(folder=index.folder, kind=index.manifest.kind)
    given = read_embeddings(embeddings_path, index.dimension) if embeddings_path else None
    if embeddings_path is not None:
        _check_provenance(encoder, embeddings_path)
    checked = False
    papers = read_papers(papers_path, id_field=options.id_field, skip_invalid=options.skip_invalid, report=report.read)
    for chunk in _chunks(papers, options.chunk_size):
        existing = index.store.existing_ids([p.paper_id for p in chunk])
        todo = [p for p in chunk if p.paper_id not in existing]
        report.skipped_existing += len(chunk) - len(todo)
        if todo:
            vectors = {}
            for fmt in index.formats:
                if given is not None and canonical_format(fmt) == "proximity":
                    missing = [p.paper_id for p in todo if p.paper_id not in given]
                    if missing:
                        raise ValueError(
                            f"{embeddings_path}: no embedding for {len(missing)} papers of {papers_path}, "
                            f"e.g. {missing[0]}"
                        )
                    vectors[fmt] = np.stack([given[p.paper_id] for p in todo])
                    if not checked:
                        sample = todo[:SPOT_CHECK_PAPERS]
                        spot_check(encoder, sample, vectors[fmt][: len(sample)], fmt, embeddings_path)
                        checked = True
                else:
                    vectors[fmt] = encoder.encode(
                        todo, format=fmt, batch_size=options.batch_size, device=options.device
                    )
                    report.embedded += len(todo) if fmt == index.formats[0] or given is None else 0
            if not index.manifest.trained:  # IVF: train on the given embeddings, else on the first chunk
                only_given = given is not None and all(canonical_format(f) == "proximity" for f in index.formats)
                index.train(training_sample(given, index) if only_given else vectors)
            added = index.add(todo, vectors, fingerprint=encoder.fingerprint, commit=False)
            report.added += added.added
            store_held_out_queries(index, encoder, todo)
            if index.staged >= max(options.chunk_size, len(index)):  # a checkpoint at a doubling size
                index.commit()
        if progress is not None:
            progress(len(chunk))
    index.commit()  # once for the rest of the file (a no-op when nothing is staged)
    return report


def build_index(
    papers_path: Path,
    out: Path,
    encoder: Any,
    source: str | None,
    embeddings_path: Path | None = None,
    formats: Sequence[str] = ("proximity",),
    kind: str = "auto",
    options: ReadOptions = ReadOptions(),
    progress: Any = None,
) -> BuildReport:
    """Create the index (or resume a killed build of the same model) and add the file's papers."""
    from .layout import MANIFEST

    formats = tuple(canonical_format(f) for f in formats)
    if (out / MANIFEST).exists():
        index = PaperIndex.open(out, writable=True)
        if index.formats != formats:
            index.close()
            raise ValueError(f"{out} already holds an index of formats {list(index.formats)}; use `sciembed index add`")
    else:
        expected = count_papers(papers_path, options.id_field, options.skip_invalid)
        index = PaperIndex.create(out, model_info_of(encoder, source), formats, kind=kind, expected_size=expected)
    try:
        return add_file(index, encoder, papers_path, embeddings_path, options, progress)
    finally:
        index.close()
