"""Playbook schema: apr-qa's fixture playbooks load; errors carry YAML lines and did-you-mean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aprqa.cli import main
from aprqa.playbook import PlaybookError, json_schema, load_playbook, parse_playbook
from _paths import OWN_MVP_PLAYBOOK, ROOT, upstream_files

REPO = ROOT

GOOD = """\
name: t
version: "1.0.0"
model:
  synthetic: qwen2-tiny
  formats: [gguf]
  quantizations: [q8_0]
"""


def _err(text: str) -> PlaybookError:
    with pytest.raises(PlaybookError) as ei:
        parse_playbook(text, "pb.yaml")
    return ei.value


@pytest.mark.parametrize("path", [pytest.param(OWN_MVP_PLAYBOOK, id="own-mvp"),
                                  *upstream_files("playbooks", "*.y*ml", exclude=("playbook.schema.yaml",))])
def test_apr_qa_fixture_playbooks_validate(path):
    pb, digest = load_playbook(path)
    assert pb.model.hf_repo and len(digest) == 64


@pytest.mark.parametrize("name", ["demo.playbook.yaml", "demo-llama.playbook.yaml", "local-model.playbook.yaml"])
def test_our_playbooks_validate(name):
    pb, _ = load_playbook(REPO / "playbooks" / name)
    assert pb.model.formats


def test_unknown_key_has_line_and_did_you_mean():
    e = _err(GOOD + "  expected_hiden_dim: 256\n")
    assert e.line == 7 and e.field == "model.expected_hiden_dim"
    assert "did you mean 'expected_hidden_dim'" in str(e) and str(e).startswith("pb.yaml:7:")


def test_unknown_top_level_section_is_an_error():
    e = _err(GOOD + "thresholdz:\n  profile: auto\n")
    assert e.line == 7 and "did you mean 'thresholds'" in str(e)


def test_wrong_type_has_line_and_value():
    e = _err(GOOD + "test_matrix:\n  max_tokens: ten\n")
    assert e.line == 8 and e.field == "test_matrix.max_tokens" and "'ten'" in str(e)


def test_missing_field_names_the_key():
    e = _err('name: t\nversion: "1.0.0"\n')
    assert "missing required key 'model'" in str(e) and e.line == 1


def test_misspelt_quantization_value():
    e = _err(GOOD.replace("[q8_0]", "[q8_0, q4_k_mm]"))
    assert e.line == 6 and "did you mean 'q4_k_m'" in str(e)


def test_every_problem_listed_with_its_line():
    e = _err(GOOD + "  expected_hiden_dim: 256\ntest_matrix:\n  seeed: 1\n")
    assert len(e.problems) == 2 and "pb.yaml:9: test_matrix.seeed" in str(e)


def test_yaml_syntax_error_has_line():
    e = _err(GOOD + "test_matrix: [unclosed\n")
    assert e.line is not None and e.line >= 7 and "not valid YAML" in str(e)


def test_model_source_exactly_one():
    e = _err(GOOD.replace("  synthetic: qwen2-tiny\n", "  synthetic: qwen2-tiny\n  hf_repo: a/b\n"))
    assert "exactly one of hf_repo, local_path, synthetic" in str(e)


def test_converter_template_needs_src_and_dst():
    e = _err(GOOD + 'converter: "apr rosetta convert {src} {out}"\n')
    assert "{dst}" in str(e) and e.line == 7


def test_tolerance_override_specs():
    pb = parse_playbook(GOOD + "thresholds:\n  tolerances:\n    'model.norm.*': '1e-3:0'\n"
                               "    'lm_head.*': {atol: 0.01, rtol: 0.001}\n")
    assert set(pb.thresholds.tolerances) == {"model.norm.*", "lm_head.*"}
    e = _err(GOOD + "thresholds:\n  tolerances:\n    'x': {atol: 1, rtl: 0}\n")
    assert e.line == 9 and "did you mean 'rtol'" in str(e)


def test_schema_command_prints_json_schema(capsys):
    assert main(["schema"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s == json.loads(json.dumps(json_schema()))
    own, apr_qa = s["$defs"]["Playbook"], s["$defs"]["AprQaPlaybook"]
    assert {"name", "version", "model", "converter", "thresholds"} <= set(own["properties"]) == \
        set(apr_qa["properties"])
    # aprqa's own dialect forbids unknown keys; apr-qa's ignores them (as the loader does)
    assert own["additionalProperties"] is False and "additionalProperties" not in apr_qa
    assert (s["then"], s["else"]) == ({"$ref": "#/$defs/Playbook"}, {"$ref": "#/$defs/AprQaPlaybook"})


def test_cli_reports_schema_error_exit_2(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text(GOOD + "  formatz: [gguf]\n")
    assert main(["run", str(p), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:7" in err and "did you mean 'formats'" in err and "Traceback" not in err
