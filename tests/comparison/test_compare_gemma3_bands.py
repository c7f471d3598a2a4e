"""The bands on real trained weights: llama_model_quantize files of the real Gemma 3 270M HF dir (transformers'
conversion of the shipped Q4_K_M GGUF, so many tensors already lie on a Q4_K/Q6_K grid) pass at the tensor
level; faults planted in them fail. A representative slice runs here (the products are cached in
~/.cache/aprqa-tests); scripts/gemma3_band_matrix.py runs every type llama.cpp writes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from aprqa import core
from aprqa.comparison import compare
from aprqa.comparison.verdicts import contradiction
from aprqa.quant.dtypes import DType

pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gguf")
import llamacpp_pipeline as lp  # noqa: E402  (tests/helpers)
from llamacpp_quant import quantize_array  # noqa: E402

# q4_k_m: the grid-aligned reference (its Q4_K tensors requantize to themselves); q2_0: a type aprqa judges by
# its step band only. (q5_1 and the rest: scripts/gemma3_band_matrix.py.)
SLICE = ["q4_k_m", "q2_0"]
VICTIM = "blk.3.ffn_down.weight"  # [640, 2048] in GGUF order: rows of 2048 fit every block size


@pytest.fixture(scope="module")
def gemma3_f16(transformers_dir):
    return lp.convert_hf(transformers_dir, "f16")


def _failures(rep):
    return [(t.name, t.candidate_dtype, t.verdict.value, t.detail) for t in rep.tensors if not t.passed]


@pytest.mark.slow
@pytest.mark.parametrize("ftype", SLICE)
def test_faithful_llamacpp_file_passes_at_the_tensor_level(transformers_dir, gemma3_f16, ftype):
    rep = compare(transformers_dir, lp.quantize(gemma3_f16, ftype), fast=True)
    assert not _failures(rep), _failures(rep)
    for t in rep.tensors:
        assert contradiction(t) is None, (t.name, t.verdict, t.detail)


def _tensor(path, name):
    t = next(t for t in gguf.GGUFReader(path).tensors if t.name == name)
    return DType(int(t.tensor_type)), int(t.data_offset), int(t.n_bytes), [int(x) for x in t.shape][::-1]


def _patched(src, dst, raw: np.ndarray):
    shutil.copyfile(src, dst)
    _, off, nbytes, _ = _tensor(dst, VICTIM)
    assert raw.nbytes == nbytes
    with open(dst, "r+b") as f:
        f.seek(off)
        f.write(raw.tobytes())
    return dst


@pytest.mark.slow
@pytest.mark.parametrize("ftype", ["q5_1"])  # q4_k_m too in scripts/gemma3_band_matrix.py's figures
def test_faults_planted_in_real_files_fail(transformers_dir, gemma3_f16, ftype, tmp_path):
    src = lp.quantize(gemma3_f16, ftype)
    dt, off, nbytes, shape = _tensor(src, VICTIM)
    _, off16, n16, _ = _tensor(gemma3_f16, VICTIM)
    x = np.fromfile(gemma3_f16, np.float16, count=n16 // 2, offset=off16).astype(np.float32).reshape(shape)
    coarse = core.dequantize(quantize_array(x, int(DType.Q2_K)), DType.Q2_K, x.shape)
    faults = {"scaled x1.05": quantize_array(x * np.float32(1.05), int(dt)),
              "requantized from Q2_K": quantize_array(coarse, int(dt))}
    for what, raw in faults.items():
        # the victim only (the whole file's faithful tensors are test_faithful_llamacpp_file_...'s subject)
        rep = compare(transformers_dir, _patched(src, tmp_path / "f.gguf", raw), fast=True,
                      only="model.layers.3.mlp.down_proj.weight")
        bad = _failures(rep)
        assert len(rep.tensors) == 1 and [b[0] for b in bad] == ["model.layers.3.mlp.down_proj.weight"], (what, bad)
        # a coarse requantization lands at cos 0.95 on these weights: DEGRADED or CORRUPT, both fail
        assert bad[0][2] in ("SCALED", "DEGRADED", "CORRUPT"), (what, bad)
        assert contradiction(next(t for t in rep.tensors if not t.passed)) is None
