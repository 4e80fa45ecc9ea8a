"""Runs inside the isolated venv with AdapterHub's ``adapters`` (never imports sciembed).

Usage: python adapterhub_worker.py SPEC.json OUT.json

SPEC: {"base": model folder, "input_ids": [[...]], "attention_mask": [[...]],
       "load": [adapter folders written by sciembed],
       "save": [{"name": ..., "folder": ..., "safetensors": bool, "seed": int}]}
OUT:  {"versions": {...}, "base": hidden, "load": {folder: {"bin": hidden, "safetensors": hidden}},
       "save": {folder: hidden}}
where each "hidden" is the last hidden state (batch x tokens x dim) as nested lists, computed by the
library with the adapter active (``load``: read by its default ``load_adapter(folder)``, the .bin,
and by ``load_adapter(folder, use_safetensors=True)``). ``save`` adds a fresh seq_bn adapter with random (non-trivial)
weights, saves it with ``model.save_adapter`` (.bin, or .safetensors) and reports its output.
"""

from __future__ import annotations

import json
import sys

import adapters
import torch
import transformers
from transformers import AutoModel


def hidden(model, ids, mask):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).last_hidden_state.tolist()


def main(spec_path: str, out_path: str) -> None:
    spec = json.loads(open(spec_path).read())
    ids = torch.tensor(spec["input_ids"])
    mask = torch.tensor(spec["attention_mask"])
    model = AutoModel.from_pretrained(spec["base"], attn_implementation="eager").eval()
    adapters.init(model)
    out = {
        "versions": {"adapters": adapters.__version__, "transformers": transformers.__version__},
        "base": hidden(model, ids, mask),
        "load": {},
        "save": {},
    }
    for folder in spec["load"]:
        out["load"][folder] = {}
        for kind, use_safetensors in (("bin", False), ("safetensors", True)):
            name = model.load_adapter(folder, use_safetensors=use_safetensors)
            model.set_active_adapters(name)
            out["load"][folder][kind] = hidden(model, ids, mask)
            model.set_active_adapters(None)
            model.delete_adapter(name)
    for item in spec["save"]:
        model.add_adapter(item["name"], config="seq_bn")
        torch.manual_seed(item["seed"])
        with torch.no_grad():
            for key, param in model.named_parameters():
                if f".adapters.{item['name']}." in key:
                    param.normal_(0.0, 0.2)
        model.set_active_adapters(item["name"])
        model.eval()
        out["save"][item["folder"]] = hidden(model, ids, mask)
        model.save_adapter(item["folder"], item["name"], use_safetensors=item["safetensors"])
        model.set_active_adapters(None)
        model.delete_adapter(item["name"])
    with open(out_path, "w") as handle:
        json.dump(out, handle)


if __name__ == "__main__":
    main(*sys.argv[1:])
