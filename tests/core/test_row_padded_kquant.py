"""aprender's row-padded K-quant payloads (each row zero-padded to whole 256-element super-blocks, its
quantize_q4_k_matrix) are decoded row by row wherever a TensorInfo is read, never as one flat stream."""

from __future__ import annotations

import numpy as np
import pytest

from aprqa import core
from aprqa.formats import apr, open_model
from aprqa.formats.model import ArchConfig, TensorData
from aprqa.inference.weights import dequantize_rows as forward_rows
from aprqa.quant.dtypes import DType, payload_nbytes

ROWS, COLS = 24, 896  # 896 = 3.5 super-blocks: Qwen2.5-0.5B's hidden size


@pytest.fixture(scope="module", params=[DType.Q4_K, DType.Q6_K], ids=lambda d: d.lname)
def padded(request, tmp_path_factory):
    dt = request.param
    rng = np.random.default_rng(0)
    values = (rng.standard_normal((ROWS, COLS)) * 0.02).astype(np.float32)
    width = -(-COLS // 256) * 256
    rows = np.zeros((ROWS, width), np.float32)
    rows[:, :COLS] = values
    payload = core.quantize(rows.reshape(-1), dt)  # aprender's layout: row by row, zero-padded
    expected = core.dequantize(payload, dt, (ROWS, width))[:, :COLS]
    path = tmp_path_factory.mktemp("padded") / "m.apr"
    apr.write(path, [TensorData("model.layers.0.mlp.up_proj.weight", dt, (ROWS, COLS),
                                np.frombuffer(payload.tobytes(), np.uint8)),
                     TensorData("model.layers.0.mlp.down_proj.weight", DType.F32, (ROWS, COLS), values)],
              ArchConfig(), None)
    with open_model(path) as m:
        yield m.tensors["model.layers.0.mlp.up_proj.weight"], m.tensors["model.layers.0.mlp.down_proj.weight"], \
            expected, values


def test_dequantize_reads_rows_not_a_flat_stream(padded):
    t, _ref, expected, values = padded
    got = core.dequantize(t)
    assert got.shape == (ROWS, COLS) and np.array_equal(got, expected)
    # read as one flat stream the same bytes are other values (what this guards against)
    flat = core.dequantize(t.raw()[: payload_nbytes(t.dtype, ROWS * COLS)], t.dtype, (ROWS, COLS))
    assert not np.array_equal(flat, expected)
    assert float(np.abs(got - values).max()) < 0.01  # Q4_K/Q6_K of N(0, 0.02) values: within a few steps


def test_row_ranges_read_only_their_rows(padded):
    t, _ref, expected, _values = padded
    assert np.array_equal(core.dequantize_rows(t, None, None, 5, 9), expected[5:9])
    out = np.empty(3 * COLS, np.float32)
    assert np.array_equal(core.dequantize_rows(t, None, None, 21, 24, out=out), expected[21:24])
    assert np.array_equal(forward_rows(t, 0, 1), expected[:1])
    with pytest.raises(core.CoreUsageError):
        core.dequantize_rows(t, None, None, 20, 25)


def test_diff_stats_of_a_padded_tensor_uses_its_values(padded):
    t, ref, expected, values = padded
    s = core.diff_stats(ref, t, threads=1)
    assert s.max_abs == pytest.approx(float(np.abs(values - expected).max()), rel=1e-6)
