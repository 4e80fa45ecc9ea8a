"""Paired-bootstrap differences of two models of one stored ``sciembed evaluate`` run, either as reference
(the run itself compared every model with its own reference only), as the run's markdown table.

    python scripts/compare_in_results.py benchmarks/results/generalise/results-minilm-r7.json.gz \
        /root/runs/v4/model /root/runs/minilm-v4base-adapters-scale0.5/model > benchmarks/results/generalise/r7-vs-v4.md
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from sciembed.evaluate.benchmark import read_results
from sciembed.evaluate.bootstrap import compare_models
from sciembed.evaluate.compare_report import comparison_markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", help="results.json(.gz) of `sciembed evaluate`")
    parser.add_argument("reference", help="the reference model, as named in the results")
    parser.add_argument("candidate", help="the candidate model, as named in the results")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    suite = read_results(args.results)
    models = [suite.model(args.reference), suite.model(args.candidate)]
    missing = [n for n, m in zip((args.reference, args.candidate), models, strict=True) if m is None]
    if missing:
        raise SystemExit(f"{args.results}: no model {missing[0]!r}; it has {[m.name for m in suite.models]}")
    pair = replace(suite, models=models, comparisons=None)
    comparison = compare_models(pair, models[0].name, [models[1].name], n_boot=args.bootstrap)
    print(comparison_markdown(comparison, suite.tasks))


if __name__ == "__main__":
    main()
