"""Gate ids, typed (aprqa/gate_ids.py): spelled and parsed in one place, read strictly where a
record's thresholds are judged (verify-evidence), leniently where any producer's evidence is shown."""

from __future__ import annotations

import json

import pytest

from aprqa.gate_ids import (FORMAT_LETTER, GateId, GateIdError, GateKind, Series, conversion_id, conversion_pair,
                            family_of, kind_of, read_gate_id, series_of, spell)
from aprqa.playbook import verify_evidence
from aprqa.playbook.evidence import load_evidence
from aprqa.playbook.schema import EXPECTED_FACTS, load_playbook
from aprqa.playbook.thresholds import record_kind, thresholds_for
from _paths import APR_QA_FIXTURES, OWN_FAILING, OWN_PASSING, ROOT, upstream

DEMO = ROOT / "playbooks" / "demo.playbook.yaml"

# aprqa's ids, spelled here independently of gate_ids.py (docs/playbooks.md), with their typed form.
SPELLED = {
    "G0-VALIDATE-001": (GateKind.VALIDATE, ""),
    "G0-INTEGRITY-CONFIG": (GateKind.CONFIG, ""),
    "G0-INTEGRITY-HIDDEN": (GateKind.EXPECTED, "HIDDEN"),
    "G0-INTEGRITY-KV-HEADS": (GateKind.EXPECTED, "KV-HEADS"),
    "F-CONV-COVERAGE-001": (GateKind.COVERAGE, ""),
    "F-CONV-S-G": (GateKind.CONVERSION, "S-G"),
    "F-CONV-A-S": (GateKind.CONVERSION, "A-S"),
    "F-GOLDEN-RULE-001": (GateKind.GOLDEN, ""),
    "F-CONV-RT-003": (GateKind.ROUND_TRIP, "003"),
    "F-CONV-IDEM-001": (GateKind.IDEMPOTENT, ""),
    "F-CONV-CARD-001": (GateKind.CARDINALITY, ""),
    "F-CONV-NAME-001": (GateKind.NAMES, ""),
    "F-CONV-TOK-001": (GateKind.TOKENIZER, ""),
}


@pytest.mark.parametrize("text", sorted(SPELLED))
def test_ids_parse_to_kind_and_instance_and_spell_back(text):
    kind, instance = SPELLED[text]
    gate = GateId.parse(text)
    assert gate == GateId(kind, instance) and kind_of(text) is kind
    assert str(gate) == spell(kind, instance) == text


def test_every_expected_fact_and_format_pair_has_an_id():
    for suffix, _field in EXPECTED_FACTS.values():
        assert GateId.parse(f"G0-INTEGRITY-{suffix}") == GateId(GateKind.EXPECTED, suffix)
    for x in FORMAT_LETTER:
        for y in FORMAT_LETTER:
            assert GateId.parse(conversion_id(x, y)) == GateId(GateKind.CONVERSION,
                                                               f"{FORMAT_LETTER[x]}-{FORMAT_LETTER[y]}")


@pytest.mark.parametrize("kind, instance", [
    (GateKind.VALIDATE, "002"),        # a fixed id takes no instance
    (GateKind.EXPECTED, ""),           # an instanced one needs one...
    (GateKind.EXPECTED, "CONFIG"),     # ...that is not another kind's id
    (GateKind.EXPECTED, "hidden"),
    (GateKind.CONVERSION, "X-Y"),      # a format aprqa has no letter for
    (GateKind.ROUND_TRIP, "1"),
    (GateKind.SKIPPED, ""),            # a Skipped record carries the check's id, it has none of its own
])
def test_pairs_without_an_id_are_refused(kind, instance):
    with pytest.raises(ValueError):
        GateId(kind, instance)


@pytest.mark.parametrize("text", ["G0-PULL-001", "F-CONV-Gguf-Apr", "F-A1-001", "G1-MODEL-LOADS", "F-CONV-S-G-2",
                                  "f-conv-s-g", "F-CONV-RT-01", "G0-INTEGRITY-", "", None, 3, ["F-CONV-S-G"]])
def test_other_ids_do_not_parse_and_are_an_error_where_read_strictly(text, tmp_path):
    assert GateId.parse(text) is None and kind_of(text) is None
    with pytest.raises(GateIdError) as err:
        read_gate_id(text, tmp_path / "evidence.json", "record 3: gate_id")
    assert err.value.file == str(tmp_path / "evidence.json") and err.value.field == "record 3: gate_id"
    assert "is not a gate id aprqa defines" in str(err.value) and "G0-VALIDATE-001" in str(err.value)


@pytest.mark.parametrize("paths", [pytest.param(lambda: [OWN_FAILING, OWN_PASSING], id="own"),
                                   pytest.param(lambda: sorted((APR_QA_FIXTURES / "evidence").glob("*.json")),
                                                marks=upstream, id="apr-qa")])
def test_apr_qa_fixture_ids_keep_their_series_family_and_conversion_pair(paths):
    ids = {r["gate_id"] for p in paths() for r in load_evidence(p)}
    assert {"G0-PULL-001", "F-CONV-Gguf-Apr", "F-A1-001", "F-GOLDEN-RULE-001"} <= ids  # the fixtures hold these
    assert kind_of("F-GOLDEN-RULE-001") is GateKind.GOLDEN  # apr-qa's id, which aprqa took over
    assert series_of("G0-PULL-001") is Series.INTEGRITY and series_of("F-CONV-COM-001") is Series.CONVERSION
    assert series_of("F-A1-001") is Series.OTHER
    assert conversion_pair("F-CONV-Gguf-Apr") == ("Gguf", "Apr") and conversion_pair("F-CONV-S-G") == ("S", "G")
    assert conversion_pair("F-CONV-RT-001") is None and conversion_pair("F-CONV-COM-001") is None
    assert [family_of(g) for g in ("G0-INTEGRITY-HIDDEN", "G0-INTEGRITY-CONFIG", "F-CONV-RT-002", "F-CONV-S-G",
                                   "F-A1-001")] == ["G0-INTEGRITY", "G0-INTEGRITY", "F-CONV-RT", "F-CONV-S-G", "F-A1"]


def test_record_kind_reads_ids_at_the_edge(tmp_path):
    f = tmp_path / "evidence.json"
    assert record_kind("F-CONV-S-G", "q8_0/q8_0", False, f, "record 0: gate_id") is GateKind.CONVERSION
    assert record_kind("F-A1-001", "not-run:x", True, f, "record 0: gate_id") is GateKind.SKIPPED  # any id
    assert record_kind("G0-INTEGRITY-HIDDEN", "expected_hidden_dim", False, f, "f") is GateKind.EXPECTED
    with pytest.raises(GateIdError, match="names fact HIDDEN, its thresholds key 'expected_num_layers' names LAYERS"):
        record_kind("G0-INTEGRITY-HIDDEN", "expected_num_layers", False, f, "record 5: gate_id")
    with pytest.raises(GateIdError, match="'F-A1-001' is not a gate id"):
        record_kind("F-A1-001", "not-run:x", False, f, "record 0: gate_id")  # executed: the id must be aprqa's


def test_thresholds_dispatch_on_the_kind():
    pb, _ = load_playbook(DEMO)
    assert thresholds_for(pb, GateKind.SKIPPED, "not-run:oracles[0]")["section"] == "oracles[0]"
    with pytest.raises(ValueError, match="of a Skipped check"):
        thresholds_for(pb, GateKind.SKIPPED, "q8_0/q8_0")
    assert thresholds_for(pb, GateKind.ROUND_TRIP, "")["tensor"]["profile"] == "exact"
    with pytest.raises(ValueError, match="not QUANT/OUTPUT-PROFILE"):
        thresholds_for(pb, GateKind.CONVERSION, "q8_0")
    for kind in set(GateKind) - {GateKind.SKIPPED}:  # every kind has thresholds (a key of its shape)
        assert thresholds_for(pb, kind, "expected_hidden_dim" if kind is GateKind.EXPECTED else "q8_0/q8_0")


def test_verify_names_an_unknown_or_inconsistent_id_with_file_and_record(demo_run, tmp_path):
    records = json.loads(demo_run.evidence.read_text())
    i = next(n for n, r in enumerate(records) if r["gate_id"] == "F-CONV-IDEM-001")
    j = next(n for n, r in enumerate(records) if r["gate_id"].startswith("G0-INTEGRITY-")
             and r["metadata"]["thresholds_key"] == "expected_hidden_dim")
    records[i]["gate_id"] = "F-CONV-IDEM-002"   # an id aprqa does not define
    records[j]["gate_id"] = "G0-INTEGRITY-VOCAB"  # an id whose fact is not its key's
    edited = tmp_path / "evidence.json"
    edited.write_text(json.dumps(records))
    v = verify_evidence(edited, DEMO)
    assert not v.passed and len(v.problems) == 2
    assert v.problems[0].startswith(f"{edited}: record {min(i, j)}: gate_id:")
    assert any("'F-CONV-IDEM-002' is not a gate id aprqa defines" in p for p in v.problems)
    assert any("'G0-INTEGRITY-VOCAB' names fact VOCAB" in p for p in v.problems)


def test_a_records_gate_is_its_typed_id(demo_run):
    by_id = {r.gate_id: r.gate for r in demo_run.gate_records}
    assert by_id["F-A1-001"] is None  # apr-qa's id of a check aprqa does not execute
    assert all(str(g) == text for text, g in by_id.items() if g is not None) and len(by_id) > 20
    gates = by_id.values()
    assert {g.kind for g in gates if g is not None} == set(GateKind) - {GateKind.SKIPPED, GateKind.COVERAGE}
