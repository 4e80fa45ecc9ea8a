"""The model worker: one replica per GPU (or a CPU worker), embedding chunk rows into data files.

Each worker loads the model once, places it as ``sciembed embed`` does (``place(device, dtype)``)
and encodes each chunk with the same :class:`~sciembed.engine.EncodeOptions` as ``sciembed embed``
(:func:`chunk_options`): on CUDA the engine's defaults, the pipelined packed fp16 forward with
tokenisation on background threads; on CPU the PyTorch path with ``threads`` threads, or ONNX with
``--backend onnx``. Under Ray an actor with ``num_gpus=1`` sees only its own GPU (Ray sets
``CUDA_VISIBLE_DEVICES``), so ``cuda`` is that GPU. Data files carry the same Parquet schema
metadata as ``sciembed embed``'s output (:mod:`sciembed.embed.metadata`). A chunk whose data file
exists is not computed again, so a retried task (after a worker died) or a resumed job only embeds
what is missing.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..embed.writer import embedding_table, write_embedding_table
from ..engine import EncodeOptions
from .layout import OutputLayout, write_atomic
from .units import papers_of_row


@dataclass(frozen=True)
class WorkerConfig:
    """What every worker needs to embed exactly as the driver planned."""

    model: str | None
    backend: str
    format: str
    device: str
    dtype: str | None
    batch_size: int
    threads: int
    fingerprint: str
    fields: tuple[str, ...]
    output: str
    compile: bool = False
    # The file-level Parquet metadata of every data file (EmbeddingMetadata.schema_metadata(), as
    # computed by the driver): the same bytes as a `sciembed embed` output of this model and format.
    schema_metadata: tuple[tuple[bytes, bytes], ...] = ()
    # format -> adapter folder, loaded onto the model (load_model(adapters=...)); part of the fingerprint.
    adapters: tuple[tuple[str, str], ...] = ()
    # The dtype the driver recorded in the job (str(model.dtype) after placing); checked, never assumed.
    expected_dtype: str | None = None
    # Tests only: the first worker to write a chunk while this file is missing creates it and
    # kills its own process (SIGKILL), as a crashed machine would; Ray must restart and retry.
    crash_marker: str | None = None


def model_fingerprint(encoder: Any) -> str:
    fingerprint = encoder.fingerprint
    return fingerprint() if callable(fingerprint) else fingerprint


def model_dimension(encoder: Any) -> int:
    return int(getattr(encoder, "dimension", None) or encoder.hidden_size)


def chunk_options(batch_size: int, compile: bool, host_cores: int | None = None) -> EncodeOptions:
    """How one chunk is encoded: as ``sciembed embed`` encodes a chunk (``embed_file``), no progress
    bar; automatic host-side choices (tokeniser processes) sized to the worker's ``host_cores``."""
    return EncodeOptions(batch_size=batch_size, compile=compile, progress=False, host_cores=host_cores)


def load_encoder(model: str | None, backend: str, adapters: dict[str, str] | None = None, threads: int | None = None):
    """The model as the driver and every worker load it (fp32 on the host; placed afterwards).

    Another backend (onnx, openvino) loads an export folder with ``threads`` threads; the driver
    (``threads=None``) may also pass a model folder, which ``load_model`` then exports once, and
    hands its workers the export folder, so that no worker exports.
    """
    from ..model import load_model
    from ..model.backends import LOADERS, TORCH_NAMES

    if backend in TORCH_NAMES:
        return load_model(model, backend=backend, adapters=adapters or None)
    if adapters:
        raise ValueError(f"the {backend} backend's adapters are inside its files; export with them instead")
    if threads is None or backend not in LOADERS:
        return load_model(model, backend=backend)
    module, loader = LOADERS[backend].split(":")
    return getattr(import_module(module), loader)(model, threads=threads)


def worker_model_source(encoder: Any, source: str | None, backend: str) -> str | None:
    """What the workers load: the driver's source, or for another backend the export folder it loaded."""
    from ..model.backends import TORCH_NAMES

    folder = getattr(encoder, "folder", None)
    return source if backend in TORCH_NAMES or folder is None else str(Path(folder).resolve())


def _table_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    write_embedding_table(table, sink)
    return sink.getvalue().to_pybytes()


class EmbedWorker:
    """Ray Data callable class: chunk row in, a small row describing the written data file out."""

    def __init__(self, config: WorkerConfig):
        import torch

        self.config = config
        self.layout = OutputLayout(Path(config.output))
        self.metadata = dict(config.schema_metadata) or None
        self.options = chunk_options(config.batch_size, config.compile, max(1, config.threads))
        torch.set_num_threads(max(1, config.threads))  # on CUDA too: host-side tensor work
        self.encoder = load_encoder(config.model, config.backend, dict(config.adapters), max(1, config.threads))
        # Before placing: the fingerprint of the weights as loaded (fp32 on the host), as the driver's.
        found = model_fingerprint(self.encoder)
        if found != config.fingerprint:
            raise RuntimeError(
                f"worker on pid {os.getpid()} loaded {config.model!r} with fingerprint {found[:12]}, "
                f"the driver's is {config.fingerprint[:12]}: every node must see the same model files"
            )
        self.encoder.place(config.device, config.dtype)
        placed = str(self.encoder.dtype)
        if config.expected_dtype is not None and placed != config.expected_dtype:
            raise RuntimeError(f"worker on pid {os.getpid()} runs in {placed}, the job says {config.expected_dtype}")

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        unit, chunk = row["unit"], int(row["chunk"])
        result = {"unit": unit, "chunk": chunk, "rows": 0, "computed": False, "summary": row["summary"]}
        if chunk < 0:
            return result  # a unit's summary row: passed through to the driver
        target = self.layout.data_file(unit, chunk)
        result["rows"] = len(row["paper_ids"])
        if target.is_file():
            return result
        papers = papers_of_row(row, self.config.fields)
        vectors = self.encoder.encode(papers, format=self.config.format, options=self.options)
        ids = [p.paper_id for p in papers]
        id_table = pa.table({"paper_id": pa.array(ids, pa.string()), "digest": pa.array(row["digests"], pa.int64())})
        write_atomic(self.layout.ids_file(unit, chunk), _table_bytes(id_table))
        self._maybe_crash()
        write_atomic(target, _table_bytes(embedding_table(ids, vectors, self.metadata)))
        result["computed"] = True
        return result

    def _maybe_crash(self) -> None:
        marker = self.config.crash_marker
        if marker is None:
            return
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)
