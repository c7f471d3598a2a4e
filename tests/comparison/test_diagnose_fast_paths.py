"""The diagnosis's shortcuts give what the general paths give (issue 26: its per-tensor cost)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from aprqa import core
from aprqa.comparison._sampling import diff_f32, rel_l2, sample_rows, sample_subset, subset_at
from aprqa.comparison.diagnose import _fit_clearly_fails
from aprqa.comparison.diagnose_rows import _median


def _pairs(rng: np.random.Generator):
    a = rng.standard_normal(4096).astype(np.float32) * np.float32(0.02)
    yield a, a.copy()
    yield a, (a * 1.5).astype(np.float32)
    yield a, (a + 0.01).astype(np.float32)
    yield a, (a * 0.9 - 0.003).astype(np.float32)
    for sigma in (1e-6, 1e-4, 1e-3, 0.01, 0.05, 0.3):
        yield a, (a * (1 + sigma * rng.standard_normal(a.size))).astype(np.float32)
    yield a, rng.standard_normal(a.size).astype(np.float32)
    yield np.full(a.size, 3.0, np.float32) + a * np.float32(1e-3), (a * 1e-3 + 3.0001).astype(np.float32)
    bad = a.copy()
    bad[::100] = np.nan
    yield a, bad


def test_diff_f32_is_diff_stats() -> None:
    rng = np.random.default_rng(3)
    for a, b in _pairs(rng):
        fast, slow = dataclasses.asdict(diff_f32(a, b)), dataclasses.asdict(core.diff_stats(a, b, threads=1))
        assert fast.keys() == slow.keys()
        for key, want in slow.items():  # bit-equal: the same kernel with the same arguments
            got = fast[key]
            assert got == want or (isinstance(want, float) and math.isnan(want) and math.isnan(got)), key


def test_fit_shortcut_only_where_the_fit_fails() -> None:
    """Where the shortcut says "fails", the fit computed as affine() computes it is above the threshold;
    and it does fire on plain noise (else it saves nothing)."""
    rng = np.random.default_rng(4)
    fired = 0
    for a, b in _pairs(rng):
        st = diff_f32(a, b)
        n = st.n_finite
        ma, mb = st.sum_a / n, (st.sum_a + st.sum_d) / n
        saa = st.sum_a2 - n * ma * ma
        k = (st.sum_ab - n * ma * mb) / saa
        c = mb - k * ma
        fit_err = rel_l2(a * np.float32(k) + np.float32(c), b)
        for thr in (2.0 ** -7, 0.02, 0.1, fit_err / 1.3, fit_err / 1.2, fit_err * 0.99, fit_err):
            if _fit_clearly_fails(st, k, c, ma, mb, saa, thr):
                fired += 1
                assert fit_err > thr, (k, c, thr, fit_err)
    assert fired >= 10


def test_median_is_numpy_median() -> None:
    rng = np.random.default_rng(5)
    for n in range(1, 24):
        for _ in range(50):
            x = rng.standard_normal(n) * 10.0 ** rng.integers(-5, 5)
            if rng.random() < 0.2:
                x[rng.integers(n)] = rng.choice([np.nan, np.inf, -np.inf])
            with np.errstate(invalid="ignore"):
                want = float(np.median(x))
                got = _median(x)
            assert got == want or (math.isnan(got) and math.isnan(want))


@pytest.mark.parametrize("rows,cols", [(256, 2048), (2048, 4096), (7, 3), (1, 64), (4096, 1)])
def test_sample_subset(rows: int, cols: int) -> None:
    for budget in (1 << 12, 1 << 13):
        want = subset_at(sample_rows(rows, cols, 1 << 14), sample_rows(rows, cols, budget))
        got = sample_subset(rows, cols, 1 << 14, budget)
        assert (got is None) == (want is None)
        if want is not None:
            assert np.array_equal(got, want)
