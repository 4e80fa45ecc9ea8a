"""Record what the real AdapterHub ``adapters`` library computes with our reference checkpoints.

Runs ONLY inside the isolated venv made by ``scripts/make_adapterhub_fixture.sh`` (it needs the
``adapters`` library, which pins its own transformers). Output: ``tests/fixtures/adapterhub_parity.json``,
which our own adapter implementation is tested against in CI without ``adapters`` installed.

Steps: deterministic BERT-base weights (tests/model/adapterhub_init.py) -> adapters.init ->
load each reference adapter -> CLS and masked-mean vectors for "no adapter" and each adapter.
It also re-implements the whole forward (and each BertOutput block) in plain torch and asserts it
matches the library, which is what backs scripts/ADAPTERHUB_NOTES.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "model"))
from adapterhub_init import bert_param_shapes, deterministic_bert_state  # noqa: E402

SEED = 20240611
SEQ_LENGTHS = (5, 17, 40, 64)
CLS_ID, SEP_ID, PAD_ID = 101, 102, 0
TOKEN_LOW, TOKEN_HIGH = 1000, 29000  # body ids drawn from [TOKEN_LOW, TOKEN_HIGH)
BLOCK_TOL = 1e-6  # manual BertOutput block vs library, same inputs
FULL_TOL = 1e-6  # manual 12-layer forward vs library (bit-exact in practice: same op order)

BERT_CONFIG = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
}


def make_inputs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    max_len = max(SEQ_LENGTHS)
    ids = np.full((len(SEQ_LENGTHS), max_len), PAD_ID, dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, n in enumerate(SEQ_LENGTHS):
        body = rng.integers(TOKEN_LOW, TOKEN_HIGH, size=n - 2)
        ids[row, :n] = np.concatenate([[CLS_ID], body, [SEP_ID]])
        mask[row, :n] = 1
    return ids, mask


def pool(hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CLS = position 0; mean = average over positions with mask 1 ([CLS] and [SEP] included)."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return hidden[:, 0], (hidden * m).sum(1) / m.sum(1)


def build_model(seed: int):
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(**BERT_CONFIG), add_pooling_layer=False)
    state = deterministic_bert_state(BERT_CONFIG, seed)
    params = dict(model.named_parameters())
    # The name/shape list in adapterhub_init must be exactly the model's parameters.
    assert {k: tuple(v.shape) for k, v in params.items()} == bert_param_shapes(BERT_CONFIG)
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(torch.from_numpy(state[name]))
    return model.eval(), state


# ---------------------------------------------------------------- manual re-implementation


def manual_adapter_block(h, x_in, ln_w, ln_b, eps, ad):
    """BertOutput with a Pfeiffer/seq_bn adapter (this checkpoint's config), dense+dropout already applied.

    h    = dropout(dense(intermediate))   (the FFN output, "hidden_states")
    x_in = input_tensor                   (BertOutput's residual input = attention-block output)
    """
    ln = lambda t: F.layer_norm(t, (t.shape[-1],), ln_w, ln_b, eps)  # noqa: E731
    residual = h  # residual_before_ln=True: adapter residual is the raw FFN output
    a_in = ln(h + x_in)  # original_ln_before=True: original LayerNorm(h + x_in) is the adapter input
    up = F.linear(F.relu(F.linear(a_in, ad["down.w"], ad["down.b"])), ad["up.w"], ad["up.b"])
    out = up * ad["scaling"] + residual  # adapter_residual_before_ln=False, ln_after=False
    return ln(out + x_in)  # original_ln_after=True: SAME original LayerNorm again, with x_in added


def adapter_weights(path: Path, n_layers: int, scaling: float) -> list[dict]:
    sd = torch.load(path / "pytorch_adapter.bin", map_location="cpu", weights_only=True)
    name = json.loads((path / "adapter_config.json").read_text())["name"]
    layers = []
    for i in range(n_layers):
        p = f"bert.encoder.layer.{i}.output.adapters.{name}."
        layers.append(
            {
                "down.w": sd.pop(p + "adapter_down.0.weight"),
                "down.b": sd.pop(p + "adapter_down.0.bias"),
                "up.w": sd.pop(p + "adapter_up.weight"),
                "up.b": sd.pop(p + "adapter_up.bias"),
                "scaling": scaling,
            }
        )
    assert not sd, f"unmapped keys in {path}: {sorted(sd)[:5]}"
    return layers


def manual_bert(state: dict, ids: torch.Tensor, mask: torch.Tensor, adapters: list[dict] | None):
    """Plain-torch BertModel forward (eval) from the numpy state, optionally with adapters."""
    c = BERT_CONFIG
    w = {k: torch.from_numpy(v) for k, v in state.items()}
    eps, nh = c["layer_norm_eps"], c["num_attention_heads"]
    ln = lambda t, p: F.layer_norm(t, (t.shape[-1],), w[p + ".weight"], w[p + ".bias"], eps)  # noqa: E731
    lin = lambda t, p: F.linear(t, w[p + ".weight"], w[p + ".bias"])  # noqa: E731
    b, n = ids.shape
    pos = torch.arange(n)
    # HF order: (word + token_type) + position; fp32 addition is not associative
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.token_type_embeddings.weight"][0]
    x = ln(x + w["embeddings.position_embeddings.weight"][pos], "embeddings.LayerNorm")
    # additive key mask (b, 1, n, n) with float32 min, as HF's _prepare_4d_attention_mask_for_sdpa builds it
    bias = ((1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min).expand(b, 1, n, n)
    for i in range(c["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        heads = [
            lin(x, p + f"attention.self.{q}").view(b, n, nh, -1).transpose(1, 2) for q in ("query", "key", "value")
        ]
        att = F.scaled_dot_product_attention(*heads, attn_mask=bias).transpose(1, 2).reshape(b, n, -1)
        x = ln(lin(att, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        h = lin(F.gelu(lin(x, p + "intermediate.dense")), p + "output.dense")
        lw, lb = w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]
        if adapters is None:
            x = F.layer_norm(h + x, (h.shape[-1],), lw, lb, eps)
        else:
            x = manual_adapter_block(h, x, lw, lb, eps, adapters[i])
    return x


def check_blocks(model, ids, mask, ad_layers) -> float:
    """Feed each library BertOutput's captured inputs through manual_adapter_block."""
    worst = 0.0
    captured = []
    hooks = [
        layer.output.register_forward_hook(lambda mod, args, out: captured.append((mod, args, out)))
        for layer in model.encoder.layer
    ]
    try:
        model(input_ids=ids, attention_mask=mask)
    finally:
        for hk in hooks:
            hk.remove()
    assert len(captured) == len(ad_layers)
    for (mod, (inter, x_in), out), ad in zip(captured, ad_layers, strict=True):
        h = mod.dense(inter)  # dropout is identity in eval
        ref = manual_adapter_block(h, x_in, mod.LayerNorm.weight, mod.LayerNorm.bias, mod.LayerNorm.eps, ad)
        worst = max(worst, (ref - out).abs().max().item())
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref-dir", type=Path, default=REPO.parent / "shared/data/adapterhub-reference")
    ap.add_argument("--out", type=Path, default=REPO / "tests/fixtures/adapterhub_parity.json")
    args = ap.parse_args()

    import adapters
    import transformers
    from adapters.composition import Stack

    torch.manual_seed(0)  # only affects the throw-away init; every parameter is overwritten
    model, state = build_model(SEED)
    ids_np, mask_np = make_inputs(SEED)
    ids, mask = torch.from_numpy(ids_np), torch.from_numpy(mask_np)

    # Plain transformers (before adapters.init) — to confirm adapters.init changes nothing by itself.
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=mask).last_hidden_state.clone()

    adapters.init(model)
    folders = sorted(p for p in args.ref_dir.iterdir() if (p / "pytorch_adapter.bin").is_file())
    names = [model.load_adapter(str(p)) for p in folders]
    model.eval()  # load_adapter may add modules in train mode; dropout must be off

    cases: dict[str, dict] = {}
    report: dict[str, float] = {}
    with torch.no_grad():
        model.set_active_adapters(None)
        none_hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
        report["init_vs_plain_transformers"] = (none_hidden - plain).abs().max().item()
        assert report["init_vs_plain_transformers"] == 0.0
        manual = manual_bert(state, ids, mask, None)
        report["manual_full_none"] = (manual - none_hidden)[mask.bool()].abs().max().item()
        cls, mean = pool(none_hidden, mask)
        cases["none"] = {"adapter": None, "cls": cls, "mean": mean}

        configs = {}
        for folder, name in zip(folders, names, strict=True):
            cfg = model.adapters_config.get(name)
            configs[name] = cfg.to_dict()
            model.set_active_adapters(name)
            # A plain name must become Stack(name): Stack runs pre_block (the original_ln_before step).
            assert isinstance(model.adapters_config.active_setup, Stack)
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
            ad_layers = adapter_weights(folder, BERT_CONFIG["num_hidden_layers"], float(cfg["scaling"]))
            report[f"manual_block_{name}"] = check_blocks(model, ids, mask, ad_layers)
            manual = manual_bert(state, ids, mask, ad_layers)
            report[f"manual_full_{name}"] = (manual - hidden)[mask.bool()].abs().max().item()
            report[f"adapter_effect_{name}"] = (hidden - none_hidden)[:, 0].abs().max().item()
            cls, mean = pool(hidden, mask)
            cases[name] = {"adapter": name, "cls": cls, "mean": mean}
        model.set_active_adapters(None)

    for key, val in report.items():
        print(f"{key}: {val:.3e}")
    for key, val in report.items():
        if key.startswith("manual_block"):
            assert val <= BLOCK_TOL, (key, val)
        elif key.startswith("manual_full"):
            assert val <= FULL_TOL, (key, val)
        elif key.startswith("adapter_effect"):
            assert val > 1e-2, (key, val)  # the adapter must visibly change the output

    def floats(t: torch.Tensor) -> list:
        # str(np.float32) is the shortest string that round-trips to the same float32
        return [[float(str(v)) for v in row] for row in t.numpy().astype(np.float32)]

    fixture = {
        "description": "AdapterHub `adapters` outputs for deterministic BERT-base weights; see "
        "scripts/make_adapterhub_fixture.py and scripts/ADAPTERHUB_NOTES.md",
        "seed": SEED,
        "init_rule": "tests/model/adapterhub_init.py: deterministic_bert_state(bert_config, seed)",
        "bert_config": BERT_CONFIG,
        "attn_implementation": model.config._attn_implementation,
        "versions": {
            "adapters": adapters.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "input_ids": ids_np.tolist(),
        "attention_mask": mask_np.tolist(),
        "token_type_ids": "all zeros",
        "pooling": {"cls": "last_hidden_state[:, 0]", "mean": "masked mean over attention_mask==1 tokens"},
        "adapters": [
            {"name": name, "folder": folder.name, "config": configs[name]}
            for folder, name in zip(folders, names, strict=True)
        ],
        "manual_reimplementation_max_abs_diff": report,
        "cases": {
            k: {"adapter": v["adapter"], "cls": floats(v["cls"]), "mean": floats(v["mean"])} for k, v in cases.items()
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fixture, indent=1) + "\n")
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1024:.0f} KiB)")
    assert size < 1_000_000


if __name__ == "__main__":
    main()
