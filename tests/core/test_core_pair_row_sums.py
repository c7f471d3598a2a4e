"""core.pair_row_sums: per-row sums of pairs of tensors, the batched diagnosis screen's statistics.

Truth: a numpy model of the kernel's float32 lanes (element e in lane e % 8, each product rounded,
then added in order; the lanes added in float64), which the scalar and AVX2 paths must equal bit for
bit; and float64 sums, which every sum must stay within its stated bound of."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from gguf import GGMLQuantizationType as G
from gguf.quants import dequantize as gguf_dequantize
from gguf.quants import quantize as gguf_quantize

from aprqa import core
from aprqa.errors import UsageError
from aprqa.quant.dtypes import DType


@dataclass
class Payload:
    """A tensor as the core's wrappers take it (a ``TensorInfo`` stand-in over bytes in memory)."""

    data: np.ndarray
    dtype: DType
    shape: tuple[int, ...]

    def raw(self) -> np.ndarray:
        return self.data


def _lane_model(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The kernel's arithmetic in numpy float32 scalars-by-lane: [5] float64 for one row pair."""
    n = a.size
    pad = -n % 8
    x = np.concatenate([a, np.zeros(pad, np.float32)]).reshape(-1, 8)
    y = np.concatenate([b, np.zeros(pad, np.float32)]).reshape(-1, 8)
    s = np.zeros((5, 8), np.float32)
    for t in range(x.shape[0]):
        live = slice(0, 8) if (t + 1) * 8 <= n else slice(0, n - t * 8)  # the tail adds only its elements
        xv, yv = x[t, live], y[t, live]
        d = yv - xv
        s[0, live] += xv * xv
        s[1, live] += d * d
        s[2, live] += xv * d
        s[3, live] += xv
        s[4, live] += d
    out = np.zeros(5)
    for k in range(5):
        for v in s[k]:
            out[k] += float(v)
    return out


def _pair(rows: int, cols: int, dtype: DType, seed: int) -> tuple[Payload, Payload, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)
    b = (a * (1 + 0.1 * rng.standard_normal((rows, cols)))).astype(np.float32)
    if dtype is DType.F16:
        pa, pb = (Payload(x.astype(np.float16).view(np.uint8).reshape(-1), dtype, (rows, cols)) for x in (a, b))
        va, vb = (x.astype(np.float16).astype(np.float32) for x in (a, b))
    else:
        qa, qb = (gguf_quantize(x, G.Q8_0).reshape(-1) for x in (a, b))
        pa, pb = Payload(qa, dtype, (rows, cols)), Payload(qb, dtype, (rows, cols))
        va, vb = (gguf_dequantize(q, G.Q8_0).reshape(rows, cols).astype(np.float32) for q in (qa, qb))
    return pa, pb, va, vb


@pytest.mark.parametrize("dtype,cols", [(DType.F16, 101), (DType.F16, 2048), (DType.Q8_0, 96)])
def test_sums_equal_the_lane_model_bit_for_bit_on_both_paths(dtype, cols):
    rows = 24
    pairs = [_pair(rows, cols, dtype, seed) for seed in (1, 2, 3)]
    idx = np.array([5, 0, rows - 1, 5, 13], np.int64)  # any order, repeats allowed
    got = core.pair_row_sums([p[0] for p in pairs], [p[1] for p in pairs], (rows, cols), idx, threads=2)
    scalar = core.pair_row_sums([p[0] for p in pairs], [p[1] for p in pairs], (rows, cols), idx, simd=False)
    assert got.shape == (3, len(idx), 5) and got.dtype == np.float64
    assert np.array_equal(got, scalar)
    for i, (_, _, va, vb) in enumerate(pairs):
        for j, r in enumerate(idx):
            want = _lane_model(va[r], vb[r])
            assert np.array_equal(got[i, j], want), (i, j, got[i, j], want)
            # and within the stated bound of the float64 sums of the same float32 terms
            x, d = va[r].astype(np.float64), (vb[r] - va[r]).astype(np.float64)
            terms = [x * x, d * d, x * d, x, d]
            bound = (cols / 8 + 3) * 2.0 ** -24
            for k, t in enumerate(terms):
                assert abs(got[i, j, k] - t.sum()) <= bound * np.abs(t).sum() + 1e-300, (k, got[i, j, k], t.sum())


def test_non_finite_values_propagate():
    pa, pb, _, _ = _pair(4, 64, DType.F16, 9)
    bad = pb.data.view(np.float16).copy()
    bad[2 * 64 + 7] = np.inf
    got = core.pair_row_sums([pa], [Payload(bad.view(np.uint8), DType.F16, (4, 64))], (4, 64), [1, 2])
    assert np.isfinite(got[0, 0]).all() and not np.isfinite(got[0, 1, 1])


def test_bad_calls_are_refused():
    pa, pb, _, _ = _pair(4, 64, DType.F16, 9)
    with pytest.raises(UsageError, match="2 reference sources but 1"):
        core.pair_row_sums([pa, pa], [pb], (4, 64), [0])
    with pytest.raises(UsageError, match="outside"):
        core.pair_row_sums([pa], [pb], (4, 64), [4])
    short = Payload(pb.data[:-2], DType.F16, (4, 64))
    with pytest.raises(UsageError, match=r"sources\[0\].*need"):
        core.pair_row_sums([pa], [short], (4, 64), [0])
