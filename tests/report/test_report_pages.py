"""Report pages rendered from data: every public render function, on the demo run's records, on
apr-qa's evidence and on a failing compare (a Q8_0 GGUF with one transposed weight).

What the pages show is checked against the data they were given (records, Report), and the
charts against their geometry (which mark is higher, which cell is outlined)."""

from __future__ import annotations

import json
import math
import re

import pytest

from aprqa.cli import main
from aprqa.report import svg
from aprqa.report.compare.view import bucket_label, diagnosis, error_grid, histograms, positions, role_of
from aprqa.report.environment import environment, environment_json
from aprqa.comparison import compare
from aprqa.report.compare.html import (failing_html, grid_html, histogram_html, localization_html, outputs_html, render_html,
                               write_report)
from aprqa.report.compare.markdown import render_markdown
from aprqa.report.compare.markdown import write_report as write_markdown
from aprqa.report.page import num, page, status_html, table, write_page
from aprqa.report.run.html import gate_detail_html, gate_rows_html, matrix_html, render_run_html, tradeoff_html
from aprqa.report.run.markdown import render_run_markdown
from aprqa.report.run.write import write_run_report
from aprqa.report.run.view import build_run_view, gate_view, measures_of
from _paths import APR_QA_FIXTURES, OWN_FAILING, upstream
from conftest import TRANSPOSED_TENSOR

FAILING_APR_QA = APR_QA_FIXTURES / "evidence" / "qwen2.5-coder-0.5b-mvp.failing-run.evidence.json"
# the demo playbook's conversions aprqa cannot store (format, quantization): Skipped, never a substitute
# APR's q8_0 is aprender's int8 (formats/apr_policy.py): produced
DEMO_UNSTORABLE = {("safetensors", "q8_0"), ("safetensors", "q4_k"), ("safetensors", "apr-q8"), ("gguf", "apr-q8")}


@pytest.fixture(scope="module")
def demo_view(demo_run):
    return build_run_view(list(demo_run.records), str(demo_run.evidence))


# ---------------------------------------------------------------------------------------------
# page and svg primitives


def test_num_and_status_read_without_colour():
    assert [num(x) for x in (0.000123456, float("nan"), float("inf"), None, 1234567, "inf")] == \
        ["0.000123", "nan", "inf", "—", "1,234,567", "inf"]
    assert "✗ FAIL" in status_html("fail") and "✓ pass" in status_html("pass") and "– skipped" in status_html("skip")
    t = table(("a", "b"), [("<b>x</b>", "2")], num_cols=(1,))
    assert "<td class=num>2</td>" in t and "<b>x</b>" in t


def test_page_is_self_contained_and_written_atomically(tmp_path):
    html = page("t <x>", "<p>body</p>")
    assert html.startswith("<!doctype html>") and "<title>t &lt;x&gt;</title>" in html
    assert "<script" not in html and not re.search(r"(src|href)=\"(https?:)?//", html) and "@import" not in html
    p = write_page(tmp_path / "r.html", html)
    assert p.read_text() == html and [x.name for x in tmp_path.iterdir()] == ["r.html"]


def _cy(svg_text: str, title_part: str) -> float:
    """y of the marker whose tooltip contains ``title_part``."""
    for m in re.finditer(r'<(circle|rect|polygon)([^>]*)><title>([^<]*)</title>', svg_text):
        if title_part in m.group(3):
            attrs = m.group(2)
            if m.group(1) == "circle":
                return float(re.search(r'cy="([-\d.]+)"', attrs).group(1))
            if m.group(1) == "rect":
                return float(re.search(r' y="([-\d.]+)"', attrs).group(1))
            ys = [float(p.split(",")[1]) for p in re.search(r'points="([^"]+)"', attrs).group(1).split()]
            return sum(ys) / len(ys)
    raise AssertionError(f"no mark titled {title_part!r}")


def test_scatter_places_larger_errors_higher_and_rings_failures():
    pts = [svg.Point(8.5, 1e-3, "q8_0", "gguf"), svg.Point(4.5, 1e-1, "q4_k", "gguf", failed=True),
           svg.Point(16, 0.0, "f16", "apr")]
    s = svg.scatter(pts, "bits per weight", "mean KL", "chart")
    assert _cy(s, "gguf q4_k") < _cy(s, "gguf q8_0") < _cy(s, "apr f16")  # SVG y grows downwards; 0 on the floor
    assert s.count('stroke="#cf222e"') == 1 and ">0</text>" in s
    assert svg.scatter([], "x", "y", "c") == '<p class="muted">no measured points</p>'


def test_bars_strip_line_and_heatmap_draw_the_values_given():
    b = svg.bars([svg.Bar("0", 1e-4), svg.Bar("1", 1e-1, "fail")], "KL", "kl", limit=1e-2, limit_text="max KL")
    assert _cy(b, "1: 0.1") < _cy(b, "0: 0.0001") and b.count(">✗</text>") == 1 and "max KL" in b
    st = svg.strip([True, False, True], "top-1")
    assert st.count("<rect") == 3 and "position 1: different top-1" in st
    ln = svg.line([0.0, 1e-3, 0.5], ["emb", "layer 0 attn", "layer 0 mlp"], ["emb", "0", None], "curve", limit=1e-2,
                  mark=2)
    assert "✗ layer 0 mlp" in ln and _cy(ln, "layer 0 mlp") < _cy(ln, "layer 0 attn")
    hm = svg.heatmap(["layer 0"], ["q", "k"], {("layer 0", "q"): (1.4, False, "q bad"),
                                              ("layer 0", "k"): (4e-3, True, "k ok")}, "grid")
    bad = re.search(r'<rect[^>]*stroke="#cf222e"[^>]*><title>q bad</title>', hm)
    assert bad and hm.count(">✗</text>") == 1 and "<title>k ok</title>" in hm


# ---------------------------------------------------------------------------------------------
# the run report


def test_run_view_matrix_points_and_environment(demo_run, demo_view):
    v = demo_view
    assert v.formats == ("safetensors", "apr", "gguf")
    assert v.quants == ("f32", "f16", "q8_0", "apr-q8", "q4_k", "keep")
    skipped = {k for k, c in v.cells.items() if c.status == "skip"}
    assert skipped == DEMO_UNSTORABLE and all(c.status == "pass" for k, c in v.cells.items() if k not in skipped)
    # every conversion record lands in exactly one cell; each cell's values are the record's own
    conv = [r for r in demo_run.records if re.match(r"^F-CONV-[A-Z]-[A-Z]$", r["gate_id"])
            or r["gate_id"] == "F-GOLDEN-RULE-001"]
    assert sum(len(c.gates) for c in v.cells.values()) == len(conv)
    rec = next(r for r in conv if r["gate_id"] == "F-CONV-S-G" and r["scenario"]["model"]["variant"] == "q4_k")
    cell = v.cells[("gguf", "q4_k")]
    assert cell.kl_mean == rec["metrics"]["aprqa"]["output"]["metrics"]["kl_mean"]
    assert cell.bits_per_weight == rec["metrics"]["aprqa"]["tensor"]["bits_per_weight"]
    assert 4.0 < cell.bits_per_weight < 5.0  # q4_k's 4.5 bits plus the f32 norms
    # one trade-off point per produced quantized conversion (not "keep"), none from skipped cells
    assert {(p.format, p.quant) for p in v.points} == {k for k, c in v.cells.items()
                                                       if c.status == "pass" and k[1] != "keep"}
    q8 = next(p for p in v.points if (p.format, p.quant) == ("gguf", "q8_0"))
    q4 = next(p for p in v.points if (p.format, p.quant) == ("gguf", "q4_k"))
    assert q4.bits_per_weight < q8.bits_per_weight and q4.kl_mean > q8.kl_mean and q4.worst_rel_l2 > q8.worst_rel_l2
    env = dict(v.environment)
    assert demo_run.playbook_sha256 in env["playbook sha256"] and "numpy" in env["software"] and "host" in env
    assert [g.gate_id for g in v.integrity][:2] == ["G0-VALIDATE-001", "G0-INTEGRITY-CONFIG"]
    assert {g.gate_id for g in v.structure} >= {"F-CONV-RT-001", "F-CONV-IDEM-001", "F-CONV-TOK-001"}
    assert [g.gate_id for g in v.not_executed] == ["F-A1-001"] and not v.failures
    assert v.default_cell.status == "pass" and v.default_cell.quant == "q4_k"


def test_gate_view_measures_against_limits(demo_run):
    rec = next(r for r in demo_run.records if r["gate_id"] == "F-CONV-S-G" and r["scenario"]["model"]["variant"] == "q8_0")
    g = gate_view(rec, 0)
    m = {x.name: x for x in g.measures}
    out = rec["metrics"]["aprqa"]["output"]
    assert m["mean KL"].value == out["metrics"]["kl_mean"] and m["mean KL"].limit == f"≤ {out['profile']['max_mean_kl']:.3g}"
    assert m["bits per weight"].value == rec["metrics"]["aprqa"]["tensor"]["bits_per_weight"]
    assert measures_of(None, None, {}) == ()
    d = gate_detail_html(g)
    assert "mean KL" in d and "thresholds" in d and g.anchor in d
    skipped = gate_view(next(r for r in demo_run.records if r["outcome"] == "Skipped"), 1)
    assert "Why skipped:" in gate_detail_html(skipped)


def test_render_run_html_and_markdown(demo_view):
    html = render_run_html(demo_view)
    cells = re.findall(r'<a class="cell (\w+)" href="#(cell-[^"]+)"', html)
    assert len(cells) == 18 and sum(1 for s, _ in cells if s == "skip") == len(DEMO_UNSTORABLE)
    for _s, anchor in cells:  # every cell opens its own panel
        assert f'id="{anchor}"' in html
    assert html.count('class="panel default"') == 1 and 'id="cell-gguf-q4_k"' in html
    assert html.count('aria-label="mean KL against bits per weight"') == 1
    assert "<h2>Failures" not in html and "✓ PASS" in html and "<script" not in html
    assert matrix_html(demo_view) in html and tradeoff_html(demo_view) in html
    assert gate_rows_html(demo_view.integrity) in html
    md = render_run_markdown(demo_view)
    assert md.startswith("# aprqa playbook run: demo-qwen2-tiny — ✓ PASS")
    row = next(line for line in md.splitlines() if line.startswith("| **gguf** |"))
    assert row.count("✓ pass") == 5 and row.count("– skipped") == 1
    assert "| gguf | q4_k |" in md and "## Environment" in md and "<details><summary>gguf · q4_k" in md


@pytest.mark.parametrize("path, n", [pytest.param(OWN_FAILING, 6, id="own"),
                                     pytest.param(FAILING_APR_QA, 14, marks=upstream, id="apr-qa")])
def test_run_report_of_apr_qa_failing_evidence_puts_failures_first(path, n):
    records = json.loads(path.read_text())
    v = build_run_view(records, str(path))
    assert not v.passed and len(v.failures) == n and v.producer == "apr-qa"
    assert v.cells[("gguf", "as stored")].status == "fail" and not v.points
    html = render_run_html(v)
    assert html.index(f"<h2>Failures ({n})</h2>") < html.index("<h2>Conversions")
    assert "printed text output differed" in html and "character by character" in html
    assert v.default_cell.status == "fail" and 'class="panel default"' in html
    md = render_run_markdown(v)
    assert md.index(f"## Failures ({n})") < md.index("## Conversions") and "<details open>" in md


def test_write_run_report_and_cli_report(demo_run, tmp_path, capsys):
    html, md = tmp_path / "r.html", tmp_path / "r.md"
    assert write_run_report(list(demo_run.records), html=html, md=md, source="x") == [html, md]
    assert 'class="matrix"' in html.read_text() and md.read_text().startswith("# aprqa playbook run")
    assert main(["report", str(demo_run.evidence), "--html", str(tmp_path / "c.html")]) == 0
    capsys.readouterr()
    assert (tmp_path / "c.html").read_text().count('<a class="cell ') == 18


def test_run_writes_run_report_and_worst_compare(demo_run):
    out = demo_run.output
    assert demo_run.report == out / "report.html" and 'class="matrix"' in demo_run.report.read_text()
    assert (out / "report.md").read_text().startswith("# aprqa playbook run")
    assert demo_run.compare_report == out / "compare-report.html"
    assert "aprqa compare" in demo_run.compare_report.read_text()
    assert 'href="compare-report.html"' in demo_run.report.read_text()
    env = json.loads(demo_run.records[0]["metadata"]["environment"])
    assert env == json.loads(environment_json()) == environment() and env["aprqa"]


# ---------------------------------------------------------------------------------------------
# the compare report


def test_compare_view_of_a_failing_compare(failing_compare):
    rep = failing_compare
    bad = next(t for t in rep.tensors if t.name == TRANSPOSED_TENSOR)
    text = diagnosis(bad)
    # the evidence is the report's own numbers, as stored and after undoing the transpose
    assert text == f"rel-L2 {bad.stats.rel_l2:.3g} as stored → {bad.explained_stats.rel_l2:.3g} if transposed back"
    assert bad.stats.rel_l2 > 1.0 > 0.05 > bad.explained_stats.rel_l2
    assert role_of(TRANSPOSED_TENSOR) == (1, "attn.q_proj") and role_of("lm_head.weight") == (None, "lm_head.weight")
    rows, cols, cells, outside = error_grid(rep)
    assert rows == ["layer 0", "layer 1"] and cols[0] == "input_layernorm" and "lm_head.weight" in outside
    assert [k for k, c in cells.items() if not c.passed] == [("layer 1", "attn.q_proj")]
    assert cells[("layer 1", "attn.q_proj")].value == bad.stats.rel_l2
    # a quantized tensor's rel-L2 differs from an f32 norm's 0: the grid shows more than err/noise = 1
    assert cells[("layer 0", "input_layernorm")].value == 0.0 and cells[("layer 0", "mlp.down_proj")].value > 1e-4
    h = histograms(rep)
    assert sum(h["all tensors"]) == sum(t.stats.n for t in rep.tensors if t.stats is not None)
    assert sum(h["failing tensors"]) == bad.stats.n
    assert bucket_label(0) == "0" and bucket_label(42) == "2^0" and bucket_label(63) == "nan/inf"
    pos = positions(rep.outputs)
    m = rep.outputs.metrics
    assert [p.kl for p in pos] == list(m.kl_per_position) and len(pos) == m.n_positions
    assert sum(1 for p in pos if p.top1_same) / len(pos) == pytest.approx(m.top1_agreement)


def test_render_compare_html_and_markdown(failing_compare, tmp_path):
    rep = failing_compare
    html = render_html(rep)
    order = [html.index(h) for h in ("<h2>Failing tensors (1)</h2>", "<h2>Output check</h2>", "<h2>Localization",
                                     "<h2>Error by layer and tensor role</h2>", "<h2>Error histogram",
                                     "<h2>Tensors, worst first</h2>")]
    assert order == sorted(order)
    assert "as stored →" in html and "if transposed back" in html
    assert 'aria-label="KL divergence per token position"' in html and 'aria-label="top-1 agreement per token' in html
    assert html.count("<title>position ") == 2 * rep.outputs.metrics.n_positions  # one bar + one strip square each
    assert 'aria-label="hidden-state relative error per block"' in html
    assert "<script" not in html
    p = write_report(rep, tmp_path / "c.html")
    assert p.read_text() == html
    md = render_markdown(rep)
    assert md.startswith("# aprqa compare: FAIL") and "## Failing tensors (1)" in md
    assert f"| `{TRANSPOSED_TENSOR}` | ✗ TRANSPOSED | **rel-L2 " in md
    assert "| layer 1 |" in md and "✗ 1.4" in md and "| position | token | KL | top-1 |" in md
    assert md.count("✗ differs") == sum(1 for p in positions(rep.outputs) if p.top1_same is False)
    assert math.isfinite(rep.candidate.bits_per_weight) and 8 < rep.candidate.bits_per_weight < 9  # Q8_0: 8.5


def test_compare_sections_render_their_part_and_nothing_when_empty(failing_compare, tiny_models, tmp_path):
    rep = failing_compare
    html = render_html(rep)
    for part in (failing_html(rep), outputs_html(rep), localization_html(rep), grid_html(rep), histogram_html(rep)):
        assert part and part in html
    assert "if transposed back" in failing_html(rep) and "first divergent block" in localization_html(rep)
    # a passing tensor-level compare: no failing section, no output chart, the note says why
    same = compare(tiny_models["qwen2-tiny"], tiny_models["qwen2-tiny"], fast=True)
    assert same.passed and failing_html(same) == "" and localization_html(same) == ""
    assert "KL divergence per token position" not in outputs_html(same)
    assert same.outputs_note and same.outputs_note in outputs_html(same)
    assert set(histograms(same)) == {"all tensors"} and "failing tensors" not in histogram_html(same)
    assert "✗" not in grid_html(same)  # nothing failed, nothing marked
    md = write_markdown(same, tmp_path / "same.md").read_text()
    assert md.startswith("# aprqa compare: PASS") and "## Failing tensors" not in md


@pytest.mark.parametrize("records", [
    [{"gate_id": "F-CONV-S-G", "metadata": "not a dict", "scenario": {"model": "x", "format": 3}}],
    [{"gate_id": "F-CONV-S-G", "outcome": "Falsified", "metadata": {"thresholds": 5, "environment": 7},
      "metrics": {"aprqa": {"tensor": {"failures": ["x"], "bits_per_weight": "8", "worst": 1, "verdicts": [1]},
                            "output": {"metrics": [], "failures": "y"}, "prompts": [1]}}}],
    [{"gate_id": "F-GOLDEN-RULE-001", "metrics": None, "host": [], "scenario": None}, 5],
], ids=["metadata-str", "wrong-types", "nones"])
def test_run_report_of_edited_evidence_renders_what_is_there(records, tmp_path):
    """Edited or foreign evidence is drawn as far as it goes, never a traceback."""
    html, md = write_run_report(records, html=tmp_path / "r.html", md=tmp_path / "r.md")
    assert "F-CONV-S-G" in html.read_text() + md.read_text() or "F-GOLDEN-RULE-001" in html.read_text()
    assert write_run_report(records) == []  # nothing asked, nothing built or written
