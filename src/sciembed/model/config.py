"""``sciembed.json``: how a model folder turns text into one vector."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

CONFIG_NAME = "sciembed.json"
FORMAT_VERSION = 1


@dataclass
class SciEmbedConfig:
    """Everything besides weights that decides a model's embeddings.

    pooling: ``cls`` or ``mean`` (as the base was trained); normalize: L2-normalise outputs
    (sentence-transformers models such as MiniLM were trained so); max_length: truncation in tokens;
    formats: formats with an adapter (empty: the base serves every format); text_fields: fields
    joined by the separator token; base_sha256: sha256 of the base weight file; name: display name;
    base_model: a registry base (``sciembed.model.bases``, e.g. ``all-mpnet-base-v2``) that the folder
    builds on instead of holding base weights itself (it then ships only adapters and this file);
    delta: the folder's low-rank delta (``delta/``, :mod:`sciembed.model.delta`): merged into the
    registry base at load, or already merged into the folder's own base weights.
    """

    pooling: str = "cls"
    normalize: bool = False
    max_length: int = 512
    formats: list[str] = field(default_factory=list)
    text_fields: list[str] = field(default_factory=lambda: ["title", "abstract"])
    base_sha256: str | None = None
    name: str = ""
    base_model: str | None = None
    delta: str | None = None
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SciEmbedConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{CONFIG_NAME}: unknown keys {unknown}")
        return cls(**data)

    def save(self, folder: Path) -> None:
        (folder / CONFIG_NAME).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> SciEmbedConfig:
        """Read and check ``sciembed.json``; every error names the file."""
        from .validation import check_config

        path = folder / CONFIG_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: invalid JSON ({exc.msg}, line {exc.lineno})") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not UTF-8 text ({exc.reason})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
        try:
            config = cls.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {str(exc).removeprefix(CONFIG_NAME + ': ')}") from None
        check_config(config, path)
        return config
