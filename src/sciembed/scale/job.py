"""``embed_shards``: many input shards -> sharded Parquet embeddings + one manifest, on Ray Data.

The unit of work is one input shard; it is read (Ray tasks) into chunks of ``chunk_size`` valid
papers, each chunk embedded by a model worker (a Ray actor: one per GPU, or CPU workers) into its own
data file, written under a temporary name and renamed. The driver records a unit as finished once
all its chunks are; the manifest, built only from finished units after a final duplicate pass over
all ids, is written last. Running the same call again after any crash computes only missing chunks
and ends with the same files.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..data.progress import progress_bar
from ..embed.metadata import metadata_for
from ..embed.writer import write_embedding_table
from ..model import canonical_format
from ..model.backends import TORCH_NAMES, split_backend
from .dedup import Duplicate, find_duplicates
from .layout import MANIFEST_FORMAT, OutputLayout, input_identity, unit_name, write_atomic, write_json_atomic
from .units import expand_inputs, read_unit
from .worker import EmbedWorker, WorkerConfig, load_encoder, model_dimension, model_fingerprint, worker_model_source

MAX_EXAMPLES = 20


@dataclass(frozen=True)
class ScaleOptions:
    """How to embed; everything that changes the vectors is part of the output's identity (the job
    record: format, backend, device type, dtype, batch size, compile, chunk size, id field), so a
    resume with other settings is refused. ``workers``, ``cpus_per_worker`` and ``readers`` only
    change the speed."""

    format: str = "proximity"
    batch_size: int = 32
    device: str | None = None  # "cuda" or "cpu"; default cuda when the cluster has GPUs
    dtype: str | None = None  # default: fp16 on GPU, fp32 on CPU
    id_field: str | None = None
    skip_invalid: bool = False
    chunk_size: int = 10_000
    workers: int | None = None  # default: one per GPU, or CPUs // cpus_per_worker
    cpus_per_worker: float | None = None  # default: 1 on CPU; a GPU worker gets its share, CPUs // GPUs
    readers: int = 2  # concurrent reader tasks (JSON parsing / decompression)
    backend: str = "torch"  # or "onnx" (CPU)
    compile: bool = False


@dataclass
class ScaleReport:
    output: Path
    manifest: dict[str, Any]
    units: int = 0
    resumed_units: int = 0
    computed_chunks: int = 0
    reused_chunks: int = 0
    workers: int = 0
    device: str = "cpu"
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return int(self.manifest["counts"]["rows"])

    def summary(self) -> str:
        counts = self.manifest["counts"]
        text = (
            f"{counts['rows']} embeddings from {counts['papers_read']} papers in {counts['inputs']} shards "
            f"({self.resumed_units} shards already done, {self.computed_chunks} chunks computed, "
            f"{self.reused_chunks} kept) on {self.workers} {self.device} workers in {self.seconds:.1f} s"
        )
        if counts["exact_duplicates"]:
            text += f"\n{counts['exact_duplicates']} exact duplicates dropped (within shards)"
        if counts["cross_shard_duplicates"]:
            text += f"\n{counts['cross_shard_duplicates']} ids repeated across shards (first occurrence kept):"
            text += "".join(f"\n  {d}" for d in self.manifest["duplicates"]["examples"])
        if counts["skipped_invalid"]:
            examples = [e for i in self.manifest["inputs"] for e in i["skipped_examples"]][:MAX_EXAMPLES]
            text += f"\n{counts['skipped_invalid']} invalid records skipped:\n  " + "\n  ".join(examples)
        return text


def _connect(address: str | None) -> bool:
    """Connect to (or start) a Ray cluster; True if this call started the connection."""
    import ray

    if ray.is_initialized():
        return False
    local = address is None and not os.environ.get("RAY_ADDRESS")
    extra = {"include_dashboard": False} if local else {}  # a cluster of our own needs no dashboard
    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False, **extra)
    return True


def _quiet_ray_data() -> None:
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.verbose_stats_logs = False


@dataclass(frozen=True)
class ClusterPlan:
    """Where the model workers run: ``workers`` actors of ``gpus_per_worker`` GPUs and ``cpus_per_worker`` CPUs."""

    device: str  # "cuda" or "cpu"
    workers: int
    gpus_per_worker: float
    cpus_per_worker: float


def cluster_plan(options: ScaleOptions, resources: Mapping[str, float], backend: str = "torch") -> ClusterPlan:
    """One model replica per GPU of the cluster (``num_gpus=1`` each; Ray gives each its own GPU),
    or CPU workers of ``cpus_per_worker`` threads where there is no GPU or the backend runs on CPU.

    A GPU worker tokenises on the host as fast as the GPU embeds (MiniLM on an H200 is bound by that
    host work), so by default it holds its share of the CPUs (CPUs // GPUs), as ``sciembed embed``
    has all of one machine's; Ray then sets its thread count (``OMP_NUM_THREADS``) to that."""
    gpus = int(resources.get("GPU", 0))
    cpus = resources.get("CPU", 1)
    device = options.device or ("cuda" if gpus and backend in TORCH_NAMES else "cpu")
    device = "cuda" if device.startswith("cuda") else device  # each worker's own GPU is its cuda:0
    if device not in ("cuda", "cpu"):
        raise ValueError(f"--device {options.device!r}: the Ray path runs on cuda or cpu")
    if options.workers is not None and options.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {options.workers}")
    if options.cpus_per_worker is not None and options.cpus_per_worker <= 0:
        raise ValueError(f"--cpus-per-worker must be positive, got {options.cpus_per_worker}")
    if device == "cuda":
        if backend not in TORCH_NAMES:
            raise ValueError(f"--device cuda: the {backend} backend runs on CPU; use the torch backend on GPUs")
        if not gpus:
            raise ValueError("--device cuda: the Ray cluster has no GPUs")
        if options.workers is not None and options.workers > gpus:
            raise ValueError(f"--workers {options.workers}: the Ray cluster has {gpus} GPUs (one worker per GPU)")
        share = options.cpus_per_worker or float(max(1, int(cpus // gpus)))
        return ClusterPlan("cuda", options.workers or gpus, 1.0, share)
    per_worker = options.cpus_per_worker or 1.0
    return ClusterPlan("cpu", options.workers or max(1, int(cpus // per_worker)), 0.0, per_worker)


def _dtype_name(encoder: Any, options: ScaleOptions, device: str) -> str:
    """The dtype a worker runs in: what ``place(device, dtype)`` gives the model loaded on the host."""
    if options.backend not in TORCH_NAMES:
        return str(encoder.dtype)
    import torch

    from ..model import default_dtype, parse_dtype

    target = torch.device(device)
    same_device = target.type == encoder.device.type
    return str(parse_dtype(options.dtype) or (encoder.dtype if same_device else default_dtype(target)))


def embed_shards(
    inputs: str | Path | Sequence[str | Path],
    output: str | Path,
    model: str | None = None,
    options: ScaleOptions = ScaleOptions(),
    address: str | None = None,
    show_progress: bool = True,
    crash_marker: str | None = None,
    adapters: Mapping[str, str | Path] | None = None,
) -> ScaleReport:
    """Embed every paper of the input shards into ``output`` (a folder); see the module docstring.

    ``inputs``: a glob, a folder or a list of paths (JSON lines, optionally gzipped, or Parquet).
    ``address``: a Ray cluster address (None: an initialised Ray, ``RAY_ADDRESS``, or a new local one).
    ``adapters``: format -> adapter folder, loaded onto ``model`` as ``load_model(model, adapters=...)``.
    ``crash_marker``: tests only (see :class:`WorkerConfig`).
    """
    started = time.perf_counter()
    # Absolute paths: the workers' working directory is not the driver's.
    paths = [p.resolve() for p in expand_inputs(inputs)]
    layout = OutputLayout(Path(output).resolve())
    fmt = canonical_format(options.format)
    backend, model = split_backend(model, options.backend)  # "onnx:DIR" is --backend onnx -m DIR
    backend = "torch" if backend in TORCH_NAMES else backend
    options = replace(options, backend=backend)
    adapter_paths = tuple((canonical_format(f), str(Path(p).resolve())) for f, p in (adapters or {}).items())
    encoder = load_encoder(model, backend, dict(adapter_paths))
    adapter = encoder.adapter_for_format(fmt) or "base"
    metadata = metadata_for(encoder, fmt)  # every data file carries it, as `sciembed embed`'s output
    fields = tuple(encoder.config.text_fields) if hasattr(encoder, "config") else ("title", "abstract")
    fingerprint, dimension = model_fingerprint(encoder), model_dimension(encoder)
    # What sciembed.load() takes to get the model back (the serving index records it).
    source = str(Path(model).resolve()) if model and Path(model).exists() else (model or "default")
    model_name = str(getattr(encoder, "name", None) or Path(source).name)

    started_ray = _connect(address)
    try:
        import ray

        _quiet_ray_data()
        plan = cluster_plan(options, ray.cluster_resources(), backend)
        device = plan.device
        job = {
            "format": MANIFEST_FORMAT,
            "model_fingerprint": fingerprint,
            "dimension": dimension,
            "embedding_format": fmt,
            "adapter": adapter,
            "backend": options.backend,
            "device_type": device,
            "dtype": _dtype_name(encoder, options, device),
            "batch_size": options.batch_size,  # CPU batches are padded: the batch changes the rounding
            "compile": options.compile,
            "id_field": options.id_field,
            "chunk_size": options.chunk_size,
            "text_fields": list(fields),
        }
        resumed = layout.claim(job)
        units = {unit_name(p): p for p in paths}
        if len(units) != len(paths):
            raise ValueError("two input shards resolve to the same path")
        finished = _check_finished(layout, units, options.skip_invalid)
        report = ScaleReport(output=layout.root, manifest={}, units=len(units), workers=plan.workers, device=device)
        report.resumed_units = len(finished)
        todo = [name for name in units if name not in finished]
        if resumed and layout.manifest.is_file() and not todo:
            report.manifest = json.loads(layout.manifest.read_text())
            report.seconds = time.perf_counter() - started
            return report
        layout.manifest.unlink(missing_ok=True)  # the folder is not complete while units are added
        config = WorkerConfig(
            model=worker_model_source(encoder, source if model else None, backend),
            backend=options.backend,
            format=fmt,
            device=device,
            dtype=options.dtype,
            batch_size=options.batch_size,
            threads=max(1, int(plan.cpus_per_worker)),
            fingerprint=fingerprint,
            fields=fields,
            output=str(layout.root),
            compile=options.compile,
            crash_marker=crash_marker,
            schema_metadata=tuple(metadata.schema_metadata().items()),
            adapters=adapter_paths,
            expected_dtype=job["dtype"],
        )
        errors = _run_units(layout, units, todo, options, config, plan, report, show_progress)
        if errors:
            raise ValueError("\n".join(errors[:MAX_EXAMPLES]))
        records = layout.finished_units()
        ordered = [records[name] for name in units]
        model_record = {"source": source, "name": model_name, "adapters": dict(adapter_paths) or None}
        report.manifest = _finish(layout, job, model_record, metadata.to_json(), ordered, options.skip_invalid)
    finally:
        if started_ray:
            ray.shutdown()
    report.seconds = time.perf_counter() - started
    return report


def _check_finished(layout: OutputLayout, units: dict[str, Path], skip_invalid: bool) -> dict[str, dict]:
    finished = layout.finished_units()
    stale = sorted(set(finished) - set(units))
    if stale:
        raise ValueError(
            f"{layout.root} holds shards that the inputs no longer match ({', '.join(stale[:5])}); "
            "use the same inputs or a new output folder"
        )
    for name, record in finished.items():
        if record["input"] != input_identity(units[name]):
            raise ValueError(f"{units[name]}: the shard changed after it was embedded into {layout.root}")
        if record["skipped"] and not skip_invalid:
            # The shard was embedded with --skip-invalid; without it, its first bad record is an error.
            raise ValueError(record["skipped_examples"][0])
    return finished


def _run_units(
    layout: OutputLayout,
    units: dict[str, Path],
    todo: list[str],
    options: ScaleOptions,
    config: WorkerConfig,
    plan: ClusterPlan,
    report: ScaleReport,
    show_progress: bool,
) -> list[str]:
    """Stream the unfinished units through readers and model workers; record each finished unit."""
    if not todo:
        return []
    import ray

    items = [{"unit": name, "path": str(units[name])} for name in todo]
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    dataset = dataset.flat_map(
        read_unit,
        fn_kwargs={
            "chunk_size": options.chunk_size,
            "id_field": options.id_field,
            "skip_invalid": options.skip_invalid,
            "fields": config.fields,
        },
        num_cpus=0,  # the readers must never wait for the CPUs that the model workers hold
        compute=ray.data.TaskPoolStrategy(size=max(1, min(options.readers, len(items)))),
    )
    dataset = model_stage(dataset, EmbedWorker, {"config": config}, plan)
    done: dict[str, set[int]] = {name: set() for name in todo}
    summaries: dict[str, dict] = {}
    errors: list[str] = []
    progress = progress_bar(
        len(units), show_progress, desc="embedding shards", unit="shard", initial=len(units) - len(todo)
    )
    for row in dataset.iter_rows():
        name, chunk = row["unit"], int(row["chunk"])
        if chunk < 0:
            summaries[name] = json.loads(row["summary"])
        else:
            done[name].add(chunk)
            report.computed_chunks += bool(row["computed"])
            report.reused_chunks += not row["computed"]
            progress.set_postfix(chunks=report.computed_chunks + report.reused_chunks, refresh=False)
        summary = summaries.get(name)
        if summary is None or len(done[name]) < summary["num_chunks"]:
            continue
        if summary["error"]:
            errors.append(summary["error"])
        else:
            _record_unit(layout, name, units[name], summary)
        progress.update(1)
    progress.close()
    unfinished = [name for name in todo if name not in summaries]
    if unfinished and not errors:
        raise RuntimeError(f"units {unfinished[:5]} produced no result; run the same command again")
    return errors


def model_stage(dataset: Any, worker: type, constructor_kwargs: dict[str, Any], plan: ClusterPlan) -> Any:
    """The actor pool of model workers: ``plan.workers`` actors, each holding ``plan.gpus_per_worker`` GPUs."""
    import ray

    return dataset.map(
        worker,
        fn_constructor_kwargs=constructor_kwargs,
        compute=ray.data.ActorPoolStrategy(size=plan.workers),
        num_gpus=plan.gpus_per_worker,
        num_cpus=plan.cpus_per_worker,
    )


def _record_unit(layout: OutputLayout, name: str, path: Path, summary: dict) -> None:
    chunks = summary["num_chunks"]
    outputs = []
    for chunk in range(chunks):
        data = layout.data_file(name, chunk)
        if not data.is_file() or not layout.ids_file(name, chunk).is_file():
            raise RuntimeError(f"{data}: missing although its chunk was reported done")
        outputs.append(str(data.relative_to(layout.root)))
    record = {
        "unit": name,
        "input": input_identity(path),
        "outputs": outputs,
        "papers": summary["papers"],
        "exact_duplicates": summary["exact_duplicates"],
        "skipped": summary["skipped"],
        "skipped_examples": summary["skipped_examples"],
    }
    write_json_atomic(layout.unit_record(name), record)


def _finish(
    layout: OutputLayout,
    job: dict,
    model: dict[str, Any],
    metadata: dict[str, Any],
    records: list[dict],
    skip_invalid: bool,
) -> dict[str, Any]:
    """Duplicate pass over all ids, drop repeated occurrences, then write the manifest."""
    data_files = [layout.root / f for record in records for f in record["outputs"]]
    ids_files = [layout.work / "ids" / Path(f).name for f in data_files]
    duplicates, total = find_duplicates(ids_files)
    conflicts = [d for d in duplicates if not d.same_text]
    if conflicts and not skip_invalid:
        raise ValueError(
            "\n".join(
                f"{_describe(d, data_files)}: duplicate id with different text across shards "
                "(--skip-invalid keeps the first occurrence)"
                for d in conflicts[:MAX_EXAMPLES]
            )
        )
    _drop_repeats(duplicates, data_files)
    write_json_atomic(layout.dedup, {"duplicates": [_duplicate_json(d, data_files, layout) for d in duplicates]})
    inputs, rows = [], 0
    for record in records:
        outputs = []
        for name in record["outputs"]:
            count = pq.ParquetFile(layout.root / name).metadata.num_rows
            outputs.append({"file": name, "rows": count})
            rows += count
        inputs.append({**record, "outputs": outputs})
    manifest = {
        "format": MANIFEST_FORMAT,
        "model": model,
        "job": job,
        "schema": {"paper_id": "string", "embedding": f"fixed_size_list<float32>[{job['dimension']}]"},
        "embedding_metadata": metadata,  # the `sciembed` key of every data file's schema metadata
        "inputs": inputs,
        "counts": {
            "inputs": len(records),
            "papers_read": sum(r["papers"] for r in records),
            "ids_written": total,
            "rows": rows,
            "exact_duplicates": sum(r["exact_duplicates"] for r in records),
            "skipped_invalid": sum(r["skipped"] for r in records) + len(conflicts),
            "cross_shard_duplicates": len(duplicates),
            "cross_shard_conflicts": len(conflicts),
        },
        "duplicates": {"examples": [_describe(d, data_files) for d in duplicates[:MAX_EXAMPLES]]},
    }
    write_json_atomic(layout.manifest, manifest)
    return manifest


def _describe(duplicate: Duplicate, data_files: list[Path]) -> str:
    where = [data_files[o.file_index].name for o in duplicate.occurrences]
    kind = "same text" if duplicate.same_text else "different text"
    return f"id {duplicate.paper_id!r} in {', '.join(where)} ({kind}; kept {where[0]})"


def _duplicate_json(duplicate: Duplicate, data_files: list[Path], layout: OutputLayout) -> dict:
    files = [str(data_files[o.file_index].relative_to(layout.root)) for o in duplicate.occurrences]
    return {"paper_id": duplicate.paper_id, "same_text": duplicate.same_text, "kept": files[0], "dropped": files[1:]}


def _drop_repeats(duplicates: list[Duplicate], data_files: list[Path]) -> None:
    """Remove every occurrence but the first from its data file (idempotent: safe to redo)."""
    drops: dict[int, set[str]] = {}
    for duplicate in duplicates:
        for occurrence in duplicate.occurrences[1:]:
            drops.setdefault(occurrence.file_index, set()).add(duplicate.paper_id)
    for index, ids in sorted(drops.items()):
        path = data_files[index]
        table = pq.read_table(path)
        keep = pc.invert(pc.is_in(table.column("paper_id"), value_set=pa.array(sorted(ids))))
        filtered = table.filter(keep)
        if filtered.num_rows == table.num_rows:
            continue
        sink = pa.BufferOutputStream()
        write_embedding_table(filtered, sink)
        write_atomic(path, sink.getvalue().to_pybytes())
