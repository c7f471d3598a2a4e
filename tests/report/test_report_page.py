"""report/page.py: the shared HTML/Markdown building blocks every report page is made of, tested directly."""

from __future__ import annotations

import json
import math

from aprqa.report.page import chips, esc, kv, md_cell, num, page, status_html, status_md, table, write_page
from aprqa.report.zoo.summary import ZooRow, write_zoo_summary


def test_esc_and_md_cell_neutralize_markup():
    assert esc('<b a="1">&') == "&lt;b a=&quot;1&quot;&gt;&amp;"
    # a pipe would end a Markdown table cell, a newline the row
    assert md_cell("a|b\nc") == "a\\|b c"


def test_num_spells_out_what_a_reader_needs():
    assert num(None) == "—"
    assert num(True) == "True"
    assert num(math.nan) == "nan" and num(math.inf) == "inf" and num(-math.inf) == "-inf"
    assert num(0.000123456) == "0.000123" and num(2.5, digits=1) == "2"


def test_status_words_icons_and_chips():
    assert status_md("fail") == "✗ FAIL" and status_md("pass", "ok here") == "✓ ok here"
    assert "FAIL" in status_html("fail") and "fail" in status_html("fail")
    c = chips([("warn", "<x>"), ("", "y")])
    assert c.startswith('<span class="chips">') and "&lt;x&gt;" in c and c.count('<span class="chip ') == 2


def test_table_kv_and_page_structure():
    t = table(["name", "n"], [["a", "1"], ["b", "2"]], num_cols=[1], cls="wide")
    assert t.count("<tr>") == 3 and "<th class=num>n</th>" in t and "<td class=num>2</td>" in t and "class=wide" in t
    d = kv([("k<", "<i>v</i>")])
    assert "<dt>k&lt;</dt><dd><i>v</i></dd>" in d  # values are HTML already, keys are text
    p = page("a<b", "<p>x</p>")
    assert p.startswith("<!doctype html>") and "<title>a&lt;b</title>" in p and "<main>\n<p>x</p>\n</main>" in p


def test_write_page_is_atomic_and_returns_the_path(tmp_path):
    out = write_page(tmp_path / "r.md", "# hi\n")
    assert out.read_text() == "# hi\n" and [p.name for p in tmp_path.iterdir()] == ["r.md"]  # no temp left behind


def test_write_zoo_summary_writes_four_consistent_files(tmp_path):
    rows = [ZooRow("m", "gguf", "q8_0", 2, 1, 0), ZooRow("m", "apr", "f16", 1, 0, 0)]
    files = write_zoo_summary(tmp_path / "zoo", rows, ["m"])
    assert sorted(files) == ["csv", "html", "json", "markdown"]
    data = json.loads(files["json"].read_text())
    assert [(r["format"], r["quant"]) for r in data["rows"]] == [("gguf", "q8_0"), ("apr", "f16")]
    assert data["provenance"]["aprqa_version"] and data["models"] == []
    assert "| m | gguf | q8_0 | 2 | 1 | 0 | FAIL | — | — |" in files["markdown"].read_text()
    assert files["csv"].read_text().splitlines()[0].startswith("model,")
    assert "<table" in files["html"].read_text()
