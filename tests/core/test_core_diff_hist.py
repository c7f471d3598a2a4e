"""Histogram buckets of the fused diff, checked value by value against the documented edges.

The kernels bucket |d| from its exponent bits (csrc/diff.cpp); the oracle here is ``core.hist_bucket_edges()``
(bucket 0: exactly 0, then [lo, hi) ranges, 63: non-finite pairs) applied with numpy comparisons. With a = 0,
d = b exactly, so every value of b lands in the bucket of |b|. All 65,536 f16 bit patterns and a dense f32 sample
(every exponent, mantissa patterns, ±1 ulp around each edge, subnormals, ±0, inf, NaN) are grouped by their oracle
bucket; each group is compared in one call of at least 256 elements (the SIMD lanes' chunk), so a value in the wrong
bucket shows up in the wrong slot of that call's histogram.
"""

from __future__ import annotations

import numpy as np
import pytest

from aprqa import _core, core
from aprqa.dtypes import DType

EDGES = core.hist_bucket_edges()


def oracle_bucket(v: np.ndarray) -> np.ndarray:
    """Bucket of |v| (float64 values) from the documented edges; non-finite -> 63."""
    ad = np.abs(v.astype(np.float64))
    out = np.full(ad.shape, 63, np.int64)
    fin = np.isfinite(ad)
    out[fin & (ad == 0)] = 0
    for k, (lo, hi) in enumerate(EDGES[1:63], start=1):
        lo_ok = ad > 0 if k == 1 else ad >= lo
        out[fin & lo_ok & (ad < hi)] = k
    return out


def _check_groups(b_raw: np.ndarray, b_dt: DType, a_dt: DType, values: np.ndarray, simd: int) -> None:
    """values: float64 view of b_raw's elements. One diff per oracle bucket (a = +0 of a_dt)."""
    want = oracle_bucket(values)
    item = b_raw.itemsize
    for k in np.unique(want):
        idx = np.flatnonzero(want == k)
        idx = np.resize(idx, max(idx.size, 4096))  # >= 256 per call: the lanes' chunks, not only the tail
        raw = np.ascontiguousarray(b_raw[idx]).view(np.uint8)
        n = idx.size
        zero = np.zeros(n * (2 if a_dt is DType.F16 else 4), np.uint8)
        r = _core.diff_plain(zero, int(a_dt), raw, int(b_dt), n, 0.0, 0.0, 1, simd)
        hist = np.asarray(r["hist"])
        assert hist[k] == n and hist.sum() == n, (b_dt, a_dt, simd, int(k), np.flatnonzero(hist).tolist(), item)


@pytest.mark.parametrize("simd", [0, 1])
@pytest.mark.parametrize("a_dt", [DType.F16, DType.F32], ids=["f16-pair", "f32-vs-f16"])
def test_every_f16_value_lands_in_its_documented_bucket(simd: int, a_dt: DType) -> None:
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    _check_groups(bits, DType.F16, a_dt, bits.view(np.float16).astype(np.float64), simd)


def _dense_f32_sample() -> np.ndarray:
    rng = np.random.default_rng(14)
    exps = np.arange(256, dtype=np.uint32) << 23
    mants = np.concatenate([np.array([0, 1, 2, 0x3FFFFF, 0x400000, 0x7FFFFE, 0x7FFFFF], np.uint32),
                            rng.integers(0, 1 << 23, 24, dtype=np.uint32)])
    grid = (exps[:, None] | mants[None, :]).reshape(-1)
    edges = np.array([lo for lo, _ in EDGES[2:63]], np.float32).view(np.uint32)
    near = (edges[:, None] + np.array([-2, -1, 0, 1, 2], np.int64)[None, :]).astype(np.uint32).reshape(-1)
    sub = rng.integers(1, 1 << 23, 2000, dtype=np.uint32)  # subnormals
    bits = np.concatenate([grid, near, sub, rng.integers(0, 1 << 31, 20000, dtype=np.uint32)])
    return np.concatenate([bits, bits | np.uint32(1 << 31)])  # both signs (incl. -0, -inf, NaN)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("simd", [0, 1])
def test_dense_f32_sample_lands_in_its_documented_bucket(simd: int) -> None:
    bits = _dense_f32_sample()
    _check_groups(bits, DType.F32, DType.F32, bits.view(np.float32).astype(np.float64), simd)


def test_oracle_matches_the_edges_table() -> None:
    assert oracle_bucket(np.array([0.0, -0.0, 2.0**-149, 2.0**-40, 2.0**20, np.inf, np.nan])).tolist() == \
        [0, 0, 1, 2, 62, 63, 63]
    assert oracle_bucket(np.array([np.nextafter(2.0**-40, 0), np.nextafter(2.0**20, 0)])).tolist() == [1, 61]
