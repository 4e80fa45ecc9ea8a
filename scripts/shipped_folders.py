"""A shipped model (base + delta + adapters over a registry base) as full folders over a carried base.

The GPU machine has no registry packages: it gets the start as a model folder (fp16, carried) and
builds here, from the repository's ``models/<name>/``:

* ``--out-base``: the start with the shipped stage-1 delta merged and no adapters (what stage 2 of a
  new round over the same stage 1 trains on), with ``delta/`` kept so it still ships as a delta;
* ``--out-model``: the whole shipped model (the same plus its adapters), to evaluate beside the rest.

    python scripts/shipped_folders.py --start /root/stage/r7/minilm --model models/sciembed-minilm \
        --out-base /root/runs/v4-base/model --out-model /root/runs/v4/model
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sciembed.model import load_model, save_model
from sciembed.model.folder import attach_delta, load_adapter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--start", type=Path, required=True, help="the start as a model folder")
    parser.add_argument("--model", type=Path, required=True, help="a shipped folder (sciembed.json, delta/, adapters/)")
    parser.add_argument("--out-base", type=Path, required=True)
    parser.add_argument("--out-model", type=Path, default=None)
    parser.add_argument("--dtype", default="fp16", help="storage dtype of the written weights")
    args = parser.parse_args()
    config = json.loads((args.model / "sciembed.json").read_text())
    model = load_model(args.start)
    for key in ("pooling", "normalize", "max_length", "text_fields"):  # the shipped model's, not the start's
        if key in config:
            setattr(model.config, key, config[key])
    if config.get("delta"):
        attach_delta(model, args.model / config["delta"], merge=True)
    model.config.name = f"{config['name']}-stage1"
    save_model(model, args.out_base, dtype=args.dtype)
    print("wrote", args.out_base)
    if args.out_model is not None:
        for fmt in config.get("formats", []):
            load_adapter(model, fmt, args.model / "adapters" / fmt)
        model.config.name = config["name"]
        save_model(model, args.out_model, dtype=args.dtype)
        print("wrote", args.out_model)


if __name__ == "__main__":
    main()
