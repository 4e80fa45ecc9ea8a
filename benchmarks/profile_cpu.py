"""Where CPU embedding time goes: onnxruntime's per-operator profile (fp32 and int8 graphs) and
torch.profiler's for the PyTorch fp32 path, on the same batches of real arXiv abstracts.

    python benchmarks/profile_cpu.py --onnx out/embed_speed-onnx/minilm-onnx_fp32 \
        --onnx out/embed_speed-onnx/minilm-onnx_int8 [--docs 128] [--threads 2]

(the folders are written by ``benchmarks/embed_speed.py --device cpu``). Prints, per engine, the
share of time by operator type and the GEMM rate achieved; writes ``profile_cpu.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import embed_speed  # noqa: E402


def onnx_profile(folder: Path, batches: list[dict[str, np.ndarray]], threads: int) -> tuple[float, Counter]:
    import onnxruntime as ort

    graph = next(folder.glob("*.onnx"))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        names = {i.name for i in session.get_inputs()}
        session.run(None, {k: v for k, v in batches[0].items() if k in names})  # warm-up
        start = time.perf_counter()
        for batch in batches:
            session.run(None, {k: v for k, v in batch.items() if k in names})
        seconds = time.perf_counter() - start
        events = json.loads(Path(session.end_profiling()).read_text())
    by_op: Counter = Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event["args"]["op_name"]] += event["dur"] / 1e6
    return seconds, by_op


def torch_profile(model, batches: list[dict[str, np.ndarray]]) -> tuple[float, Counter]:
    from torch.profiler import ProfilerActivity, profile

    tensors = [{k: torch.from_numpy(v) for k, v in b.items()} for b in batches]
    with torch.inference_mode():
        model(tensors[0]["input_ids"], tensors[0]["attention_mask"], format="proximity")
        start = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for t in tensors:
                model(t["input_ids"], t["attention_mask"], format="proximity")
        seconds = time.perf_counter() - start
    by_op: Counter = Counter()
    for item in prof.key_averages():
        if item.key.startswith("aten::") and item.self_cpu_time_total > 0:
            by_op[item.key] += item.self_cpu_time_total / 1e6
    return seconds, by_op


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, action="append", default=[])
    parser.add_argument("--docs", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "profile_cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    papers = embed_speed.read_arxiv(embed_speed.DEFAULT_ARXIV, args.docs)
    model = embed_speed.minilm_model().place("cpu", torch.float32).eval()
    ids = model.tokenize(model.texts(papers))
    order = np.argsort([len(x) for x in ids])
    batches = []
    for start in range(0, len(order), 32):  # length-sorted batches of 32, as both engines run them
        chunk = [ids[i] for i in order[start : start + 32]]
        tensors = model.collate(chunk)
        batch = {k: v.numpy() for k, v in tensors.items()}
        batches.append(batch)
    tokens = sum(len(x) for x in ids)
    padded = sum(b["input_ids"].size for b in batches)
    lines = [f"{args.docs} arXiv abstracts, {tokens} tokens ({padded} with padding), {args.threads} threads", ""]
    runs = [("pytorch fp32", *torch_profile(model, batches))]
    for folder in args.onnx:
        runs.append((folder.name, *onnx_profile(folder, batches, args.threads)))
    for label, seconds, by_op in runs:
        total = sum(by_op.values())
        lines += [f"## {label}: {args.docs / seconds:.1f} docs/s ({seconds:.2f} s)", ""]
        lines += ["| operator | s | share |", "|---|---|---|"]
        for op, value in by_op.most_common(10):
            lines.append(f"| {op} | {value:.3f} | {value / total:.0%} |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "profile_cpu.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
