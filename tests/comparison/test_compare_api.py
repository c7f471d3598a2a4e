"""compare API, tolerance model, CLI, reports and assert_models_close."""

from __future__ import annotations

import json

import pytest

import faults as F
from aprqa.cli import main
from aprqa.comparison import Tolerance, TolerancePolicy, compare
from aprqa.comparison.results import Verdict
from aprqa.comparison.tolerance import Statistic
from aprqa.errors import UsageError
from aprqa.testing import assert_models_close

DOWN = "model.layers.1.mlp.down_proj.weight"


@pytest.fixture(scope="module")
def truncated(tiny_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("trunc") / "t"
    return F.convert(tiny_models["qwen2-tiny"], out, "safetensors", "f32", faults=(F.truncate_to_f16(DOWN),))


@pytest.mark.parametrize("kw", [dict(atol=-1.0), dict(rtol=float("nan")), dict(min_cosine=2.0),
                                dict(statistic="bogus"), dict(statistic=Statistic.NOISE)])
def test_tolerance_validated_at_construction(kw):
    with pytest.raises(UsageError):
        Tolerance(**kw)


def test_tolerance_parse_and_policy():
    t = Tolerance.parse("1e-3:1e-2")
    assert (t.statistic, t.atol, t.rtol) == (Statistic.ELEMENTWISE, 1e-3, 1e-2)
    pol = TolerancePolicy.build("auto", ["model.norm.*=1e-3:0"])
    assert pol.for_tensor("model.norm.weight", F.DType.F32, F.DType.F16) == (t.__class__.elementwise(1e-3, 0),
                                                                          "override 'model.norm.*'")
    assert pol.for_tensor("lm_head.weight", F.DType.F32, F.DType.Q8_0)[0].statistic is Statistic.NOISE
    for bad in (["no-equals"], ["x=abc"], ["x=1:2:3"]):
        with pytest.raises(UsageError):
            TolerancePolicy.build("auto", bad)
    with pytest.raises(UsageError):
        TolerancePolicy.build("bogus-profile")


def test_unmatched_override_glob_is_an_error(tiny_models):
    with pytest.raises(UsageError, match="match no tensor"):
        compare(tiny_models["qwen2-tiny"], tiny_models["qwen2-tiny"], tolerances=["nope.*=1:0"], fast=True)


def test_explicit_tolerance_accepts_truncation(tiny_models, truncated):
    r = compare(tiny_models["qwen2-tiny"], truncated, tolerances={DOWN: "1e-6:1e-3"})
    # the tensor level and the config; the tokenizer of this HF copy is aprqa's writer's (test_compare_faults:
    # HF_TOKENIZER_WRITER)
    assert all(t.passed for t in r.tensors) and r.metadata.passed and not r.errors, r.summary()
    t = next(t for t in r.tensors if t.name == DOWN)
    assert t.verdict is Verdict.WITHIN_TOLERANCE and t.tolerance_source == f"override '{DOWN}'"
    r2 = compare(tiny_models["qwen2-tiny"], truncated, tolerances={DOWN: "0:1e-5"})
    assert not r2.passed


def test_report_json_round_trip(tiny_models, truncated):
    r = compare(tiny_models["qwen2-tiny"], truncated, fast=True)
    d = json.loads(r.to_json())
    assert d["schema"] == "aprqa.comparison" and d["schema_version"] == 1 and d["passed"] is False
    rec = next(t for t in d["tensors"] if t["name"] == DOWN)
    assert rec["verdict"] == "DEGRADED" and rec["stats"]["n"] == 256 * 512
    assert {"rel_l2", "cosine", "max_abs", "max_abs_index", "min_atol", "sqnr_db", "nmse"} <= set(rec["stats"])
    assert d["counts"]["pairs_compared"] == len(d["tensors"])


def test_assert_models_close_message(tiny_models, truncated):
    assert_models_close(tiny_models["qwen2-tiny"], tiny_models["qwen2-tiny"])
    with pytest.raises(AssertionError) as ei:
        assert_models_close(tiny_models["qwen2-tiny"], truncated, profile="f16")
    msg = str(ei.value)
    assert "Mismatched tensors: 1 / 27" in msg and DOWN in msg and "DEGRADED" in msg
    assert "Greatest absolute difference" in msg and "Minimum tolerance" in msg
    assert "Not a tolerance problem" not in msg  # DEGRADED: a looser tolerance is a meaningful answer


def test_assert_models_close_does_not_offer_a_tolerance_for_a_transposed_tensor(tiny_models, tmp_path):
    square = "model.layers.1.self_attn.q_proj.weight"
    broken = F.convert(tiny_models["qwen2-tiny"], tmp_path / "t", "safetensors", "f32", faults=(F.transpose(square),))
    with pytest.raises(AssertionError) as ei:
        assert_models_close(tiny_models["qwen2-tiny"], broken)
    msg = str(ei.value)
    assert msg.startswith("Models are not close: 1 tensor TRANSPOSED"), msg  # the verdict, first
    assert "TRANSPOSED" in msg and "Not a tolerance problem: TRANSPOSED" in msg, msg
    assert "Minimum tolerance" not in msg and "would pass" not in msg, msg


def test_cli_exit_codes_and_outputs(tiny_models, truncated, tmp_path, capsys):
    ref = str(tiny_models["qwen2-tiny"])
    assert main(["compare", ref, ref, "--fast"]) == 0
    out = capsys.readouterr().out
    assert "IDENTICAL 27" in out and "PASS" in out
    html = tmp_path / "r.html"
    assert main(["compare", ref, str(truncated), "--fast", "--report", str(html)]) == 1
    out = capsys.readouterr().out
    assert DOWN in out and "DEGRADED" in out and "truncation" in out and "FAIL" in out
    text = html.read_text()
    assert "<svg" in text and DOWN in text and "<script" not in text
    md = tmp_path / "r.md"
    assert main(["compare", ref, str(truncated), "--fast", "--json", "--report", str(md)]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["passed"] is False and md.read_text().startswith("# aprqa compare: FAIL")
    assert main(["compare", ref, str(tmp_path / "missing.gguf")]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["compare", ref, ref, "--tol", "garbage"]) == 2


def test_cli_without_fast_says_what_output_check_did(tiny_models, capsys):
    ref = str(tiny_models["qwen2-tiny"])
    code = main(["compare", ref, ref])
    out = capsys.readouterr().out
    # the forward engine ran: never a silent pass
    assert code == 0 and "outputs    " in out and "same ids · mean KL" in out and "profile f32: PASS" in out
