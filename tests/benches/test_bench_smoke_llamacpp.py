"""Smoke runs of benches/bench_llamacpp.py and benches/bench_vecdot.py (tiny shapes): they run and
report every row, with the anchors (llama.cpp, ggml) measured in the same run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from _paths import ROOT


def _run(script: str, *args: str) -> dict:
    res = subprocess.run([sys.executable, str(ROOT / "benches" / script), "--smoke", "--json", *args],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


def test_bench_llamacpp_smoke(tmp_path):
    pytest.importorskip("llama_cpp")
    doc = _run("bench_llamacpp.py", "--workdir", str(tmp_path), "--threads", "1", "--models", "q8_0")
    kinds = [r["kind"] for r in doc["rows"]]
    assert kinds == ["llama.cpp", "aprqa", "aprqa-int8"]
    for r in doc["rows"]:
        assert r["prefill_s"] > 0 and r["decode_tok_s"] > 0 and r["peak_rss_mb"] > 0
        assert {"prefill_ratio", "decode_ratio", "rss_ratio"} <= set(r)


def test_bench_vecdot_smoke():
    doc = _run("bench_vecdot.py")
    kernels = {(r["type"], r["kernel"]) for r in doc["matmul"]}
    for t in ("q8_0", "q4_k", "q6_k", "q5_0"):
        for lv in doc["levels"]:
            assert (t, f"int8 {lv}") in kernels and (t, f"f32 {lv}") in kernels
        if doc["ggml"]:
            assert (t, "ggml vec_dot") in kernels
    assert {r["type"] for r in doc["dequant"]} == {"q4_k", "q6_k", "q8_0", "q5_0"}
    assert [r["threads"] for r in doc["decode_threads"]] == [1, 2]
    assert all(r["ms_per_layer"] > 0 and r["speedup"] > 0 for r in doc["decode_threads"])
    if doc["ggml"]:  # the real gemma3 GGUF decoded whole by aprqa and by ggml's to_float
        whole = doc["whole_file"]
        assert whole["file"] == "gemma-3-270m-q4_k_m.gguf" and whole["elements"] > 200_000_000
        assert whole["aprqa_s"] > 0 and whole["ggml_s"] > 0
