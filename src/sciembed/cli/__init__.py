"""The command line: parses arguments and calls library functions, nothing else.

One module per command group; each registers its commands on the root ``app`` of ``common``.
"""

from __future__ import annotations

from . import compare, embed, evaluate, export, index, scale, serve, train  # noqa: F401  (register their commands)
from .common import app


def main() -> None:
    app()


__all__ = ["app", "main"]
