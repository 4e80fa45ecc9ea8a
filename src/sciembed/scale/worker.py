"""The model worker: one replica per GPU (or a CPU worker), embedding chunk rows into data files.

Each worker loads the model once and calls its own fast single-process ``encode`` (on CUDA the
packed fp16 forward with tokenisation on a background thread; on CPU the PyTorch or ONNX path). A
chunk whose data file exists is not computed again, so a retried task (after a worker died) or a
resumed job only embeds what is missing.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..embed.writer import embedding_table
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
    # Tests only: the first worker to write a chunk while this file is missing creates it and
    # kills its own process (SIGKILL), as a crashed machine would; Ray must restart and retry.
    crash_marker: str | None = None


def model_fingerprint(encoder: Any) -> str:
    fingerprint = encoder.fingerprint
    return fingerprint() if callable(fingerprint) else fingerprint


def model_dimension(encoder: Any) -> int:
    return int(getattr(encoder, "dimension", None) or encoder.hidden_size)


def _table_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


class EmbedWorker:
    """Ray Data callable class: chunk row in, a small row describing the written data file out."""

    def __init__(self, config: WorkerConfig):
        import torch

        from ..model import load_model

        self.config = config
        self.layout = OutputLayout(Path(config.output))
        if config.backend == "torch" and config.device == "cpu":
            torch.set_num_threads(max(1, config.threads))
        if config.backend == "onnx":
            from ..model.onnx_backend import load_onnx

            self.encoder = load_onnx(config.model, threads=max(1, config.threads))
        else:
            self.encoder = load_model(config.model, backend=config.backend)
            self.encoder.place(config.device, config.dtype)
            if config.compile:
                self.encoder.compile_packed()
        found = model_fingerprint(self.encoder)
        if found != config.fingerprint:
            raise RuntimeError(
                f"worker on pid {os.getpid()} loaded {config.model!r} with fingerprint {found[:12]}, "
                f"the driver's is {config.fingerprint[:12]}: every node must see the same model files"
            )

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
        vectors = self.encoder.encode(
            papers, format=self.config.format, batch_size=self.config.batch_size, show_progress=False
        )
        ids = [p.paper_id for p in papers]
        id_table = pa.table({"paper_id": pa.array(ids, pa.string()), "digest": pa.array(row["digests"], pa.int64())})
        write_atomic(self.layout.ids_file(unit, chunk), _table_bytes(id_table))
        self._maybe_crash()
        write_atomic(target, _table_bytes(embedding_table(ids, vectors)))
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
