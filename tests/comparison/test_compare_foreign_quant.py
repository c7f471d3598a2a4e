"""Verdicts are fair to every faithful quantizer (issue 17): files made by llama.cpp's own quantizer
through the usual pipeline (model saved by transformers -> f16 GGUF -> llama_model_quantize) pass
`compare`; negative controls built from them (one tensor re-quantized from a coarser type, one tensor
with its block scales x 1.03) fail with the right verdict. Truth: llama.cpp (llama-cpp-python built
from its sdist) and transformers, never aprqa checking itself."""

from __future__ import annotations

from _paths import ROOT, TESTS
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aprqa import core
from aprqa.comparison import compare, noise
from aprqa.conversion import convert
from aprqa.quant.dtypes import DType

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gguf")

sys.path.insert(0, str(TESTS / "helpers"))
from llamacpp_quant import quantize_array, quantize_file  # noqa: E402

FTYPES = ["q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "q3_k_m", "q2_k", "iq4_nl", "iq4_xs"]
VICTIM = "blk.0.ffn_up.weight"  # GGUF name of the tensor the negative controls damage
# Where each type keeps its f16 block scale(s) (and min scale), in bytes from the block start.
SCALE_FIELDS = {DType.Q8_0: (0,), DType.Q4_0: (0,), DType.Q4_1: (0, 2), DType.Q5_0: (0,), DType.Q5_1: (0, 2),
                DType.Q2_K: (80, 82), DType.Q3_K: (108,), DType.Q4_K: (0, 2), DType.Q5_K: (0, 2),
                DType.Q6_K: (208,), DType.IQ4_NL: (0,), DType.IQ4_XS: (0,)}
# A clearly coarser type to re-quantize from (error several times the target type's).
COARSER = {DType.Q8_0: DType.Q4_0, DType.Q6_K: DType.Q3_K, DType.Q5_K: DType.Q2_K, DType.Q4_K: DType.Q2_K,
           DType.Q4_0: DType.Q2_K, DType.IQ4_NL: DType.Q2_K, DType.IQ4_XS: DType.Q2_K, DType.Q3_K: DType.IQ2_XXS,
           DType.Q2_K: DType.IQ2_XXS}


def _hf_model(out: Path, tokenizer_dir: Path, dtype) -> Path:
    torch.manual_seed(17)
    cfg = transformers.LlamaConfig(hidden_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                   intermediate_size=512, vocab_size=512, rope_theta=5e5, rms_norm_eps=1e-5,
                                   tie_word_embeddings=False, max_position_embeddings=256)
    model = transformers.AutoModelForCausalLM.from_config(cfg).to(dtype)
    model.save_pretrained(out)
    transformers.AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def pipeline(tiny_models, tmp_path_factory):
    """HF dirs (f32, bf16) and llama.cpp-quantized GGUFs made from their f16/bf16 GGUFs."""
    root = tmp_path_factory.mktemp("foreign")
    tok = tiny_models["qwen2-tiny"]
    hf32 = _hf_model(root / "hf-f32", tok, torch.float32)
    hf16 = _hf_model(root / "hf-bf16", tok, torch.bfloat16)
    convert(hf32, root / "f16.gguf", quant="f16")
    convert(hf32, root / "bf16.gguf", quant="bf16")
    convert(hf16, root / "src-bf16.gguf")  # keeps bf16
    files = {ft: quantize_file(root / "f16.gguf", root / f"{ft}.gguf", ft) for ft in FTYPES}
    files["q8_0 via bf16"] = quantize_file(root / "bf16.gguf", root / "q8_0-via-bf16.gguf", "q8_0")
    bf16_files = {ft: quantize_file(root / "src-bf16.gguf", root / f"bf16src-{ft}.gguf", ft) for ft in ("q4_k_m", "q8_0")}
    return {"hf32": hf32, "hf16": hf16, "files": files, "bf16_files": bf16_files, "root": root,
            "f16": root / "f16.gguf"}


def _tensor(path: Path, name: str):
    r = gguf.GGUFReader(path)
    t = next(t for t in r.tensors if t.name == name)
    return DType(int(t.tensor_type)), int(t.data_offset), int(t.n_bytes), [int(x) for x in t.shape][::-1]


def _patch(src: Path, dst: Path, name: str, new_bytes: np.ndarray) -> Path:
    shutil.copyfile(src, dst)
    _, off, nbytes, _ = _tensor(dst, name)
    assert new_bytes.nbytes == nbytes
    with open(dst, "r+b") as f:
        f.seek(off)
        f.write(new_bytes.tobytes())
    return dst


def _requantized_from_coarser(pipeline, src: Path, dst: Path) -> tuple[Path, DType, DType]:
    dt, off, nbytes, shape = _tensor(src, VICTIM)
    _, off16, n16, _ = _tensor(pipeline["f16"], VICTIM)
    x = np.fromfile(pipeline["f16"], np.float16, count=n16 // 2, offset=off16).astype(np.float32).reshape(shape)
    coarse = COARSER[dt]
    ones = np.ones(shape[1], np.float32)  # IQ2 types need an importance matrix
    # gguf-py decodes the IQ2 types aprqa's core does not read
    xc = gguf.quants.dequantize(quantize_array(x, int(coarse), ones).reshape(x.shape[0], -1),
                                gguf.GGMLQuantizationType(int(coarse))).astype(np.float32)
    return _patch(src, dst, VICTIM, quantize_array(xc, int(dt))), dt, coarse


def _scaled(src: Path, dst: Path, factor: float) -> tuple[Path, DType]:
    dt, off, nbytes, _ = _tensor(src, VICTIM)
    raw = np.fromfile(src, np.uint8, count=nbytes, offset=off).reshape(-1, dt.info.block_bytes).copy()
    for f in SCALE_FIELDS[dt]:
        h = raw[:, f:f + 2].copy().view(np.float16)
        raw[:, f:f + 2] = (h.astype(np.float32) * factor).astype(np.float16).view(np.uint8)
    return _patch(src, dst, VICTIM, raw.ravel()), dt


def _by_gguf_name(report, name: str):
    blk = name.split(".")[1]
    return next(t for t in report.tensors if t.name == f"model.layers.{blk}.mlp.up_proj.weight")


@pytest.mark.parametrize("ftype", FTYPES + ["q8_0 via bf16"])
def test_llamacpp_quantized_files_pass(pipeline, ftype):
    rep = compare(pipeline["hf32"], pipeline["files"][ftype], fast=True)
    bad = [(t.name, t.candidate_dtype, t.verdict.value, t.detail) for t in rep.tensors if not t.passed]
    assert rep.passed and not bad, bad
    quant = [t for t in rep.tensors if t.verdict.value == "QUANT-FAITHFUL"]
    assert quant, "no quantized tensor was judged"
    for t in quant:  # the verdict says which band it used
        assert f"within the {t.candidate_dtype} band: rel-L2" in t.detail, t.detail


def test_intermediate_precision_is_detected(pipeline):
    for ftype, via in (("q8_0", "f16"), ("q8_0 via bf16", "bf16"), ("q4_0", "f16")):
        rep = compare(pipeline["hf32"], pipeline["files"][ftype], fast=True)
        t = _by_gguf_name(rep, VICTIM)
        assert t.noise.intermediate == via, (ftype, t.noise, t.detail)


@pytest.mark.parametrize("ftype", ["q4_k_m", "q8_0"])
def test_bf16_source_passes(pipeline, ftype):
    rep = compare(pipeline["hf16"], pipeline["bf16_files"][ftype], fast=True)
    bad = [(t.name, t.candidate_dtype, t.verdict.value, t.detail) for t in rep.tensors if not t.passed]
    assert rep.passed and not bad, bad


@pytest.mark.parametrize("ftype", FTYPES)
def test_requantized_from_coarser_type_is_degraded(pipeline, ftype, tmp_path):
    path, dt, coarse = _requantized_from_coarser(pipeline, pipeline["files"][ftype], tmp_path / "coarse.gguf")
    rep = compare(pipeline["hf32"], path, fast=True)
    t = _by_gguf_name(rep, VICTIM)
    assert not rep.passed and not t.passed, (dt, coarse, t.detail)
    assert t.verdict.value == "DEGRADED", (dt, coarse, t.verdict, t.detail)
    assert [x.name for x in rep.tensors if not x.passed] == [t.name]


@pytest.mark.parametrize("ftype", FTYPES)
def test_scales_off_by_3_percent_are_scaled(pipeline, ftype, tmp_path):
    path, dt = _scaled(pipeline["files"][ftype], tmp_path / "scaled.gguf", 1.03)
    rep = compare(pipeline["hf32"], path, fast=True)
    t = _by_gguf_name(rep, VICTIM)
    assert not rep.passed and not t.passed, (dt, t.detail)
    assert t.verdict.value == "SCALED", (dt, t.verdict, t.detail)
    assert [x.name for x in rep.tensors if not x.passed] == [t.name]


def _reference_rows(pipeline, name: str) -> np.ndarray:
    """The tensor as the quantizer saw it: the f16 GGUF's values (GGUF row order)."""
    _, off16, n16, shape = _tensor(pipeline["f16"], name)
    return np.fromfile(pipeline["f16"], np.float16, count=n16 // 2, offset=off16).astype(np.float32).reshape(shape)


@pytest.mark.parametrize("ftype", ["q4_k_m", "q3_k_m", "q2_k", "iq4_xs", "q4_0"])
def test_imatrix_weighted_quantization_passes(pipeline, ftype, tmp_path):
    """llama.cpp's importance-weighted rounding (a random llama-imatrix-like weight per column)
    lands inside the band: it trades unweighted error for weighted error, a faithful choice."""
    src = pipeline["files"][ftype]
    dt, _, _, shape = _tensor(src, VICTIM)
    imatrix = np.exp(np.random.default_rng(5).normal(0, 1.5, shape[1])).astype(np.float32)
    path = _patch(src, tmp_path / "imatrix.gguf", VICTIM, quantize_array(_reference_rows(pipeline, VICTIM),
                                                                            int(dt), imatrix))
    rep = compare(pipeline["hf32"], path, fast=True)
    t = _by_gguf_name(rep, VICTIM)
    assert t.passed and t.verdict.value == "QUANT-FAITHFUL", (dt, t.detail)


@pytest.mark.parametrize("ftype", ["q8_0", "q4_k_m", "q2_k", "iq4_nl"])
def test_quantized_from_a_noisier_source_is_degraded(pipeline, ftype, tmp_path):
    """Faithful quantization of a source that is itself off by twice the type's own error."""
    src = pipeline["files"][ftype]
    dt, _, _, shape = _tensor(src, VICTIM)
    x = _reference_rows(pipeline, VICTIM)
    own = core.dequantize(quantize_array(x, int(dt)), dt, x.shape)
    err = float(np.linalg.norm(own - x) / np.linalg.norm(x))
    noisy = x + np.random.default_rng(6).standard_normal(x.shape).astype(np.float32) * (2 * err * float(x.std()))
    path = _patch(src, tmp_path / "noisy.gguf", VICTIM, quantize_array(noisy, int(dt)))
    rep = compare(pipeline["hf32"], path, fast=True)
    t = _by_gguf_name(rep, VICTIM)
    assert not t.passed and t.verdict.value == "DEGRADED", (dt, t.verdict, t.detail)


@pytest.mark.parametrize("ftype", ["q8_0", "q3_k_m", "q2_k", "iq4_xs"])
def test_output_level_check_agrees(pipeline, ftype):
    """Without --fast the golden rule runs too: each type has an output profile derived like its
    tensor band (KL ∝ rel-L2²), and the files whose tensors pass pass it."""
    rep = compare(pipeline["hf32"], pipeline["files"][ftype], fast=False)
    assert rep.outputs is not None, rep.outputs_note  # it ran
    assert rep.passed and rep.outputs.passed, (rep.errors, rep.outputs)


@pytest.fixture(scope="module")
def aprqa_files(pipeline):
    """The same model quantized by aprqa's own converter (no regression)."""
    return {q: convert(pipeline["hf32"], pipeline["root"] / f"aprqa-{q}.gguf", quant=q) and
            pipeline["root"] / f"aprqa-{q}.gguf" for q in ("q8_0", "q4_0", "q6_k", "q5_k_m", "q4_k_m")}


def _controls_fail(pipeline, src: Path, tmp_path: Path) -> None:
    """Both negative controls built from ``src`` fail with their verdict."""
    path, dt = _scaled(src, tmp_path / "scaled.gguf", 1.03)
    t = _by_gguf_name(compare(pipeline["hf32"], path, fast=True), VICTIM)
    assert t.verdict.value == "SCALED", (dt, t.verdict, t.detail)
    path, dt, coarse = _requantized_from_coarser(pipeline, src, tmp_path / "coarse.gguf")
    t = _by_gguf_name(compare(pipeline["hf32"], path, fast=True), VICTIM)
    assert t.verdict.value == "DEGRADED", (dt, coarse, t.verdict, t.detail)


@pytest.mark.parametrize("quant", ["q8_0", "q4_0", "q6_k", "q5_k_m", "q4_k_m"])
def test_aprqa_quantizer_passes_and_its_controls_fail(pipeline, aprqa_files, quant, tmp_path):
    good = aprqa_files[quant]
    rep = compare(pipeline["hf32"], good, fast=True)
    assert rep.passed, [(t.name, t.detail) for t in rep.failures()]
    t = _by_gguf_name(rep, VICTIM)
    assert t.noise.blocks_bit_equal == t.noise.blocks_compared > 0, t.detail  # our own algorithm, exactly
    _controls_fail(pipeline, good, tmp_path)


def test_measure_script_smoke():
    script = ROOT / "scripts" / "measure_quant_bands.py"
    proc = subprocess.run([sys.executable, str(script), "--smoke"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "SUMMARY q8_0" in proc.stdout and "SUMMARY q3_k" in proc.stdout, proc.stdout


@pytest.mark.parametrize("ftype", ["q3_k_m", "q2_k"])
def test_step_band_alone_judges_a_type_aprqa_cannot_quantize(pipeline, ftype, tmp_path, monkeypatch):
    """The step model (the basis of every type aprqa has no quantizer for) on its own: with aprqa's
    Q3_K/Q2_K quantizers hidden, llama.cpp's files pass and the controls still fail."""
    own = noise.quantizable
    monkeypatch.setattr(noise, "quantizable", lambda dt: dt not in (DType.Q2_K, DType.Q3_K) and own(dt))
    src = pipeline["files"][ftype]
    t = _by_gguf_name(compare(pipeline["hf32"], src, fast=True), VICTIM)
    assert t.passed and "step model" in t.detail and t.noise.basis == "step", t.detail
    _controls_fail(pipeline, src, tmp_path)
