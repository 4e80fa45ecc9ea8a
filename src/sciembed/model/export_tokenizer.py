"""An export folder's tokenizer without transformers: ``tokenizer.json`` read by the Rust library.

The text path (:class:`sciembed.model.text.TextMixin`) needs only the Rust pipeline, the separator,
the padding id and the truncation side; importing transformers for them costs ~2 s of a CPU job's
start. Any other attribute (or a call) loads the Hugging Face tokenizer of the folder on first use,
so code that treats ``encoder.tokenizer`` as one keeps working.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any


def _token(value: Any) -> str | None:
    """A special token as ``tokenizer_config.json`` stores it: a string or an AddedToken dict."""
    if isinstance(value, dict):
        return value.get("content")
    return value


class ExportTokenizer:
    """``tokenizer.json`` + ``tokenizer_config.json`` of a folder written by ``save_pretrained``."""

    is_fast = True

    def __init__(self, folder: str | Path):
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        config_path = self.folder / "tokenizer_config.json"
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        self.backend_tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.sep_token = _token(config.get("sep_token"))
        self.pad_token = _token(config.get("pad_token"))
        self.truncation_side = config.get("truncation_side", "right")
        self.pad_token_id = self.backend_tokenizer.token_to_id(self.pad_token) if self.pad_token else None

    @cached_property
    def hf(self) -> Any:
        """The Hugging Face tokenizer of the folder (imports transformers)."""
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(self.folder))

    def __getattr__(self, name: str) -> Any:  # only names this class does not define
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.hf, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.hf(*args, **kwargs)


def export_tokenizer(folder: str | Path) -> Any:
    """The light tokenizer when the folder has ``tokenizer.json``, else the Hugging Face one."""
    if (Path(folder) / "tokenizer.json").is_file():
        return ExportTokenizer(folder)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))
