"""Recipe L-distill on an MPNet base (the GPU run's configs/generalise/stage1-mix-mpnet-lora-distill.yaml):
every MPNet layer linear gets a delta, the teacher stays the start, the time budget saves a delta."""
# ruff: noqa: F811  (pytest fixtures imported from trainhelpers are redefined as arguments)

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_model
from safetensors.torch import load_file
from trainhelpers import one_thread, triplet_files  # noqa: F401  (fixtures)

from sciembed.model import load_model, save_model
from sciembed.model.delta import DeltaConfig, LowRankDelta
from sciembed.model.mpnet_attention import PATCHED
from sciembed.train.config import ConfigError, load_config
from sciembed.train.lowrank import attach_lowrank
from sciembed.train.stage1 import TripletTask, load_init_model, prepare_triplets, train_base

pytestmark = pytest.mark.usefixtures("one_thread")
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "generalise" / "stage1-mix-mpnet-lora-distill.yaml"
MPNET_LINEARS = {"attention.attn.q", "attention.attn.k", "attention.attn.v", "attention.attn.o"}
MPNET_LINEARS |= {"intermediate.dense", "output.dense"}


@pytest.fixture(scope="module")
def tiny_mpnet_folder(tmp_path_factory):
    """A tiny MPNet model folder stored fp16, like the GPU machine's /root/stage/mpnet."""
    folder = tmp_path_factory.mktemp("mpnet") / "mpnet"
    save_model(make_tiny_model("mpnet", pooling="mean", normalize=True), folder, dtype="fp16")
    return folder


def mpnet_config(tmp_path, folder, train, *overrides: str):
    settings = [f"init_model={folder}", f"train_triplets={train}", f"output_dir={tmp_path / 'run'}"]
    settings += ["batch_size=8", "max_length=64", "progress=false", "log_every=1", *overrides]
    return load_config(CONFIG, overrides=settings)


def test_mpnet_lora_run_deltas_every_layer_linear_over_the_fp16_start(tmp_path, tiny_mpnet_folder, triplet_files):
    train, _ = triplet_files
    config = mpnet_config(tmp_path, tiny_mpnet_folder, train, "max_steps=2")
    assert (config.lora.rank, config.lora.alpha, config.loss, config.distill_weight) == (16, 32.0, "contrastive", 1.0)
    messages: list[str] = []
    folder = train_base(config, log=messages.append)
    delta = LowRankDelta.load(folder / "delta")
    paths = {name.split(".", 3)[3] for name in delta.factors}  # encoder.layer.N.<path>
    assert paths == MPNET_LINEARS and len(delta.factors) == 2 * len(MPNET_LINEARS)
    assert all(b.abs().max() > 0 for _, b in delta.factors.values())  # every factor trained
    # the run's weights: the fp16 start (read as fp32) with the saved delta merged, nothing else changed
    rebuilt = load_model(tiny_mpnet_folder)
    delta.merge_into(rebuilt.base)
    trained = load_file(str(folder / "model.safetensors"))
    for key, value in rebuilt.base.state_dict().items():
        assert torch.equal(value, trained[key]), key
    assert not any("time budget" in m for m in messages)


def test_distillation_teacher_of_an_sdpa_routed_mpnet_stays_the_start(tiny_mpnet_folder, triplet_files):
    """The teacher is a deep copy whose SDPA-routed attention is bound to its own weights, not the student's."""
    train, _ = triplet_files
    model = load_init_model(str(tiny_mpnet_folder))
    assert sum(hasattr(m, PATCHED) for m in model.base.modules()) == 2  # MPNet attention through SDPA
    config = mpnet_config(Path("unused"), tiny_mpnet_folder, train)
    task = TripletTask(model, prepare_triplets(model, str(train), None), config, torch.device("cpu"))
    before = task.embed(task.teacher.model, [task.train.docs[i] for i in range(6)])
    updates = attach_lowrank(model, DeltaConfig(rank=4, alpha=8.0))
    for update in updates.values():
        torch.nn.init.normal_(update.lora_B, std=0.5)
    docs = [task.train.docs[i] for i in range(6)]
    with torch.no_grad():
        np.testing.assert_array_equal(task.embed(task.teacher.model, docs), before)
        assert not torch.allclose(task.embed(model, docs), before, atol=1e-3)


def test_stage1_time_budget_stops_and_saves_the_delta(tmp_path, tiny_mpnet_folder, triplet_files):
    train, _ = triplet_files
    messages: list[str] = []
    config = mpnet_config(tmp_path, tiny_mpnet_folder, train, "time_budget_s=0.001", "max_steps=5")
    folder = train_base(config, log=messages.append)
    assert any("time budget of 0 s reached at step 1" in m for m in messages), messages
    assert any("stopped by the time budget at step 1 of 5" in m for m in messages)
    assert len(LowRankDelta.load(folder / "delta").factors) == 2 * len(MPNET_LINEARS)
    assert load_model(folder).delta is not None
    with pytest.raises(ConfigError, match="time_budget_s"):
        mpnet_config(tmp_path, tiny_mpnet_folder, train, "time_budget_s=0")


def test_mpnet_run_ships_as_registry_base_plus_delta_plus_adapters(tmp_path, triplet_files, monkeypatch):
    """The GPU chain for sciembed-mpnet: registry MPNet (fp32) -> staged fp16 copy -> L-distill stage 1 ->
    adapters on top -> the run's folder without its base weights (what the GPU script's tar brings back)
    -> `release_model(base_model=...)` -> `load_model("sciembed-mpnet")` builds it over the registry base."""
    import shutil

    from test_multitask import make_config

    from sciembed.model.bases import RegistryBase
    from sciembed.model.hashing import sha256_file
    from sciembed.train.multitask import train_stage2
    from sciembed.train.multitask.release import release_model

    registry_dir = save_model(make_tiny_model("mpnet", pooling="mean", normalize=True), tmp_path / "registry")
    registry = (
        RegistryBase("tiny-mpnet", ("tiny-mpnet",), sha256_file(registry_dir / "model.safetensors"), (), "tiny MPNet",
                     folder=registry_dir),
    )  # fmt: skip
    staged = save_model(load_model("tiny-mpnet", registry=registry), tmp_path / "stage" / "mpnet", dtype="fp16")
    train, _ = triplet_files
    stage1 = train_base(mpnet_config(tmp_path, staged, train, "max_steps=2"), log=lambda _: None)
    (tmp_path / "mix").mkdir()
    run = train_stage2(make_config(tmp_path / "mix", max_steps=2), str(stage1), tmp_path / "s2", log=None).model_dir
    trained = load_model(run)
    back = tmp_path / "back" / "model"
    shutil.copytree(run, back, ignore=shutil.ignore_patterns("model.safetensors", "tokenizer*", "vocab.txt"))

    release = release_model(back, tmp_path / "models" / "sciembed-mpnet", name="sciembed-mpnet",
                            base_model="tiny-mpnet", registry=registry)  # fmt: skip
    shipped = {p.name for p in release.iterdir()}
    assert {"adapters", "delta", "heads", "sciembed.json", "README.md"} <= shipped
    assert "model.safetensors" not in shipped  # the base comes from the registry at load
    card = (release / "README.md").read_text()
    assert card.count("# sciembed-mpnet") == 1 and "an encoder from tiny MPNet (32 dimensions)" in card
    assert "MiniLM" not in card.split("## Scores")[0]
    assert "low-rank delta over the frozen start: rank 16, alpha 32, on every" in card and "(12 linears" in card
    monkeypatch.setenv("SCIEMBED_MODELS", str(tmp_path / "models"))
    loaded = load_model("sciembed-mpnet", registry=registry)
    assert loaded.config.base_model == "tiny-mpnet" and loaded.config.name == "sciembed-mpnet"
    assert loaded.delta is not None and loaded.formats == trained.formats
    assert loaded.config.max_length == trained.config.max_length == 64  # as trained, not the base's 512
    papers = [{"paper_id": str(i), "title": f"graph parsing {i}", "abstract": "citation " * i} for i in range(4)]
    # exactly the registry base + the run's fp16 delta + its adapters ...
    expected = load_model("tiny-mpnet", registry=registry)
    delta = LowRankDelta.load(back / "delta")
    delta.merge_into(expected.base)
    assert torch.equal(loaded.base.state_dict()["encoder.layer.0.attention.attn.q.weight"],
                       expected.base.state_dict()["encoder.layer.0.attention.attn.q.weight"])  # fmt: skip
    # ... which is the evaluated run up to the fp16 rounding of the staged base
    for fmt in ("proximity", "classification"):
        np.testing.assert_allclose(loaded.encode(papers, format=fmt), trained.encode(papers, format=fmt), atol=2e-3)


def test_shipped_mpnet_release_is_compact_and_fits_all_mpnet_base_v2():
    """models/sciembed-mpnet (once released) holds only what training changed, for the registry MPNet;
    until then, loading it by name says that it is not released (no hub lookup, no traceback)."""
    folder = Path(__file__).resolve().parents[2] / "models" / "sciembed-mpnet"
    if (folder / "sciembed.json").is_file():
        check_mpnet_release(folder)
        return
    from sciembed.model import load_model

    with pytest.raises(FileNotFoundError, match="sciembed-mpnet is not in this checkout's models/.*not been released"):
        load_model("sciembed-mpnet")


def check_mpnet_release(folder: Path) -> None:
    """What a sciembed-mpnet release folder must hold (also run on a rehearsal release by hand)."""
    import json

    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < 60e6 and not (folder / "model.safetensors").exists()  # issue 10: ~60 MB at most
    config = json.loads((folder / "sciembed.json").read_text())
    assert (config["name"], config["base_model"], config["delta"]) == ("sciembed-mpnet", "all-mpnet-base-v2", "delta")
    delta = LowRankDelta.load(folder / "delta")
    shapes = {name.split(".", 3)[3]: (b.shape[0], a.shape[1]) for name, (a, b) in delta.factors.items()}
    assert set(shapes) <= MPNET_LINEARS and len(delta.factors) <= 12 * len(MPNET_LINEARS)
    assert shapes.get("intermediate.dense", (3072, 768)) == (3072, 768)
    assert all(s[1] in (768, 3072) and s[0] in (768, 3072) for s in shapes.values())
    for fmt in config["formats"]:
        assert json.loads((folder / "adapters" / fmt / "adapter_config.json").read_text())["hidden_size"] == 768
