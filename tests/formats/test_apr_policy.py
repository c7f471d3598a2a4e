"""APR targets follow the APR producer (aprender), not llama.cpp's recipes (src/aprqa/formats/apr_policy.py):
Q4_K with every row zero-padded to whole super-blocks where llama.cpp would fall back to Q5_0/Q8_0, the
embedding kept F32, APR q8/q4 for q8_0/q4_0, F16 for everything under f16; compare judges the padded rows
by their real length."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aprqa import core
from aprqa.comparison import compare
from aprqa.conversion import convert
from aprqa.quant.dtypes import DType
from aprqa.errors import UsageError
from aprqa.formats import open_model
from aprqa.formats.apr_policy import AprenderQuant, rule, unproducible
from aprqa.formats.apr_write import encode, write
from aprqa.formats.model import ArchConfig, TensorData
from aprqa.synth.models import make_hf_model

EMBED, O_PROJ = "model.embed_tokens.weight", "model.layers.0.self_attn.o_proj.weight"


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    """A qwen2 whose rows (96, 160) are not whole 256-element super-blocks, and its aprender q4_k_m APR."""
    root = tmp_path_factory.mktemp("odd")
    src = make_hf_model(root / "hf", "qwen2-tiny", hidden_size=96, head_dim=24, intermediate_size=160)
    dst = root / "q4km.apr"
    result = convert(src, dst, quant="q4_k_m")
    return src, dst, {n: b for n, _a, b, _t in result.tensors}


def test_q4_k_m_is_aprenders_q4k_with_padded_rows(odd):
    src, dst, types = odd
    m = open_model(dst)
    for t in m:
        want = "f32" if len(t.shape) < 2 or "embed" in t.name else "q4_k"
        assert t.dtype.lname == want == types[t.name], t.name
        if want == "q4_k":  # rows x ceil(cols/256) super-blocks of 144 bytes, never a Q5_0/Q8_0 fallback
            rows, cols = math.prod(t.shape[:-1]), t.shape[-1]
            assert t.nbytes == rows * math.ceil(cols / 256) * 144, t.name
            assert core.row_padded_width(t) == 256
    assert any("row-padded (aprender)" in w for w in m.warnings)


def test_padded_rows_are_judged_by_their_real_length(odd):
    src, dst, _types = odd
    rep = compare(src, dst, fast=True)
    assert rep.passed, rep.summary()
    assert set(rep.verdict_counts()) == {"QUANT-FAITHFUL", "IDENTICAL"}
    for r in rep.tensors:
        if r.verdict.value == "QUANT-FAITHFUL":
            assert r.candidate_dtype == "q4_k"
            # the band is aprqa's own quantizer applied as aprender applies it: the same bytes
            assert "bit-identical to our q4_k quantizer" in r.detail, r.detail


def test_the_output_band_twin_pads_rows_as_aprender(odd):
    src, dst, _types = odd
    rep = compare(src, dst, fast=False)
    assert rep.passed, rep.summary()
    assert "15 tensors quantized by aprqa" in rep.outputs.profile.name, rep.outputs.profile.name


def _planted(m, name, fn, out):
    tds = []
    for t in m:
        if t.name == name:
            v = np.ascontiguousarray(fn(core.dequantize(t).reshape(t.shape)))
            tds.append(TensorData(t.name, t.dtype, tuple(v.shape), lambda v=v, dt=t.dtype: encode(v, dt)))
        else:
            tds.append(TensorData.from_info(t))
    write(out, tds, m.config, m.tokenizer, dict(m.metadata))
    return out


def _swap(v):
    v = v.copy()
    v[[3, 40]] = v[[40, 3]]
    return v


@pytest.mark.parametrize("fault,verdict,says", [
    (lambda v: v.T, "TRANSPOSED", "data transposed"),
    (lambda v: v * np.float32(1.1), "SCALED", "1.1 × a faithful q4_k quantization"),
    (_swap, "ROW-PERMUTED", "rows 3 and 40 swapped"),
])
def test_faults_in_a_padded_tensor_are_named(odd, tmp_path, fault, verdict, says):
    src, dst, _types = odd
    with open_model(dst) as m:
        bad = _planted(m, O_PROJ, fault, tmp_path / "bad.apr")
    (r,) = [r for r in compare(src, bad, fast=True).tensors if r.name == O_PROJ]
    assert r.verdict.value == verdict and says in r.detail, (r.verdict, r.detail)
    assert r.candidate_dtype == "q4_k"


def test_padded_q4_k_read_into_other_formats(odd, tmp_path):
    _src, dst, _types = odd
    again = tmp_path / "again.apr"
    convert(dst, again)  # APR -> APR keeps the padded payloads byte for byte
    a, b = open_model(dst), open_model(again)
    assert all(np.array_equal(a[n].raw(), b[n].raw()) for n in a.tensors)
    gguf = tmp_path / "x.gguf"
    result = convert(dst, gguf)  # no GGUF type stores padded rows: their exact values as F32
    assert {(n, f, t) for n, f, t, _ in result.tensors if f == "q4_k"} == \
        {(n, "q4_k", "f32") for n, f, _t, _ in result.tensors if f == "q4_k"}
    rep = compare(dst, gguf, fast=True)
    assert rep.passed and set(rep.verdict_counts()) == {"IDENTICAL"}, rep.summary()


def test_int8_int4_and_fp16_follow_aprender(tmp_path, qwen2_dir):
    for quant, qtype in (("q8_0", DType.APR_Q8), ("q4_0", DType.APR_Q4), ("apr-q8", DType.APR_Q8)):
        dst = tmp_path / f"{quant}.apr"
        convert(qwen2_dir, dst, quant=quant)
        m = open_model(dst)
        assert m[EMBED].dtype is qtype  # aprender quantizes the embedding under int8/int4
        for t in m:
            kept = "bias" in t.name or "norm" in t.name or t.n_elements < 1024
            assert t.dtype is (DType.F32 if kept else qtype), t.name
        assert compare(qwen2_dir, dst, fast=True).passed
    convert(qwen2_dir, tmp_path / "f16.apr", quant="f16")
    m = open_model(tmp_path / "f16.apr")
    assert {t.dtype for t in m} == {DType.F16}  # norms and biases too
    rep = compare(qwen2_dir, tmp_path / "f16.apr", fast=True)
    assert rep.passed and set(rep.verdict_counts()) == {"EXACT-CAST"}, rep.summary()


def test_rules_per_tensor():
    q4k = AprenderQuant("q4_k_m", "q4k")
    assert q4k.type_for("lm_head.weight", (512, 96)) is DType.Q4_K  # a separate output is quantized
    assert q4k.type_for(EMBED, (512, 96)) is DType.F32
    assert q4k.type_for("model.layers.0.self_attn.q_proj.bias", (96,)) is DType.F32
    assert q4k.type_for("model.layers.0.mlp.scale_proj.weight", (96, 96)) is DType.F32  # "scale" in the name
    assert q4k.type_for(O_PROJ, (8, 16)) is DType.F32  # under one super-block
    assert q4k.type_for(O_PROJ, (16, 16)) is DType.Q4_K
    int8 = AprenderQuant("q8_0", "int8")
    assert int8.type_for(O_PROJ, (16, 63)) is DType.F32 and int8.type_for(O_PROJ, (16, 64)) is DType.APR_Q8
    assert rule("f32") is None and rule("bf16") is None


@pytest.mark.parametrize("quant", ["q6_k", "q5_k_m", "q5_0", "q3_k_m"])
def test_names_aprender_has_no_quantization_for_are_refused(tmp_path, qwen2_dir, quant):
    assert unproducible(quant) is not None
    with pytest.raises(UsageError, match=f"aprender writes no {quant} APR file"):
        convert(qwen2_dir, tmp_path / "x.apr", quant=quant)


def test_encode_pads_each_row_and_the_writer_checks_the_size(tmp_path):
    v = np.random.default_rng(0).standard_normal((3, 300)).astype(np.float32)
    raw = encode(v, DType.Q4_K)
    assert raw.nbytes == 3 * 2 * 144
    # each row is its own two super-blocks: the first row alone gives the first 288 bytes
    assert np.array_equal(raw[:288], encode(v[:1], DType.Q4_K))
    with pytest.raises(UsageError, match=r"expected 864"):
        write(tmp_path / "bad.apr", [TensorData("w", DType.Q4_K, (3, 300), lambda: raw[:-1])], ArchConfig(), None)
