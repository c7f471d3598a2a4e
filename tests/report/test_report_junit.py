"""report/run/junit.py renders a RunResult alone: one testsuite per family, Falsified a failure,
Crashed/Timeout an error (with stderr), Skipped skipped; summary.md counts the same records."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

from aprqa.records import Host, Metrics, ModelRef, Outcome, Record, RunResult, Scenario
from aprqa.report.run.junit import junit_xml, summary_md


def _rec(gate_id: str, outcome: Outcome, reason: str, **md: str) -> Record:
    sc = Scenario(f"m_{gate_id}", ModelRef("org", "m", "q8_0"), "run", "cpu", "gguf", "p", 0.0, 0, 0, "none", "aprqa")
    return Record(f"{len(reason):032x}", gate_id, sc, outcome, reason, reason, "boom" if outcome is Outcome.CRASHED
                  else None, None, Metrics(None, None, None, None, 1500, {}), "t", Host("h", "linux", "c", None, "a"),
                  {"thresholds_key": "q8_0/q8_0", "thresholds": "{}", "playbook_sha256": "ab", **md})


def _result(records: tuple[Record, ...]) -> RunResult:
    p = Path("out")
    return RunResult("pb.yaml", "ab", "demo", records, p, p / "evidence.json", p / "evidence.jsonl", p / "junit.xml",
                     p / "summary.md", None, 3.0)


def test_junit_and_summary_from_records():
    recs = (_rec("F-CONV-S-G", Outcome.CORROBORATED, "ok"), _rec("F-CONV-S-G", Outcome.FALSIFIED, "tensor CORRUPT"),
            _rec("F-CONV-RT-001", Outcome.CRASHED, "convert failed"),
            _rec("F-A1-001", Outcome.SKIPPED, "not executed by aprqa", not_executed="true", section="test_matrix"))
    res = _result(recs)
    root = ET.fromstring(junit_xml(res))
    suites = {s.get("name"): s for s in root}
    assert root.get("tests") == "4" and set(suites) == {"F-CONV-S-G", "F-CONV-RT", "F-A1"}
    assert (suites["F-CONV-S-G"].get("failures"), suites["F-CONV-S-G"].get("errors")) == ("1", "0")
    err = suites["F-CONV-RT"].find("testcase/error")
    assert err.get("type") == "Crashed" and "--- stderr ---\nboom" in err.text
    assert suites["F-A1"].find("testcase/skipped") is not None
    assert suites["F-CONV-S-G"].find("testcase").get("time") == "1.500"
    md = summary_md(res)
    assert "**FAIL** · 4 gates" in md and "| F-CONV-S-G | 2 | 1 | 1 | 0 | 0 | 0 |" in md
    assert "## Not executed by aprqa" in md and "- F-A1-001 (`test_matrix`)" in md
    ok = _result(tuple(dataclasses.replace(r, outcome=Outcome.CORROBORATED) for r in recs[:1]))
    assert "**PASS** · 1 gates" in summary_md(ok)


def test_empty_run_is_not_a_pass():
    res = _result(())
    assert not res.passed and "**FAIL** · 0 gates" in summary_md(res)
    assert ET.fromstring(junit_xml(res)).get("tests") == "0"
