"""``python -m sciembed.train base --config FILE [--set KEY=VALUE ...]``: the trainer without the CLI's deps.

Same as ``sciembed train base`` (typer/rich not needed, for bare GPU machines and ``torchrun``).
``python -m sciembed.train tokenize --config FILE`` only writes the token caches
(``train_tokens`` / ``dev_tokens``) of a config, so that the GPU machine needs no triplet files.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sciembed.train")
    parser.add_argument("command", choices=["base", "tokenize"])
    parser.add_argument("--config", "-c", required=True, help="YAML or JSON config (docs/TRAINING.md)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE override")
    args = parser.parse_args(argv)

    from .config import BaseTrainConfig, ConfigError, load_config

    try:
        config = load_config(args.config, BaseTrainConfig, overrides=args.overrides)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "tokenize":
        from .stage1 import load_init_model, prepare_triplets

        model = load_init_model(config.init_model)
        model.config.max_length = config.max_length
        if not config.train_tokens:
            print("error: the config sets no train_tokens path", file=sys.stderr)
            return 2
        prepare_triplets(model, config.train_triplets, config.train_tokens, log=print)
        if config.dev_tokens:
            prepare_triplets(model, config.dev_triplets, config.dev_tokens, config.max_dev_triplets, log=print)
        return 0
    from .stage1 import train_base

    folder = train_base(config)
    print(f"model: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
