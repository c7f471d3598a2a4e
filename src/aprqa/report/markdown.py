"""Markdown report of a compare ``Report`` (for PRs and CI summaries)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..fsio import write_text_atomic


def _num(x: Any, d: int = 3) -> str:
    if isinstance(x, float):
        if not math.isfinite(x):
            return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
        return f"{x:.{d}g}"
    return "—" if x is None else str(x)


def _cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Any) -> str:
    d = report.to_dict()
    lines = [f"# aprqa compare: {'PASS' if report.passed else 'FAIL'}", "",
             f"- reference: `{d['reference']['path']}` ({d['reference']['format']}, {d['reference']['tensors']} tensors)",
             f"- candidate: `{d['candidate']['path']}` ({d['candidate']['format']}, {d['candidate']['tensors']} tensors)",
             "- verdicts: " + " · ".join(f"{k} {v}" for k, v in d["counts"]["verdicts"].items()),
             f"- minimum passing atol (rtol 0): {_num(d['min_atol'])} · profile {d['policy']['profile']}",
             f"- {report.outputs_note}"]
    lines += [f"- **error**: {e}" for e in d["errors"]]
    loc = report.localization
    if loc is not None:
        first = loc.first_bad
        lines += ["", "## Localization", "",
                  f"First divergent block: **{first.label}** (rel-err {_num(first.rel_error)}, limit "
                  f"{_num(loc.threshold)})" if first else f"No block exceeds the limit {_num(loc.threshold)}.", "",
                  "| block | rel-err | jump |", "|---|---|---|"]
        lines += [f"| {b.label} | {_num(b.rel_error)} | {_num(b.jump)} |" for b in loc.blocks]
    lines += ["", "## Tensors, worst first", "",
              "| tensor | verdict | dtype | rel-L2 | cosine | err/noise | detail |", "|---|---|---|---|---|---|---|"]
    ranked = report.failures() + sorted((t for t in report.tensors if t.passed), key=lambda t: -t.error_score)
    for t in ranked[:30]:
        s = t.stats
        lines.append(f"| `{t.name}` | {t.verdict.value} | {t.reference_dtype}→{t.candidate_dtype} | "
                     f"{_num(s.rel_l2) if s else '—'} | {_num(s.cosine, 6) if s else '—'} | "
                     f"{_num(t.noise.ratio) if t.noise else '—'} | {_cell(t.detail)} |")
    for sec in (report.metadata, report.tokenizer):
        lines += ["", f"## {sec.name.capitalize()}: {'MATCH' if sec.passed else 'DIFFERENT'}", ""]
        if sec.note:
            lines.append(sec.note)
        if sec.fields:
            lines += ["| field | status | reference | candidate | note |", "|---|---|---|---|---|"]
            lines += [f"| {f.field} | {f.status} | {_cell(repr(f.reference))[:120]} | {_cell(repr(f.candidate))[:120]} | "
                      f"{_cell(f.note)} |" for f in sec.fields]
    return "\n".join(lines) + "\n"


def write_report(report: Any, path: str | Path) -> Path:
    path = Path(path)
    write_text_atomic(path, render_markdown(report))  # all-or-nothing, locked (aprqa.fsio)
    return path
