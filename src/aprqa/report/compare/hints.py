"""Hints for the common mistakes a compare's numbers reveal: the same file on both sides, the reference and
the candidate swapped. Plain strings, shown by the console and the report pages next to the result."""

from __future__ import annotations

import os
from typing import Any

# Bits per weight: a reference this far below its candidate is a quantized file judged against a more
# precise one — the usual cause is swapped arguments (aprqa compare REFERENCE CANDIDATE).
_QUANTIZED_BELOW = 12.0
_FLOAT_FROM = 15.9


def _bits(side: dict[str, Any]) -> float | None:
    n = side.get("elements") or 0
    return 8 * side["nbytes"] / n if n else None


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def compare_hints(d: dict[str, Any], passed: bool) -> list[str]:
    """The hints of a compare report (its ``to_dict()``)."""
    out = []
    ref, cand = d["reference"], d["candidate"]
    if _same_file(ref["path"], cand["path"]):
        out.append("the reference and the candidate are the same file: every check compares it with itself "
                   "(nothing about a conversion is shown)")
    rb, cb = _bits(ref), _bits(cand)
    if not passed and rb is not None and cb is not None and rb < _QUANTIZED_BELOW and cb >= _FLOAT_FROM:
        out.append(f"the reference has fewer bits per weight ({rb:.1f}) than the candidate ({cb:.1f}): are the "
                   "arguments swapped? The reference comes first and is the original: "
                   f"aprqa compare {cand['path']} {ref['path']}")
    return out
