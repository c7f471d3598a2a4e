"""YAML with the line of every key, and pydantic's validation errors described at those lines.

``compose_lines`` parses with a SafeLoader that refuses aliases (their expansion is unbounded:
"billion laughs") and nesting deeper than ``MAX_YAML_DEPTH``, and maps every key path to its line.
``describe`` turns one pydantic error into (line, dotted key, message, hint) with a did-you-mean
for unknown keys. The dialect: ``playbook_dialect`` tells an aprqa playbook (strict) from an apr-qa one,
whose unknown keys ``drop_unknown`` removes, listing them.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, Union

import yaml
from pydantic import BaseModel

from ..records import Outcome

MAX_YAML_DEPTH = 64  # nesting levels; real playbooks use under 10


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases (their expansion is unbounded: "billion laughs") and
    nesting deeper than ``MAX_YAML_DEPTH``; ``compose_lines`` records the line of every key."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, f"alias *{event.anchor} refused: playbooks may not use "
                                              "YAML anchors/aliases (their expansion is unbounded)", event.start_mark)
        if self._depth >= MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels",
                                              event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def compose_lines(text: str) -> tuple[Any, dict[tuple, int]]:
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[tuple, int] = {}

        def walk(n: yaml.Node, path: tuple) -> None:
            lines.setdefault(path, n.start_mark.line + 1)
            if isinstance(n, yaml.MappingNode):
                seen: set[str] = set()
                for k, v in n.value:
                    key = k.value if isinstance(k, yaml.ScalarNode) else str(k.value)
                    if key in seen:  # otherwise the last one silently wins
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key!r} (refused: which one is meant is ambiguous)",
                            k.start_mark)
                    seen.add(key)
                    lines[path + (key,)] = k.start_mark.line + 1
                    lines[path + (key, "__value__")] = v.start_mark.line + 1
                    walk(v, path + (key,))
            elif isinstance(n, yaml.SequenceNode):
                for i, v in enumerate(n.value):
                    lines[path + (i,)] = v.start_mark.line + 1
                    walk(v, path + (i,))

        data = None
        if node is not None:
            walk(node, ())
            data = loader.construct_document(node)
        return data, lines
    finally:
        loader.dispose()


def _first_model(ann: Any) -> Any:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    origin = typing.get_origin(ann)
    if origin in (Union, types.UnionType):
        for a in typing.get_args(ann):
            m = _first_model(a)
            if m is not None:
                return m
        return None
    if origin is dict:
        args = typing.get_args(ann)
        inner = _first_model(args[1]) if len(args) == 2 else None
        return _DictOf(inner) if inner is not None else None
    return None


class _DictOf:
    def __init__(self, inner: type[BaseModel]) -> None:
        self.inner = inner


def _resolve(loc: tuple, root: type[BaseModel]) -> type[BaseModel] | None:
    cls: Any = root
    for part in loc[:-1]:
        if isinstance(cls, _DictOf):
            cls = cls.inner
            continue
        if isinstance(cls, type) and issubclass(cls, BaseModel):
            f = cls.model_fields.get(str(part))
            if f is None:
                return None
            cls = _first_model(f.annotation)
        else:
            return None
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def clean_loc(loc: tuple) -> tuple:
    # pydantic inserts union member tags ("ToleranceSpec", "str", "literal[...]") into loc
    out = []
    for p in loc:
        if isinstance(p, str) and (p in ("str", "int", "float", "bool") or p.startswith(("literal[", "function-"))
                                   or (p[:1].isupper() and p.isidentifier() and p != Outcome.CORROBORATED)):
            continue
        out.append(p)
    return tuple(out)


def _line_for(lines: dict[tuple, int], loc: tuple, value: bool) -> int | None:
    loc = tuple(loc)
    while True:
        if value and loc + ("__value__",) in lines:
            return lines[loc + ("__value__",)]
        if loc in lines:
            return lines[loc]
        if not loc:
            return None
        loc = loc[:-1]


def describe(err: dict, lines: dict[tuple, int], root: type[BaseModel]) -> tuple[int | None, str, str, str | None]:
    loc = clean_loc(tuple(err["loc"]))
    dotted = ".".join(str(p) for p in loc)
    kind = err["type"]
    hint = None
    if kind == "extra_forbidden":
        owner = _resolve(loc, root)
        key = str(loc[-1]) if loc else ""
        known = list(owner.model_fields) if owner is not None else []
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        msg = f"unknown key {key!r}"
        if close:
            hint = f"did you mean {close[0]!r}?"
            msg += f" (did you mean {close[0]!r}?)"
        elif known:
            hint = "known keys here: " + ", ".join(known)
        return _line_for(lines, loc, value=False), dotted, msg, hint
    if kind == "missing":
        return _line_for(lines, loc[:-1], value=False), dotted, f"missing required key {str(loc[-1])!r}", None
    got = err.get("input")
    got_s = repr(got) if not isinstance(got, (dict, list)) else type(got).__name__
    msg = err["msg"].removeprefix("Value error, ")
    if kind not in ("value_error",) and "input" in err:
        msg += f" (got {got_s})"
    return _line_for(lines, loc, value=True), dotted, msg, hint


# Similarity (difflib ratio) above which an unknown key is taken for a misspelt known key
# (quantisations, max_token): an error even in an apr-qa playbook, since ignoring it would silently
# run the default instead of what the author meant.
TYPO_CUTOFF = 0.85


def drop_unknown(data: Any, cls: Any, path: tuple, lines: dict[tuple, int], dropped: list[str]) -> Any:
    """A copy of ``data`` without the unknown keys model ``cls`` forbids (apr-qa dialect), each listed in
    ``dropped``; near-misses of known keys are kept so that validation reports them."""
    if isinstance(cls, _DictOf):
        if isinstance(data, dict):
            return {k: drop_unknown(v, cls.inner, path + (k,), lines, dropped) for k, v in data.items()}
        return data
    if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or not isinstance(data, dict):
        return data
    if cls.model_config.get("extra") != "forbid":
        return data
    out = {}
    for k, v in data.items():
        f = cls.model_fields.get(str(k))
        if f is None and difflib.get_close_matches(str(k), list(cls.model_fields), n=1, cutoff=TYPO_CUTOFF):
            out[k] = v  # a near-miss of a known key is a typo, not a newer apr-qa key: validation rejects it
            continue
        if f is None:
            where = ".".join(str(p) for p in path + (k,))
            line = lines.get(path + (k,))
            dropped.append(f"{where} (line {line})" if line else where)
            continue
        out[k] = drop_unknown(v, _first_model(f.annotation), path + (k,), lines, dropped)
    return out


# Keys aprqa defines and apr-qa's runner does not: using one makes a playbook aprqa's own (strict).
APRQA_ONLY_KEYS = (("converter",), ("thresholds",), ("dialect",), ("model", "synthetic"),
                   ("model", "synthetic_seed"), ("test_matrix", "max_tokens"))


def playbook_dialect(data: dict[str, Any]) -> str:
    """'aprqa' or 'apr-qa' for a parsed playbook mapping (see the ``dialect`` field)."""
    said = data.get("dialect")
    if said in ("aprqa", "apr-qa"):
        return said
    for path in APRQA_ONLY_KEYS:
        node: Any = data
        for part in path:
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            return "aprqa"
    return "apr-qa"
