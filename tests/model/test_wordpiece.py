"""The chunk-memo WordPiece gives exactly the Hugging Face tokenizer's ids (real records and edge cases)."""

from __future__ import annotations

import gzip
import json
from itertools import islice

import numpy as np
import pytest
from conftest import SHARED_DATA, make_tiny_model

from sciembed.data.records import string_values
from sciembed.model.wordpiece import MAX_CHUNKS, AsciiWordPiece, fast_wordpiece

PER_SOURCE = 40  # records of each JSONL source of ../shared/data (a few hundred in all)


def real_texts(model) -> list[str]:
    """The embedding text (title [SEP] abstract) and every string of the first records of each source."""
    sources = sorted(SHARED_DATA.rglob("*.jsonl")) + sorted(SHARED_DATA.rglob("*.jsonl.gz"))
    if not sources:
        pytest.skip(f"real data not available: no JSONL under {SHARED_DATA}")
    texts: list[str] = []
    for path in sources:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            for line in islice(handle, PER_SOURCE):
                record = json.loads(line)
                if isinstance(record, dict) and isinstance(record.get("title"), str):
                    texts.append(model.texts([{"paper_id": "x", **record}])[0])
                texts.append(" ".join(string_values(record))[:20000])
    return texts


EDGE = [
    "",
    "   \t\n ",
    "[SEP]",
    "a[SEP]b [sep] [SEP][CLS]x [SE P] [[SEP]] [MASK]ed [UNK] [PAD]",
    "Ünïcödé ACCENTS and 中文 text, naïve café",
    "x" * 100,
    "y" * 101,
    "pre-" + "z" * 150 + ".post",
    "".join(chr(c) for c in range(128)),
    "con\x00trol\x01 chars\x0bvertical\x0cfeed\x1cfs\x7fdel\ttab\nnl\rcr",
    "$\\alpha$-helix (10^{-3}) e.g. C++ & O(n log n) -- 3.14159, i.e., x_1...x_n ~ N(0,1)!",
    "qwxzjvq xqzvjk kjqxvz ##ab ## #",
    "emoji 🎉 and zero\u200bwidth and nbsp\u00a0here",
    "word " * 700,
    "Deep Learning " * 300 + "[SEP] tail",
]


@pytest.fixture(scope="module")
def model():
    return make_tiny_model()


@pytest.fixture(scope="module")
def texts(model):
    return real_texts(model) + EDGE


def reference(model, texts, max_length):
    return model.tokenizer(
        texts, truncation=True, max_length=max_length, add_special_tokens=True,
        return_attention_mask=False, return_token_type_ids=False,
    )["input_ids"]  # fmt: skip


@pytest.mark.parametrize("max_length", [512, 16])
def test_ids_equal_the_hugging_face_tokenizer(model, texts, max_length):
    assert len(texts) > 300
    assert model._fast_wordpiece(max_length) is not None  # the MiniLM vocabulary takes the fast path
    expected = reference(model, texts, max_length)
    got = model.tokenize(texts, max_length=max_length)
    bad = [i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b]
    assert not bad, f"{len(bad)} of {len(texts)} differ, first: {texts[bad[0]][:200]!r}"
    flat, lengths = model.tokenize_flat(texts, max_length=max_length)
    assert flat.dtype == np.int64 and lengths.tolist() == [len(x) for x in expected]
    assert flat.tolist() == [t for x in expected for t in x]
    again = model.tokenize(texts, max_length=max_length)  # from remembered chunks this time
    assert again == expected


def test_every_single_ascii_character_and_pairs(model):
    singles = [chr(c) for c in range(128)]
    pairs = [f"a{chr(c)}b {chr(c)}{chr(c)}Z9" for c in range(128)]
    texts = singles + pairs
    assert model.tokenize(texts, max_length=64) == reference(model, texts, 64)
    assert model.tokenize(EDGE, max_length=3) == reference(model, EDGE, 3)  # room for one token


def test_non_ascii_documents_keep_their_place(model):
    texts = ["plain one", "naïve two", "", "中文", "plain five"] * 3
    fast = model._fast_wordpiece(512)
    flat, lengths = fast.encode_flat(texts)
    ends = np.cumsum(lengths)
    got = [flat[e - n : e].tolist() for e, n in zip(ends, lengths, strict=True)]
    assert got == reference(model, texts, 512)


def test_chunk_memory_starts_over_past_its_bound(model):
    fast = fast_wordpiece(model.tokenizer_spec(512), 512, lambda t: reference(model, t, 512), max_chunks=10)
    fast.encode_flat([f"unique{i} words{i}" for i in range(50)])
    assert len(fast._starts) > 10  # the bound is checked before a call, not during it
    texts = ["after the reset [SEP] still right"]
    flat, _ = fast.encode_flat(texts)
    assert len(fast._starts) <= 10 and flat.tolist() == reference(model, texts, 512)[0]
    assert fast_wordpiece(model.tokenizer_spec(512), 512, lambda t: []).max_chunks == MAX_CHUNKS  # the default


def test_other_pipelines_are_left_to_rust(model):
    spec = json.loads(model._backend_tokenizer(512).to_str())
    assert isinstance(fast_wordpiece(json.dumps(spec), 512, lambda t: []), AsciiWordPiece)
    for change in (
        lambda s: s.update(pre_tokenizer={"type": "Whitespace"}),
        lambda s: s["normalizer"].update(clean_text=False),
        lambda s: s["added_tokens"][0].update(lstrip=True),
        lambda s: s["added_tokens"].append({**s["added_tokens"][0], "content": "new tok", "id": 5}),
        lambda s: s.update(normalizer={"type": "Lowercase"}),
    ):
        other = json.loads(json.dumps(spec))
        change(other)
        assert fast_wordpiece(json.dumps(other), 512, lambda t: []) is None
    assert fast_wordpiece(json.dumps(spec), 2, lambda t: []) is None  # no room for a token


def test_a_model_that_has_tokenised_can_be_deep_copied():
    import copy

    model = make_tiny_model()
    ids = model.tokenize(["deep copies share the chunk memory"])
    twin = copy.deepcopy(model)
    assert twin.tokenize(["deep copies share the chunk memory"]) == ids


def test_memo_is_used_on_few_cores_only():
    from sciembed.model.wordpiece import MEMO_MAX_CORES, memo_pays

    assert memo_pays(2) and memo_pays(MEMO_MAX_CORES)
    assert not memo_pays(16)  # wide hosts keep Rust's GIL-free thread pool (H200 measurement)
