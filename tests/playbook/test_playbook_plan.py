"""The plan (playbook/plan.py): pure, model-free for --dry-run, and the same plan the runner executes.

Also: upstream apr-qa model playbooks (tests/fixtures/apr-qa-models, one of every shape) load and
plan; an unknown key in an apr-qa playbook is a warning, in aprqa's own playbook an error.
"""

from __future__ import annotations

from _paths import ROOT
import json
import re

import pytest

from aprqa.cli import main
from aprqa.formats import open_model
from aprqa.playbook import PlaybookError, load_playbook, parse_playbook, run_playbook
from aprqa.playbook.plan import GateKind, SourceFacts, build_plan, render_plan
from aprqa.synth.models import make_hf_model

REPO = ROOT
UPSTREAM = sorted((REPO / "tests" / "fixtures" / "apr-qa-models").glob("*.playbook.yaml"))
DEMO = REPO / "playbooks" / "demo.playbook.yaml"


def test_demo_plan_without_a_model_is_48_gates_5_skipped():
    pb, _ = load_playbook(DEMO)
    plan = build_plan(pb, SourceFacts.assumed(pb))
    assert plan.counts() == {"gates": 48, "will_run": 43, "skipped": 5, "conversions": 23}
    skipped = [(g.gate_id, g.quant) for g in plan.gates if g.kind is GateKind.SKIPPED]
    # APR q8_0 is aprender's int8 (formats/apr_policy.py); GGUF has no APR q8
    assert skipped == [("F-CONV-S-S", "q8_0"), ("F-CONV-S-S", "q4_k"), ("F-CONV-S-S", "apr-q8"),
                       ("F-CONV-S-G", "apr-q8"), ("F-A1-001", None)]
    # every conversion a gate reads is planned, and follows its own input
    seen = set()
    for c in plan.conversions:
        assert c.key.src is None or c.key.src in seen
        seen.add(c.key)
    assert {k for g in plan.gates for k in g.inputs if k is not None} <= seen


def test_demo_plan_from_the_opened_model_equals_the_assumed_one(tmp_path):
    """The runner plans from the opened source (the converter asked per tensor); the dry run from the
    playbook alone. For the demo both give the same gates in the same order."""
    pb, _ = load_playbook(DEMO)
    src = make_hf_model(tmp_path / "m", "qwen2-tiny", seed=pb.model.synthetic_seed)
    with open_model(src) as m:
        real = build_plan(pb, SourceFacts.from_model(pb, m))
    assumed = build_plan(pb, SourceFacts.assumed(pb))
    key = lambda p: [(g.gate_id, g.fmt, g.quant, g.kind, g.thresholds_key, g.inputs) for g in p.gates]  # noqa: E731
    assert key(real) == key(assumed) and real.conversions == assumed.conversions
    assert not real.source.playbook_only and real.source.dtype == "f32"


def test_plan_is_pure():
    pb, _ = load_playbook(DEMO)
    facts = SourceFacts.assumed(pb)
    assert build_plan(pb, facts) == build_plan(pb, facts)


@pytest.mark.parametrize("path", UPSTREAM, ids=lambda p: p.name)
def test_every_upstream_model_playbook_shape_plans(path):
    pb, _ = load_playbook(path)
    assert pb.dialect == "apr-qa" and pb.model.hf_repo
    plan = build_plan(pb, SourceFacts.assumed(pb))
    c = plan.counts()
    # G0 at least, every conversion gate reads planned conversions, runtime sections are Skipped records
    assert c["will_run"] >= 2 + len(pb.model.expected_facts())
    top = lambda s: re.split(r"[.\[ ]", s, maxsplit=1)[0]  # noqa: E731
    skipped_sections = {top(dict(g.metadata)["section"]) for g in plan.gates if g.kind is GateKind.SKIPPED}
    for sec in pb.not_run_sections():
        assert top(sec) in skipped_sections, sec
    assert any("Skipped" in line for line in render_plan(plan)) == bool(c["skipped"])


def test_upstream_fixture_set_covers_size_variant_and_every_top_level_section():
    pbs = [load_playbook(p)[0] for p in UPSTREAM]
    mvp = [pb for pb in pbs if pb.model.size_variant]
    assert mvp and mvp[0].model.family == "qwen2" and "Qwen2.5-Coder" in (mvp[0].model.hf_repo or "")
    sections = set().union(*(pb.model_fields_set for pb in pbs))
    assert {"oracles", "gates", "profile_ci", "contract_tests", "differential_tests", "trace_payload",
            "property_tests", "kernel_profile", "ollama_parity"} <= sections


UPSTREAM_TEXT = """\
name: up
version: "1.0.0"
model:
  hf_repo: Org/Model-0.5B
  formats: [gguf]
  quantizations: [q8_0]
  rope_scaling_checked: true
test_matrix:
  modalities: [run]
  backends: [cpu]
  scenario_count: 2
future_section:
  x: 1
"""


def test_unknown_keys_of_an_apr_qa_playbook_are_warnings_with_lines():
    pb = parse_playbook(UPSTREAM_TEXT, "up.yaml")
    assert pb.dialect == "apr-qa"
    assert pb.unknown_keys == ("model.rope_scaling_checked (line 7)", "future_section (line 12)")


def test_aprqa_playbooks_stay_strict():
    # an aprqa-only key (synthetic) makes it aprqa's own: the same unknown key is an error
    text = UPSTREAM_TEXT.replace("  hf_repo: Org/Model-0.5B\n", "  synthetic: qwen2-tiny\n")
    with pytest.raises(PlaybookError) as ei:
        parse_playbook(text, "own.yaml")
    assert ei.value.field == "model.rope_scaling_checked" and ei.value.line == 7
    # and so does saying so
    with pytest.raises(PlaybookError):
        parse_playbook("dialect: aprqa\n" + UPSTREAM_TEXT, "own.yaml")


def test_cli_dry_run_prints_the_plan_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    up = tmp_path / "up.yaml"
    up.write_text(UPSTREAM_TEXT)
    assert main(["run", str(up), str(DEMO), "--dry-run"]) == 0
    cap = capsys.readouterr()
    assert "48 gates (43 to run, 5 Skipped)" in cap.out
    assert "F-A1-001" in cap.out and "Skipped: not executed by aprqa" in cap.out
    assert cap.err.count("model.rope_scaling_checked (line 7)") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["up.yaml"]  # nothing written, no model made
    assert main(["run", str(UPSTREAM[0]), "--dry-run", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)  # stdout is pure JSON
    assert doc[0]["dialect"] == "apr-qa" and doc[0]["counts"]["gates"] == len(doc[0]["gates"])


def test_cli_dry_run_of_an_invalid_playbook_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(UPSTREAM_TEXT.replace("[q8_0]", "[q8_00]"))
    assert main(["run", str(bad), "--dry-run"]) == 2
    assert "did you mean 'q8_0'" in capsys.readouterr().err


SMOKE_TEXT = """\
name: x-smoke
version: "1.0.0"
model:
  hf_repo: Qwen/Qwen2.5-Coder-0.5B-Instruct
  formats: [safetensors]
  quantizations: [q4_k_m]
test_matrix:
  modalities: [run]
  backends: [cpu]
gates:
  g1_model_loads: "true"
oracles:
  - type: garbage
"""


def test_smoke_playbook_is_said_to_be_unpassable_in_the_plan(tmp_path, capsys):
    # apr-qa's *-smoke playbooks: SafeTensors only, q4_k_m, runtime checks: nothing aprqa can convert
    pb = parse_playbook(SMOKE_TEXT, "smoke.yaml")
    plan = build_plan(pb, SourceFacts.assumed(pb))
    assert plan.cannot_pass.startswith("cannot pass under aprqa: 0 conversions planned")
    assert "SafeTensors cannot store" in plan.cannot_pass or "safetensors cannot store" in plan.cannot_pass
    assert "model runtime" in plan.cannot_pass
    assert [g.gate_id for g in plan.gates if g.kind not in (GateKind.SKIPPED,)][-1] == "F-CONV-COVERAGE-001"
    assert plan.cannot_pass in render_plan(plan)
    f = tmp_path / "smoke.yaml"
    f.write_text(SMOKE_TEXT)
    assert main(["run", str(f), "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["cannot_pass"] == plan.cannot_pass


def test_dry_run_with_a_local_model_lists_what_the_run_records(tmp_path, capsys):
    """--dry-run opens the local model and applies the converter's per-tensor rules, so the dry run and the
    run agree gate for gate, Skipped reasons included (tiny rows make llama.cpp's fallbacks matter)."""
    model = make_hf_model(tmp_path / "m", "qwen2-tiny", seed=0)
    f = tmp_path / "pb.yaml"
    f.write_text(UPSTREAM_TEXT.replace("formats: [gguf]", "formats: [safetensors, gguf, apr]")
                 .replace("quantizations: [q8_0]", "quantizations: [q4_k_m, q8_0]"))
    assert main(["run", str(f), "--dry-run", "--json", "--model-path", str(model)]) == 0
    doc = json.loads(capsys.readouterr().out)[0]
    assert doc["source"]["assumed"] is False
    res = run_playbook(f, output=tmp_path / "out", model_path=model, workers=2)
    planned = [(g["gate_id"], g["format"], g["quant"], g.get("skipped")) for g in doc["gates"]]
    ran = [(r["gate_id"], r["scenario"]["format"], r["scenario"]["model"]["variant"],
            r["reason"] if r["outcome"] == "Skipped" else None) for r in res.records]
    assert planned == ran
