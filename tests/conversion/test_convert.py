"""Every conversion aprqa makes passes aprqa compare with the expected verdicts."""

import pytest

from aprqa.comparison import compare
from aprqa.conversion import QUANT_CHOICES, convert
from aprqa.errors import DTypeError, UsageError
from aprqa.formats import open_model
from aprqa.quant.dtypes import dtype_from_name
from aprqa.quant.mixes import is_mix
from aprqa.quant.storable import STORABLE

SUFFIX = {"safetensors": "", "gguf": ".gguf", "apr": ".apr"}  # safetensors: an HF directory


def _expected(quant: str) -> set[str]:
    if quant == "f32":
        return {"IDENTICAL"}
    if quant in ("f16", "bf16"):
        return {"EXACT-CAST", "IDENTICAL"}  # 1-D norms/biases stay f32 (IDENTICAL)
    return {"QUANT-FAITHFUL", "IDENTICAL"}


def _single_type(q: str):
    """The DType of a uniform quant choice; None for llama.cpp mixes (tests/quant/test_mixes.py covers those,
    q2_k included: it names a mix, not a uniform type)."""
    if is_mix(q):
        return None
    try:
        return dtype_from_name(q)
    except DTypeError:
        return None


# APR: the names whose aprender rule is this uniform one (2-D weights of the type, the rest f32); aprender's
# f16 (norms too), q4_k (embeddings f32) and the names it has no quantization for: tests/formats/test_apr_policy.py
APR_UNIFORM = ("f32", "bf16", "apr-q8", "apr-q4")
CASES = [(fmt, q) for fmt in SUFFIX for q in QUANT_CHOICES
         if _single_type(q) is not None and _single_type(q) in STORABLE[fmt] and (fmt != "apr" or q in APR_UNIFORM)]


@pytest.mark.parametrize("preset", ["qwen2-tiny", "llama-tiny"])
@pytest.mark.parametrize("fmt,quant", CASES)
def test_conversion_passes_compare(tmp_path, tiny_models, preset, fmt, quant):
    src = tiny_models[preset]
    dst = tmp_path / f"out{SUFFIX[fmt]}"
    result = convert(src, dst, quant=quant)
    report = compare(src, dst, fast=True)
    assert report.passed, report.summary()
    verdicts = set(report.verdict_counts())
    assert verdicts == _expected(quant), verdicts
    out = open_model(dst)
    two_d = [t for t in out if len(t.shape) == 2]
    assert two_d and all(t.dtype is dtype_from_name(quant) for t in two_d)
    assert all(t.dtype.lname == "f32" for t in out if len(t.shape) == 1)
    permuted = {n for n, *_rest, tr in result.tensors if tr}
    if fmt == "gguf" and preset == "llama-tiny":
        assert permuted == {f"model.layers.{i}.self_attn.{x}_proj.weight" for i in (0, 1) for x in ("q", "k")}
    else:
        assert permuted == set()


def test_single_safetensors_file_needs_weights_only(tmp_path, qwen2_dir):
    with pytest.raises(UsageError, match="cannot carry config.json and the tokenizer"):
        convert(qwen2_dir, tmp_path / "x.safetensors")
    convert(qwen2_dir, tmp_path / "x.safetensors", weights_only=True)
    assert len(open_model(tmp_path / "x.safetensors")) == 27


def test_unstorable_quant_is_refused(tmp_path, qwen2_dir):
    with pytest.raises(UsageError, match="safetensors cannot store q8_0"):
        convert(qwen2_dir, tmp_path / "x", quant="q8_0")
    # an APR target takes aprender's quantizations (formats/apr_policy.py): it has no q5_0
    with pytest.raises(UsageError, match="aprender writes no q5_0 APR file"):
        convert(qwen2_dir, tmp_path / "x.apr", quant="q5_0")


def test_row_length_fallbacks_follow_llama_cpp(tmp_path):
    from aprqa.synth.models import make_hf_model

    src = make_hf_model(tmp_path / "odd", "qwen2-tiny", hidden_size=96, head_dim=24, intermediate_size=160)
    convert(src, tmp_path / "odd.gguf", quant="q4_k")
    m = open_model(tmp_path / "odd.gguf")
    # rows of 96 are not a multiple of 256 but are of 32: q4_k falls back to q5_0
    assert m["model.layers.0.mlp.gate_proj.weight"].dtype.lname == "q5_0"
    assert m["model.layers.0.mlp.down_proj.weight"].dtype.lname == "q5_0"  # rows of 160 = 5 x 32
    assert compare(src, tmp_path / "odd.gguf", fast=True).passed


@pytest.mark.parametrize("suffix", [".gguf", ".apr"])
def test_conversion_streams_one_tensor_at_a_time(tmp_path, qwen2_dir, suffix, monkeypatch):
    """Re-encoded tensors are produced while the file is written, not all up front: at most one
    converted payload is alive at a time (the old eager path held all 16)."""
    import importlib
    import weakref

    conv = importlib.import_module("aprqa.conversion")  # the module (aprqa.convert is the function)

    alive = {"now": 0, "max": 0, "made": 0}
    real_encode = conv._encode

    def tracked(values, dtype, fmt):
        out = real_encode(values, dtype, fmt)
        alive["now"] += 1
        alive["made"] += 1
        alive["max"] = max(alive["max"], alive["now"])
        weakref.finalize(out, lambda: alive.__setitem__("now", alive["now"] - 1))
        return out

    monkeypatch.setattr(conv, "_encode", tracked)
    dst = tmp_path / f"s{suffix}"
    # bf16 for APR: aprender's f16 casts the 1-D norms too (tests/formats/test_apr_policy.py)
    convert(qwen2_dir, dst, quant="f16" if suffix == ".gguf" else "bf16")
    assert alive["made"] == 16 and alive["max"] == 1
    assert compare(qwen2_dir, dst, fast=True).passed
