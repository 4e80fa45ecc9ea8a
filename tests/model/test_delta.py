"""Low-rank deltas in model folders: merge rule, round trips, adapters-only releases, fingerprints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import make_tiny_model

from sciembed.model import load_model, save_model
from sciembed.model.bases import RegistryBase
from sciembed.model.delta import DELTA_CONFIG, DELTA_WEIGHTS, DeltaConfig, LowRankDelta, target_linears
from sciembed.model.hashing import sha256_file
from sciembed.train.interpolate import interpolate_base, scale_delta

PAPERS = [{"paper_id": str(i), "title": f"graph parsing {i}", "abstract": "citation embedding " * i} for i in range(5)]


def random_delta(model, rank: int = 3, seed: int = 0, targets=("*",), alpha: float = 6.0) -> LowRankDelta:
    generator = torch.Generator().manual_seed(seed)
    factors = {}
    for name, linear in target_linears(model.base, targets).items():
        out, inp = linear.weight.shape
        factors[name] = (
            torch.randn(rank, inp, generator=generator) * 0.3,
            torch.randn(out, rank, generator=generator) * 0.3,
        )
    return LowRankDelta(DeltaConfig(rank=rank, alpha=alpha, targets=tuple(targets)), factors)


def with_delta(model, delta):
    delta.merge_into(model.base)
    model.delta = delta
    return model


def test_targets_name_every_attention_and_feed_forward_linear_or_a_chosen_few():
    model = make_tiny_model()
    names = set(target_linears(model.base, ["*"]))
    per_layer = {n.split(".", 3)[3] for n in names}
    assert per_layer == {
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "intermediate.dense",
        "output.dense",
    }
    assert len(names) == 12  # two layers
    assert set(target_linears(model.base, ["attention.self.*"])) == {
        f"encoder.layer.{i}.attention.self.{p}" for i in range(2) for p in ("query", "key", "value")
    }
    assert set(target_linears(model.base, ["output.dense"])) == {f"encoder.layer.{i}.output.dense" for i in range(2)}
    with pytest.raises(ValueError, match="no linear of the encoder layers matches"):
        target_linears(model.base, ["attention.q"])
    mpnet = set(target_linears(make_tiny_model("mpnet").base, ["attention.*"]))
    assert "encoder.layer.0.attention.attn.q" in mpnet and "encoder.layer.1.attention.attn.o" in mpnet


def test_merged_forward_equals_the_unmerged_low_rank_forward():
    """The merge rule W + (alpha / r) B A gives what LoRA computes unmerged: W x + (alpha / r) B (A x)."""
    delta = random_delta(make_tiny_model(), targets=("attention.self.query", "intermediate.dense"))
    unmerged = make_tiny_model(pooling="mean")
    modules = dict(unmerged.base.named_modules())
    for name, (a, b) in delta.factors.items():  # forward hooks: the base weights themselves stay as they are
        modules[name].register_forward_hook(
            lambda mod, inputs, out, a=a, b=b: out + delta.config.factor * (inputs[0] @ a.T) @ b.T
        )
    merged = with_delta(make_tiny_model(pooling="mean"), delta)
    for fmt in ("proximity", "classification"):
        np.testing.assert_allclose(merged.encode(PAPERS, format=fmt), unmerged.encode(PAPERS, format=fmt), atol=2e-6)
    plain = make_tiny_model(pooling="mean").encode(PAPERS)
    assert not np.allclose(plain, merged.encode(PAPERS), atol=1e-3)  # the delta does something


def test_full_folder_round_trip_keeps_weights_delta_and_fingerprint(tmp_path):
    model = with_delta(make_tiny_model(formats=("proximity",)), random_delta(make_tiny_model()))
    folder = save_model(model, tmp_path / "m")
    assert json.loads((folder / "sciembed.json").read_text())["delta"] == "delta"
    assert {p.name for p in (folder / "delta").iterdir()} == {DELTA_CONFIG, DELTA_WEIGHTS}
    loaded = load_model(folder)
    assert loaded.delta is not None and set(loaded.delta.factors) == set(model.delta.factors)
    # the folder's own weights include the delta: loading does not add it a second time
    np.testing.assert_array_equal(loaded.encode(PAPERS, format="proximity"), model.encode(PAPERS, format="proximity"))
    assert loaded.fingerprint == model.fingerprint
    # a model without a delta keeps its fingerprint settings (no new key in what is hashed)
    plain = make_tiny_model()
    assert load_model(save_model(plain, tmp_path / "plain")).fingerprint == plain.fingerprint


def test_fingerprint_and_embeddings_follow_the_delta_scale():
    model = with_delta(make_tiny_model(), random_delta(make_tiny_model()))
    start = make_tiny_model()
    half, zero, same = scale_delta(model, 0.5), scale_delta(model, 0.0), scale_delta(model, 1.0)
    assert len({model.fingerprint, half.fingerprint, start.fingerprint}) == 3
    assert same.fingerprint == model.fingerprint
    np.testing.assert_allclose(zero.encode(PAPERS), start.encode(PAPERS), atol=1e-5)  # 0: the frozen start
    assert half.delta.config.scale == 0.5 and model.delta.config.scale == 1.0  # the input is not modified
    expected = with_delta(make_tiny_model(), random_delta(make_tiny_model()).scaled(0.5))
    np.testing.assert_allclose(half.encode(PAPERS), expected.encode(PAPERS), atol=1e-6)
    with pytest.raises(ValueError, match="no low-rank delta"):
        scale_delta(start, 0.5)
    assert interpolate_base(start, model, 0.5).delta is None  # a mixed base is no longer base + delta


def test_delta_that_does_not_fit_the_base_is_refused_naming_the_file(tmp_path):
    model = with_delta(make_tiny_model(), random_delta(make_tiny_model()))
    folder = save_model(model, tmp_path / "m")
    other = random_delta(make_tiny_model(), rank=3)
    name = next(iter(other.factors))
    a, b = other.factors[name]
    LowRankDelta(other.config, {name: (a[:, :-1], b)}).save(folder / "delta")
    with pytest.raises(ValueError, match=r"delta: .*has weight .* but factors"):
        load_model(folder)
    (folder / "delta" / DELTA_WEIGHTS).write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_model(folder)
    (folder / "delta" / DELTA_CONFIG).write_text('{"rank": 0, "alpha": 1}')
    with pytest.raises(ValueError, match="delta_config.json: rank must be a positive integer"):
        load_model(folder)


@pytest.fixture
def tiny_registry(tmp_path) -> tuple[RegistryBase, ...]:
    """A registry whose one base is a tiny random model folder (the real ones are 90 and 440 MB)."""
    base_dir = save_model(make_tiny_model(pooling="mean"), tmp_path / "registry-tiny")
    sha256 = sha256_file(base_dir / "model.safetensors")
    return (RegistryBase("tiny-registry", ("tiny-registry",), sha256, (), "tiny", folder=base_dir),)


def test_adapters_only_release_holds_the_delta_and_merges_it_into_the_registry_base(tmp_path, tiny_registry):
    model = load_model("tiny-registry", registry=tiny_registry)
    torch.manual_seed(3)
    stack = model.add_adapter("proximity")
    for param in stack.parameters():
        torch.nn.init.normal_(param, std=0.2)
    with_delta(model, random_delta(model).rounded(torch.float16))
    with pytest.raises(ValueError, match="unknown base_model 'tiny-registry'"):
        save_model(model, tmp_path / "release", base_model="tiny-registry")  # not in the default registry
    release = save_model(model, tmp_path / "release", base_model="tiny-registry", registry=tiny_registry)
    assert sorted(p.name for p in release.iterdir()) == ["adapters", "delta", "sciembed.json"]
    assert (release / "delta" / DELTA_WEIGHTS).stat().st_size < 20_000  # fp16 factors only
    with pytest.raises(FileNotFoundError, match="no known base_model"):
        load_model(release)
    loaded = load_model(release, registry=tiny_registry)
    assert loaded.config.base_model == "tiny-registry" and loaded.delta is not None
    np.testing.assert_array_equal(loaded.encode(PAPERS, format="proximity"), model.encode(PAPERS, format="proximity"))
    assert loaded.fingerprint == model.fingerprint
    # WiSE-style scaling of the loaded release ships again as registry base + scaled delta
    half = scale_delta(loaded, 0.5)
    again = load_model(
        save_model(half, tmp_path / "half", base_model="tiny-registry", registry=tiny_registry), registry=tiny_registry
    )
    np.testing.assert_allclose(
        again.encode(PAPERS, format="proximity"), half.encode(PAPERS, format="proximity"), atol=1e-6
    )
    assert again.fingerprint != loaded.fingerprint
    # a base changed beyond the delta must not ship as "registry base + delta"
    with torch.no_grad():
        next(model.base.parameters()).add_(1e-3)
    with pytest.raises(ValueError, match="cannot ship as adapters and its low-rank delta only"):
        save_model(model, tmp_path / "bad", base_model="tiny-registry", registry=tiny_registry)


def test_release_command_path_ships_a_run_delta_over_the_registry_base(tmp_path, tiny_registry):
    """`sciembed train release --base-model`: a run folder that came back without its base weights
    (adapters/ and delta/ only) becomes registry base + delta + adapters."""
    import shutil

    from sciembed.train.multitask.release import release_model

    model = load_model("tiny-registry", registry=tiny_registry)
    model.add_adapter("proximity")
    with_delta(model, random_delta(model).rounded(torch.float16))
    model.config.max_length = 24  # trained and evaluated shorter than the base allows
    run = save_model(model, tmp_path / "run" / "model")
    (run / "model.safetensors").unlink()  # what the GPU script's tar leaves out
    release = release_model(run, tmp_path / "rel", base_model="tiny-registry", card=None, registry=tiny_registry)
    shutil.rmtree(run)
    loaded = load_model(release, registry=tiny_registry)
    np.testing.assert_allclose(loaded.encode(PAPERS), model.encode(PAPERS), atol=1e-6)
    assert loaded.delta is not None and (release / "delta").is_dir()
    assert loaded.config.max_length == 24  # the run's embedding settings ship, not the base's
    # a stage-1-only run (a delta, no adapters) ships as registry base + delta
    stage1 = with_delta(load_model("tiny-registry", registry=tiny_registry), random_delta(model).rounded(torch.float16))
    bare = save_model(stage1, tmp_path / "s1")
    (bare / "model.safetensors").unlink()
    only = load_model(
        release_model(bare, tmp_path / "rel-s1", base_model="tiny-registry", registry=tiny_registry),
        registry=tiny_registry,
    )
    assert only.formats == [] and only.delta is not None


@pytest.mark.integration
def test_delta_over_the_registry_minilm_round_trip(tmp_path):
    model = load_model("all-minilm-l6-v2")
    start = model.fingerprint
    with_delta(model, random_delta(model, rank=4, alpha=0.02).rounded(torch.float16))
    folder = save_model(model, tmp_path / "release", base_model="all-minilm-l6-v2")
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 2_000_000
    loaded = load_model(folder)
    np.testing.assert_array_equal(loaded.encode(PAPERS), model.encode(PAPERS))
    assert loaded.fingerprint == model.fingerprint != start
