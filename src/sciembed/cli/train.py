"""`sciembed mine-triplets` and `sciembed train ...`: stage 1, stage 2, mixtures, releases."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import _fail, app


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
    from ..train.mining import MiningConfig, mine_to_files

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
    from ..train.multitask import load_stage2_config, train_stage2

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
    """Build the stage-2 training mixture from ../shared/data, without any evaluation document (excluded_ids)."""
    from ..train.multitask.mixture import build_mixture

    try:
        build_mixture(data_root, output, log=typer.echo)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)


@train_app.command("release")
def train_release(
    model: Path = typer.Option(..., "--from", help="A trained model folder (e.g. runs/stage2-adapters/model)."),
    output: Path = typer.Option(None, "--to", help="Release folder (default: models/<--name>)."),
    scores: Path = typer.Option(None, "--scores", help="Markdown table of sciembed-lite scores for the card."),
    results: Path = typer.Option(
        None, "--check", help="results.json of `sciembed evaluate` holding --base and the candidate: apply the rule."
    ),
    base: str = typer.Option(
        None, "--base", help="The model training started from (e.g. minilm), as named in --check's results."
    ),
    candidate: str = typer.Option(
        None, "--candidate", help="The candidate as named in --check's results (default: the --from folder)."
    ),
    check_only: bool = typer.Option(False, "--check-only", help="Apply the rule and stop (write nothing)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Paired-bootstrap resamples of the rule's intervals."),
    base_model: str = typer.Option(
        None, "--base-model", help="Ship adapters only, over this frozen registry base (e.g. all-minilm-l6-v2)."
    ),
    card: Path = typer.Option(None, "--card", help="README model card to ship (default: a generated one)."),
    name: str = typer.Option("sciembed-minilm", "--name", help="The released model's name."),
) -> None:
    """Write a released model folder (fp16 safetensors, adapters, heads, model card); with --check only
    when the model passes the release rule against its starting model."""
    from ..train.multitask.release import check_release_rule, release_model

    if results is not None:
        if not base:
            _fail(ValueError("--check needs --base (the model training started from)"))
        try:
            rule = check_release_rule(results, base, candidate or str(model), n_boot=bootstrap)
        except (ValueError, FileNotFoundError, KeyError) as exc:
            _fail(exc)
        typer.echo(rule.summary())
        if not rule.passed:
            _fail(ValueError(f"not released: {candidate or model} does not pass the release rule (docs/BENCHMARK.md)"))
        if check_only:
            return
    elif check_only:
        _fail(ValueError("--check-only needs --check results.json"))
    output = output if output is not None else Path("models") / name  # never another model's folder by default
    try:
        folder = release_model(model, output, scores, name=name, base_model=base_model, card=card)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    typer.echo(f"released {folder} ({size / 1e6:.1f} MB)")


@train_app.command("base")
def train_base_command(
    config: Path = typer.Option(..., "--config", "-c", help="YAML or JSON config (see docs/TRAINING.md)."),
    set_: list[str] = typer.Option(None, "--set", help="Override a config field: KEY=VALUE (e.g. optim.lr=3e-5)."),
) -> None:
    """Train the base encoder on citation triplets; writes a sciembed model folder (torchrun for multi-GPU)."""
    from ..train.config import BaseTrainConfig, ConfigError, load_config
    from ..train.stage1 import train_base

    try:
        settings = load_config(config, BaseTrainConfig, overrides=set_ or None)
    except (ConfigError, FileNotFoundError) as exc:
        _fail(exc)
    try:
        folder = train_base(settings)
    except FileNotFoundError as exc:
        _fail(exc)
    typer.echo(f"model: {folder}")


@train_app.command("tokenize")
def train_tokenize_command(
    config: Path = typer.Option(..., "--config", "-c", help="Stage-1 YAML or JSON config (see docs/TRAINING.md)."),
    set_: list[str] = typer.Option(None, "--set", help="Override a config field: KEY=VALUE."),
) -> None:
    """Only write a stage-1 config's token caches (train_tokens / dev_tokens), e.g. for a GPU machine."""
    from ..train.config import BaseTrainConfig, ConfigError, load_config
    from ..train.stage1 import load_init_model, prepare_triplets

    try:
        settings = load_config(config, BaseTrainConfig, overrides=set_ or None)
        if not settings.train_tokens:
            raise ValueError("the config sets no train_tokens path")
        model = load_init_model(settings.init_model)
        model.config.max_length = settings.max_length
        prepare_triplets(model, settings.train_triplets, settings.train_tokens, log=typer.echo)
        if settings.dev_tokens:
            prepare_triplets(
                model, settings.dev_triplets, settings.dev_tokens, settings.max_dev_triplets, log=typer.echo
            )
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        _fail(exc)


@train_app.command("interpolate")
def train_interpolate(
    tuned: str = typer.Option(..., "--tuned", help="The trained model folder."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the interpolated model."),
    start: str = typer.Option(None, "--start", help="The model training started from (for --alpha)."),
    alpha: float = typer.Option(None, "--alpha", help="Base weights: (1 - alpha) * start + alpha * tuned."),
    adapter_scale: float = typer.Option(None, "--adapter-scale", help="Scale every adapter's residual by this."),
    delta_scale: float = typer.Option(
        None, "--delta-scale", help="Scale the model's low-rank stage-1 delta by this (0: its frozen start)."
    ),
    format: list[str] = typer.Option(None, "--format", "-f", help="Adapters to scale (repeatable; default: all)."),
    base_model: str = typer.Option(None, "--base-model", help="Write adapters only over this registry base."),
) -> None:
    """Weight-space interpolation towards the starting model (WiSE-FT), adapter and delta scaling."""
    from ..model import load_model, save_model
    from ..train.interpolate import interpolate_base, scale_adapters, scale_delta

    try:
        model = load_model(tuned)
        if alpha is not None:
            if start is None:
                raise ValueError("--alpha needs --start (the model training started from)")
            model = interpolate_base(load_model(start), model, alpha)
        if delta_scale is not None:
            model = scale_delta(model, delta_scale)
        if adapter_scale is not None:
            model = scale_adapters(model, adapter_scale, format or None)
        folder = save_model(model, output, base_model=base_model)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    typer.echo(f"wrote {folder}")
