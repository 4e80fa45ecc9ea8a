"""Both ways with the real AdapterHub ``adapters`` 1.3.0 (in its own venv, see ``isolated_venv``):
sciembed's adapter folders load there unchanged and compute the same vectors, and adapters the
library saves (``pytorch_adapter.bin`` and ``adapter.safetensors``) load in sciembed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PAPERS, make_tiny_model
from isolated_venv import isolated_venv

from sciembed.model import load_adapter, load_model, save_model

ADAPTERS_VERSION = "1.3.0"
WORKER = Path(__file__).with_name("adapterhub_worker.py")
FORMATS = ("proximity", "classification", "regression", "adhoc_query")
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def roundtrip(tmp_path_factory):
    """Run the worker once: load our four adapters, save two of its own (.bin and .safetensors)."""
    python = isolated_venv(f"adapters=={ADAPTERS_VERSION}")
    root = tmp_path_factory.mktemp("adapterhub")
    model = make_tiny_model(formats=FORMATS)
    folder = save_model(model, root / "tiny")
    tensors = model.collate(model.tokenize(model.texts(PAPERS)))
    saved = {
        "bin": {"name": "hub_bin", "folder": str(root / "hub_bin"), "safetensors": False, "seed": 7},
        "safetensors": {"name": "hub_st", "folder": str(root / "hub_st"), "safetensors": True, "seed": 8},
    }
    spec = {
        "base": str(folder),
        "input_ids": tensors["input_ids"].tolist(),
        "attention_mask": tensors["attention_mask"].tolist(),
        "load": [str(folder / "adapters" / fmt) for fmt in FORMATS],
        "save": list(saved.values()),
    }
    (root / "spec.json").write_text(json.dumps(spec))
    result = subprocess.run(
        [str(python), str(WORKER), str(root / "spec.json"), str(root / "out.json")],
        capture_output=True,
        text=True,
        timeout=600,
        env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads((root / "out.json").read_text())
    assert out["versions"]["adapters"] == ADAPTERS_VERSION
    return {"model": model, "folder": folder, "tensors": tensors, "out": out, "saved": saved}


def _hidden(model, tensors, fmt):
    """sciembed's last hidden state with the adapter of ``fmt`` active (None: the base)."""
    with torch.inference_mode(), model.router.activated(model.adapter_for_format(fmt)):
        return model.base(**tensors).last_hidden_state.numpy()


def _max_diff(ours, theirs, mask):
    keep = mask.numpy().astype(bool)  # padded positions are not part of any embedding
    return float(np.abs(ours[keep] - np.asarray(theirs, dtype=np.float32)[keep]).max())


def test_base_agrees(roundtrip):
    r = roundtrip
    diff = _max_diff(_hidden(r["model"], r["tensors"], None), r["out"]["base"], r["tensors"]["attention_mask"])
    assert diff <= TOLERANCE


@pytest.mark.parametrize("fmt", FORMATS)
def test_our_adapter_folders_load_in_adapterhub_with_same_vectors(roundtrip, fmt):
    r = roundtrip
    config = json.loads((r["folder"] / "adapters" / fmt / "adapter_config.json").read_text())
    assert config["config"]["architecture"] is None
    ours = _hidden(r["model"], r["tensors"], fmt)
    for kind, theirs in r["out"]["load"][str(r["folder"] / "adapters" / fmt)].items():
        assert _max_diff(ours, theirs, r["tensors"]["attention_mask"]) <= TOLERANCE, kind
    # and the adapter really changes the output (the comparison is not of two base models)
    assert _max_diff(ours, r["out"]["base"], r["tensors"]["attention_mask"]) > 1e-2


@pytest.mark.parametrize("kind", ["bin", "safetensors"])
def test_adapterhub_saves_load_in_sciembed(roundtrip, kind):
    r = roundtrip
    item = r["saved"][kind]
    files = {p.name for p in Path(item["folder"]).iterdir()}
    assert ("pytorch_adapter.bin" if kind == "bin" else "adapter.safetensors") in files
    model = load_model(r["folder"])
    load_adapter(model, "regression", item["folder"])
    ours = _hidden(model, r["tensors"], "regression")
    mask = r["tensors"]["attention_mask"]
    assert _max_diff(ours, r["out"]["save"][item["folder"]], mask) <= TOLERANCE
    assert _max_diff(ours, r["out"]["base"], mask) > 1e-2
