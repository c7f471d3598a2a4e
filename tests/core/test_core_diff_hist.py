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
from aprqa.quant.dtypes import DType

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


BLOCK = 2048  # elements the f32-lane kernel histograms at a time (kHistChunk in csrc/diff.cpp)


def _f16_pairs_with_spans(spans: list[int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One 2048-element block per entry of spans (the f32-lane kernel histograms 2048 elements at a time): the block's
    nonzero |d| occupy about `spans[i]` consecutive buckets from a random one (f16 pairs: buckets 18..58; rounding
    to the f16 grid may move a few), 20 d are zero, half the blocks have a = 0 (d = b exactly) and half a nearby a (d = b - a, the f16 grid)."""
    a_all, b_all = [], []
    for i, s in enumerate(spans):
        first = int(rng.integers(18, 58 - s + 1))  # bucket k = [2^(k-42), 2^(k-41)); |d| < 2^16
        k = np.concatenate([np.arange(first, first + s), rng.integers(first, first + s, BLOCK - s)])
        sign = rng.choice([-1.0, 1.0], BLOCK)
        d = np.exp2(k - 42.0) * (1.0 + rng.integers(0, 1024, BLOCK) / 1024.0) * sign
        # a of the opposite sign keeps |b| <= |d| (finite)
        a = np.zeros(BLOCK) if i % 2 else -sign * np.exp2(k - 42.0 + rng.integers(-3, 1, BLOCK))
        a16 = a.astype(np.float16)
        b16 = (a16.astype(np.float64) + d).astype(np.float16)
        zero = rng.integers(0, BLOCK, 20)
        b16[zero] = a16[zero]
        a_all.append(a16)
        b_all.append(b16)
    return np.concatenate(a_all), np.concatenate(b_all)


@pytest.mark.parametrize("simd", [0, 1])
@pytest.mark.parametrize("dt", [DType.F16, DType.F32], ids=["f16-pair", "f32-pair"])
def test_histogram_over_wide_and_narrow_spans(simd: int, dt: DType) -> None:
    """2048-element blocks whose |d| occupy 1 to 40 buckets: the SIMD counter takes windows of 16 buckets from
    the block's smallest nonzero one (two buckets per shuffle, a shorter window at the end), so spans of 1 to
    40 cover one, several and partial windows; the histogram must equal the oracle's, and so must n_equal, max
    and argmax. As f32 values the same pairs take the f32 bucket bytes (and, where f32 rounds b - a, the
    double |d| of the chunk)."""
    rng = np.random.default_rng(21)
    spans = [1, 2, 3, 15, 16, 17, 31, 32, 33, 40, 8, 9, 40, 1]
    a16, b16 = _f16_pairs_with_spans(spans, rng)
    d = b16.astype(np.float64) - a16.astype(np.float64)
    want = np.bincount(oracle_bucket(d), minlength=64)
    got_spans = [int(np.ptp(oracle_bucket(d[i:i + BLOCK])[d[i:i + BLOCK] != 0]) + 1) for i in range(0, d.size, BLOCK)]
    assert max(got_spans) >= 40 and 16 in got_spans and 17 in got_spans and 1 in got_spans, got_spans
    n = d.size
    ra, rb = (a16, b16) if dt is DType.F16 else (a16.astype(np.float32), b16.astype(np.float32))
    r = _core.diff_plain(ra.view(np.uint8), int(dt), rb.view(np.uint8), int(dt), n, 0.0, 0.0, 1, simd)
    assert np.asarray(r["hist"]).tolist() == want.tolist()
    assert r["n_equal"] == int((a16.view(np.uint16) == b16.view(np.uint16)).sum())  # f16 -> f32 is injective
    assert r["max_abs"] == float(np.abs(d).max()) and r["argmax"] == int(np.argmax(np.abs(d)))
