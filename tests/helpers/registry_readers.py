"""Who reads a registry's fields: an AST scan of src/aprqa for attribute loads (``x.field``) and string
constants (``getattr(x, "field")``), per module. Only modules that import the registry's package
count; in the registry's own modules, only what lies outside the class bodies (their lookups, which
every other reader goes through)."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "aprqa"


def _imports(tree: ast.Module, rel: str, package: str) -> bool:
    """Whether a module imports from ``aprqa.<package>`` (absolute or relative)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if mod.startswith(f"aprqa.{package}") or (node.level and mod.split(".")[0] == package):
                return True
            if node.level and any(a.name == package for a in node.names):
                return True
            if node.level == 1 and rel.startswith(f"{package}/"):
                return True
    return False


def _names_read(tree: ast.AST) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            out.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.add(node.value)
    return out


@functools.cache
def field_readers(package: str, homes: frozenset[str]) -> dict[str, dict[str, set[str]]]:
    """``{"outside": name -> modules, "home": home module -> names}`` for the registry of ``package``
    whose dataclasses live in ``homes`` (paths relative to src/aprqa)."""
    outside: dict[str, set[str]] = {}
    home: dict[str, set[str]] = {}
    for p in SRC.rglob("*.py"):
        rel = p.relative_to(SRC).as_posix()
        tree = ast.parse(p.read_text(encoding="utf-8"))
        if rel in homes:
            body = ast.Module([n for n in tree.body if not isinstance(n, ast.ClassDef)], [])
            home[rel] = {n.attr for n in ast.walk(body) if isinstance(n, ast.Attribute)}
        elif _imports(tree, rel, package):
            for name in _names_read(tree):
                outside.setdefault(name, set()).add(rel)
    return {"outside": outside, "home": home}
