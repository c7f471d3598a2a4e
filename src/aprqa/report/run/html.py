"""The run report as one self-contained HTML page (``render_run_html(view)``).

Order: verdict, failures first, the format x quantization matrix whose cells open their gates'
detail (CSS :target, no script), fidelity against size, integrity and structure gates, what was
not executed, gate families and causes, environment.
"""

from __future__ import annotations

import json
from typing import Any

from ...records import TABLE_COLUMNS, Outcome
from .. import svg
from ..page import chips, esc, kv, num, page, status_html, table
from .view import Cell, GateView, RunView, prompt_rows, status_of, strings

_OUTCOME_CLASS = {o.value: status_of(o) for o in Outcome}


def _pre_json(d: Any, limit: int = 4000) -> str:
    text = json.dumps(d, indent=1, sort_keys=True, ensure_ascii=False, default=str)
    return f"<pre>{esc(text[:limit])}{'…' if len(text) > limit else ''}</pre>"


def _compare_summary(t: dict[str, Any]) -> str:
    """The compare summary of one conversion, from its record's tensor metrics."""
    parts = []
    fails = [f for f in t.get("failures") or [] if isinstance(f, dict)] if isinstance(t.get("failures"), list) else []
    if fails:
        parts.append(table(("tensor", "verdict", "evidence"),
                           ((f"<code>{esc(f.get('name'))}</code>", status_html("fail", str(f.get("verdict"))),
                             esc(f.get("detail", ""))) for f in fails)))
    probs = t.get("problems") if isinstance(t.get("problems"), list) else []
    if probs:
        parts.append("<ul>" + "".join(f"<li>{esc(p)}</li>" for p in probs) + "</ul>")
    return "".join(parts)


def _prompts(g: GateView) -> str:
    prompts = prompt_rows(g)
    if not prompts:
        return ""
    return table(("prompt", "result", "measured"),
                 ((esc(p.get("prompt")), status_html("pass" if p.get("passed") else "fail"), esc(p.get("text")))
                  for p in prompts))


def gate_detail_html(g: GateView) -> str:
    """What a gate measured, against which limits, and why (the body of a matrix cell or row)."""
    parts = [f'<div class="gate" id="{g.anchor}"><h3>{status_html(g.status, g.outcome)} '
             f"<code class=id>{esc(g.gate_id)}</code> {esc(g.title)}</h3>"]
    if g.status == "skip":
        parts.append(f"<p><b>Why skipped:</b> {esc(g.reason)}</p>")
    out_fails = strings((g.output_check or {}).get("failures"))
    if out_fails:  # the output check's own verdicts, as recorded
        parts.append("<ul>" + "".join(f"<li>{status_html('fail', 'outside the limit:')} {esc(f)}</li>"
                                      for f in out_fails) + "</ul>")
    if g.status != "skip" and g.measures:
        parts.append(table(("measure", "measured", "limit"),
                           ((esc(m.name), esc(num(m.value)), esc(m.limit)) for m in g.measures)))
    if g.tensor:
        parts.append(_compare_summary(g.tensor))
    parts.append(_prompts(g))
    if g.status != "skip":
        parts.append(f'<p class="small"><b>Reason recorded:</b> {esc(g.reason)}</p>')
    extra = []
    if g.thresholds:
        extra.append(("thresholds", _pre_json(g.thresholds)))
    if g.raw_metrics:
        extra.append(("measurements (record metrics)", _pre_json(g.raw_metrics)))
    if g.output and g.output != g.reason:
        extra.append(("output", f"<pre>{esc(g.output[:2000])}</pre>"))
    if extra:
        parts.append("<details><summary class=small>thresholds and raw record</summary>" + kv(extra) + "</details>")
    parts.append("</div>")
    return "".join(parts)


def _cell_html(c: Cell) -> str:
    lines = []
    if c.status == "skip":
        lines.append("cannot produce" if any("cannot produce" in g.reason for g in c.gates) else "not run")
    else:
        if c.kl_mean is not None:
            lines.append(f"KL {num(c.kl_mean, 2)}")
        if c.bits_per_weight is not None:
            lines.append(f"{num(c.bits_per_weight, 3)} bits/w")
        elif c.err_noise is not None:
            lines.append(f"err/noise {num(c.err_noise, 2)}")
    n_bad = sum(1 for g in c.gates if g.status == "fail")
    count = f"{n_bad}/{len(c.gates)} gates fail" if n_bad else f"{len(c.gates)} gate{'s' if len(c.gates) > 1 else ''}"
    cls = c.status
    return (f'<a class="cell {cls}" href="#{c.anchor}" title="{esc(c.format)} {esc(c.quant)}: open the detail">'
            f'{status_html(cls)}' + "".join(f'<span class="m">{esc(x)}</span>' for x in lines)
            + f'<span class="m">{esc(count)}</span></a>')


def matrix_html(v: RunView) -> str:
    """The format x quantization matrix and its detail panels."""
    if not v.cells:
        return '<p class="muted">No conversion gates in this evidence.</p>'
    head = "".join(f"<th>{esc(q)}</th>" for q in v.quants)
    rows = []
    for f in v.formats:
        tds = []
        for q in v.quants:
            c = v.cells.get((f, q))
            tds.append(f"<td>{_cell_html(c)}</td>" if c else
                       f'<td><span class="cell none">{status_html("none", "—")}<span class="m">not planned</span></span></td>')
        rows.append(f'<tr><th class="row">{esc(f)}</th>{"".join(tds)}</tr>')
    legend = ('<div class="legend"><span>' + status_html("pass") + ' every gate Corroborated</span><span>'
              + status_html("fail") + ' a gate Falsified / Crashed / Timeout</span><span>' + status_html("skip")
              + ' Skipped (not produced or not run: never counted as passed)</span><span>KL = mean KL of the '
                'output check · bits/w = tensor bytes × 8 / weights of the converted file</span></div>')
    default = v.default_cell
    panels = []
    for c in v.ordered_cells():
        cls = "panel default" if c is default else "panel"
        panels.append(f'<section class="{cls}" id="{c.anchor}"><h3>{esc(c.format)} · {esc(c.quant)} — '
                      f'{status_html(c.status)}</h3>' + "".join(gate_detail_html(g) for g in c.gates) + "</section>")
    return (f'<div class="scroll"><table class="matrix"><tr><th>format \\ quantization</th>{head}</tr>'
            f'{"".join(rows)}</table></div>{legend}'
            f'<div class="panels"><div id="all-cells"></div><p class="small">Pick a cell to see its gates · '
            f'<a href="#all-cells">show every cell</a></p>{"".join(panels)}</div>')


def tradeoff_html(v: RunView) -> str:
    """Mean KL and worst rel-L2 against bits per weight, one point per format and quantization."""
    if not v.points:
        return ('<p class="muted">No conversion in this evidence records bits per weight with its errors '
                '(apr-qa records carry no tensor or logit measurements).</p>')
    kl = [svg.Point(p.bits_per_weight, p.kl_mean, p.quant, p.format, p.failed) for p in v.points
          if p.kl_mean is not None]
    rl = [svg.Point(p.bits_per_weight, p.worst_rel_l2, p.quant, p.format, p.failed) for p in v.points
          if p.worst_rel_l2 is not None]
    charts = []
    if kl:
        charts.append('<figure class="card">' + svg.scatter(kl, "bits per weight", "mean KL (output)",
                                                             "mean KL against bits per weight")
                      + "<figcaption>Mean KL divergence of the converted model's next-token distribution from the "
                        "source's, over the output check's positions. Lower is better.</figcaption></figure>")
    if rl:
        charts.append('<figure class="card">' + svg.scatter(rl, "bits per weight", "worst rel-L2 (tensor)",
                                                             "worst tensor relative L2 against bits per weight")
                      + "<figcaption>Largest relative L2 error of any tensor (‖candidate − source‖ / ‖source‖); "
                        "0 = bit-identical. A red ring marks a failing conversion.</figcaption></figure>")
    rows = ((esc(p.format), esc(p.quant), num(p.bits_per_weight), num(p.kl_mean), num(p.worst_rel_l2),
             status_html("fail" if p.failed else "pass")) for p in v.points)
    return (f'<div class="grid">{"".join(charts)}</div><details><summary class="small">the points as a table'
            f"</summary>{table(('format', 'quantization', 'bits/weight', 'mean KL', 'worst rel-L2', 'gates'), rows, (2, 3, 4))}"
            "</details>")


def gate_rows_html(gates: tuple[GateView, ...], open_failing: bool = True) -> str:
    """Gates as rows: status, id, format, reason; each opens its detail."""
    if not gates:
        return '<p class="muted">none</p>'
    out = []
    for g in gates:
        op = " open" if open_failing and g.status == "fail" else ""
        out.append(f"<details{op}><summary>{status_html(g.status, g.outcome)} <code class=id>{esc(g.gate_id)}</code> "
                   f'<span class="muted">{esc(g.format)}</span> — {esc(g.reason[:220])}'
                   f"{'…' if len(g.reason) > 220 else ''}</summary>{gate_detail_html(g)}</details>")
    return "".join(out)


def _failures_html(v: RunView) -> str:
    if not v.failures:
        return ""
    rows = []
    for g in v.failures:
        href = v.cell_of.get(g.anchor, g.anchor)
        first = g.reason.strip().splitlines()[0] if g.reason.strip() else ""
        rows.append((status_html("fail", g.outcome), f'<code class=id>{esc(g.gate_id)}</code>',
                     esc(f"{g.format} {g.quant or ''}".strip()), esc(v.cause_of.get(g.gate_id, "")),
                     esc(first[:300]) + ("…" if len(first) > 300 else ""), f'<a href="#{href}">detail</a>'))
    return f"<h2>Failures ({len(v.failures)})</h2>" + table(("", "gate", "format", "cause", "reason", ""), rows)


def _summary_html(v: RunView) -> str:
    s = v.summary
    cols = tuple(o.value for o in TABLE_COLUMNS)
    fam = table(("family",) + cols, ((esc(f),) + tuple(str(c.get(o, 0) or "") for o in cols)
                                     for f, c in s.families.items()), num_cols=range(1, 6))
    parts = [f"<h2>Gate families</h2>{fam}"]
    if s.causes:
        parts.append("<h2>Failures by cause</h2>" + table(
            ("count", "cause", "gates", "example reason"),
            ((str(len(c.gates)), esc(c.cause), esc(", ".join(c.gates)), esc(c.example[:300])) for c in s.causes),
            num_cols=(0,)))
    if s.notes:
        parts.append("<h2>What apr-qa's F-CONV gates measured</h2><ul>" + "".join(
            f"<li><b>{esc(n.gate_id)}</b> ({esc(n.outcome)}) — reason: <code>{esc(n.reason[:200])}</code>. "
            f"{esc(n.note)}</li>" for n in s.notes) + "</ul>")
    return "".join(parts)


def render_run_html(v: RunView) -> str:
    """The run report page of ``v`` (``build_run_view``)."""
    verdict = "PASS" if v.passed else "FAIL"
    counts = chips((_OUTCOME_CLASS.get(k, ""), f"{n} {k}") for k, n in v.outcomes.items())
    extra = f" · {v.seconds:.1f} s" if v.seconds is not None else ""
    links = " · ".join(f'<a href="{esc(h)}">{esc(lab)}</a>' for lab, h in v.links)
    body = [f"<h1>aprqa playbook run: {esc(v.title)}</h1>",
            f'<p class="muted">{esc(v.model)} · {esc(v.producer)} evidence · {v.records} records'
            f'{" · " + esc(v.source) if v.source else ""}{esc(extra)}</p>',
            v.provenance.html() if v.provenance is not None else "",
            f'<div class="banner {"pass" if v.passed else "fail"}"><span class="verdict">'
            f'{"✓" if v.passed else "✗"} {verdict}</span>{counts}'
            f'{f"<span class=small>{links}</span>" if links else ""}</div>',
            _failures_html(v),
            "<h2>Conversions: format × quantization</h2>", matrix_html(v),
            "<h2>Fidelity against size</h2>", tradeoff_html(v),
            "<h2>Integrity (G0)</h2>", gate_rows_html(v.integrity),
            "<h2>Round trips, idempotency and structure</h2>", gate_rows_html(v.structure)]
    if v.other:
        body += ["<h2>Other gates</h2>", gate_rows_html(v.other)]
    if v.not_executed:
        body += [f"<h2>Not executed by aprqa ({len(v.not_executed)} Skipped records)</h2>"
                 '<p class="small muted">Recorded Skipped: neither passed nor failed.</p>',
                 gate_rows_html(v.not_executed)]
    body.append(_summary_html(v))
    if v.notes:
        body.append("<h2>Planning notes</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in v.notes) + "</ul>")
    body.append("<h2>Environment</h2>" + kv((k, esc(val)) for k, val in v.environment))
    return page(f"aprqa run {v.title}: {verdict}", "\n".join(body))


