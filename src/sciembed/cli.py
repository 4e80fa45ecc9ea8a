"""The command line: parses arguments and calls library functions, nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Scientific-document embeddings (SPECTER2 style).")


def _fail(exc: Exception) -> NoReturn:
    """Bad input ends the command with its message on stderr and exit status 2."""
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2) from None


MODEL_HELP = "Model folder or hub name (default: the shipped sciembed model, else all-MiniLM-L6-v2)."


@app.command()
def embed(
    input: Path = typer.Argument(..., help="Papers: JSON lines (.jsonl, .jsonl.gz), a JSON array, or Parquet."),
    output: Path = typer.Argument(..., help="Parquet file to write (paper_id, embedding)."),
    model: str = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    format: str = typer.Option(
        "proximity",
        "--format",
        "-f",
        help="proximity, classification, regression, adhoc_query or [PRX]/[CLF]/[RGN]/[QRY].",
    ),
    batch_size: int = typer.Option(32, "--batch-size", "-b"),
    device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)."),
    dtype: str = typer.Option(None, "--dtype", help="fp32, bf16 or fp16 (default: fp32 on CPU, fp16 on GPU)."),
    id_field: str = typer.Option(None, "--id-field", help="Id field (default: paper_id, corpus_id, doc_id or id)."),
    skip_invalid: bool = typer.Option(
        False, "--skip-invalid", help="Skip bad records and report them instead of stopping."
    ),
    chunk_size: int = typer.Option(10_000, "--chunk-size", help="Papers per written (and resumable) chunk."),
    backend: str = typer.Option(
        "torch", "--backend", help="torch, or onnx (MODEL is a `sciembed export onnx` folder; CPU)."
    ),
    limit: int = typer.Option(None, "--limit", help="Embed only the first N valid papers."),
    compile: bool = typer.Option(
        False, "--compile", help="GPU: torch.compile the packed forward (~15 s once; pays from ~100k papers)."
    ),
) -> None:
    """Embed a file of papers into Parquet; rerun the same command to resume a killed job."""
    from .embed import embed_file
    from .model import load_model

    try:
        encoder = load_model(model, backend=backend)
        if compile:
            if backend != "torch":
                raise ValueError("--compile applies to the torch backend only")
            encoder.compile_packed()
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    try:
        report = embed_file(
            encoder,
            input,
            output,
            format=format,
            batch_size=batch_size,
            device=device,
            dtype=dtype,
            id_field=id_field,
            skip_invalid=skip_invalid,
            chunk_size=chunk_size,
            limit=limit,
        )
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    if report.resumed_chunks:
        typer.echo(f"resumed: {report.resumed_chunks} finished chunks kept")
    typer.echo(report.read.summary())
    typer.echo(f"wrote {report.rows} embeddings to {report.output}")


@app.command()
def info(model: str = typer.Argument(None, help=MODEL_HELP)) -> None:
    """Print a model's formats, dimension, pooling and weight sha256."""
    from .model import load_model

    encoder = load_model(model)
    config = encoder.config
    typer.echo(f"name:       {config.name}")
    typer.echo(f"base:       {type(encoder.base).__name__} ({encoder.base.config.model_type})")
    typer.echo(f"dimension:  {encoder.hidden_size}")
    typer.echo(f"pooling:    {config.pooling}{' + L2 normalisation' if config.normalize else ''}")
    typer.echo(f"max length: {config.max_length}")
    typer.echo(f"formats:    {', '.join(encoder.formats) or 'none (the base serves every format)'}")
    typer.echo(f"sha256:     {config.base_sha256 or 'unknown'}")


@app.command()
def demo(
    model: str = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    limit: int = typer.Option(None, "--limit", help="Embed only the first N papers."),
    device: str = typer.Option(None, "--device"),
) -> None:
    """Embed real ACL papers and print nearest neighbours of three of them."""
    from .demo import run_demo
    from .model import load_model

    typer.echo(run_demo(load_model(model), limit=limit, device=device))


@app.command("mine-triplets")
def mine_triplets(
    papers: list[Path] = typer.Option(..., "--papers", help="Papers file(s); first non-empty abstract wins."),
    edges: Path = typer.Option(..., "--edges", help="'citing,cited' lines, SPECTER data.json or S2ORC."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for train/dev.jsonl and report.json."),
    id_field: list[str] = typer.Option(None, "--id-field", help="Id field: once, or once per papers file."),
    per_query: int = typer.Option(5, "--per-query", help="Triplets per query."),
    hard: int = typer.Option(2, "--hard", help="Hard negatives per query (the rest are easy)."),
    seed: int = typer.Option(42, "--seed"),
    dev_fraction: float = typer.Option(0.05, "--dev-fraction", help="Share of queries for dev.jsonl."),
    citing_positive: bool = typer.Option(False, "--citing-positive", help="Citing papers are positives too."),
    max_positives: int = typer.Option(None, "--max-positives", help="Cap on positives per query."),
    easy_pool: str = typer.Option("graph", "--easy-pool", help="Easy negatives from 'graph' or 'papers'."),
    exclude_heldout: bool = typer.Option(
        True, "--exclude-heldout/--no-exclude-heldout", help="Leave out held-out evaluation queries."
    ),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Skip bad paper records."),
    compress: bool = typer.Option(False, "--gzip", help="Write .jsonl.gz files."),
) -> None:
    """Mine SPECTER-style citation triplets (query, cited paper, negative) for stage-1 training."""
    from .train.mining import MiningConfig, mine_to_files

    try:
        config = MiningConfig(
            triplets_per_query=per_query,
            hard_per_query=hard,
            seed=seed,
            dev_fraction=dev_fraction,
            include_citing_as_positive=citing_positive,
            max_positives_per_query=max_positives,
            easy_pool=easy_pool,
        )
        report = mine_to_files(
            papers,
            edges,
            output,
            config,
            id_fields=id_field or None,
            exclude_heldout=exclude_heldout,
            skip_invalid=skip_invalid,
            compress=compress,
        )
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    typer.echo(report.summary())
    typer.echo(f"wrote {report.outputs['train']}, {report.outputs['dev']}, {report.outputs['report']}")


EVAL_MODEL_HELP = "bm25, random, default, minilm, a model folder or hub name (repeat to compare)."
EVAL_TASKS_HELP = "'lite' (sciembed-lite, built from ../shared/data) or a scirepeval_tasks.jsonl-style file."


@app.command()
def evaluate(
    model: list[str] = typer.Option(..., "--model", "-m", help=EVAL_MODEL_HELP),
    tasks: str = typer.Option("lite", "--tasks", "-t", help=EVAL_TASKS_HELP),
    task: list[str] = typer.Option(None, "--task", help="Run only this task (repeatable)."),
    output: Path = typer.Option(Path("runs/evaluate"), "--output", "-o", help="Folder for the results."),
    device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)."),
    cache_dir: Path = typer.Option(Path(".cache/embeddings"), "--cache-dir", help="Embedding cache folder."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the embedding cache."),
    batch_size: int = typer.Option(32, "--batch-size", "-b"),
    n_jobs: int = typer.Option(1, "--n-jobs", help="Parallel jobs of the SVM grid searches."),
    data_root: Path = typer.Option(None, "--data-root", help="Shared data for sciembed-lite (default ../shared/data)."),
) -> None:
    """Evaluate models on SciRepEval-format tasks; writes results.json, a markdown table and a PNG chart."""
    from .evaluate.benchmark import markdown_table
    from .evaluate.command import run_evaluate
    from .evaluate.loaders import TaskDataError
    from .evaluate.registry import TaskFileError

    try:
        report = run_evaluate(
            model, tasks, output, device, task, None if no_cache else cache_dir, batch_size, n_jobs, data_root
        )
    except (TaskFileError, TaskDataError, FileNotFoundError, ValueError) as exc:
        _fail(exc)
    typer.echo(markdown_table(report))


export_app = typer.Typer(no_args_is_help=True, help="Export a model for other runtimes.")
app.add_typer(export_app, name="export")


def _keep_fp32(values: list[str] | None) -> tuple[str, ...]:
    """``--keep-fp32`` values: none given -> the library default; ``none`` -> quantise every GEMM."""
    from .model.export import DEFAULT_KEEP_FP32

    if not values:
        return DEFAULT_KEEP_FP32
    return () if values == ["none"] else tuple(values)


@export_app.command("onnx")
def export_onnx_command(
    model: str = typer.Argument(..., help=MODEL_HELP),
    output: Path = typer.Argument(..., help="Folder to write: one .onnx graph per format, tokenizer, settings."),
    format: list[str] = typer.Option(None, "--format", "-f", help="Format to export (repeatable; default: all)."),
    int8: bool = typer.Option(False, "--int8", help="Dynamic int8 quantisation of the weights (onnxruntime)."),
    optimize: bool = typer.Option(False, "--optimize", help="Run onnxruntime's BERT graph optimizer first."),
    keep_fp32: list[str] = typer.Option(
        None,
        "--keep-fp32",
        help="With --int8: GEMMs left in fp32, repeatable: ffn_out, adapters (the default: both), or none.",
    ),
    opset: int = typer.Option(17, "--opset"),
) -> None:
    """Write ONNX graphs (adapter inside) for `sciembed embed --backend onnx` and load(..., backend="onnx")."""
    from .model import load_model
    from .model.export import export_onnx

    try:
        encoder = load_model(model)
        folder = export_onnx(
            encoder,
            output,
            formats=format or None,
            int8=int8,
            optimize=optimize,
            opset=opset,
            keep_fp32=_keep_fp32(keep_fp32),
        )
    except (ValueError, FileNotFoundError, ImportError) as exc:
        _fail(exc)
    typer.echo(f"wrote {', '.join(sorted(p.name for p in folder.glob('*.onnx')))} to {folder}")


# ---- training: stage 1 (base), stage 2 (adapters, multi-task baseline), mixture, release -----------------
train_app = typer.Typer(no_args_is_help=True, help="Train sciembed models.")
app.add_typer(train_app, name="train")


def _stage2(
    mode: str,
    config: Path,
    base: str,
    output: Path,
    device: str | None,
    max_steps: int | None,
    epochs: int | None,
    batch_size: int | None,
    lr: float | None,
    overrides: list[str] | None,
) -> None:
    from .train.multitask import load_stage2_config, train_stage2

    try:
        cfg = load_stage2_config(
            config, overrides, mode=mode, max_steps=max_steps, epochs=epochs, batch_size=batch_size, lr=lr
        )
        result = train_stage2(cfg, base, output, device=device)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    typer.echo(result.summary())


_STAGE2_CONFIG = typer.Option(
    ..., "--config", "-c", help="Stage-2 YAML (tasks as data), e.g. configs/stage2-adapters.yaml."
)
_STAGE2_BASE = typer.Option(..., "--base", help="Base model folder (e.g. the stage-1 model) or hub name.")


def _register_stage2(mode: str, doc: str) -> None:
    """`sciembed train adapters` and `sciembed train multitask` take the same options."""

    def command(
        config: Path = _STAGE2_CONFIG,
        base: str = _STAGE2_BASE,
        output: Path = typer.Option(
            Path(f"runs/stage2-{mode}"), "--output", "-o", help="Run folder (rerun to resume)."
        ),
        device: str = typer.Option(None, "--device"),
        max_steps: int = typer.Option(None, "--max-steps"),
        epochs: int = typer.Option(None, "--epochs"),
        batch_size: int = typer.Option(None, "--batch-size"),
        lr: float = typer.Option(None, "--lr", help="Peak learning rate of the encoder (optim.lr)."),
        set_: list[str] = typer.Option(None, "--set", help="Override a config field: KEY=VALUE (e.g. optim.lr=3e-5)."),
    ) -> None:
        _stage2(mode, config, base, output, device, max_steps, epochs, batch_size, lr, set_)

    command.__doc__ = doc
    train_app.command(mode)(command)


_register_stage2("adapters", "Stage 2: one adapter per format on a frozen base, trained jointly on the task mixture.")
_register_stage2("multitask", "The multi-task baseline: the same mixture trained into the whole encoder, no adapters.")


@train_app.command("build-mixture")
def train_build_mixture(
    output: Path = typer.Option(
        Path("data/mixture"), "--output", "-o", help="Folder for the task files and stage2.yaml."
    ),
    data_root: Path = typer.Option(None, "--data-root", help="Shared data folder (default ../shared/data)."),
) -> None:
    """Build the stage-2 training mixture from ../shared/data, excluding every sciembed-lite test item."""
    from .train.multitask.mixture import build_mixture

    try:
        build_mixture(data_root, output, log=typer.echo)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)


@train_app.command("release")
def train_release(
    model: Path = typer.Option(..., "--from", help="A trained model folder (e.g. runs/stage2-adapters/model)."),
    output: Path = typer.Option(Path("models/sciembed-minilm"), "--to", help="Release folder."),
    scores: Path = typer.Option(None, "--scores", help="Markdown table of sciembed-lite scores for the card."),
    results: Path = typer.Option(
        None, "--check", help="results.json of `sciembed evaluate` holding --base and --from: apply the release rule."
    ),
    base: str = typer.Option(None, "--base", help="The stage-1 base as named in --check's results."),
) -> None:
    """Write a released model folder: fp16 safetensors, adapters, heads and a model card."""
    from .train.multitask.release import check_release_rule, release_model

    if results is not None:
        try:
            rule = check_release_rule(results, base or "", str(model))
        except (ValueError, FileNotFoundError, KeyError) as exc:
            _fail(exc)
        typer.echo(rule.summary())
        if not rule.passed:
            _fail(ValueError(f"not released: {model} does not pass the release rule (docs/TRAINING.md)"))
    folder = release_model(model, output, scores)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    typer.echo(f"released {folder} ({size / 1e6:.1f} MB)")


@train_app.command("base")
def train_base_command(
    config: Path = typer.Option(..., "--config", "-c", help="YAML or JSON config (see docs/TRAINING.md)."),
    set_: list[str] = typer.Option(None, "--set", help="Override a config field: KEY=VALUE (e.g. optim.lr=3e-5)."),
) -> None:
    """Train the base encoder on citation triplets; writes a sciembed model folder (torchrun for multi-GPU)."""
    from .train.config import BaseTrainConfig, ConfigError, load_config
    from .train.stage1 import train_base

    try:
        settings = load_config(config, BaseTrainConfig, overrides=set_ or None)
    except (ConfigError, FileNotFoundError) as exc:
        _fail(exc)
    try:
        folder = train_base(settings)
    except FileNotFoundError as exc:
        _fail(exc)
    typer.echo(f"model: {folder}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
