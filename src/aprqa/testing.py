"""pytest helpers: ``assert_models_close(reference, candidate, profile=...)``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping

from .comparison import compare
from .comparison.results import Verdict
from .formats.model import Model

__all__ = ["assert_models_close"]

# Failures where a looser tolerance is a meaningful answer: the same tensor with more error than its dtype allows.
_TOLERANCE_KIND = {Verdict.DEGRADED, Verdict.SCALED, Verdict.OFFSET}


def _g(x: float) -> str:
    return f"{x:.6g}" if math.isfinite(x) else str(x)


def assert_models_close(reference: str | Path | Model, candidate: str | Path | Model, *, profile: str = "auto",
                        tolerances: Mapping[str, Any] | Iterable[str] | None = None, only: str | None = None,
                        threads: int | None = None, fast: bool = False) -> Any:
    """Assert that ``candidate`` is the same model as ``reference``: tensors, config, tokenizer and, unless
    ``fast``, outputs on a prompt (the same default as ``aprqa.compare`` and ``aprqa compare``).

    Args:
        reference, candidate: paths or opened Models.
        profile, tolerances, only, threads, fast: as for :func:`aprqa.comparison.compare`.

    Returns:
        The passing ``Report``.

    Raises:
        AssertionError: a torch.testing-style message whose first line names the verdicts
            ("Models are not close: 1 tensor TRANSPOSED"): mismatched tensors k / n, the worst
            tensor with its verdict, greatest absolute difference with its index, and the
            minimum tolerance that would have passed.

    Example:
        >>> assert_models_close("model/", "model.f16.gguf", profile="f16")  # doctest: +SKIP
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not aprqa's frames
    report = compare(reference, candidate, fast=fast, profile=profile, tolerances=tolerances, only=only,
                     threads=threads)
    if report.passed:
        return report
    fails = report.failures()
    n = len(report.tensors)
    lines = [f"Models are not close: {_verdicts(report)} (profile {report.policy.profile})", "",
             f"Mismatched tensors: {len(fails)} / {n} ({100.0 * len(fails) / n if n else 0:.1f}%)"]
    if fails:
        w = fails[0]
        lines.append(f"Worst tensor: {w.name} ({w.verdict.value}): {w.detail}")
        s = w.stats
        if s is not None:
            idx = ", ".join(map(str, s.max_abs_index))
            would_pass = (f" (up to {_g(s.min_atol)} allowed at rtol {_g(s.rtol)} would pass)"
                          if w.verdict in _TOLERANCE_KIND else "")
            lines.append(f"Greatest absolute difference: {_g(s.max_abs)} at index ({idx}){would_pass}")
            lines.append(f"Relative L2: {_g(s.rel_l2)}, cosine {_g(s.cosine)}, mismatched elements "
                         f"{s.n - s.n_equal} / {s.n}")
        for t in fails[1:10]:
            lines.append(f"  also {t.name}: {t.verdict.value}")
    structural = sorted({t.verdict.value for t in fails if t.verdict not in _TOLERANCE_KIND})
    if structural:
        # A transposed, permuted, swapped or missing tensor is a conversion bug: no tolerance explains it.
        lines.append(f"Not a tolerance problem: {', '.join(structural)} means the conversion is wrong; "
                     "loosening the tolerance would hide it")
    mat = report.min_atol()
    if mat is not None and not structural:
        lines.append(f"Minimum tolerance that would pass every compared tensor: atol {_g(mat)} at rtol 0")
    for sec in (report.metadata, report.tokenizer):
        for f in sec.problems():
            lines.append(f"{sec.name}.{f.field}: {f.status} (reference {f.reference!r}, candidate {f.candidate!r})"
                         + (f" {f.note}" if f.note else ""))
        if sec.failed_outright:
            lines.append(f"{sec.name}: {sec.note}")
    out = report.outputs
    if out is not None and not out.passed:
        lines += [f"outputs: {why}" for why in out.failures]
    lines += [f"error: {e}" for e in report.errors]
    raise AssertionError("\n".join(lines))


def _verdicts(report: Any) -> str:
    """What failed, by verdict: "2 tensors TRANSPOSED, 1 tensor MISSING; outputs differ"."""
    counts: dict[str, int] = {}
    for t in report.failures():
        counts[t.verdict.value] = counts.get(t.verdict.value, 0) + 1
    parts = [f"{k} tensor{'s' if k != 1 else ''} {v}" for v, k in counts.items()]
    parts += [f"{sec.name} differs" for sec in (report.metadata, report.tokenizer) if not sec.passed]
    if report.outputs is not None and not report.outputs.passed:
        parts.append("outputs differ")
    if report.errors:
        parts.append("could not be compared")
    return "; ".join(parts) or "FAIL"
