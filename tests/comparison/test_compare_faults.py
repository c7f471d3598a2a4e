"""Fault-injection suite: each known conversion fault is diagnosed with the right verdict and
tensor; correct conversions pass with the right verdicts."""

from __future__ import annotations


import pytest

import faults as F
from aprqa.comparison import compare
from aprqa.comparison.results import Verdict
from aprqa.quant.dtypes import DType

Q = "model.layers.0.self_attn.q_proj.weight"
K = "model.layers.0.self_attn.k_proj.weight"
DOWN = "model.layers.1.mlp.down_proj.weight"
UP0, UP1 = "model.layers.0.mlp.up_proj.weight", "model.layers.1.mlp.up_proj.weight"
NORM = "model.layers.1.post_attention_layernorm.weight"


def _by_name(report):
    return {t.name: t for t in report.tensors}


def _only_failure(report, name, verdict):
    fails = report.failures()
    assert [t.name for t in fails] == [name], report.summary()
    assert fails[0].verdict is verdict, report.summary()
    return fails[0]


# --------------------------------------------------------------------- correct conversions




@pytest.mark.parametrize("fmt,dtype,verdicts", [
    pytest.param("safetensors", "f32", {"IDENTICAL"}),
    pytest.param("safetensors", "f16", {"IDENTICAL", "EXACT-CAST"}),
    pytest.param("safetensors", "bf16", {"IDENTICAL", "EXACT-CAST"}),
    ("gguf", "f16", {"IDENTICAL", "EXACT-CAST"}),
    ("gguf", "q8_0", {"IDENTICAL", "QUANT-FAITHFUL"}),
    ("gguf", "q4_0", {"IDENTICAL", "QUANT-FAITHFUL"}),
    ("gguf", "q4_k", {"IDENTICAL", "QUANT-FAITHFUL"}),
    ("gguf", "q6_k", {"IDENTICAL", "QUANT-FAITHFUL"}),
    ("apr", "f32", {"IDENTICAL"}),
    ("apr", "q4_k", {"IDENTICAL", "QUANT-FAITHFUL"}),
    ("apr", "apr_q8", {"IDENTICAL", "QUANT-FAITHFUL"}),
])
def test_correct_conversion_passes_qwen2(tiny_models, tmp_path, fmt, dtype, verdicts):
    out = F.convert(tiny_models["qwen2-tiny"], tmp_path / f"m.{fmt}", fmt, dtype)
    r = compare(tiny_models["qwen2-tiny"], out, fast=True)
    assert r.passed, r.summary()
    assert set(r.verdict_counts()) == verdicts, r.verdict_counts()
    if dtype in ("q8_0", "q4_0"):
        t = _by_name(r)[Q]
        assert t.noise is not None and t.noise.block_bound_violations == 0
        assert t.noise.blocks_bit_equal == t.noise.blocks_compared > 0  # same algorithm -> same bytes


@pytest.mark.parametrize("dtype", ["f16", "q8_0"])
def test_correct_llama_gguf_undoes_rope_permutation(tiny_models, tmp_path, dtype):
    out = F.convert(tiny_models["llama-tiny"], tmp_path / "l.gguf", "gguf", dtype)
    r = compare(tiny_models["llama-tiny"], out, fast=True)
    assert r.passed, r.summary()
    q = _by_name(r)[Q]
    assert q.transform == ("gguf-dim-order", "rope-permute(n_head=4)")
    assert _by_name(r)[K].transform[-1] == "rope-permute(n_head=2)"
    rope = [f for f in r.metadata.fields if f.field == "rope_style"][0]
    assert rope.status == "MATCH" and "permuted" in rope.note


def test_gguf_reference_apr_candidate_unpermutes(tiny_models, tmp_path):
    g = F.convert(tiny_models["llama-tiny"], tmp_path / "l.gguf", "gguf", "f32")
    r = compare(g, tiny_models["llama-tiny"], fast=True)
    assert r.passed, r.summary()
    assert "rope-unpermute(n_head=4)" in _by_name(r)[Q].transform


def test_independent_q8_0_quantizer_is_faithful(tiny_models, tmp_path):
    """gguf-py's own Q8_0 quantizer (not ours) must land within the noise floor."""
    import gguf
    import numpy as np

    def gguf_py(td):
        x = np.asarray(td.data, dtype=np.float32)
        return F.TensorData(td.name, DType.Q8_0, td.shape,
                            gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q8_0).reshape(-1))

    def f(t):
        for n, td in list(t.items()):
            if len(td.shape) == 2:
                t[n] = gguf_py(td)
    out = F.convert(tiny_models["qwen2-tiny"], tmp_path / "g.gguf", "gguf", "f32",
                    faults=(F.Fault("gguf-py q8_0", f, "bytes"),))
    r = compare(tiny_models["qwen2-tiny"], out, fast=True)
    assert r.passed, r.summary()
    assert r.verdict_counts()["QUANT-FAITHFUL"] > 0


def test_tied_embedding_copy_is_named(tiny_models, tmp_path):
    out = F.convert(tiny_models["qwen3-tiny"], tmp_path / "t.apr", "apr", "f32", lm_head_copy=True)
    r = compare(tiny_models["qwen3-tiny"], out, fast=True)
    assert r.passed, r.summary()
    t = _by_name(r)["lm_head.weight"]
    assert t.verdict is Verdict.TIED and t.related == "model.embed_tokens.weight"


# --------------------------------------------------------------------- faults


@pytest.mark.parametrize("name", [Q, DOWN])
@pytest.mark.parametrize("fmt,dtype", [("safetensors", "f16"), ("gguf", "q8_0")])
def test_transposed(tiny_models, tmp_path, name, fmt, dtype):
    out = F.convert(tiny_models["qwen2-tiny"], tmp_path / f"x.{fmt}", fmt, dtype, faults=(F.transpose(name),))
    t = _only_failure(compare(tiny_models["qwen2-tiny"], out, fast=True), name, Verdict.TRANSPOSED)
    assert t.explained_stats is not None and t.explained_stats.rel_l2 < 0.05


def test_rope_permutation_applied_to_qwen2_gguf(tiny_models, tmp_path):
    out = F.convert(tiny_models["qwen2-tiny"], tmp_path / "q.gguf", "gguf", "q8_0", permute_qk=True)
    r = compare(tiny_models["qwen2-tiny"], out, fast=True)
    bad = {t.name: t for t in r.failures()}
    assert {Q, K} <= set(bad), r.summary()
    assert all(t.verdict is Verdict.ROW_PERMUTED for t in bad.values()), r.summary()
    assert "applied wrongly" in bad[Q].detail


def test_rope_permutation_forgotten_on_llama_gguf(tiny_models, tmp_path):
    out = F.convert(tiny_models["llama-tiny"], tmp_path / "l.gguf", "gguf", "f16", permute_qk=False)
    r = compare(tiny_models["llama-tiny"], out, fast=True)
    bad = {t.name: t for t in r.failures()}
    assert {Q, K} <= set(bad) and all(t.verdict is Verdict.ROW_PERMUTED for t in bad.values()), r.summary()
    assert "forgotten" in bad[K].detail


def test_layers_swapped(tiny_models, tmp_path):
    out = F.convert(tiny_models["qwen2-tiny"], tmp_path / "s.gguf", "gguf", "q8_0", faults=(F.swap(UP0, UP1),))
    r = compare(tiny_models["qwen2-tiny"], out, fast=True)
    bad = {t.name: t for t in r.failures()}
    assert set(bad) == {UP0, UP1}, r.summary()
    assert bad[UP0].verdict is Verdict.SWAPPED and bad[UP0].related == UP1
    assert bad[UP1].related == UP0


def test_norm_scaled(tiny_models, tmp_path):
    out = F.convert(tiny_models["qwen2-tiny"], tmp_path / "n", "safetensors", "f32", faults=(F.scale(NORM, 2.0),))
    t = _only_failure(compare(tiny_models["qwen2-tiny"], out, fast=True), NORM, Verdict.SCALED)
    assert "2 ×" in t.detail


def test_norm_offset(tiny_models, tmp_path):
    out = F.convert(tiny_models["qwen2-tiny"], tmp_path / "n.gguf", "gguf", "f16", faults=(F.offset(NORM, -1.0),))
    t = _only_failure(compare(tiny_models["qwen2-tiny"], out, fast=True), NORM, Verdict.OFFSET)
    assert "-1" in t.detail


def test_tensor_dropped(tiny_models, tmp_path):
    out = F.convert(tiny_models["qwen2-tiny"], tmp_path / "d.apr", "apr", "f16", faults=(F.drop(DOWN),))
    t = _only_failure(compare(tiny_models["qwen2-tiny"], out, fast=True), DOWN, Verdict.MISSING)
    assert "dropped" in t.detail


def test_tensor_renamed(tiny_models, tmp_path):
    out = F.convert(tiny_models["qwen2-tiny"], tmp_path / "r", "safetensors", "f32",
                    faults=(F.rename(UP1, "model.layers.1.mlp.upproj.weight"),))
    r = compare(tiny_models["qwen2-tiny"], out, fast=True)
    bad = {t.name: t for t in r.failures()}
    assert bad[UP1].verdict is Verdict.MISSING and bad[UP1].related == "model.layers.1.mlp.upproj.weight"
    extra = bad["model.layers.1.mlp.upproj.weight"]
    assert extra.verdict is Verdict.EXTRA and extra.related == UP1 and "renamed from it" in extra.detail
    assert "renamed" in bad[UP1].detail


def test_quantized_bytes_labelled_as_another_dtype(tiny_models, tmp_path):
    """GGML Q4_0 bytes stored under APR's q4 code (same 18-byte blocks, different nibble order)."""
    out = F.convert(tiny_models["qwen2-tiny"], tmp_path / "m.apr", "apr", "apr_q4",
                    faults=(F.relabel(DOWN, DType.APR_Q4, DType.Q4_0),))
    t = _only_failure(compare(tiny_models["qwen2-tiny"], out, fast=True), DOWN, Verdict.DTYPE_MISREAD)
    assert "q4_0" in t.detail


def test_bf16_bytes_labelled_f16(tiny_models, tmp_path):
    out = F.convert(tiny_models["qwen2-tiny"], tmp_path / "m.gguf", "gguf", "f16",
                    faults=(F.relabel(Q, DType.F16, DType.BF16),))
    t = _only_failure(compare(tiny_models["qwen2-tiny"], out, fast=True), Q, Verdict.DTYPE_MISREAD)
    assert "bf16" in t.detail


def test_f16_truncation_instead_of_rounding(tiny_models, tmp_path):
    out = F.convert(tiny_models["qwen2-tiny"], tmp_path / "t", "safetensors", "f32",
                    faults=(F.truncate_to_f16(DOWN),))
    t = _only_failure(compare(tiny_models["qwen2-tiny"], out, fast=True), DOWN, Verdict.DEGRADED)
    assert "truncation" in t.detail


def test_nan_injected(tiny_models, tmp_path):
    out = F.convert(tiny_models["qwen2-tiny"], tmp_path / "nan", "safetensors", "f32",
                    faults=(F.inject_nan(UP0),))
    _only_failure(compare(tiny_models["qwen2-tiny"], out, fast=True), UP0, Verdict.NAN_INF)


def test_rope_theta_changed(tiny_models, tmp_path):
    out = F.convert(tiny_models["qwen2-tiny"], tmp_path / "th.gguf", "gguf", "f32", faults=(F.rope_theta(10000.0),))
    r = compare(tiny_models["qwen2-tiny"], out, fast=True)
    assert not r.passed and not r.failures()
    bad = r.metadata.problems()
    assert [f.field for f in bad] == ["rope_theta"] and bad[0].reference == 1e6 and bad[0].candidate == 1e4


def test_vocab_entry_changed(tiny_models, tmp_path):
    out = F.convert(tiny_models["qwen2-tiny"], tmp_path / "v.apr", "apr", "f32", faults=(F.vocab_entry(300, "XYZ"),))
    r = compare(tiny_models["qwen2-tiny"], out, fast=True)
    assert not r.passed
    bad = r.tokenizer.problems()
    assert [f.field for f in bad] == ["vocabulary"] and "token id 300" in bad[0].note and "'XYZ'" in bad[0].note


def test_tokenizer_missing_fails(tiny_models, tmp_path):
    out = F.convert(tiny_models["qwen2-tiny"], tmp_path / "nt.gguf", "gguf", "f32", faults=(F.no_tokenizer(),))
    r = compare(tiny_models["qwen2-tiny"], out, fast=True)
    assert not r.passed and r.tokenizer.failed_outright


def test_zero_pairs_is_a_failure(tiny_models):
    r = compare(tiny_models["qwen2-tiny"], tiny_models["qwen2-tiny"], only="nothing.matches.*", fast=True)
    assert not r.passed and r.pairs_compared == 0 and r.errors
    assert not bool(r)
