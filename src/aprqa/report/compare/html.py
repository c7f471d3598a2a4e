"""The compare report as one self-contained HTML page (inline CSS and SVG, no script, no network).

Order: verdict and the two files, failing tensors with the evidence of their diagnosis, the
output check per token position, the locate curve, rel-L2 per layer and tensor role, the |d|
histogram, every tensor worst first, metadata and tokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import svg
from ..page import chips, esc, kv, num, page, status_html, table, write_page
from ..provenance import Provenance
from ..run.view import measures_of
from .hints import compare_hints
from .view import bucket_label, diagnosis, error_grid, histograms, positions, used_range


def _side(label: str, s: Any) -> str:
    bpw = s.get("bits_per_weight")
    dtypes = " · ".join(f"{k} {v}" for k, v in (s.get("dtypes") or {}).items())
    return (f'<div class="card"><h3>{esc(label)}</h3>' + kv((
        ("path", f"<code>{esc(s['path'])}</code>"), ("format", esc(f"{s['format']} ({s['dialect']})")),
        ("tensors", esc(num(s["tensors"]))), ("size", esc(f"{num(s['nbytes'])} bytes")
                                               + (f" · {num(bpw)} bits/weight" if bpw else "")),
        ("dtypes", esc(dtypes)))) + "</div>")


def failing_html(report: Any) -> str:
    """Failing tensors, worst first, each with the evidence of its diagnosis."""
    fails = report.failures()
    if not fails:
        return ""
    rows = ((f"<code>{esc(t.name)}</code>", status_html("fail", t.verdict.value), f"<b>{esc(diagnosis(t))}</b>",
             esc(f"{t.reference_dtype} {list(t.reference_shape or ())} → {t.candidate_dtype} "
                 f"{list(t.candidate_shape or ())}"), esc(t.detail)) for t in fails)
    return (f"<h2>Failing tensors ({len(fails)})</h2>"
            + table(("tensor", "verdict", "evidence", "reference → candidate", "detail"), rows))


def outputs_html(report: Any) -> str:
    """The output-level check: its measures against the profile, KL and top-1 per position, greedy."""
    oc = report.outputs
    if oc is None:
        return f'<h2>Output check</h2><p class="muted">{esc(report.outputs_note)}</p>' if report.outputs_note else ""
    d = oc.to_dict()
    ms = measures_of(None, d, {})
    pos = positions(oc)
    head = status_html("pass" if oc.passed else "fail", f"profile {oc.profile.name}: {'PASS' if oc.passed else 'FAIL'}")
    parts = [f"<h2>Output check</h2><p>{head} · {len(pos)} positions"
             + (f" · {esc(report.outputs_note)}" if report.outputs_note else "") + "</p>"]
    fails = "".join(f"<li>{esc(f)}</li>" for f in oc.failures)
    notes = "".join(f"<li class=muted>{esc(n)}</li>" for n in oc.notes)
    if fails or notes:
        parts.append(f"<ul>{fails}{notes}</ul>")
    charts = []
    if pos:
        kl_bars = [svg.Bar(str(p.index), p.kl, "info" if p.top1_same is not False else "fail",
                           f"position {p.index} (token {p.token}): KL {num(p.kl)}, top-1 "
                           f"{'same' if p.top1_same else 'different'}") for p in pos]
        lim = oc.profile.max_kl
        chart = svg.bars(kl_bars, "KL", "KL divergence per token position", limit=lim,
                         limit_text=f"max KL {num(lim)} (profile {oc.profile.name})" if lim else "")
        chart += svg.strip([p.top1_same for p in pos], "top-1 agreement per token position")
        charts.append(f'<figure class="card">{chart}<figcaption>KL(source ‖ candidate) of the next-token '
                      f"distribution at each position (bars, log scale; red = top-1 differs), and whether both "
                      f"pick the same top-1 token (strip).</figcaption></figure>")
    charts.append('<div class="card">' + table(("measure", "measured", "limit"),
                                               ((esc(m.name), esc(num(m.value)), esc(m.limit)) for m in ms))
                  + "</div>")
    parts.append(f'<div class="grid">{"".join(charts)}</div>')
    g = oc.greedy
    if g is not None and g.n_generated:
        cells = "".join(f'<td class="num {"" if a == b else "fail"}">{a}{"" if a == b else f" / {b}"}</td>'
                        for a, b in zip(g.reference_ids, g.candidate_ids))
        parts.append(f"<h3>Greedy continuation ({g.agreed}/{g.n_generated} agree)</h3>"
                     '<div class="scroll"><table style="width:auto;min-width:0"><tr><th>reference token / candidate</th>'
                     f"{cells}</tr></table></div>")
    return "".join(parts)


def localization_html(report: Any) -> str:
    """The locate curve: hidden-state error after every attention and MLP block."""
    loc = report.localization
    if loc is None:
        return f'<h2>Localization</h2><p class="muted">{esc(report.locate_note)}</p>' if report.locate_note else ""
    blocks = list(loc.blocks)
    first = loc.first_bad
    mark = next((i for i, b in enumerate(blocks) if first is not None
                 and (b.layer, b.sub_block) == (first.layer, first.sub_block)), None)
    ticks = [("emb" if b.layer < 0 else str(b.layer)) if b.sub_block in ("embed", "attn") else None for b in blocks]
    head = (status_html("fail", f"first divergent block: {first.label} (rel-err {num(first.rel_error)}, limit "
                                f"{num(loc.threshold)})") if first else
            status_html("pass", f"no block exceeds the limit {num(loc.threshold)}"))
    chart = svg.line([b.rel_error for b in blocks], [b.label for b in blocks], ticks,
                     "hidden-state relative error per block", limit=loc.threshold,
                     limit_text=f"limit {num(loc.threshold)} (profile {loc.profile})", mark=mark)
    rows = ((f"<code>{esc(t.name)}</code>", status_html("pass" if t.passed else "fail", t.verdict.value),
             esc(diagnosis(t))) for t in report.divergent_layer_tensors())
    tens = report.divergent_layer_tensors()
    return ("<h2>Localization: hidden states after every attention and MLP block</h2>"
            f'<p>{head}</p><p class="small muted">{esc(report.locate_note)}</p>'
            f'<figure class="card">{chart}<figcaption>Relative error of the residual stream, source vs candidate, '
            f"run in lockstep (layer number under each attention block).</figcaption></figure>"
            + (f"<h3>Tensors of that layer</h3>{table(('tensor', 'verdict', 'evidence'), rows)}" if tens else ""))


def grid_html(report: Any) -> str:
    """rel-L2 of every tensor by layer and role; failing tensors outlined and marked ✗."""
    rows, cols, cells, outside = error_grid(report)
    if not rows and not outside:
        return ""
    parts = ["<h2>Error by layer and tensor role</h2>"]
    every = [c.value for c in cells.values()] + [c.value for c in outside.values()]  # one colour scale for both
    if rows:
        parts.append('<figure class="card">' + svg.heatmap(
            rows, cols, {k: (c.value, c.passed, c.tip) for k, c in cells.items()}, "relative L2 error by layer "
            "and tensor role", scale=every) + "</figure>")
    if outside:
        parts.append('<figure class="card">' + svg.heatmap(
            ["outside layers"], list(outside), {("outside layers", k): (c.value, c.passed, c.tip)
                                                for k, c in outside.items()}, "relative L2 error of the other tensors",
            scale=every) + "</figure>")
    parts.append('<p class="small muted">Colour: relative L2 error ‖candidate − source‖ / ‖source‖ of each tensor '
                 "(log scale; grey = 0, bit-identical). A quantized tensor's pass criterion is its error against "
                 "the type's own noise (err/noise, in each tooltip), not this absolute error.</p>")
    return "".join(parts)


def histogram_html(report: Any) -> str:
    """The compare kernel's |candidate − source| histograms, summed over tensors."""
    hists = histograms(report)
    if not hists:
        return ""
    charts = []
    for key, h in hists.items():
        rng = used_range(h)
        items = [svg.Bar(bucket_label(k), float(h[k]), "fail" if k == 63 else "info",
                         f"|d| {bucket_label(k)}: {h[k]:,} elements") for k in rng]
        charts.append(f'<figure class="card"><h3>{esc(key)}</h3>'
                      + svg.bars(items, "elements", f"histogram of |d| over {key}")
                      + f"<figcaption>{sum(h):,} elements; bucket = |d| from 2^k up to 2^(k+1), "
                        "\"0\" = exactly equal.</figcaption></figure>")
    return f'<h2>Error histogram (|candidate − source| per element)</h2><div class="grid">{"".join(charts)}</div>'


def _tensor_rows(ts: list[Any]) -> list[tuple[str, ...]]:
    out = []
    for t in ts:
        s = t.stats
        out.append((f"<code>{esc(t.name)}</code>", status_html("pass" if t.passed else "fail", t.verdict.value),
                    f'<span class="nw">{esc(f"{t.reference_dtype}→{t.candidate_dtype}")}</span>',
                    num(s.rel_l2) if s else "—",
                    num(s.cosine, 6) if s else "—", num(s.max_abs) if s else "—",
                    num(t.noise.ratio) if t.noise else "—", esc(" · ".join(t.transform)), esc(t.detail)))
    return out


def _section(sec: Any) -> str:
    head = (status_html("skip", "NOT COMPARED") if not sec.fields and sec.note and sec.passed else
            status_html("pass" if sec.passed else "fail", "MATCH" if sec.passed else "DIFFERENT"))
    note = f"<p>{head} {esc(sec.note)}</p>"
    if not sec.fields:
        return note
    rows = ((esc(f.field), status_html("pass" if f.passed else "fail", f.status),
             f"<code>{esc(repr(f.reference)[:200])}</code>", f"<code>{esc(repr(f.candidate)[:200])}</code>",
             esc(f.note)) for f in sec.fields)
    return note + table(("field", "status", "reference", "candidate", "note"), rows)


def render_html(report: Any, provenance: Provenance | None = None) -> str:
    """The compare report page of ``report`` (``aprqa.compare``), with who made it from which bytes."""
    d = report.to_dict()
    ok = report.passed
    counts = chips(("pass" if k in ("IDENTICAL", "EXACT-CAST", "QUANT-FAITHFUL", "TIED", "WITHIN-TOLERANCE")
                    else "fail", f"{k} {v}") for k, v in d["counts"]["verdicts"].items())
    ranked = report.failures() + sorted((t for t in report.tensors if t.passed), key=lambda t: -t.error_score)
    head_cols = ("tensor", "verdict", "dtype", "rel-L2", "cosine", "max |d|", "err/noise", "transform", "detail")
    rows = _tensor_rows(ranked)
    more = (f"<details><summary>the other {len(rows) - 30} tensors</summary>"
            f"{table(head_cols, rows[30:], num_cols=(3, 4, 5, 6))}</details>") if len(rows) > 30 else ""
    body = [f"<h1>aprqa compare: {esc(Path(d['candidate']['path']).name)}</h1>",
            f'<div class="banner {"pass" if ok else "fail"}"><span class="verdict">{"✓ PASS" if ok else "✗ FAIL"}'
            f"</span>{counts}<span class=small>profile {esc(d['policy']['profile'])} · "
            f"{d['counts']['pairs_compared']} pairs compared · minimum passing atol (rtol 0) "
            f"{esc(num(d['min_atol']))}</span></div>",
            "".join(f'<p>{status_html("fail", "error")} {esc(e)}</p>' for e in d["errors"]),
            "".join(f'<p>{status_html("skip", "hint")} {esc(h)}</p>' for h in compare_hints(d, ok)),
            provenance.html() if provenance is not None else "",
            f'<div class="grid">{_side("reference", d["reference"])}{_side("candidate", d["candidate"])}</div>',
            failing_html(report), outputs_html(report), localization_html(report), grid_html(report),
            histogram_html(report),
            "<h2>Tensors, worst first</h2>" + table(head_cols, rows[:30], num_cols=(3, 4, 5, 6)) + more,
            "<h2>Metadata</h2>" + _section(report.metadata), "<h2>Tokenizer</h2>" + _section(report.tokenizer)]
    return page(f"aprqa compare: {'PASS' if ok else 'FAIL'}", "\n".join(b for b in body if b))


def write_report(report: Any, path: str | Path, provenance: Provenance | None = None) -> Path:
    """Write the compare report page to ``path``."""
    return write_page(path, render_html(report, provenance), (report.reference.path, report.candidate.path))
