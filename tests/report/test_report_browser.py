"""The run report and a failing compare's report opened in headless Chromium (Debian's chromium,
installed by scripts/setup): they load with no console error and no request beyond the file
itself, show the expected matrix cells and charts, open a cell's detail by its link (CSS
:target), and fit a 390 px screen without sideways scrolling.

APRQA_DOCS_SCREENSHOTS=1 also writes the screenshots to docs/images/ (how the docs' images are made).
"""

from __future__ import annotations

from _paths import ROOT
import json
import os
import struct
from pathlib import Path

import pytest

from aprqa.report.compare.html import write_report
from aprqa.report.run.view import build_run_view
from helpers.browser import Browser, browser_for_tests

DOCS_IMAGES = ROOT / "docs" / "images"


@pytest.fixture(scope="module")
def browser():
    yield from browser_for_tests()


def _shot_dir(tmp_path: Path) -> Path:
    if os.environ.get("APRQA_DOCS_SCREENSHOTS"):
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        return DOCS_IMAGES
    return tmp_path


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def _loads_clean(b: Browser, path: Path, width: int, fragment: str = "") -> None:
    load = b.open(path, width, 900, fragment)
    assert load.errors == [], load.errors
    assert load.requests == [path.resolve().as_uri() + fragment.split("#")[0]], load.requests  # self-contained


_SEEN = """JSON.stringify({
  cells: Object.fromEntries(['pass', 'fail', 'skip'].map(s => [s, document.querySelectorAll('a.cell.' + s).length])),
  shown: [...document.querySelectorAll('.panel')].filter(p => getComputedStyle(p).display !== 'none').map(p => p.id),
  charts: [...document.querySelectorAll('svg.chart')].filter(s => s.getBoundingClientRect().width > 100)
           .map(s => s.getAttribute('aria-label')),
  wide: document.documentElement.scrollWidth, view: window.innerWidth,
  text: document.body.innerText})"""


def _seen(b: Browser) -> dict:
    return json.loads(b.evaluate(_SEEN))


def test_run_report_in_chromium(demo_run, browser, tmp_path):
    page = demo_run.report
    _loads_clean(browser, page, 1400)
    seen = _seen(browser)
    assert seen["cells"] == {"pass": 14, "fail": 0, "skip": 4}  # APR q8_0 (aprender int8) is produced
    assert seen["shown"] == ["cell-gguf-q4_k"]  # the default cell, before any is picked
    assert {"mean KL against bits per weight", "worst tensor relative L2 against bits per weight"} <= set(seen["charts"])
    cell = browser.evaluate("document.querySelector('a[href=\"#cell-gguf-q4_k\"]').innerText")
    assert "pass" in cell and "bits/w" in cell and "KL" in cell
    markers = browser.evaluate("document.querySelector('svg[aria-label=\"mean KL against bits per weight\"]')"
                               ".querySelectorAll('title').length")
    assert markers == sum(1 for p in build_points(demo_run) if p) + 3  # + the three legend markers
    assert "✓ PASS" in seen["text"] and "playbook sha256" in seen["text"] and demo_run.playbook_sha256 in seen["text"]
    shots = _shot_dir(tmp_path)
    assert _png_size(browser.screenshot(shots / "run-report.png", 1400, max_height=3300))[0] == 1400
    # a cell's link opens that cell's detail (CSS :target), and only that one
    anchor = build_run_view(list(demo_run.records)).cells[("apr", "apr-q8")].anchor
    assert browser.evaluate(f"document.querySelectorAll('a.cell[href=\"#{anchor}\"]').length") == 1
    _loads_clean(browser, page, 1400, f"#{anchor}")
    seen = _seen(browser)
    assert seen["shown"] == [anchor]
    assert "F-CONV-S-A" in browser.evaluate(f"document.getElementById('{anchor}').innerText")
    _loads_clean(browser, page, 1400, "#all-cells")
    assert len(_seen(browser)["shown"]) == 18
    # a phone-sized screen: nothing scrolls the page sideways (tables scroll inside their box)
    _loads_clean(browser, page, 390)
    seen = _seen(browser)
    assert seen["wide"] <= seen["view"] == 390
    assert _png_size(browser.screenshot(tmp_path / "run-report-narrow.png", 390))[0] == 390


def build_points(demo_run) -> list[bool]:
    """One flag per trade-off point with a mean KL, from the records themselves."""
    pts = []
    for r in demo_run.records:
        q = r["scenario"]["model"]["variant"]
        t = (r["metrics"].get("aprqa") or {}).get("tensor") or {}
        o = (r["metrics"].get("aprqa") or {}).get("output") or {}
        if r["gate_id"].startswith("F-CONV-S-") and q not in (None, "keep") and t.get("bits_per_weight"):
            pts.append((o.get("metrics") or {}).get("kl_mean") is not None)
    return pts


def test_failing_compare_report_in_chromium(failing_compare, browser, tmp_path):
    page = write_report(failing_compare, tmp_path / "compare-report.html")
    _loads_clean(browser, page, 1400)
    seen = _seen(browser)
    text = seen["text"]
    heads = [text.index(h) for h in ("Failing tensors (1)", "Output check", "Localization", "Error by layer and tensor role",
                                     "Error histogram", "Tensors, worst first")]
    assert heads == sorted(heads) and "✗ FAIL" in text and "if transposed back" in text
    assert {"KL divergence per token position", "top-1 agreement per token position",
            "hidden-state relative error per block", "relative L2 error by layer and tensor role",
            "histogram of |d| over all tensors", "histogram of |d| over failing tensors"} <= set(seen["charts"])
    outlined = browser.evaluate("document.querySelector('svg[aria-label=\"relative L2 error by layer and tensor role\"]')"
                                ".querySelectorAll('rect[stroke=\"#cf222e\"]').length")
    assert outlined == 1  # the transposed tensor, and only it
    n = failing_compare.outputs.metrics.n_positions
    bars = browser.evaluate("document.querySelector('svg[aria-label=\"KL divergence per token position\"]')"
                            ".querySelectorAll('rect').length")
    assert bars == n
    shots = _shot_dir(tmp_path)
    assert _png_size(browser.screenshot(shots / "compare-report.png", 1400, max_height=3300))[0] == 1400
    _loads_clean(browser, page, 390)
    seen = _seen(browser)
    assert seen["wide"] <= seen["view"] == 390


def test_the_harness_sees_console_errors_and_outside_requests(browser, tmp_path):
    """The checks above can fail: a console error and a request beyond the file are both seen."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!doctype html><html><body><img src="http://127.0.0.1:9/x.png">'
                   '<script>console.error("broken page")</script></body></html>')
    load = browser.open(bad, 800, 600)
    assert "broken page" in " ".join(load.errors)
    assert "http://127.0.0.1:9/x.png" in load.requests and len(load.requests) == 2
