"""The noise floor is measured on sampled rows; damage outside the sample must still be caught."""

import numpy as np

from aprqa import core
from aprqa.comparison import compare
from aprqa.comparison._sampling import NOISE_SAMPLE_ELEMENTS, sample_rows
from aprqa.formats import gguf, open_model
from aprqa.formats.model import TensorData
from aprqa.quant.dtypes import DType

NAME = "model.layers.0.mlp.gate_proj.weight"


def _write_q8(src, out, damaged_rows=()):
    """src as GGUF with NAME quantized to q8_0 by our quantizer, after scaling ``damaged_rows`` by 1.02
    (2 % off: well above q8_0's ~0.5 % noise)."""
    tensors = []
    for t in src:
        if t.name == NAME:
            a = np.frombuffer(t.raw(), np.float32).reshape(t.shape).copy()
            a[list(damaged_rows)] *= 1.02
            tensors.append(TensorData(t.name, DType.Q8_0, t.shape, core.quantize(a, DType.Q8_0)))
        else:
            tensors.append(TensorData.from_info(t))
    gguf.write(out, tensors, src.config, src.tokenizer)
    return out


def test_damage_in_an_unsampled_row_is_caught(tiny_models, tmp_path):
    src = open_model(tiny_models["qwen2-tiny"])
    rows, cols = src[NAME].shape
    sampled = set(sample_rows(rows, cols, NOISE_SAMPLE_ELEMENTS).tolist())
    assert len(sampled) < rows
    victims = [r for r in range(rows) if r not in sampled][:40]  # ~8 % of the rows, none of them sampled
    good = compare(src, _write_q8(src, tmp_path / "good.gguf"), fast=True)
    t = next(r for r in good.tensors if r.name == NAME)
    assert t.verdict.value == "QUANT-FAITHFUL" and t.noise.ratio == 1.0  # bit-identical to our quantizer

    bad = compare(src, _write_q8(src, tmp_path / "bad.gguf", victims), fast=True)
    t = next(r for r in bad.tensors if r.name == NAME)
    assert not t.passed, t.detail
    assert t.noise.rows_sampled == rows  # the floor was re-measured on every row, not trusted from the sample
