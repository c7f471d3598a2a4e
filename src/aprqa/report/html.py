"""Self-contained HTML report of a compare ``Report``: summary, per-layer error plot (inline
SVG, no scripts, no external assets), worst tensors, metadata and tokenizer diff."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from ..fsio import write_text_atomic

_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:3px 6px;text-align:left;font-size:13px}
.pass{color:#17803d;font-weight:bold}.fail{color:#b3261e;font-weight:bold}code{font-size:12px}
.muted{color:#777}"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _num(x: Any, d: int = 3) -> str:
    if isinstance(x, float):
        if not math.isfinite(x):
            return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
        return f"{x:.{d}g}"
    return _e(x) if x is not None else "—"


def layer_series(report: Any) -> list[tuple[int, float, bool]]:
    """Per layer: (layer, worst error score, all passed). err/noise for quantized tensors,
    rel-L2 otherwise."""
    out: dict[int, tuple[float, bool]] = {}
    for t in report.tensors:
        if t.layer is None or t.stats is None:
            continue
        score = t.error_score
        prev = out.get(t.layer, (0.0, True))
        out[t.layer] = (max(prev[0], score), prev[1] and t.passed)
    return [(k, v[0], v[1]) for k, v in sorted(out.items())]


def layer_svg(series: list[tuple[int, float, bool]], width: int = 900, height: int = 220) -> str:
    """Bar chart of the per-layer worst error (log scale), failing layers in red."""
    if not series:
        return '<p class="muted">no per-layer tensors</p>'
    finite = [v for _, v, _ in series if math.isfinite(v) and v > 0]
    lo = math.log10(min(finite)) - 0.5 if finite else -8.0
    hi = math.log10(max(finite)) + 0.5 if finite else 0.0
    if hi - lo < 1:
        hi = lo + 1
    pad_l, pad_b = 50, 24
    w = (width - pad_l - 10) / len(series)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="worst error per layer">']
    for k in range(math.ceil(lo), math.floor(hi) + 1):
        y = height - pad_b - (k - lo) / (hi - lo) * (height - pad_b - 10)
        parts.append(f'<line x1="{pad_l}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="4" y="{y + 4:.1f}" font-size="10">1e{k}</text>')
    for i, (layer, v, ok) in enumerate(series):
        val = v if math.isfinite(v) and v > 0 else (10 ** hi if not math.isfinite(v) else 10 ** lo)
        hgt = max(1.0, (math.log10(val) - lo) / (hi - lo) * (height - pad_b - 10))
        x = pad_l + i * w
        color = "#2e7d32" if ok else "#c62828"
        parts.append(f'<rect x="{x + 1:.1f}" y="{height - pad_b - hgt:.1f}" width="{max(w - 2, 1):.1f}" '
                     f'height="{hgt:.1f}" fill="{color}"><title>layer {layer}: {_num(v)}</title></rect>')
        if len(series) <= 40 or i % max(1, len(series) // 20) == 0:
            parts.append(f'<text x="{x + w / 2:.1f}" y="{height - 8}" font-size="10" '
                         f'text-anchor="middle">{layer}</text>')
    parts.append("</svg>")
    return "".join(parts)


def block_curve_svg(loc: Any, width: int = 900, height: int = 240) -> str:
    """Line chart (log scale) of the per-sub-block hidden-state error from ``--locate``,
    with the profile's limit as a dashed line and the first divergent block marked."""
    blocks = list(loc.blocks)
    if not blocks:
        return '<p class="muted">no blocks compared</p>'
    vals = [b.rel_error for b in blocks]
    finite = [v for v in vals if math.isfinite(v) and v > 0] + [loc.threshold]
    lo = math.log10(min(finite)) - 0.5
    hi = math.log10(max(finite)) + 0.5
    pad_l, pad_b, pad_t = 50, 28, 10
    span_y = height - pad_b - pad_t
    step = (width - pad_l - 10) / max(len(blocks) - 1, 1)

    def y_of(v: float) -> float:
        v = v if math.isfinite(v) and v > 0 else (10 ** hi if not math.isfinite(v) or v > 0 else 10 ** lo)
        return height - pad_b - (math.log10(max(v, 10 ** lo)) - lo) / (hi - lo) * span_y

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="hidden-state relative error per block">']
    for k in range(math.ceil(lo), math.floor(hi) + 1):
        y = height - pad_b - (k - lo) / (hi - lo) * span_y
        parts.append(f'<line x1="{pad_l}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="4" y="{y + 4:.1f}" font-size="10">1e{k}</text>')
    ty = y_of(loc.threshold)
    parts.append(f'<line x1="{pad_l}" x2="{width - 10}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#c62828" '
                 f'stroke-dasharray="4 3"><title>limit {_num(loc.threshold)} (profile {_e(loc.profile)})</title></line>')
    pts = " ".join(f"{pad_l + i * step:.1f},{y_of(v):.1f}" for i, v in enumerate(vals))
    parts.append(f'<polyline points="{pts}" fill="none" stroke="#1565c0" stroke-width="1.5"/>')
    first = loc.first_bad
    for i, b in enumerate(blocks):
        bad = first is not None and (b.layer, b.sub_block) == (first.layer, first.sub_block)
        parts.append(f'<circle cx="{pad_l + i * step:.1f}" cy="{y_of(b.rel_error):.1f}" r="{5 if bad else 2.5}" '
                     f'fill="{"#c62828" if bad else "#1565c0"}"><title>{_e(b.label)}: {_num(b.rel_error)}</title>'
                     f'</circle>')
        if b.sub_block in ("embed", "attn") and (len(blocks) <= 60 or b.layer % max(1, len(blocks) // 60) == 0):
            label = "emb" if b.layer < 0 else str(b.layer)
            parts.append(f'<text x="{pad_l + i * step:.1f}" y="{height - 10}" font-size="10" '
                         f'text-anchor="middle">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _localization_html(report: Any) -> str:
    loc = report.localization
    if loc is None:
        return f'<h2>Localization</h2><p class="muted">{_e(report.locate_note)}</p>' if report.locate_note else ""
    first = loc.first_bad
    head = (f'<p class="fail">first divergent block: {_e(first.label)} (rel-err {_num(first.rel_error)}, '
            f'limit {_num(loc.threshold)})</p>' if first else
            f'<p class="pass">no block exceeds the limit {_num(loc.threshold)}</p>')
    rows = "".join(f"<tr><td><code>{_e(t.name)}</code></td><td class=\"{'pass' if t.passed else 'fail'}\">"
                   f"{_e(t.verdict.value)}</td></tr>" for t in report.divergent_layer_tensors())
    table = f"<table><tr><th>tensor of that layer</th><th>verdict</th></tr>{rows}</table>" if rows else ""
    return (f"<h2>Localization (hidden states after every attention and MLP block)</h2>"
            f'<p class="muted">{_e(report.locate_note)}</p>{head}{block_curve_svg(loc)}{table}')


def _section(sec: Any) -> str:
    rows = "".join(f"<tr><td>{_e(f.field)}</td><td class=\"{'pass' if f.passed else 'fail'}\">{_e(f.status)}</td>"
                   f"<td><code>{_e(repr(f.reference))[:200]}</code></td><td><code>{_e(repr(f.candidate))[:200]}"
                   f"</code></td><td>{_e(f.note)}</td></tr>" for f in sec.fields)
    note = f"<p>{_e(sec.note)}</p>" if sec.note else ""
    return (note + "<table><tr><th>field</th><th>status</th><th>reference</th><th>candidate</th><th>note</th></tr>"
            + rows + "</table>") if sec.fields else note


def render_html(report: Any) -> str:
    d = report.to_dict()
    verdict = '<span class="pass">PASS</span>' if report.passed else '<span class="fail">FAIL</span>'
    counts = " · ".join(f"{_e(k)} {v}" for k, v in d["counts"]["verdicts"].items())
    ranked = report.failures() + sorted((t for t in report.tensors if t.passed),
                                        key=lambda t: -t.error_score)
    rows = []
    for t in ranked[:50]:
        s = t.stats
        rows.append(f"<tr><td><code>{_e(t.name)}</code></td><td class=\"{'pass' if t.passed else 'fail'}\">"
                    f"{_e(t.verdict.value)}</td><td>{_e(t.reference_dtype)}→{_e(t.candidate_dtype)}</td>"
                    f"<td>{_num(s.rel_l2) if s else '—'}</td><td>{_num(s.cosine, 6) if s else '—'}</td>"
                    f"<td>{_num(s.max_abs) if s else '—'}</td><td>{_num(t.noise.ratio) if t.noise else '—'}</td>"
                    f"<td>{_e(' · '.join(t.transform))}</td><td>{_e(t.detail)}</td></tr>")
    ref, cand = d["reference"], d["candidate"]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>aprqa compare</title>
<style>{_CSS}</style></head><body>
<h1>aprqa compare: {verdict}</h1>
<table><tr><th></th><th>path</th><th>format</th><th>tensors</th><th>bytes</th><th>dtypes</th></tr>
<tr><td>reference</td><td><code>{_e(ref['path'])}</code></td><td>{_e(ref['format'])} {_e(ref['dialect'])}</td>
<td>{ref['tensors']}</td><td>{ref['nbytes']:,}</td><td>{_e(ref['dtypes'])}</td></tr>
<tr><td>candidate</td><td><code>{_e(cand['path'])}</code></td><td>{_e(cand['format'])} {_e(cand['dialect'])}</td>
<td>{cand['tensors']}</td><td>{cand['nbytes']:,}</td><td>{_e(cand['dtypes'])}</td></tr></table>
<p>verdicts: {counts}<br>pairs compared: {d['counts']['pairs_compared']} · minimum passing atol (rtol 0):
{_num(d['min_atol'])} · profile {_e(d['policy']['profile'])} · {_e(report.outputs_note)}</p>
{''.join(f'<p class="fail">error: {_e(e)}</p>' for e in d['errors'])}
<h2>Worst error per layer</h2><p class="muted">err/noise for quantized tensors, relative L2 otherwise; red = a
failing tensor in that layer</p>
{layer_svg(layer_series(report))}
{_localization_html(report)}
<h2>Tensors, worst first</h2>
<table><tr><th>tensor</th><th>verdict</th><th>dtype</th><th>rel-L2</th><th>cosine</th><th>max |d|</th>
<th>err/noise</th><th>transform</th><th>detail</th></tr>{''.join(rows)}</table>
<h2>Metadata</h2>{_section(report.metadata)}
<h2>Tokenizer</h2>{_section(report.tokenizer)}
</body></html>
"""


def write_report(report: Any, path: str | Path) -> Path:
    path = Path(path)
    write_text_atomic(path, render_html(report))  # all-or-nothing, locked (aprqa.fsio)
    return path
