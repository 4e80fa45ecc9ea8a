"""Registry bases: split-zip assembly, sha256 checks, and adapters-only model folders."""

from __future__ import annotations

import hashlib
import io
import zipfile

import numpy as np
import pytest
import torch

from sciembed.model import load_model, save_model
from sciembed.model.bases import build_from_parts, find_base

PAPERS = [{"paper_id": "1", "title": "Citation graphs", "abstract": "We embed papers."}, "a short query"]


def _split_zip(tmp_path, payload: bytes, parts: int = 3):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("base/model.safetensors", payload)
        archive.writestr("base/config.json", "{}")
        archive.writestr("base/desktop.ini", "junk")
    data = buffer.getvalue()
    size = -(-len(data) // parts)
    paths = []
    for i in range(parts):
        path = tmp_path / f"base.zip.{i + 1:03d}"
        path.write_bytes(data[i * size : (i + 1) * size])
        paths.append(path)
    return paths


def test_parts_are_joined_unzipped_and_checked(tmp_path):
    payload = b"weights" * 1000
    parts = _split_zip(tmp_path, payload)
    final = build_from_parts(parts, "base", hashlib.sha256(payload).hexdigest(), tmp_path / "out" / "base")
    assert (final / "model.safetensors").read_bytes() == payload
    assert sorted(p.name for p in final.iterdir()) == ["config.json", "model.safetensors"]


def test_wrong_checksum_or_missing_part_leaves_nothing(tmp_path):
    parts = _split_zip(tmp_path, b"weights" * 1000)
    with pytest.raises(ValueError, match="does not match the expected"):
        build_from_parts(parts, "base", "0" * 64, tmp_path / "out" / "base")
    with pytest.raises(ValueError, match="not a valid zip"):
        build_from_parts(parts[:2], "base", "0" * 64, tmp_path / "out" / "base")
    assert not (tmp_path / "out" / "base").exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == []  # temporary folders removed


def test_registry_names():
    assert find_base("all-MiniLM-L6-v2").name == "all-minilm-l6-v2"
    assert find_base("sentence-transformers/all-mpnet-base-v2").name == "all-mpnet-base-v2"
    assert find_base("bert-base-uncased") is None


@pytest.mark.integration
def test_adapters_only_folder_round_trip_over_the_registry_minilm(tmp_path):
    model = load_model("all-minilm-l6-v2")
    torch.manual_seed(0)
    stack = model.add_adapter("proximity")
    for param in stack.parameters():
        torch.nn.init.normal_(param, std=0.05)
    folder = save_model(model, tmp_path / "release", base_model="all-MiniLM-L6-v2")
    assert sorted(p.name for p in folder.iterdir()) == ["adapters", "sciembed.json"]
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < 2_000_000  # adapters only: the 90 MB base comes from the registry package
    loaded = load_model(folder)
    assert loaded.config.base_model == "all-minilm-l6-v2"
    np.testing.assert_allclose(loaded.encode(PAPERS, format="proximity"), model.encode(PAPERS, format="proximity"))
    with torch.no_grad():  # a changed base must not be shipped as "adapters over the registry base"
        next(model.base.parameters()).add_(1e-3)
    with pytest.raises(ValueError, match="cannot ship as adapters only"):
        save_model(model, tmp_path / "bad", base_model="all-minilm-l6-v2")
