"""Outcome as one enum (playbook/records.py): its values are apr-qa's strings, records written
with members are the same JSON as apr-qa's, no outcome literal is spelled outside records.py,
and readers accept apr-qa's evidence strings and survive unknown ones."""

from __future__ import annotations

import ast
import json

import pytest

from aprqa.compare.tolerance import Tolerance, TolerancePolicy
from aprqa.errors import UsageError
from aprqa.playbook import verify_evidence
from aprqa.playbook.evidence import load_evidence, make_record
from aprqa.playbook.records import FAILING, OUTCOMES, Outcome, parse_outcome
from aprqa.report.evidence_report import summarize
from aprqa.report.run_view import status_of
from _paths import APR_QA_FIXTURES, ROOT

# apr-qa's outcome strings, spelled here independently of records.py (its evidence schema).
APR_QA_OUTCOMES = {"Corroborated", "Falsified", "Skipped", "Timeout", "Crashed"}


def test_values_are_apr_qa_strings_and_every_fixture_outcome_parses():
    assert {o.value for o in Outcome} == APR_QA_OUTCOMES == {o.value for o in OUTCOMES}
    seen = set()
    for path in sorted((APR_QA_FIXTURES / "evidence").glob("*.json")):
        for r in load_evidence(path):
            member = parse_outcome(r["outcome"])
            assert member is not None and member == r["outcome"], (path.name, r["outcome"])
            seen.add(member)
    assert {Outcome.CORROBORATED, Outcome.FALSIFIED} <= seen  # the fixtures hold both


def test_members_behave_as_their_strings():
    assert "Falsified" in FAILING and "Corroborated" not in FAILING
    assert {Outcome.SKIPPED: 1}.get("Skipped") == 1 and {"Skipped": 2}.get(Outcome.SKIPPED) == 2
    assert f"{Outcome.TIMEOUT:<9}|" == "Timeout  |" and str(Outcome.CRASHED) == "Crashed"
    assert json.dumps({Outcome.SKIPPED: Outcome.CRASHED}) == '{"Skipped": "Crashed"}'
    assert [parse_outcome(x) for x in ("Passed", "corroborated", None, 3, {"Falsified": {}})] == [None] * 5


def _record(outcome):
    return make_record(gate_id="F-CONV-S-G", outcome=outcome, reason="r", output="o", scenario={"format": "gguf"},
                       metrics={}, metadata={"quant": "q8_0"}, host={"hostname": "h"}, duration_ms=1)


@pytest.mark.parametrize("outcome", list(Outcome))
def test_record_from_a_member_is_the_json_of_the_string(outcome):
    a, b = _record(outcome), _record(outcome.value)
    for r in (a, b):
        r.pop("id"), r.pop("timestamp"), r["metrics"].pop("memory_peak_mb")
    assert json.dumps(a) == json.dumps(b)
    assert type(a["outcome"]) is str  # a plain string in the record, as read back from a file


def test_unknown_outcome_is_refused_when_written_and_listed_when_read():
    with pytest.raises(ValueError, match="'Passed' not in"):
        _record("Passed")
    s = summarize([{"gate_id": "F-CONV-S-G", "outcome": "Passed", "reason": "?"},
                   {"gate_id": "F-CONV-S-A", "outcome": "Falsified", "reason": "x"}])
    assert s.outcomes == {"Passed": 1, "Falsified": 1} and s.failed == 1
    assert status_of("Passed") == "skip" and status_of("Crashed") == "fail"


def test_no_outcome_literal_outside_records():
    """Every comparison and construction uses Outcome members: a string constant equal to an
    outcome value anywhere in src/ except records.py is a leftover (docstrings never equal one)."""
    found = []
    for path in sorted((ROOT / "src" / "aprqa").rglob("*.py")):
        if path.name == "records.py" and path.parent.name == "playbook":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Constant) and node.value in APR_QA_OUTCOMES:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not found, "\n".join(found)


def test_allow_nan_is_gone_and_old_spellings_are_read():
    assert "allow_nan" not in Tolerance.__dataclass_fields__ and "allow_nan" not in Tolerance().to_dict()
    # a tolerance dict written by older aprqa carries allow_nan: false (the only behaviour there was)
    p = TolerancePolicy.build(None, {"*norm*": {"atol": 1e-3, "allow_nan": False}})
    assert p.overrides[0][1] == Tolerance.elementwise(1e-3)
    with pytest.raises(UsageError, match="allow_nan"):  # true was never honoured: refused, not ignored
        TolerancePolicy.build(None, {"*norm*": {"atol": 1e-3, "allow_nan": True}})


def test_verify_evidence_reads_old_records_with_allow_nan(demo_run, tmp_path):
    records = json.loads(demo_run.evidence.read_text())
    for value, ok in ((False, True), (True, False)):
        edited = []
        for r in records:
            md = dict(r["metadata"])
            th = json.loads(md["thresholds"])
            if isinstance(th.get("tensor"), dict):
                th["tensor"] = {**th["tensor"], "allow_nan": value}
            md["thresholds"] = json.dumps(th)
            edited.append({**r, "metadata": md})
        path = tmp_path / f"old-{value}.evidence.json"
        path.write_text(json.dumps(edited))
        v = verify_evidence(path, ROOT / "playbooks" / "demo.playbook.yaml")
        assert bool(v) is ok, v.problems
        if not ok:
            assert any("allow_nan" in p for p in v.problems)
