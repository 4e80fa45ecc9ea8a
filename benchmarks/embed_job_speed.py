"""`sciembed embed` as a user runs it: a whole papers file to Parquet, each round a fresh process.

Unlike ``embed_speed.py`` (in-process ``encode`` over a list, the same abstracts every round, so the
tokeniser's chunk memory is warm after round 1), every round here is a new process that reads a file
of distinct papers and writes the Parquet output through the resumable job (``embed_file``, what the
CLI calls), default options: tokeniser processes, chunk memories and CUDA start cold. Reported per
round: process start to model loaded, the job itself (read, tokenise, encode, write) and docs/s of
the job. Models:

* ``shipped``: ``models/sciembed-minilm`` (``--base-folder`` stands in for its registry base on a
  machine without the registry package, e.g. the fp16 copy of ``embed_speed.py --write-carry``);
* ``bert-base``: the BERT-base-sized random model of ``embed_speed.py`` (CLS pooling, a proximity
  adapter) saved to a temporary folder (``--tokenizer``: any BERT WordPiece tokenizer folder).

    python benchmarks/embed_job_speed.py --input papers.jsonl.gz --models shipped,bert-base \\
        --base-folder out/carry/speed/minilm-fp16 --tokenizer out/carry/bert-tok --rounds 2 --out $OUT/job

``--variant NAME=JSON`` (repeatable) runs each model under other ``EncodeOptions`` too, e.g.
``--variant 'workers8={"tokenize_workers": 8}'``; ``"job": {"per_chunk_calls": true, "read_process":
false}`` in the JSON runs the job as before 2026-12-02 (one ``encode`` call per chunk, the input
read on a thread); ``"job": {"src": "FOLDER"}`` runs another checkout's ``src`` (the code before a
change) in the same session; ``"job": {"repeat": N}`` runs the job N times in the round's process and
reports the last (a job in a warm process: what is paid once per process, not per job, drops out;
"process start to model loaded" then includes the earlier jobs, ``warm_jobs_s``). The job's own
phases (``EmbedReport.seconds``) come with each round.
Each chunk's seconds (the stream's, or each call's) and its wait for the host
side (the time the launching thread waited for a batch: tokenisation and packing behind the GPU) are
reported with it.

Writes ``embed_job_speed.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def _child(args: argparse.Namespace) -> None:
    """One round in this (fresh) process: load, then the job; prints one JSON line."""
    started = time.perf_counter()
    spec = json.loads(args.options) if args.options else {}
    job = spec.pop("job", {})  # the job's own switches: {"per_chunk_calls": true, "read_process": false}
    if job.get("src"):  # another checkout's sciembed (e.g. the code before a change), for A/B rounds
        sys.path.insert(0, str(Path(job["src"]).resolve()))
    import torch

    from sciembed import EncodeOptions
    from sciembed.embed import embed_file

    if args.model_folder:
        from sciembed.model import load_model

        model = load_model(args.model_folder)
    else:
        from quality_guard_gpu import _load_for_gpu

        model = _load_for_gpu(str(REPO / "models" / "sciembed-minilm"), args.base_folder)
    loaded = time.perf_counter()
    options = EncodeOptions(**spec) if spec else None
    timed = TimedEncoder(model) if job.get("per_chunk_calls") else _time_the_stream(model)
    kwargs = {
        "device": args.device,
        "show_progress": False,
        "options": options,
        "read_process": job.get("read_process"),
    }
    warm_jobs_s = []
    for warm in range(int(job.get("repeat", 1)) - 1):  # earlier jobs in this process: warm it, not reported
        warm_output = args.output.with_name(f"{args.output.stem}-warm{warm}.parquet")
        warm_started = time.perf_counter()
        embed_file(timed, args.input, warm_output, "proximity", **kwargs)
        warm_jobs_s.append(round(time.perf_counter() - warm_started, 3))
        warm_output.unlink()
        for record in [timed] if isinstance(timed, TimedEncoder) else _RECORDS:
            record.seconds.clear()
            record.waited.clear()
    if warm_jobs_s and args.device == "cuda":
        torch.cuda.synchronize()
    loaded = time.perf_counter() if warm_jobs_s else loaded
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        report = profiler.runcall(embed_file, timed, args.input, args.output, "proximity", **kwargs)
        stats = pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative")
        stats.print_stats(45)
        stats.sort_stats("tottime").print_stats(25)
    else:
        report = embed_file(timed, args.input, args.output, "proximity", **kwargs)
    if args.device == "cuda":
        torch.cuda.synchronize()
    done = time.perf_counter()
    job_s = done - loaded
    record = timed if isinstance(timed, TimedEncoder) else _RECORDS[-1]
    row = {
        "rows": report.rows,
        "load_s": loaded - started,
        "job_s": job_s,
        "docs_per_s": report.rows / job_s,
        "encode_calls_s": [round(t, 3) for t in record.seconds],
        "host_wait_s": [round(t, 3) for t in record.waited],
        "outside_encode_s": job_s - sum(record.seconds),
        "phases_s": getattr(report, "seconds", {}),  # the job's own phases (sciembed of 2026-12-02 on)
        "vectors_sha256": _vectors_digest(args.output),
        **({"warm_jobs_s": warm_jobs_s} if warm_jobs_s else {}),
    }
    print("RESULT " + json.dumps(row), flush=True)


def _vectors_digest(path: Path) -> str:
    """sha256 of the written ids and vectors (rounds with the same digest wrote the same bits)."""
    import hashlib

    from sciembed.embed import read_embeddings

    ids, vectors = read_embeddings(path)
    digest = hashlib.sha256("\n".join(ids).encode())
    digest.update(vectors.tobytes())
    return digest.hexdigest()[:16]


def _time_the_stream(model):
    """``model`` itself (the job then streams its chunks through the engine); the stream's timing of
    each chunk is recorded into ``model``'s stand-in lists through the job's own call."""
    import sciembed.embed.chunks as job_chunks

    record = TimedEncoder(model)
    stream = job_chunks.encode_stream

    def timed_stream(*args, **kwargs):
        timings = []
        try:
            yield from stream(*args, timings=timings, **kwargs)
        finally:
            record.seconds.extend(t.seconds for t in timings)
            record.waited.extend(t.wait_for_batches_s for t in timings)

    job_chunks.encode_stream = timed_stream
    _RECORDS.append(record)
    return model


_RECORDS: list = []


class TimedEncoder:
    """The model, with the wall time of each ``encode`` call recorded (the rest is the job's own work)
    and the part of it that the launching thread waited for the host side to hand over a batch."""

    def __init__(self, inner):
        self.inner = inner
        self.seconds: list[float] = []
        self.waited: list[float] = []

    def encode(self, papers, format="proximity", *, options=None):
        from sciembed.engine import run_encode
        from sciembed.engine.options import resolve_options

        started = time.perf_counter()
        try:
            result = run_encode(self.inner, papers, format, resolve_options(options))
            self.waited.append(result.wait_for_batches_s)
            return result.vectors
        finally:
            self.seconds.append(time.perf_counter() - started)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _bert_base_folder(tokenizer: Path, root: Path) -> Path:
    import embed_speed

    from sciembed.model import save_model

    embed_speed._MINILM_OVERRIDE = tokenizer
    folder = root / "bert-base-random"
    save_model(embed_speed.bert_base_model(), folder)
    return folder


def plot_results(folder: Path, out: Path) -> None:
    """One bar per round of every ``*.json`` in ``folder`` (file name = run label): job docs/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, rates, colours = [], [], []

    def numbered(path: Path) -> tuple[int, str]:  # 1-..., 2-..., 10-... in their order
        head = path.stem.split("-", 1)[0]
        return (int(head) if head.isdigit() else 0, path.stem)

    for path in sorted(folder.glob("*.json"), key=numbered):
        for row in json.loads(path.read_text())["rows"]:
            two = {2: " (2 encodes)", 1: " (1 encode)"}.get(row.get("concurrent"), "")  # 4-two-encodes' rows
            variant = f" {row['variant']}" if row.get("variant", "default") != "default" else ""
            labels.append(f"{path.stem} {row['model']}{variant} r{row['round']}{two}")
            rates.append(row["docs_per_s"])
            colours.append("tab:blue" if row["model"] == "shipped" else "tab:orange")
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(labels) + 1.2))
    ax.barh(range(len(labels)), rates, color=colours)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("job docs/s, 74,728 new abstracts (blue: shipped MiniLM, orange: BERT-base)")
    ax.set_title("sciembed embed on one H200, each round a fresh process")
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=None, help="a papers file (JSON lines, gz)")
    parser.add_argument("--plot", type=Path, default=None, help="only plot the JSON results of this folder")
    parser.add_argument("--models", default="shipped,bert-base")
    parser.add_argument("--base-folder", type=Path, default=None)
    parser.add_argument("--tokenizer", type=Path, default=None, help="for bert-base: a BERT tokenizer folder")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--profile", action="store_true", help="cProfile each job (printed to stderr)")
    parser.add_argument("--variant", action="append", default=[], help="NAME=JSON of EncodeOptions fields")
    parser.add_argument(
        "--unrecorded-first-round", action="store_true", help="one round of the first variant first, not recorded"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--options", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model-folder", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args)
    if args.plot is not None:
        return plot_results(args.plot, args.plot / "embed_job_speed.png")
    if args.out is None or args.input is None:
        parser.error("--input and --out are required")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as root:
        variants = [("default", "")] + [tuple(v.split("=", 1)) for v in args.variant]
        for name in args.models.split(","):
            folder = _bert_base_folder(args.tokenizer, Path(root)) if name == "bert-base" else None
            rounds = itertools.product(variants, range(1, args.rounds + 1))
            if args.unrecorded_first_round:  # a fresh machine's first process fills its caches: not compared
                rounds = itertools.chain([(variants[0], 0)], rounds)
            for (variant, options), round_ in rounds:
                output = Path(root) / f"{name}-{variant}-{round_}.parquet"
                cmd = [sys.executable, __file__, "--child", "--input", str(args.input), "--output", str(output)]
                cmd += ["--options", options] if options else []
                cmd += ["--device", args.device] + (["--model-folder", str(folder)] if folder else [])
                cmd += ["--profile"] if args.profile else []
                cmd += ["--base-folder", str(args.base_folder)] if args.base_folder and not folder else []
                started = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True)
                wall = time.perf_counter() - started
                if args.profile:
                    (args.out / f"profile-{name}-{variant}-{round_}.txt").write_text(proc.stderr)
                if proc.returncode != 0:
                    raise SystemExit(f"{name} round {round_} failed:\n{proc.stderr[-3000:]}")
                result = json.loads(proc.stdout.split("RESULT ", 1)[1].splitlines()[0])
                output.unlink()
                if round_ == 0:
                    print(f"unrecorded first round: {result['docs_per_s']:,.0f} docs/s", flush=True)
                    continue
                row = {"model": name, "variant": variant, "round": round_, "process_wall_s": wall}
                rows.append({**row, **result})
                print(json.dumps(rows[-1]), flush=True)
    import torch

    device = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor()
    meta = {"device": device, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "argv": sys.argv[1:]}
    (args.out / "embed_job_speed.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        f"`embed_file` (what `sciembed embed` runs), each round a fresh process; {device}, {meta['date']}",
        "",
        "| model | variant | round | papers | process start to model loaded, s | job s | job docs/s "
        "| outside encode s | encode calls s | of which waiting for the host s | job phases s | vectors sha256 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['round']} | {r['rows']:,} | {r['load_s']:.1f} | "
            f"{r['job_s']:.1f} | {r['docs_per_s']:,.0f} | {r['outside_encode_s']:.1f} | "
            f"{' '.join(f'{t:.2f}' for t in r['encode_calls_s'])} | {' '.join(f'{t:.2f}' for t in r['host_wait_s'])} | "
            f"{' '.join(f'{k} {v:.2f}' for k, v in r.get('phases_s', {}).items()) or '-'} | {r['vectors_sha256']} |"
        )
    (args.out / "embed_job_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
