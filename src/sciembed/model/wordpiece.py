"""A faster BERT WordPiece for ASCII text: the Hugging Face tokenizer's ids, built from cached chunks.

The Rust ``tokenizers`` pipeline tracks character alignments through normalisation and splitting
even when no offsets are asked for; on the GPU path that bounded the shipped MiniLM model at a few
thousand documents per second on 16 cores. For ASCII text the BERT pipeline (BertNormalizer,
BertPreTokenizer, WordPiece, a ``[CLS] A [SEP]`` template) is compositional over white-space
separated chunks: normalisation is per character, and added tokens (``[SEP]``) hold no white space,
so a document's ids are the concatenation of its chunks' ids. Chunks repeat (Zipf), so each distinct
chunk is tokenised once (by the same rules, in Python) and remembered; a document then costs one
``str.split`` and one dictionary look-up per chunk, and the ids are gathered with numpy.

Anything else falls back to the Rust tokenizer: documents with a non-ASCII character, and any
tokenizer whose configuration is not exactly the supported BERT pipeline (:func:`fast_wordpiece`
returns None). The tests compare the ids with the Hugging Face tokenizer on every shared data set.
"""

from __future__ import annotations

import json
import re
import threading
from array import array
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .host import available_cores

# ASCII characters BertNormalizer(clean_text=True) deletes: controls (category Cc) but \t \n \r,
# which it maps to a space. ``str.split`` treats \x0b \x0c \x1c-\x1f as white space, so they must go first.
_CONTROLS = "".join(chr(c) for c in [*range(0, 9), 11, 12, *range(14, 32), 127])
_CONTROL_SEARCH = re.compile(f"[{re.escape(_CONTROLS)}]").search
_DELETE_CONTROLS = str.maketrans("", "", _CONTROLS)
# BertPreTokenizer on ASCII: runs of letters and digits, and every ASCII punctuation mark on its own.
_WORDS = re.compile(r"[A-Za-z0-9]+|[!-/:-@\[-`{-~]").findall
# A bound on remembered chunks (about 100 bytes each); past it the memory starts over.
MAX_CHUNKS = 2_000_000

RustEncode = Callable[[list[str]], list[list[int]]]


class _ChunkIndex(dict):
    """chunk text -> row of the id table; a missing chunk is tokenised and appended on first use."""

    def __init__(self, owner: AsciiWordPiece):
        super().__init__()
        self.owner = owner

    def __missing__(self, chunk: str) -> int:
        row = self[chunk] = self.owner._append(self.owner.chunk_ids(chunk))
        return row


class AsciiWordPiece:
    """Ids of ``prefix + wordpiece(text)[:max_length - specials] + suffix``, exactly as the HF tokenizer.

    ``rust_encode`` tokenises the documents the fast path does not take (non-ASCII); it must return
    the complete ids (special tokens included, truncated at ``max_length``).
    """

    def __init__(
        self,
        vocab: dict[str, int],
        unk_token: str,
        prefix_ids: Sequence[int],
        suffix_ids: Sequence[int],
        added: dict[str, int],
        max_length: int,
        rust_encode: RustEncode,
        lowercase: bool = True,
        continuing_prefix: str = "##",
        max_input_chars_per_word: int = 100,
        max_chunks: int = MAX_CHUNKS,
    ):
        self.vocab = vocab
        self.unk_id = vocab[unk_token]
        self.prefix_ids = np.asarray(prefix_ids, dtype=np.int64)
        self.suffix_ids = np.asarray(suffix_ids, dtype=np.int64)
        self.body_limit = max_length - len(prefix_ids) - len(suffix_ids)
        self.max_length = max_length
        self.rust_encode = rust_encode
        self.lowercase = lowercase
        self.continuing_prefix = continuing_prefix
        self.max_input_chars_per_word = max_input_chars_per_word
        self.max_chunks = max_chunks  # past this many remembered chunks the memory starts over
        self.added = dict(added)
        # Added tokens are found leftmost-longest (as the Rust aho-corasick matcher does).
        contents = sorted(self.added, key=len, reverse=True)
        self._split_added = re.compile("(" + "|".join(map(re.escape, contents)) + ")").split if contents else None
        self._lock = threading.Lock()  # the engine's tokeniser thread and a caller may share one model
        self._reset()

    def __deepcopy__(self, memo: dict) -> AsciiWordPiece:
        return self  # immutable rules and a locked memory: a copied model (training) shares them

    # ---- the chunk memory -------------------------------------------------------------------------
    def _reset(self) -> None:
        self._index = _ChunkIndex(self)
        self._table = array("q")  # the ids of every remembered chunk, end to end
        self._starts = array("q")
        self._lengths = array("q")

    def _append(self, ids: list[int]) -> int:
        self._starts.append(len(self._table))
        self._lengths.append(len(ids))
        self._table.extend(ids)
        return len(self._starts) - 1

    def chunk_ids(self, chunk: str) -> list[int]:
        """The ids of one white-space-free ASCII chunk (no special tokens around it)."""
        ids: list[int] = []
        parts = self._split_added(chunk) if self._split_added else [chunk]
        for k, part in enumerate(parts):
            if k % 2:  # an added token, matched on the raw text
                ids.append(self.added[part])
                continue
            for word in _WORDS(part.lower() if self.lowercase else part):
                ids.extend(self.word_ids(word))
        return ids

    def word_ids(self, word: str) -> list[int]:
        """Greedy longest-match-first WordPiece of one pre-tokenised word (the Rust model's loop)."""
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_id]
        ids, start, end_of_word = [], 0, len(word)
        while start < end_of_word:
            end = end_of_word
            while end > start:
                piece = word[start:end] if start == 0 else self.continuing_prefix + word[start:end]
                found = self.vocab.get(piece)
                if found is not None:
                    break
                end -= 1
            else:
                return [self.unk_id]
            ids.append(found)
            start = end
        return ids

    # ---- documents -----------------------------------------------------------------------------------
    def encode_flat(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The ids of every text laid end to end (int64) and the length of each text."""
        with self._lock:
            if len(self._starts) > self.max_chunks:
                self._reset()
            return self._encode_flat(texts)

    def _encode_flat(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        lookup = self._index.__getitem__
        chunk_rows, chunk_counts = array("q"), array("q")
        slow: list[int] = []
        for position, text in enumerate(texts):
            before = len(chunk_rows)
            if text.isascii():
                if _CONTROL_SEARCH(text):
                    text = text.translate(_DELETE_CONTROLS)
                chunk_rows.extend(map(lookup, text.split()))
            else:
                slow.append(position)
            chunk_counts.append(len(chunk_rows) - before)
        count = len(texts)
        rows = np.frombuffer(chunk_rows, dtype=np.int64) if chunk_rows else np.zeros(0, dtype=np.int64)
        per_doc = np.frombuffer(chunk_counts, dtype=np.int64) if count else np.zeros(0, dtype=np.int64)
        starts = np.frombuffer(self._starts, dtype=np.int64) if self._starts else np.zeros(0, dtype=np.int64)
        sizes = np.frombuffer(self._lengths, dtype=np.int64) if self._lengths else np.zeros(0, dtype=np.int64)
        table = np.frombuffer(self._table, dtype=np.int64) if self._table else np.zeros(0, dtype=np.int64)

        chunk_tokens = sizes[rows]
        token_end = np.cumsum(chunk_tokens)
        token_start = token_end - chunk_tokens
        total = int(token_end[-1]) if len(token_end) else 0
        # every token's place in the table: its chunk's start plus its place inside the chunk
        ids = table[np.repeat(starts[rows] - token_start, chunk_tokens) + np.arange(total)]
        # tokens per document, and where each document's tokens begin in ``ids``
        chunk_end = np.cumsum(per_doc)
        doc_first = np.concatenate(([0], token_end))[chunk_end - per_doc]
        doc_tokens = np.concatenate(([0], token_end))[chunk_end] - doc_first
        kept = np.minimum(doc_tokens, self.body_limit)
        lengths = kept + len(self.prefix_ids) + len(self.suffix_ids)
        slow_ids = self.rust_encode([texts[i] for i in slow]) if slow else []
        for position, seq in zip(slow, slow_ids, strict=True):
            lengths[position] = len(seq)
        offsets = np.zeros(count + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.empty(int(offsets[-1]), dtype=np.int64)

        doc_of_token = np.repeat(np.arange(count), doc_tokens)
        place = np.arange(total) - doc_first[doc_of_token]  # position inside its document's body
        target = offsets[:-1][doc_of_token] + len(self.prefix_ids) + place
        if total and int(doc_tokens.max()) > self.body_limit:
            inside = place < self.body_limit
            target, ids = target[inside], ids[inside]
        flat[target] = ids
        fast = np.ones(count, dtype=bool)
        fast[slow] = False
        for k, token in enumerate(self.prefix_ids):
            flat[offsets[:-1][fast] + k] = token
        for k, token in enumerate(self.suffix_ids):
            flat[offsets[1:][fast] - len(self.suffix_ids) + k] = token
        for position, seq in zip(slow, slow_ids, strict=True):
            flat[offsets[position] : offsets[position + 1]] = seq
        return flat, lengths


def _template_ids(post: dict[str, Any] | None) -> tuple[list[int], list[int]] | None:
    """``(prefix, suffix)`` ids of a single-sequence post-processor, None when not of that form."""
    if post is None:
        return [], []
    if post.get("type") == "BertProcessing":
        return [int(post["cls"][1])], [int(post["sep"][1])]
    if post.get("type") != "TemplateProcessing":
        return None
    prefix: list[int] = []
    suffix: list[int] = []
    seen_sequence = False
    for piece in post.get("single", []):
        if "Sequence" in piece:
            if seen_sequence or piece["Sequence"].get("id") != "A":
                return None
            seen_sequence = True
        elif "SpecialToken" in piece:
            ids = post["special_tokens"][piece["SpecialToken"]["id"]]["ids"]
            (suffix if seen_sequence else prefix).extend(int(i) for i in ids)
        else:
            return None
    return (prefix, suffix) if seen_sequence else None


def fast_wordpiece(
    tokenizer_json: str, max_length: int, rust_encode: RustEncode, max_chunks: int = MAX_CHUNKS
) -> AsciiWordPiece | None:
    """An :class:`AsciiWordPiece` for a serialised ``tokenizers`` pipeline, or None if it is not
    exactly BERT's (then the caller keeps the Rust tokenizer): BertNormalizer with clean_text,
    BertPreTokenizer, WordPiece, right truncation, a ``prefix A suffix`` template, and added tokens
    matched on the raw text without stripping. ``max_chunks``: the bound on remembered chunks."""
    spec = json.loads(tokenizer_json)
    normalizer, model = spec.get("normalizer") or {}, spec.get("model") or {}
    if normalizer.get("type") != "BertNormalizer" or not normalizer.get("clean_text", False):
        return None
    if (spec.get("pre_tokenizer") or {}).get("type") != "BertPreTokenizer" or model.get("type") != "WordPiece":
        return None
    truncation = spec.get("truncation") or {}
    if truncation.get("direction", "Right") != "Right" or truncation.get("stride", 0):
        return None
    template = _template_ids(spec.get("post_processor"))
    if template is None or max_length - len(template[0]) - len(template[1]) < 1:
        return None
    added: dict[str, int] = {}
    for token in spec.get("added_tokens") or []:
        content = token["content"]
        if token.get("lstrip") or token.get("rstrip") or token.get("single_word"):
            return None
        if not content.isascii():
            continue  # never found in ASCII text
        if token.get("normalized") or not content or any(c.isspace() for c in content):
            return None
        added[content] = int(token["id"])
    vocab = {str(k): int(v) for k, v in (model.get("vocab") or {}).items()}
    if model.get("unk_token") not in vocab:
        return None
    return AsciiWordPiece(
        vocab,
        model["unk_token"],
        *template,
        added,
        max_length,
        rust_encode,
        lowercase=bool(normalizer.get("lowercase", True)),
        continuing_prefix=model.get("continuing_subword_prefix", "##"),
        max_input_chars_per_word=int(model.get("max_input_chars_per_word", 100)),
        max_chunks=max_chunks,
    )


# On few cores the chunk memo is 4-10x cheaper per CPU-second than Rust (docs/PERFORMANCE.md), but it
# runs in Python and holds the GIL. On the 16-core H200 host Rust's own thread pool tokenised as fast
# (11,079 vs 10,781 docs/s warm) without the GIL, and the GPU path with the memo ran at 7,000-7,600
# docs/s against 10,600 for the pre-engine tree on Rust: so wide hosts keep Rust.
MEMO_MAX_CORES = 4


def memo_pays(cores: int | None = None) -> bool:
    """Whether the chunk memo should tokenise on a host with ``cores`` usable cores (default: this one)."""
    return (available_cores() if cores is None else cores) <= MEMO_MAX_CORES
