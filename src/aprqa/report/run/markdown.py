"""The run report in Markdown for PR comments: the same content as html.py, with the matrix
as a table of icons and each cell's gates in collapsible <details> blocks (GitHub renders them)."""

from __future__ import annotations

from ...records import TABLE_COLUMNS
from ..page import md_cell, md_code, num, status_md
from .view import Cell, GateView, RunView, prompt_rows, strings


def _gate_md(g: GateView) -> list[str]:
    lines = [f"**{status_md(g.status, md_cell(g.outcome))}** {md_code(g.gate_id)} {md_cell(g.title)}", ""]
    if g.status == "skip":
        return lines + [f"Why skipped: {md_cell(g.reason)}", ""]
    out_fails = strings((g.output_check or {}).get("failures"))
    if out_fails:
        lines += [f"- ✗ outside the limit: {md_cell(f)}" for f in out_fails] + [""]
    if g.measures:
        lines += ["| measure | measured | limit |", "|---|---|---|"]
        lines += [f"| {md_cell(m.name)} | {md_cell(num(m.value))} | {md_cell(m.limit)} |" for m in g.measures]
        lines.append("")
    fails = [f for f in (g.tensor or {}).get("failures") or [] if isinstance(f, dict)] \
        if isinstance((g.tensor or {}).get("failures"), list) else []
    if fails:
        lines += ["| failing tensor | verdict | evidence |", "|---|---|---|"]
        lines += [f"| {md_code(f.get('name'))} | {md_cell(f.get('verdict'))} | {md_cell(f.get('detail', ''))} |"
                  for f in fails]
        lines.append("")
    prompts = prompt_rows(g)
    if prompts:
        lines += ["| prompt | result | measured |", "|---|---|---|"]
        lines += [f"| {md_cell(p.get('prompt'))} | {status_md('pass' if p.get('passed') else 'fail')} | "
                  f"{md_cell(p.get('text'))} |" for p in prompts]
        lines.append("")
    lines += [f"Reason recorded: {md_cell(g.reason[:600])}", ""]
    return lines


def _cell_md(c: Cell | None) -> str:
    if c is None:
        return "·"
    bits = [status_md(c.status)]
    if c.kl_mean is not None:
        bits.append(f"KL {num(c.kl_mean, 2)}")
    if c.bits_per_weight is not None:
        bits.append(f"{num(c.bits_per_weight)} b/w")
    return "<br>".join(bits)


def render_run_markdown(v: RunView) -> str:
    """The run report of ``v`` (``build_run_view``) as Markdown."""
    verdict = "PASS" if v.passed else "FAIL"
    lines = [f"# aprqa playbook run: {md_cell(v.title)} — {status_md('pass' if v.passed else 'fail', verdict)}", "",
             f"{md_cell(v.model)} · {md_cell(v.producer)} evidence · {v.records} records · "
             + " · ".join(f"{n} {md_cell(k)}" for k, n in v.outcomes.items())
             + (f" · {v.seconds:.1f} s" if v.seconds is not None else ""), ""]
    if v.provenance is not None:
        lines += [*v.provenance.markdown(), ""]
    if v.links:
        lines += [" · ".join(f"[{md_cell(lab)}](<{md_cell(href).replace('>', '%3E')}>)" for lab, href in v.links), ""]
    if v.failures:
        lines += [f"## Failures ({len(v.failures)})", "", "| gate | format | cause | reason |", "|---|---|---|---|"]
        for g in v.failures:
            first = g.reason.strip().splitlines()[0] if g.reason.strip() else ""
            lines.append(f"| {status_md('fail')} {md_code(g.gate_id)} | {md_cell(g.format)} {md_cell(g.quant or '')} | "
                         f"{md_cell(v.cause_of.get(g.gate_id, ''))} | {md_cell(first[:300])} |")
        lines.append("")
    lines += ["## Conversions: format × quantization", ""]
    if v.cells:
        lines += ["| format \\ quantization | " + " | ".join(md_cell(q) for q in v.quants) + " |",
                  "|---|" + "---|" * len(v.quants)]
        for f in v.formats:
            lines.append(f"| **{md_cell(f)}** | " + " | ".join(_cell_md(v.cells.get((f, q))) for q in v.quants) + " |")
        lines += ["", "✓ pass: every gate Corroborated · ✗ FAIL: a gate Falsified / Crashed / Timeout · "
                      "– skipped: not produced or not run (never counted as passed) · KL: mean KL of the output "
                      "check · b/w: bits per weight of the converted file", ""]
        for c in v.ordered_cells():
            op = " open" if c.status == "fail" else ""
            lines += [f"<details{op}><summary>{md_cell(c.format)} · {md_cell(c.quant)} — {status_md(c.status)}</summary>",
                      ""]
            for g in c.gates:
                lines += _gate_md(g)
            lines += ["</details>", ""]
    else:
        lines += ["No conversion gates in this evidence.", ""]
    lines += ["## Fidelity against size", ""]
    if v.points:
        lines += ["| format | quantization | bits/weight | mean KL | worst rel-L2 | gates |", "|---|---|---:|---:|---:|---|"]
        lines += [f"| {md_cell(p.format)} | {md_cell(p.quant)} | {num(p.bits_per_weight)} | {num(p.kl_mean)} | "
                  f"{num(p.worst_rel_l2)} | "
                  f"{status_md('fail' if p.failed else 'pass')} |" for p in v.points]
    else:
        lines.append("No conversion in this evidence records bits per weight with its errors.")
    lines.append("")
    for title, gates in (("Integrity (G0)", v.integrity), ("Round trips, idempotency and structure", v.structure),
                         ("Other gates", v.other), ("Not executed by aprqa (Skipped records)", v.not_executed)):
        if not gates:
            continue
        lines += [f"## {title}", "", "| gate | format | outcome | reason |", "|---|---|---|---|"]
        lines += [f"| {md_code(g.gate_id)} | {md_cell(g.format)} | {status_md(g.status, md_cell(g.outcome))} | "
                  f"{md_cell(g.reason[:300])} |"
                  for g in gates]
        lines.append("")
    s = v.summary
    cols = tuple(o.value for o in TABLE_COLUMNS)
    lines += ["## Gate families", "", "| family | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    lines += [f"| {md_cell(f)} | " + " | ".join(str(c.get(o, 0)) for o in cols) + " |" for f, c in s.families.items()]
    if s.causes:
        lines += ["", "## Failures by cause", "", "| count | cause | gates | example reason |", "|---:|---|---|---|"]
        lines += [f"| {len(c.gates)} | {md_cell(c.cause)} | {md_cell(', '.join(c.gates))} | {md_cell(c.example[:200])} |"
                  for c in s.causes]
    if s.notes:
        lines += ["", "## What apr-qa's F-CONV gates measured", ""]
        lines += [f"- **{md_cell(n.gate_id)}** ({md_cell(n.outcome)}) — reason: {md_code(n.reason[:160])}. {md_cell(n.note)}"
                  for n in s.notes]
    if v.notes:
        lines += ["", "## Planning notes", ""] + [f"- {md_cell(n)}" for n in v.notes]
    lines += ["", "## Environment", "", "| | |", "|---|---|"]
    lines += [f"| {md_cell(k)} | {md_cell(val)} |" for k, val in v.environment]
    return "\n".join(lines) + "\n"
