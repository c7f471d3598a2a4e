"""The compare report in Markdown (PRs, CI summaries): the same sections as the HTML page, with
tables where the page draws charts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..page import md_cell, md_code, num, status_md, write_page
from ..provenance import Provenance
from ..run.view import measures_of
from .hints import compare_hints
from .view import bucket_label, diagnosis, error_grid, histograms, positions, used_range


def _outputs_md(report: Any) -> list[str]:
    oc = report.outputs
    if oc is None:
        return ["", "## Output check", "", md_cell(report.outputs_note)] if report.outputs_note else []
    lines = ["", "## Output check", "",
             f"{status_md('pass' if oc.passed else 'fail', 'PASS' if oc.passed else 'FAIL')} profile "
             f"{oc.profile.name} · {md_cell(report.outputs_note)}", ""]
    lines += [f"- ✗ {md_cell(f)}" for f in oc.failures] + [f"- {md_cell(n)}" for n in oc.notes]
    lines += ["", "| measure | measured | limit |", "|---|---|---|"]
    lines += [f"| {md_cell(m.name)} | {num(m.value)} | {md_cell(m.limit)} |" for m in measures_of(None, oc.to_dict(), {})]
    pos = positions(oc)
    if pos:
        lines += ["", "| position | token | KL | top-1 |", "|---:|---:|---:|---|"]
        lines += [f"| {p.index} | {p.token if p.token is not None else '—'} | {num(p.kl)} | "
                  f"{'—' if p.top1_same is None else ('✓ same' if p.top1_same else '✗ differs')} |" for p in pos]
    g = oc.greedy
    if g is not None and g.n_generated:
        lines += ["", f"Greedy continuation: {g.agreed}/{g.n_generated} agree · reference "
                      f"{list(g.reference_ids)} · candidate {list(g.candidate_ids)}"]
    return lines


def _locate_md(report: Any) -> list[str]:
    loc = report.localization
    if loc is None:
        return ["", "## Localization", "", md_cell(report.locate_note)] if report.locate_note else []
    first = loc.first_bad
    lines = ["", "## Localization", "",
             f"First divergent block: **{md_cell(first.label)}** (rel-err {num(first.rel_error)}, limit "
             f"{num(loc.threshold)})" if first else f"No block exceeds the limit {num(loc.threshold)}.", "",
             "| block | rel-err | jump |", "|---|---|---|"]
    lines += [f"| {md_cell(b.label)} | {num(b.rel_error)} | {num(b.jump)} |" for b in loc.blocks]
    tens = report.divergent_layer_tensors()
    if tens:
        lines += ["", "| tensor of that layer | verdict | evidence |", "|---|---|---|"]
        lines += [f"| {md_code(t.name)} | {status_md('pass' if t.passed else 'fail', t.verdict.value)} | "
                  f"{md_cell(diagnosis(t))} |" for t in tens]
    return lines


def _grid_md(report: Any) -> list[str]:
    rows, cols, cells, outside = error_grid(report)
    if not rows and not outside:
        return []
    lines = ["", "## Error by layer and tensor role (rel-L2; ✗ = failing)", ""]
    if rows:
        lines += ["| layer | " + " | ".join(md_cell(c) for c in cols) + " |", "|---|" + "---:|" * len(cols)]
        for r in rows:
            vals = []
            for c in cols:
                cell = cells.get((r, c))
                vals.append("" if cell is None else ("" if cell.passed else "✗ ") + num(cell.value, 2))
            lines.append(f"| {md_cell(r)} | " + " | ".join(vals) + " |")
    if outside:
        lines += ["", "| tensor outside the layers | rel-L2 |", "|---|---:|"]
        lines += [f"| {md_code(k)} | {'' if c.passed else '✗ '}{num(c.value, 2)} |" for k, c in outside.items()]
    return lines


def _hist_md(report: Any) -> list[str]:
    hists = histograms(report)
    if not hists:
        return []
    keys = list(hists)
    used = sorted(set().union(*(used_range(h) for h in hists.values())))
    lines = ["", "## Error histogram (|candidate − source| per element)", "",
             "| \\|d\\| bucket | " + " | ".join(md_cell(k) for k in keys) + " |", "|---|" + "---:|" * len(keys)]
    lines += [f"| {bucket_label(k)} | " + " | ".join(f"{hists[x][k]:,}" for x in keys) + " |" for k in used]
    return lines


def render_markdown(report: Any, provenance: Provenance | None = None) -> str:
    """The compare report of ``report`` (``aprqa.compare``) as Markdown, with who made it from which bytes."""
    d = report.to_dict()
    ref, cand = d["reference"], d["candidate"]
    lines = [f"# aprqa compare: {'PASS' if report.passed else 'FAIL'}",
             "",
             f"- reference: {md_code(ref['path'])} ({md_cell(ref['format'])}, {ref['tensors']} tensors, "
             f"{num(ref.get('bits_per_weight'))} bits/weight)",
             f"- candidate: {md_code(cand['path'])} ({md_cell(cand['format'])}, {cand['tensors']} tensors, "
             f"{num(cand.get('bits_per_weight'))} bits/weight)",
             "- verdicts: " + " · ".join(f"{k} {v}" for k, v in d["counts"]["verdicts"].items()),
             f"- minimum passing atol (rtol 0): {num(d['min_atol'])} · profile {d['policy']['profile']}"]
    lines += [f"- **error**: {md_cell(e)}" for e in d["errors"]]
    lines += [f"- **hint**: {md_cell(h)}" for h in compare_hints(d, report.passed)]
    if provenance is not None:
        lines += ["", *provenance.markdown()]
    fails = report.failures()
    if fails:
        lines += ["", f"## Failing tensors ({len(fails)})", "", "| tensor | verdict | evidence | detail |",
                  "|---|---|---|---|"]
        lines += [f"| {md_code(t.name)} | {status_md('fail', t.verdict.value)} | **{md_cell(diagnosis(t))}** | "
                  f"{md_cell(t.detail)} |" for t in fails]
    lines += _outputs_md(report) + _locate_md(report) + _grid_md(report) + _hist_md(report)
    lines += ["", "## Tensors, worst first", "",
              "| tensor | verdict | dtype | rel-L2 | cosine | err/noise | detail |", "|---|---|---|---|---|---|---|"]
    ranked = fails + sorted((t for t in report.tensors if t.passed), key=lambda t: -t.error_score)
    for t in ranked[:30]:
        s = t.stats
        lines.append(f"| {md_code(t.name)} | {status_md('pass' if t.passed else 'fail', t.verdict.value)} | "
                     f"{md_cell(t.reference_dtype)}→{md_cell(t.candidate_dtype)} | {num(s.rel_l2) if s else '—'} | "
                     f"{num(s.cosine, 6) if s else '—'} | {num(t.noise.ratio) if t.noise else '—'} | "
                     f"{md_cell(t.detail)} |")
    if len(ranked) > 30:
        lines.append(f"\n… and {len(ranked) - 30} more tensors (all in the HTML report and `--json`).")
    for sec in (report.metadata, report.tokenizer):
        state = ("NOT COMPARED" if not sec.fields and sec.note and sec.passed else
                 "MATCH" if sec.passed else "DIFFERENT")
        lines += ["", f"## {sec.name.capitalize()}: {state}", ""]
        if sec.note:
            lines.append(md_cell(sec.note))
        if sec.fields:
            lines += ["| field | status | reference | candidate | note |", "|---|---|---|---|---|"]
            lines += [f"| {md_cell(f.field)} | {md_cell(f.status)} | {md_cell(repr(f.reference)[:120])} | "
                      f"{md_cell(repr(f.candidate)[:120])} | {md_cell(f.note)} |" for f in sec.fields]
    return "\n".join(lines) + "\n"


def write_report(report: Any, path: str | Path, provenance: Provenance | None = None) -> Path:
    """Write the compare report as Markdown to ``path``."""
    return write_page(path, render_markdown(report, provenance), (report.reference.path, report.candidate.path))
