"""A shipped model (base + delta + adapters over a registry base) as full folders over a carried base.

The GPU machine has no registry packages: it gets the start as a model folder (fp16, carried), which
stands in for the registry base (as ``benchmarks/quality_guard_gpu.py`` does), and writes from the
repository's ``models/<name>/``:

* ``--out-base``: the start with the shipped stage-1 delta merged and no adapters (what stage 2 of a
  new round over the same stage 1 trains on), with ``delta/`` kept so it still ships as a delta;
* ``--out-model``: the whole shipped model (the same plus its adapters), to evaluate beside the rest.

Both are loaded by ``load_model`` itself (the folder's config, its delta merged once), so they are
what ``sciembed.load`` gives on a machine with the registry package.

    python scripts/shipped_folders.py --start /root/stage/r7/minilm --model models/sciembed-minilm \
        --out-base /root/runs/v4-base/model --out-model /root/runs/v4/model
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

from sciembed.model import load_model, save_model
from sciembed.model.bases import REGISTRY_BASES
from sciembed.model.hashing import sha256_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--start", type=Path, required=True, help="the start as a model folder")
    parser.add_argument("--model", type=Path, required=True, help="a shipped folder (sciembed.json, delta/, adapters/)")
    parser.add_argument("--out-base", type=Path, required=True)
    parser.add_argument("--out-model", type=Path, default=None)
    parser.add_argument("--dtype", default="fp16", help="storage dtype of the written weights")
    args = parser.parse_args()
    sha = sha256_file(args.start / "model.safetensors")  # the carried copy stands in for the registry base
    registry = [dataclasses.replace(b, folder=args.start, sha256=sha) for b in REGISTRY_BASES]
    config = json.loads((args.model / "sciembed.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:  # the same folder without its adapters: stage 1 alone
        stage1 = Path(tmp) / "stage1"
        stage1.mkdir()
        (stage1 / "sciembed.json").write_text(
            json.dumps({**config, "formats": [], "name": f"{config['name']}-stage1"}, indent=2)
        )
        if config.get("delta"):
            shutil.copytree(args.model / config["delta"], stage1 / config["delta"])
        save_model(load_model(stage1, registry=registry), args.out_base, dtype=args.dtype)
    print("wrote", args.out_base)
    if args.out_model is not None:
        save_model(load_model(args.model, registry=registry), args.out_model, dtype=args.dtype)
        print("wrote", args.out_model)


if __name__ == "__main__":
    main()
