"""core.sketch_filter: the batched SWAPPED screen's per-pair filter.

Truth: the same inequality in numpy with float64 dot products (exact for float32 inputs to far below
the float32 dot's rounding), which the kernel must agree with wherever the two sides of the inequality
differ by more than that rounding; the AVX2 and scalar paths must agree everywhere, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from aprqa import core
from aprqa.errors import UsageError

D = core.SKETCH_DIM


def _inputs(rng: np.random.Generator, n_ref: int, n_q: int):  # type: ignore[no-untyped-def]
    refs = rng.standard_normal((n_ref, D)).astype(np.float32)
    # queries near some references (inside and outside the reach), and far from all
    qs = rng.standard_normal((n_q, D)).astype(np.float32)
    near = rng.integers(0, n_ref, n_q // 2)
    qs[: n_q // 2] = refs[near] + rng.uniform(0.001, 0.5, (n_q // 2, 1)).astype(np.float32) * \
        rng.standard_normal((n_q // 2, D)).astype(np.float32)
    sk2 = np.einsum("ij,ij->i", refs.astype(np.float64), refs.astype(np.float64))
    sb2 = np.einsum("ij,ij->i", qs.astype(np.float64), qs.astype(np.float64))
    root_e = np.sqrt(sk2) * rng.uniform(0.5, 2, n_ref)
    slack = 1e-6 * np.sqrt(sk2)
    radius = rng.uniform(0.01, 0.5, n_q)
    reach0 = rng.uniform(0, 0.1, n_q)
    refs[3, 5] = np.nan  # a non-finite reference: kept by every query
    return refs, sk2, root_e, slack, qs, sb2, radius, reach0


@pytest.mark.parametrize("n_ref", [1, 7, 8, 203])  # below, at and past one vector of 8 references
def test_filter_agrees_with_float64_and_its_paths_agree_bit_for_bit(n_ref):
    rng = np.random.default_rng(n_ref)
    refs, sk2, root_e, slack, qs, sb2, radius, reach0 = _inputs(rng, max(n_ref, 4), 64)
    refs, sk2, root_e, slack = refs[:n_ref], sk2[:n_ref], root_e[:n_ref], slack[:n_ref]
    args = (np.ascontiguousarray(refs.T), sk2, root_e, slack, qs, sb2, radius, reach0)
    got = core.sketch_filter(*args, threads=2)
    assert got.shape == (64, n_ref) and got.dtype == bool
    assert np.array_equal(got, core.sketch_filter(*args, simd=False))
    dot = qs.astype(np.float64) @ refs.T.astype(np.float64)
    low2 = sk2[None, :] + sb2[:, None] - 2 * dot
    reach2 = (radius[:, None] * root_e[None, :] + reach0[:, None] + slack[None, :]) ** 2
    with np.errstate(invalid="ignore"):
        want = ~(low2 > reach2)
    # the float32 dot's rounding: at most 64·2^-24·Σ|products| apart, times 2 in low2
    margin = 2 * 64 * 2.0 ** -24 * (np.abs(qs.astype(np.float64)) @ np.abs(refs.T.astype(np.float64)))
    clear = ~(np.abs(low2 - reach2) <= margin)  # nan: a NaN reference, decided (kept) on both sides
    assert np.array_equal(got[clear], want[clear])
    assert clear.mean() > 0.9 and want.any() and (~want).any()  # both outcomes exercised
    if n_ref > 3:
        assert got[:, 3].all()


def test_bad_inputs_are_refused():
    rng = np.random.default_rng(0)
    refs, sk2, root_e, slack, qs, sb2, radius, reach0 = _inputs(rng, 10, 4)
    with pytest.raises(UsageError, match="float32"):
        core.sketch_filter(refs.T.astype(np.float64), sk2, root_e, slack, qs, sb2, radius, reach0)
    with pytest.raises(UsageError, match=r"\(4,\)"):
        core.sketch_filter(np.ascontiguousarray(refs.T), sk2, root_e, slack, qs, sb2[:3], radius, reach0)
