"""Split regexes from tokenizer.json, checked before the ``tokenizers`` library runs them.

The library runs them with Oniguruma, a backtracking engine with no time limit per text: a pattern
such as ``(a|a?)+$`` takes time exponential in the text's length (then Oniguruma's retry limit
makes the library panic). aprqa refuses, before any text is tokenized, a Split regex that

* repeats (``*``, ``+``, ``{n,}``, ``{n,m}`` with m > 1) a group that itself holds a quantifier or
  an alternation (nested or ambiguous repetition: exponential backtracking), or
* has more than ``MAX_UNBOUNDED`` unbounded quantifiers in one alternative (polynomial backtracking
  of that degree),

unless the regex is one of llama.cpp's own pre-tokenizer splits (their tokenizer.json spelling too),
which real models use and which are tested. Every known split has at most two unbounded
quantifiers per alternative. Split regexes that pass then run under a time budget per text
(``pretokenize.guard``). ``Replace`` regexes of the normalizer and the decoder stay in the library,
with no budget: they may hold at most one unbounded quantifier per alternative (real ones, such as
``" {2,}"``, hold one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from ..errors import FormatError
from .table import _SPLITS

MAX_UNBOUNDED = 2
# HF spells case-insensitive contractions with (?i:...); llama.cpp (std::regex) spells them out.
_HF_CONTRACTIONS = "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
_LLAMA_CONTRACTIONS = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
_KNOWN = {r for splits in _SPLITS.values() for r in splits}


def split_regexes(pre: Any) -> Iterator[str]:
    """Every Split regex of a tokenizer.json ``pre_tokenizer`` (Sequences walked)."""
    if not isinstance(pre, dict):
        return
    if pre.get("type") == "Split":
        pattern = pre.get("pattern")
        regex = pattern.get("Regex") if isinstance(pattern, dict) else None
        if isinstance(regex, str):
            yield regex
    for step in pre.get("pretokenizers") or [] if isinstance(pre.get("pretokenizers"), list) else []:
        yield from split_regexes(step)


def replace_regexes(step: Any, kind: str) -> Iterator[str]:
    """Every ``Replace`` regex of a tokenizer.json ``normalizer`` or ``decoder`` (``kind``; Sequences walked)."""
    if not isinstance(step, dict):
        return
    if step.get("type") == "Replace":
        pattern = step.get("pattern")
        regex = pattern.get("Regex") if isinstance(pattern, dict) else None
        if isinstance(regex, str):
            yield regex
    inner = step.get(f"{kind}s")
    for sub in inner if isinstance(inner, list) else []:
        yield from replace_regexes(sub, kind)


def _quantifier(rx: str, i: int) -> tuple[int, bool, bool]:
    """At ``rx[i]``: (length of the quantifier there or 0 — an exact count ``{n}`` is no choice and
    counts as 0 —, unbounded?, repeats more than once?)."""
    if i >= len(rx):
        return 0, False, False
    c = rx[i]
    n = 0
    if c in "*+":
        n, unbounded, many = 1, True, True
    elif c == "?":
        n, unbounded, many = 1, False, False
    elif c == "{":
        j = rx.find("}", i)
        body = rx[i + 1:j] if j > 0 else ""
        lo, comma, hi = body.partition(",")
        if j < 0 or not lo.strip().isdigit() or (hi.strip() and not hi.strip().isdigit()):
            return 0, False, False  # a literal "{"
        if not comma:  # {n}: an exact count, nothing to backtrack over
            return 0, False, False
        n = j - i + 1
        unbounded = not hi.strip()
        many = unbounded or int(hi) > 1
    else:
        return 0, False, False
    if i + n < len(rx) and rx[i + n] in "?+":  # lazy / possessive
        n += 1
    return n, unbounded, many


def _note_quantifier(group: list[Any], rx: str, i: int) -> int:
    """Record a quantifier at ``rx[i]`` (if any) on the open group after an atom; its length in characters."""
    q, unb, _many = _quantifier(rx, i)
    if q:
        group[0] = True
        if unb:
            group[2] += 1
    return q


def unbounded_reason(rx: str, max_unbounded: int = MAX_UNBOUNDED) -> str | None:
    """Why backtracking on ``rx`` is not bounded (None: it is, by the rules above)."""
    # per open group: [has a quantifier inside, has an alternation inside, unbounded count per branch]
    stack: list[list[Any]] = [[False, False, 0]]
    i = 0
    while i < len(rx):
        c = rx[i]
        if c == "\\":
            i += 2
            i += _note_quantifier(stack[-1], rx, i)
        elif c == "[":  # a character class (nested classes and escapes inside)
            depth, i = 1, i + 1
            while i < len(rx) and depth:
                if rx[i] == "\\":
                    i += 1
                elif rx[i] == "[":
                    depth += 1
                elif rx[i] == "]":
                    depth -= 1
                i += 1
            i += _note_quantifier(stack[-1], rx, i)
        elif c == "(":
            stack.append([False, False, 0])
            i += 1
        elif c == ")" and len(stack) > 1:
            inner_q, inner_alt, inner_unb = stack.pop()
            i += 1
            q, unb, many = _quantifier(rx, i)
            if q and many and (inner_q or inner_alt):
                what = "a quantifier" if inner_q else "an alternation"
                return f"a repeated group holds {what} (nested repetition: backtracking exponential in the text)"
            outer = stack[-1]
            outer[0] = outer[0] or inner_q or bool(q)
            outer[2] += inner_unb + (1 if q and unb else 0)
            i += q
        elif c == "|":
            if stack[-1][2] > max_unbounded:
                break
            stack[-1][1] = True
            stack[-1][2] = 0
            i += 1
        else:
            i += 1
            i += _note_quantifier(stack[-1], rx, i)
        if stack[-1][2] > max_unbounded:
            return (f"more than {max_unbounded} unbounded quantifiers in one alternative (backtracking polynomial "
                    f"of that degree in the text)")
    return None


def check_split_regexes(tokenizer_json: Any, path: str | Path) -> None:
    """Refuse a tokenizer.json whose Split regexes the ``tokenizers`` library could backtrack on without bound.

    Raises:
        FormatError: naming the file, the field and why.
    """
    tj = tokenizer_json if isinstance(tokenizer_json, dict) else {}
    for kind in ("normalizer", "decoder"):  # run by the library with no time budget: degree 1 at most
        for rx in replace_regexes(tj.get(kind), kind):
            why = unbounded_reason(rx, 1)
            if why is not None:
                raise FormatError(path, f"{kind} Replace regex {rx[:80]!r} refused: {why}; aprqa runs only "
                                        "regexes whose matching time is bounded (docs/reliability.md)", field=kind)
    pre = tj.get("pre_tokenizer")
    for rx in split_regexes(pre):
        if rx in _KNOWN or rx.replace(_HF_CONTRACTIONS, _LLAMA_CONTRACTIONS) in _KNOWN:
            continue
        why = unbounded_reason(rx)
        if why is not None:
            raise FormatError(path, f"pre-tokenizer Split regex {rx[:80]!r} refused: {why}; aprqa runs only "
                                    "regexes whose matching time is bounded (docs/reliability.md)",
                              field="pre_tokenizer")
