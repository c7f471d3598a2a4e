"""Outcome as one enum (aprqa/records.py): its values are apr-qa's strings, records written
with members are the same JSON as apr-qa's, no outcome literal is spelled outside records.py,
and readers accept apr-qa's evidence strings and survive unknown ones."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from aprqa.comparison.tolerance import Tolerance, TolerancePolicy
from aprqa.errors import UsageError
from aprqa.playbook import verify_evidence
from aprqa.playbook.evidence import load_evidence, make_record
from aprqa.records import (FAILING, OUTCOMES, GateOutcome, Host, ModelRef, Outcome, Record, RecordError, Scenario,
                           parse_outcome)
from aprqa.report.run.evidence import summarize
from aprqa.report.run.view import status_of
from _paths import OWN_FAILING, OWN_PASSING, ROOT, upstream_files

# apr-qa's outcome strings, spelled here independently of records.py (its evidence schema).
APR_QA_OUTCOMES = {"Corroborated", "Falsified", "Skipped", "Timeout", "Crashed"}
# evidence in apr-qa's schema: our own fixtures, then apr-qa's own files where present (tests/_paths.py)
EVIDENCE = [pytest.param(OWN_FAILING, id="own-failing"), pytest.param(OWN_PASSING, id="own-passing"),
            *upstream_files("evidence", "*.json")]


def test_values_are_apr_qa_strings():
    assert {o.value for o in Outcome} == APR_QA_OUTCOMES == {o.value for o in OUTCOMES}


@pytest.mark.parametrize("path", EVIDENCE)
def test_every_fixture_outcome_parses(path):
    seen = set()
    for r in load_evidence(path):
        member = parse_outcome(r["outcome"])
        assert member is not None and member == r["outcome"], (path.name, r["outcome"])
        seen.add(member)
    # every file has passes; the failing runs hold failures too
    assert Outcome.CORROBORATED in seen and (Outcome.FALSIFIED in seen) == ("failing" in path.name)


def test_members_behave_as_their_strings():
    assert "Falsified" in FAILING and "Corroborated" not in FAILING
    assert {Outcome.SKIPPED: 1}.get("Skipped") == 1 and {"Skipped": 2}.get(Outcome.SKIPPED) == 2
    assert f"{Outcome.TIMEOUT:<9}|" == "Timeout  |" and str(Outcome.CRASHED) == "Crashed"
    assert json.dumps({Outcome.SKIPPED: Outcome.CRASHED}) == '{"Skipped": "Crashed"}'
    assert [parse_outcome(x) for x in ("Passed", "corroborated", None, 3, {"Falsified": {}})] == [None] * 5


def _record(outcome):
    scenario = Scenario("m_F-CONV-S-G_gguf_q8_0", ModelRef("org", "m", "q8_0"), "run", "cpu", "gguf", "p", 0.0, 0, 0,
                        "none", "aprqa")
    return make_record(gate_id="F-CONV-S-G", outcome=outcome, reason="r", output="o", scenario=scenario,
                       metrics={}, metadata={"quant": "q8_0"}, host=Host("h", "linux", "cpu", None, "aprqa"),
                       duration_ms=1).to_json()


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
        if path.relative_to(ROOT) == Path("src/aprqa/records.py"):
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


# ---------------------------------------------------------------------------------------------
# Record: to_json / from_json at the JSON boundary


@pytest.mark.parametrize("path", EVIDENCE)
def test_every_fixture_record_round_trips_byte_for_byte(path):
    raw = path.read_bytes()
    data = json.loads(raw)
    records = [Record.from_json(d, f"record {i}") for i, d in enumerate(data)]
    assert len(records) == len(data) > 0
    for r, d in zip(records, data):
        assert isinstance(r.outcome, Outcome) and r.to_json() == d
    # apr-qa writes serde_json's pretty print: the same bytes come back (key order, floats, escapes)
    assert json.dumps([r.to_json() for r in records], indent=2, ensure_ascii=False).encode() == raw


def test_own_records_round_trip(demo_run):
    for d in json.loads(demo_run.evidence.read_text()):
        r = Record.from_json(d)
        assert r.to_json() == d and json.dumps(r.to_json()) == json.dumps(d)  # same keys in the same order
        assert r.metrics.aprqa is not None and r.metadata["playbook_sha256"] == demo_run.playbook_sha256
    assert demo_run.records == tuple(r.to_json() for r in demo_run.gate_records)


def _fixture_record():
    return json.loads(OWN_PASSING.read_text())[0]


@pytest.mark.parametrize("edit, field, message", [
    (lambda d: d.pop("reason"), "record 3.reason", "missing"),
    (lambda d: d.update(extra=1), "record 3", "unknown key(s) 'extra'"),
    (lambda d: d.update(outcome="Passed"), "record 3.outcome", "'Passed' is not one of Corroborated"),
    (lambda d: d.update(outcome={"Falsified": {}}), "record 3.outcome", "expected string, got object"),
    (lambda d: d["scenario"]["model"].pop("org"), "record 3.scenario.model.org", "missing"),
    (lambda d: d["scenario"].update(max_tokens=True), "record 3.scenario.max_tokens", "expected integer, got boolean"),
    (lambda d: d["metrics"].update(duration_ms="5"), "record 3.metrics.duration_ms", "expected integer, got string"),
    (lambda d: d.update(host=[]), "record 3.host", "expected object, got array"),
    (lambda d: d["metadata"].update(k=1), "record 3.metadata.k", "metadata values are strings"),
])
def test_from_json_names_the_offending_field(edit, field, message):
    d = _fixture_record()
    edit(d)
    with pytest.raises(RecordError) as ei:
        Record.from_json(d, "record 3")
    assert ei.value.field == field and message in str(ei.value)


def test_records_are_frozen_and_outcomes_typed():
    r = Record.from_json(_fixture_record())
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.reason = "edited"  # type: ignore[misc]
    assert r.outcome is Outcome.CORROBORATED and r.passed and not r.not_executed
    assert r.metrics.aprqa is None and "aprqa" not in r.to_json()["metrics"]  # apr-qa's records have none
    g = GateOutcome(Outcome.FALSIFIED, "why")
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.outcome = Outcome.CORROBORATED  # type: ignore[misc]
    assert not g.passed
