"""Tests configure sciembed through arguments, options and fixtures, never by patching its modules
(issue 11): no ``monkeypatch.setattr``/``setitem``/``mock.patch`` on a sciembed module, class or
function, and no assignment to one's attributes. Environment variables and other libraries'
functions (the network, say) may still be replaced."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent
PATCHERS = {"setattr", "setitem", "delattr", "delitem", "patch", "object", "dict"}


def sciembed_names(tree: ast.AST) -> set[str]:
    """Names that a module binds to sciembed's modules, classes and functions by importing them."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.asname or "sciembed" for a in node.names if a.name.split(".")[0] == "sciembed")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "sciembed":
            names.update(a.asname or a.name for a in node.names)
    return names


def root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def patches(source: str) -> list[tuple[int, str]]:
    """(line, what) of every patch of a sciembed module attribute in ``source``."""
    tree = ast.parse(source)
    ours = sciembed_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in PATCHERS:
            if not node.args:
                continue
            target = node.args[0]
            named = isinstance(target, ast.Constant) and str(target.value).startswith("sciembed")
            if named or root_name(target) in ours:
                found.append((node.lineno, ast.unparse(node)[:100]))
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, (ast.Attribute, ast.Subscript)) and root_name(target) in ours:
                    found.append((node.lineno, ast.unparse(target)[:100]))
    return sorted(found)


def test_the_check_finds_each_kind_of_patch():
    source = """
import sciembed.model.wordpiece as wordpiece
from sciembed.model import export_cache
from sciembed.serve import vectors as faiss_io
import sciembed.scale
from unittest import mock
def test(monkeypatch, model):
    monkeypatch.setattr(wordpiece, "MAX_CHUNKS", 10)
    monkeypatch.setitem(export_cache.AUTO_EXPORTS, "onnx", None)
    monkeypatch.setattr(export_cache.os, "access", None)
    monkeypatch.setattr("sciembed.scale.embed_shards", None)
    mock.patch.object(faiss_io, "save")
    sciembed.scale.embed_shards = None
    faiss_io.RECALL_TARGET += 1
    model.config.pooling = "mean"              # a model's own settings: fine
    monkeypatch.setenv("SCIEMBED_CACHE", "x")  # the environment: fine
    monkeypatch.setattr(model, "x", 1)         # not a sciembed import
"""
    assert [line for line, _ in patches(source)] == [8, 9, 10, 11, 12, 13, 14]


def test_no_test_patches_sciembed_modules():
    found = [
        f"{path.relative_to(TESTS)}:{line}: {what}"
        for path in sorted(TESTS.rglob("*.py"))
        for line, what in patches(path.read_text(encoding="utf-8"))
    ]
    assert not found, "pass an argument or an option instead of patching:\n" + "\n".join(found)
