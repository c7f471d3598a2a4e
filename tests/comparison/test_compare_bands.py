"""Bands that hold on every reference (docs/tolerances.md): every quantized type has a band or an explicit
NOT-JUDGED reason; a reference already on a quantization grid (a dequantized GGUF) or itself quantized
(GGUF -> GGUF requantization) does not fail faithful files; evidence of faithfulness never ends in a
failing verdict; planted faults still fail. The quantizer is llama.cpp's own (ggml_quantize_chunk)."""

from __future__ import annotations

import numpy as np
import pytest

from aprqa import core
from aprqa.comparison import bands, compare
from aprqa.comparison.verdicts import contradiction
from aprqa.formats import gguf, open_model
from aprqa.formats.model import TensorData
from aprqa.quant.dtypes import DType
from aprqa.quant.storable import quantizable

pytest.importorskip("llama_cpp")
from llamacpp_quant import quantize_array, quantize_file  # noqa: E402  (tests/helpers, on sys.path via conftest)
from aprqa.conversion import convert  # noqa: E402
from aprqa.formats.gguf_write import WRITABLE  # noqa: E402

NAME = "model.layers.0.mlp.gate_proj.weight"  # [512, 256]


def test_every_quantized_dtype_has_a_band_or_a_reason():
    for dt in DType:
        if not dt.is_quantized:
            continue
        basis = bands.band_basis(dt, quantizable(dt))
        assert basis is not None or dt in bands.NO_BAND, f"{dt.lname}: no band and no NOT-JUDGED reason"
        assert not (basis is not None and dt in bands.NO_BAND), dt
        if basis == "aprqa":  # a reference already on the type's grid is judged by its step band
            assert dt in bands.STEP_BANDS or dt in (DType.APR_Q4, DType.APR_Q8), dt


def _write(src, out, replace: dict[str, tuple[DType, np.ndarray]]):
    tensors = []
    for t in src:
        if t.name in replace:
            dt, raw = replace[t.name]
            tensors.append(TensorData(t.name, dt, t.shape, np.ascontiguousarray(raw).view(np.uint8).ravel()))
        else:
            tensors.append(TensorData.from_info(t))
    gguf.write(out, tensors, src.config, src.tokenizer)
    return out


def _weights(src) -> np.ndarray:
    t = src[NAME]
    return core.dequantize(t).reshape(t.shape)


def _verdict(rep):
    for t in rep.tensors:
        assert contradiction(t) is None, (t.name, t.verdict, t.detail)
    return next(t for t in rep.tensors if t.name == NAME)


def _f16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16).astype(np.float32)


@pytest.mark.parametrize("dt", [DType.IQ3_S, DType.IQ3_XXS, DType.IQ2_S, DType.IQ1_M, DType.TQ2_0, DType.Q2_0,
                                DType.Q1_0, DType.MXFP4, DType.NVFP4], ids=lambda d: d.lname)
def test_llamacpp_types_without_an_aprqa_quantizer_pass(tiny_models, tmp_path, dt):
    src = open_model(tiny_models["qwen2-tiny"])
    if dt in WRITABLE:
        raw = quantize_array(_f16(_weights(src)), int(dt))
        cand = _write(src, tmp_path / "c.gguf", {NAME: (dt, raw)})
    else:  # gguf-py of the installed version cannot lay it out: llama_model_quantize writes the whole file
        convert(tiny_models["qwen2-tiny"], tmp_path / "f16.gguf", quant="f16")
        cand = quantize_file(tmp_path / "f16.gguf", tmp_path / "c.gguf", dt.lname)
    rep = compare(src, cand, fast=True)
    t = _verdict(rep)
    assert t.candidate_dtype == dt.lname
    assert t.verdict.value == "QUANT-FAITHFUL" and t.noise.basis == "step", t.detail
    # tensor level (the metadata/tokenizer sections of a hand-written file are not this test's subject)
    assert all(x.passed for x in rep.tensors), [(x.name, x.verdict.value, x.detail) for x in rep.tensors if not x.passed]


@pytest.mark.parametrize("dt", [DType.IQ3_S, DType.IQ2_S])
def test_a_type_without_a_band_is_not_judged(tiny_models, tmp_path, monkeypatch, dt):
    src = open_model(tiny_models["qwen2-tiny"])
    raw = quantize_array(_f16(_weights(src)), int(dt))
    monkeypatch.delitem(bands.STEP_BANDS, dt)
    rep = compare(src, _write(src, tmp_path / "c.gguf", {NAME: (dt, raw)}), fast=True)
    t = _verdict(rep)
    assert t.verdict.value == "NOT-JUDGED" and not t.passed and not rep.passed, t.detail
    assert "no measured error band" in t.detail


@pytest.mark.parametrize("dt", [DType.Q4_K, DType.Q5_1, DType.Q6_K, DType.Q4_0, DType.Q3_K])
def test_reference_on_the_grid_passes_faithful_files(tiny_models, tmp_path, dt):
    """transformers' conversion of a quantized GGUF gives a float reference on the type's grid; llama.cpp
    re-quantizing it from an f16 GGUF is faithful, whatever aprqa's own (~0) requantization error says."""
    src = open_model(tiny_models["qwen2-tiny"])
    a = _weights(src)
    grid = core.dequantize(quantize_array(a, int(dt)), dt, a.shape)
    ref = open_model(_write(src, tmp_path / "ref.gguf", {NAME: (DType.F32, grid)}))
    cand = _write(src, tmp_path / "c.gguf", {NAME: (dt, quantize_array(_f16(grid), int(dt)))})
    t = _verdict(compare(ref, cand, fast=True))
    assert t.passed and t.verdict.value in ("QUANT-FAITHFUL", "IDENTICAL"), t.detail


@pytest.mark.parametrize("ref_dt,cand_dt", [(DType.Q4_K, DType.Q4_K), (DType.Q6_K, DType.Q6_K),
                                            (DType.Q8_0, DType.Q8_0), (DType.Q8_0, DType.Q4_K),
                                            (DType.Q4_K, DType.Q5_K), (DType.Q5_0, DType.Q4_1)])
def test_quantized_reference_requantized_passes(tiny_models, tmp_path, ref_dt, cand_dt):
    """GGUF -> GGUF requantization (llama_model_quantize --allow-requantize dequantizes and quantizes again)."""
    src = open_model(tiny_models["qwen2-tiny"])
    a = _weights(src)
    qa = quantize_array(a, int(ref_dt))
    ref = open_model(_write(src, tmp_path / "ref.gguf", {NAME: (ref_dt, qa)}))
    deq = core.dequantize(qa, ref_dt, a.shape)
    t = _verdict(compare(ref, _write(src, tmp_path / "c.gguf", {NAME: (cand_dt, quantize_array(deq, int(cand_dt)))}),
                         fast=True))
    assert t.passed, (t.verdict, t.detail)


@pytest.mark.parametrize("dt", [DType.Q4_K, DType.Q5_1, DType.IQ3_S, DType.TQ2_0])
def test_planted_faults_on_a_grid_reference_still_fail(tiny_models, tmp_path, dt):
    """The wider band of a grid-aligned reference keeps a scaled tensor and a coarse requantization out."""
    src = open_model(tiny_models["qwen2-tiny"])
    a = _weights(src)
    grid = core.dequantize(quantize_array(a, int(DType.Q4_K)), DType.Q4_K, a.shape)
    ref = open_model(_write(src, tmp_path / "ref.gguf", {NAME: (DType.F32, grid)}))
    scaled = quantize_array(_f16(grid * np.float32(1.10)), int(dt))
    coarse_src = core.dequantize(quantize_array(grid, int(DType.Q2_K)), DType.Q2_K, a.shape)
    coarse = quantize_array(coarse_src, int(dt))
    for raw, what in ((scaled, "scaled x1.10"), (coarse, "requantized from Q2_K")):
        t = _verdict(compare(ref, _write(src, tmp_path / "f.gguf", {NAME: (dt, raw)}), fast=True))
        assert not t.passed and t.verdict.value != "NOT-JUDGED", (what, t.verdict, t.detail)


def test_contradiction_checker_catches_a_contradiction():
    from aprqa.comparison.results import TensorResult, Verdict

    bad = TensorResult(name="x", verdict=Verdict.DEGRADED, passed=False, reference_dtype="f32",
                       candidate_dtype="q4_k", reference_shape=(1,), candidate_shape=(1,), nbytes=0, layer=None,
                       detail="q4_k band: ...; bit-identical to our q4_k quantizer on 64/64 sampled blocks")
    assert contradiction(bad) is not None
    ok = TensorResult(name="x", verdict=Verdict.QUANT_FAITHFUL, passed=True, reference_dtype="f32",
                      candidate_dtype="q4_k", reference_shape=(1,), candidate_shape=(1,), nbytes=0, layer=None,
                      detail="within the q4_k band; bit-identical to our q4_k quantizer on 64/64 sampled blocks")
    assert contradiction(ok) is None


def _bf16(x: np.ndarray, truncate: bool = False) -> np.ndarray:
    """bf16 bits of float32 ``x``: round to nearest-even, or truncated (the fault)."""
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    if not truncate:
        bits = bits + 0x7FFF + ((bits >> 16) & 1)
    return (bits >> 16).astype(np.uint16)


@pytest.mark.parametrize("cand_dt", [DType.BF16, DType.F32])
def test_sibling_cast_of_a_rounded_reference_is_exact(tiny_models, tmp_path, cand_dt):
    """An f16 reference and a bf16/f32 candidate both rounded from the same f32 weights (llama.cpp's converter
    --outtype f16 and bf16/f32 of one HF dir): the candidate is not the rounding of the f16 values, but it is
    the rounding of a value inside their own interval — EXACT-CAST; a truncated bf16 is not."""
    src = open_model(tiny_models["qwen2-tiny"])
    a = _weights(src) * np.float32(7.3)  # values off the f16 grid whatever the preset's weights are
    ref = open_model(_write(src, tmp_path / "ref.gguf", {NAME: (DType.F16, a.astype(np.float16))}))
    raw = _bf16(a) if cand_dt is DType.BF16 else a.astype(np.float32)
    t = _verdict(compare(ref, _write(src, tmp_path / "c.gguf", {NAME: (cand_dt, raw)}), fast=True))
    assert t.passed and t.verdict.value == "EXACT-CAST" and "reference's own original" in t.detail, t.detail
    if cand_dt is DType.BF16:
        bad = _write(src, tmp_path / "t.gguf", {NAME: (DType.BF16, _bf16(a, truncate=True))})
        t = _verdict(compare(ref, bad, fast=True))
        assert not t.passed and "toward zero" in t.detail, (t.verdict, t.detail)
