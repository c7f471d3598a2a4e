"""playbooks/local-model.playbook.yaml on a real model: the real Gemma 3 270M HF dir (transformers' conversion of
the shipped GGUF). The full playbook (3 formats × f16/q8_0/q4_k_m, 31 gates) passes in ~10 min on 2 cores
(CHANGELOG); CI runs its APR q8_0 conversion, the gate that failed: a faithful file judged by the fixed q8_0 profile
(mean KL ≤ 0.005) while this small, sensitive model's faithful APR q8_0 costs 0.08 (aprender's int8, one
scale per tensor; its faithful twin's KL is the same). One prompt and 4 tokens keep it at 2 min on 2 idle cores.
"""

from __future__ import annotations

import json

import pytest

from _paths import ROOT
from aprqa.playbook import run_playbook
from aprqa.inference import PROFILES

pytestmark = pytest.mark.slow
LOCAL_MODEL = ROOT / "playbooks" / "local-model.playbook.yaml"


def test_local_model_playbook_fits_the_real_gemma3_dir(transformers_dir, tmp_path):
    text = LOCAL_MODEL.read_text()
    cut = (text.replace("formats: [safetensors, apr, gguf]", "formats: [apr]")
               .replace("quantizations: [f16, q8_0, q4_k_m]", "quantizations: [q8_0]")
               .replace("  max_tokens: 16\n  timeout_ms", "  max_tokens: 4\n  timeout_ms")
               .replace('    - "def fibonacci(n):"\n', ""))
    assert cut.count("[apr]") == 1 and "[q8_0]" in cut and "max_tokens: 4\n" in cut and "fibonacci" not in cut, \
        "the playbook's lines changed"
    pb = tmp_path / "local-model.playbook.yaml"
    pb.write_text(cut)
    res = run_playbook(pb, output=tmp_path / "out", model_path=transformers_dir)
    outcomes = {r["outcome"] for r in res.executed}
    assert res.passed and outcomes == {"Corroborated"}, [(r["gate_id"], r["reason"][:200]) for r in res.executed
                                                         if r["outcome"] != "Corroborated"]
    # no gate from another model's card: the architecture is the model's own
    assert not [r for r in res.executed if r["gate_id"].startswith("G0-INTEGRITY-") and
                r["gate_id"] != "G0-INTEGRITY-CONFIG"]
    conv = next(r for r in res.executed if r["gate_id"] == "F-CONV-S-A")
    out = conv["metrics"]["aprqa"]["output"]
    assert json.loads(conv["metadata"]["thresholds"])["output"]["band"].startswith("calibrated on the model")
    # the faithful file's KL is above the fixed q8_0 limit that used to judge it, and within its twin's band
    assert out["metrics"]["kl_mean"] > PROFILES["q8_0"].max_mean_kl, out["metrics"]["kl_mean"]
    assert out["calibration"]["faithful_kl_mean"] > 0 and out["passed"]
