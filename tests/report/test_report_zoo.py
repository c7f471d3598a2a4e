"""report/zoo/summary.py renders the certification table from records alone (no run needed)."""

from __future__ import annotations

import csv
import io

from aprqa.playbook.evidence import make_record
from aprqa.records import Host, ModelRef, Record, Scenario
from aprqa.report.zoo.summary import ZooRow, render_csv, render_html, render_markdown, zoo_rows


def _rec(fmt: str, quant: str | None, outcome: str) -> Record:
    scenario = Scenario("s", ModelRef("org", "m", quant), "run", "cpu", fmt, "p", 0.0, 0, 0, "none", "aprqa")
    return make_record(gate_id="F-CONV-S-G", outcome=outcome, reason="r", output="o", scenario=scenario,
                       metrics={}, metadata={"quant": quant} if quant else {},
                       host=Host("h", "linux", "cpu", None, "aprqa"), duration_ms=1)


def test_rows_count_pass_fail_skip_per_model_format_quant():
    recs = [_rec("gguf", "q8_0", "Corroborated"), _rec("gguf", "q8_0", "Falsified"), _rec("gguf", "f16", "Corroborated"),
            _rec("apr", "q8_0", "Skipped"), _rec("safetensors", None, "Crashed"), _rec("safetensors", None, "Timeout"),
            _rec("safetensors", "keep", "Corroborated")]
    rows = zoo_rows([("m<1>", recs)])
    assert rows == [ZooRow("m<1>", "safetensors", "keep", 1, 0, 0), ZooRow("m<1>", "safetensors", "—", 0, 2, 0),
                    ZooRow("m<1>", "apr", "q8_0", 0, 0, 1), ZooRow("m<1>", "gguf", "f16", 1, 0, 0),
                    ZooRow("m<1>", "gguf", "q8_0", 1, 1, 0)]
    assert [r.status for r in rows] == ["PASS", "FAIL", "SKIPPED", "PASS", "FAIL"]
    md = render_markdown(rows, ["m<1>"])
    # names from files reach Markdown as entities, never as raw HTML a renderer would run
    assert "| m&lt;1&gt; | FAIL | 3 | 3 | 1 |" in md and "| m&lt;1&gt; | gguf | q8_0 | 1 | 1 | 0 | FAIL |" in md
    assert "m<1>" not in md
    back = list(csv.DictReader(io.StringIO(render_csv(rows))))
    assert [(r["format"], r["quant"], r["status"]) for r in back][2] == ("apr", "q8_0", "SKIPPED")
    assert back[1]["quant"] == ""  # a whole-model row has no target type (was "—")
    page = render_html(rows, ["m<1>"])
    assert "m&lt;1&gt;" in page and "m<1>" not in page and "<script" not in page
