"""SPECTER2's task formats and their aliases."""

from __future__ import annotations

FORMATS = ("proximity", "classification", "regression", "adhoc_query")
FORMAT_ALIASES = {
    "[PRX]": "proximity",
    "[CLF]": "classification",
    "[RGN]": "regression",
    "[QRY]": "adhoc_query",
    "prx": "proximity",
    "clf": "classification",
    "rgn": "regression",
    "qry": "adhoc_query",
    "adhoc_search": "adhoc_query",
    "search": "adhoc_query",
}
FORMAT_TOKENS = {name: token for token, name in FORMAT_ALIASES.items() if token.startswith("[")}


def canonical_format(name: str) -> str:
    """``proximity`` for ``[PRX]``/``prx``/``proximity``; raises for an unknown format."""
    if name in FORMATS:
        return name
    key = name if name in FORMAT_ALIASES else name.lower()
    if key in FORMAT_ALIASES:
        return FORMAT_ALIASES[key]
    known = ", ".join(list(FORMATS) + list(FORMAT_TOKENS.values()))
    raise ValueError(f"unknown task format {name!r}; known: {known}")
