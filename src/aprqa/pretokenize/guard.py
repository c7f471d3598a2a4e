"""tokenizer.json files loaded so that their Split regexes run under a time budget per text.

The ``tokenizers`` library runs Split regexes with Oniguruma, which has no time limit: a pattern of
polynomial degree 2 (``[a-z]*[a-z]*\\z``) takes 16 s on 2,000 letters. ``load_tokenizer_json``
keeps the library for everything but the regexes it cannot vouch for:

* exponential shapes are refused before anything runs (``pretokenize.patterns.check_split_regexes``);
* llama.cpp's own splits (what real models use) stay native, the two quadratic digit-grouping
  ones replaced by their linear equivalents (``pretokenizers.linear_split``);
* every other Split regex runs in Python's ``regex`` engine with ``timeout``: all of a text's
  Split steps share ``REGEX_SECONDS``; past it the text's encoding stops with a ``FormatError``
  naming the file, the field, the regex and the text position reached. The Oniguruma spelling is
  translated where the engines differ (``\\w``/``\\b`` with Oniguruma's word characters, ``\\z``,
  ``\\h``, ``^``/``$`` at every line); a construct without a faithful translation is refused when the
  file is loaded.

Such a tokenizer is returned as a ``GuardedTokenizer`` (a proxy that sets the per-text deadline
around ``encode``); a tokenizer.json without such a regex is the library's own object.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..errors import FormatError
from .patterns import _HF_CONTRACTIONS, _KNOWN, _LLAMA_CONTRACTIONS, check_split_regexes
from .table import _LINEAR_SPLITS
from .splits import linear_split

# All guarded Split regexes of one text together (a real tokenizer needs milliseconds). The engine checks
# its clock between steps: measured, it stops 1.5-2.7 s after the start of a 1 s budget.
REGEX_SECONDS = 1.0

# Oniguruma's Unicode \w (UTS #18: alphabetic, marks, decimal digits, connectors, joiners); Python's
# leaves out marks and alphabetic symbols such as U+24B6.
# Outside a class (and for \b) Oniguruma also counts Latin-1's six other numbers (superscripts, fractions).
_WORD = r"\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}"
_W = _WORD + "\u00b2\u00b3\u00b9\u00bc-\u00be"
_OUTSIDE = {"z": r"\Z", "Z": r"(?=\n?\Z)", "w": f"[{_W}]", "W": f"[^{_W}]", "h": "[0-9A-Fa-f]",
            "H": "[^0-9A-Fa-f]", "b": f"(?:(?<=[{_W}])(?![{_W}])|(?<![{_W}])(?=[{_W}]))",
            "B": f"(?:(?<=[{_W}])(?=[{_W}])|(?<![{_W}])(?![{_W}]))"}
_INSIDE = {"w": _WORD, "h": "0-9A-Fa-f"}
_BEHAVIORS = ("Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous")


def translate(rx: str) -> str:
    """An Oniguruma (Ruby syntax) regex in the ``regex`` package's spelling, with the same matches.

    Raises:
        ValueError: a construct the translation cannot keep faithful (a nested or intersected class,
            ``\\W``/``\\H`` inside a class).
    """
    out: list[str] = []
    i, in_class, class_start = 0, False, False
    while i < len(rx):
        c = rx[i]
        if c == "\\" and i + 1 < len(rx):
            e = rx[i + 1]
            if in_class and e in "WHbB":
                raise ValueError(f"\\{e} inside a character class")
            out.append(_INSIDE.get(e, "\\" + e) if in_class else _OUTSIDE.get(e, "\\" + e))
            i, class_start = i + 2, False
            continue
        if in_class:
            if c == "[":
                raise ValueError("a nested or POSIX bracket character class")
            if rx.startswith("&&", i):
                raise ValueError("a character class intersection (&&)")
            if c == "]" and not class_start:
                in_class = False
            class_start = False
        elif c == "[":
            in_class, class_start = True, True
            out.append(c)
            if rx[i + 1:i + 2] == "^":
                out.append("^")
                i += 1
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


class _Budget:
    """The deadline of the text being encoded (shared by a tokenizer's guarded Split steps)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline: float | None = None
        self.error: FormatError | None = None

    def remaining(self) -> float:
        if self.deadline is None:  # encoded through the library object directly: one budget per step
            self.deadline = time.monotonic() + self.seconds
        return self.deadline - time.monotonic()


class _GuardedSplit:
    """A tokenizer.json Split step (``Regex`` pattern) run by the ``regex`` engine under the budget."""

    def __init__(self, source: str, behavior: str, invert: bool, budget: _Budget, path: str, field: str) -> None:
        import regex  # declared lazy import: only a tokenizer.json with such a regex needs it

        self.source, self.behavior, self.invert = source, behavior, invert
        self.budget, self.path, self.field = budget, path, field
        self.rx = regex.compile(translate(source), regex.MULTILINE)  # Ruby syntax: ^ and $ at every line

    def pre_tokenize(self, pretok: Any) -> None:
        starts = [o[0] for _s, o, _t in pretok.get_splits(offset_referential="original", offset_type="char")]
        pretok.split(lambda i, ns: self._split(ns, starts[i] if i < len(starts) else 0))

    def _split(self, ns: Any, start: int) -> list[Any]:
        text = str(ns)
        pieces: list[tuple[int, int, bool]] = []
        prev, last_end = 0, -1
        try:
            for m in self.rx.finditer(text, timeout=max(self.budget.remaining(), 1e-3)):
                s, e = m.span()
                if s == e and e == last_end:  # Oniguruma skips an empty match right after a match
                    continue
                if prev != s:
                    pieces.append((prev, s, False))
                pieces.append((s, e, True))
                prev = last_end = e
        except TimeoutError:
            self.budget.error = FormatError(
                self.path, f"pre-tokenizer Split regex {self.source[:80]!r} ran past its {self.budget.seconds:g} s "
                f"budget per text (no match ended past character {start + prev:,} of the text); it backtracks "
                "without bound on this text (docs/reliability.md)", field=self.field)
            raise RuntimeError("pre-tokenizer regex budget exceeded") from None
        if prev != len(text) or not text:
            pieces.append((prev, len(text), False))
        if self.invert:
            pieces = [(s, e, not m) for s, e, m in pieces]
        return [ns[s:e] for s, e in _apply(pieces, self.behavior) if e > s]


def _apply(pieces: list[tuple[int, int, bool]], behavior: str) -> list[tuple[int, int]]:
    """The spans the ``tokenizers`` library keeps for ``behavior`` (its SplitDelimiterBehavior)."""
    if behavior == "Isolated":
        return [(s, e) for s, e, _m in pieces]
    if behavior == "Removed":
        return [(s, e) for s, e, m in pieces if not m]
    out: list[list[int]] = []
    prev_match = False
    seq = pieces[::-1] if behavior == "MergedWithNext" else pieces
    for s, e, m in seq:
        if behavior == "Contiguous":
            merge = m == prev_match
        else:
            merge = m and not prev_match
        if merge and out:
            if behavior == "MergedWithNext":
                out[-1][0] = s
            else:
                out[-1][1] = e
        else:
            out.append([s, e])
        prev_match = m
    if behavior == "MergedWithNext":
        out.reverse()
    return [(s, e) for s, e in out]


class GuardedTokenizer:
    """A ``tokenizers.Tokenizer`` whose guarded Split steps share one deadline per encoded text;
    everything but ``encode``/``encode_batch`` is the library object's."""

    def __init__(self, backend: Any, budget: _Budget) -> None:
        self._backend = backend
        self._budget = budget

    def encode(self, *args: Any, **kwargs: Any) -> Any:
        self._budget.deadline = time.monotonic() + self._budget.seconds
        self._budget.error = None
        try:
            return self._backend.encode(*args, **kwargs)
        except Exception:  # the library turns the step's error into a plain Exception
            if self._budget.error is not None:
                raise self._budget.error from None
            raise
        finally:
            self._budget.deadline = None

    def encode_batch(self, inputs: Any, *args: Any, **kwargs: Any) -> list[Any]:
        return [self.encode(x, *args, **kwargs) for x in inputs]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def load_tokenizer_json(raw: bytes | str, tokenizer_json: Any, path: str | Path,
                        seconds: float = REGEX_SECONDS) -> Any:
    """A ``tokenizers.Tokenizer`` for a tokenizer.json (``raw`` its text, ``tokenizer_json`` it parsed).

    Raises:
        FormatError: the library cannot load it, or a Split regex is refused (an exponential shape,
            or a construct the time-bounded engine cannot run faithfully), naming the file and field.
    """
    # Declared lazy import (tests/test_architecture_imports.py): the tokenizers library loads only
    # when a tokenizer.json is read.
    from tokenizers import Tokenizer

    check_split_regexes(tokenizer_json, path)  # before the library runs any of them
    try:
        backend = Tokenizer.from_str(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except Exception as err:  # the tokenizers library raises plain Exceptions
        raise FormatError(path, f"the tokenizers library cannot load it: {err}") from None
    pre = tokenizer_json.get("pre_tokenizer") if isinstance(tokenizer_json, dict) else None
    budget = _Budget(seconds)
    rebuilt, changed, guarded = _rebuild(pre, budget, str(path), "pre_tokenizer")
    if not changed:
        return backend
    backend.pre_tokenizer = rebuilt
    return GuardedTokenizer(backend, budget) if guarded else backend


def _native(step: dict) -> Any:
    """The library's own pre-tokenizer for one tokenizer.json step."""
    from tokenizers import Tokenizer

    doc = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
           "pre_tokenizer": step, "post_processor": None, "decoder": None,
           "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"}}
    return Tokenizer.from_str(json.dumps(doc)).pre_tokenizer


def _rebuild(step: Any, budget: _Budget, path: str, field: str) -> tuple[Any, bool, bool]:
    """(pre-tokenizer, whether any step was replaced, whether any runs under the budget)."""
    from tokenizers import pre_tokenizers

    if not isinstance(step, dict):
        return None, False, False
    if step.get("type") == "Sequence" and isinstance(step.get("pretokenizers"), list):
        parts = [_rebuild(s, budget, path, f"{field}.pretokenizers[{i}]")
                 for i, s in enumerate(step["pretokenizers"])]
        if not any(changed for _p, changed, _g in parts):
            return None, False, False
        return (pre_tokenizers.Sequence([p if changed else _native(s) for (p, changed, _g), s
                                         in zip(parts, step["pretokenizers"])]),
                True, any(g for _p, _c, g in parts))
    pattern = step.get("pattern")
    rx = pattern.get("Regex") if step.get("type") == "Split" and isinstance(pattern, dict) else None
    if not isinstance(rx, str):
        return None, False, False
    behavior, invert = step.get("behavior"), step.get("invert") is True
    if behavior == "Isolated" and not invert and rx in _LINEAR_SPLITS:
        return linear_split(rx), True, False
    if rx in _KNOWN or rx.replace(_HF_CONTRACTIONS, _LLAMA_CONTRACTIONS) in _KNOWN:
        return None, False, False
    if behavior not in _BEHAVIORS:
        raise FormatError(path, f"Split behavior {behavior!r} is not one of {', '.join(_BEHAVIORS)}",
                          field=f"{field}.behavior")
    try:
        split = _GuardedSplit(rx, behavior, invert, budget, path, f"{field}.pattern.Regex")
    except Exception as err:  # regex.error, or a construct translate() refuses
        raise FormatError(path, f"pre-tokenizer Split regex {rx[:80]!r} cannot run under aprqa's time budget: "
                                f"{err}", field=f"{field}.pattern.Regex") from None
    return pre_tokenizers.PreTokenizer.custom(split), True, True
