"""`aprqa schema` describes what the runner accepts: the JSON Schema and the loader agree on apr-qa's and aprqa's
playbooks, strings pydantic's lax mode converts (``enabled: "true"``, ``tolerance: "1e-5"``) included, and on
every upstream apr-qa playbook when a fetched copy of paiml/apr-model-qa-playbook is at hand."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from _paths import APR_QA_FIXTURES
from aprqa.playbook import PlaybookError, json_schema, parse_playbook

# A fetched mirror of apr-qa's repository (a bare git directory); the test of all upstream playbooks runs
# only where it exists (APRQA_UPSTREAM_PLAYBOOKS_GIT overrides the place).
UPSTREAM_GIT = Path(os.environ.get("APRQA_UPSTREAM_PLAYBOOKS_GIT",
                                   "/work/.mirror/paiml+apr-model-qa-playbook/repo"))

APR_QA = """\
name: lax
version: "1.0.0"
model:
  hf_repo: Qwen/Qwen2.5-Coder-0.5B-Instruct
  formats: [safetensors, gguf]
  quantizations: [q4_k_m]
test_matrix:
  seed: {seed}
  timeout_ms: 60000
differential_tests:
  tensor_diff:
    enabled: {enabled}
  inference_compare:
    tolerance: {tol}
{extra}"""


@pytest.fixture(scope="module")
def validator():
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _runner_ok(text: str) -> bool:
    try:
        parse_playbook(text, "pb.yaml")
        return True
    except PlaybookError:
        return False


def _agree(validator, text: str) -> bool:
    """Both verdicts (schema, runner) on ``text``, asserted equal; returns it."""
    by_schema = validator.is_valid(yaml.safe_load(text))
    assert by_schema == _runner_ok(text), (by_schema, text)
    return by_schema


@pytest.mark.parametrize("seed, enabled, tol, extra, ok", [
    ("42", "true", "0.001", "", True),
    ('"42"', '"true"', '"1e-5"', "", True),            # apr-qa writes these as strings; the runner takes them
    ("42", '"yes"', '"1E-5"', "", True),
    ("42", '"True"', "1", "", True),
    ("42", '"maybe"', "0.1", "", False),                # not a bool the runner knows
    ("42", "true", '"-1e-5"', "", False),               # tolerance >= 0: the sign is visible in the string
    ("42", "true", '"tiny"', "", False),
    ('"4.5"', "true", "0.1", "", False),                # seed is an integer
    ("42", "true", "0.1", "future_section:\n  x: 1\n", True),  # apr-qa dialect: unknown keys ignored
    ("42", "true", "0.1", "converter: builtin\nfuture_section:\n  x: 1\n", False),  # aprqa's own: an error
    ("42", "true", "0.1", "dialect: apr-qa\nconverter: builtin\nfuture_section: 1\n", True),
])
def test_schema_and_runner_agree(validator, seed, enabled, tol, extra, ok):
    assert _agree(validator, APR_QA.format(seed=seed, enabled=enabled, tol=tol, extra=extra)) is ok


@pytest.mark.skipif(not (APR_QA_FIXTURES / "playbooks").is_dir(), reason="apr-qa fixtures not available")
def test_fixture_playbooks_valid_under_the_schema(validator):
    paths = [p for p in sorted((APR_QA_FIXTURES / "playbooks").glob("*.y*ml")) if p.name != "playbook.schema.yaml"]
    assert paths
    for p in paths:
        assert _agree(validator, p.read_text()), p.name


def _upstream_playbooks() -> list[tuple[str, str]]:
    names = subprocess.run(["git", "--git-dir", str(UPSTREAM_GIT), "ls-tree", "-r", "--name-only", "HEAD",
                            "playbooks/models"], capture_output=True, text=True, check=True).stdout.split()
    return [(n, subprocess.run(["git", "--git-dir", str(UPSTREAM_GIT), "show", f"HEAD:{n}"], capture_output=True,
                               text=True, check=True).stdout) for n in names if n.endswith((".yaml", ".yml"))]


@pytest.mark.skipif(not UPSTREAM_GIT.is_dir(), reason=f"no fetched copy of paiml/apr-model-qa-playbook at "
                                                      f"{UPSTREAM_GIT} (APRQA_UPSTREAM_PLAYBOOKS_GIT)")
def test_every_upstream_playbook_valid_under_the_schema_and_the_runner(validator):
    books = _upstream_playbooks()
    bad = [n for n, text in books if not _agree(validator, text)]
    assert not bad, f"{len(bad)}/{len(books)} rejected: {bad[:10]}"
    assert len(books) >= 117  # the count when this was written; upstream only grows
