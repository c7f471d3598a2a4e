"""The native matmul kernels (``forward.kernels.matmul`` over ``_core.matmul_q``).

Three checks per block type, on random blocks (random payload bytes, valid finite scales):

* the canonical form the kernels multiply is exact: ``s*q - m`` equals ``dequantize`` bit for bit;
* every SIMD level, and every thread count, gives the scalar reference's result bit for bit
  (vecdot.h defines the operations and their order; the integer block sums are exact);
* with f32 activations (the default) the result is the dequantize-then-matmul product within
  float32 rounding; with int8 activations (ggml's scheme) it is the product of the dequantized
  weights with the dequantized int8 activations within float32 rounding (bound derived below),
  and the product with the f32 activations within the activation-quantization bound.
"""

from __future__ import annotations

import numpy as np
import pytest

from aprqa import _core, core
from aprqa.quant.dtypes import DType
from aprqa.errors import UsageError
from aprqa.inference.kernels import matmul, matmul_levels, matmul_supported

U = 2.0 ** -24  # float32 unit roundoff

# (dtype, block bytes, offsets of its f16 scale fields)
BLOCKS = {
    DType.Q8_0: (34, (0,)), DType.Q4_0: (18, (0,)), DType.Q4_1: (20, (0, 2)), DType.Q5_0: (22, (0,)),
    DType.Q5_1: (24, (0, 2)), DType.IQ4_NL: (18, (0,)), DType.Q2_K: (84, (80, 82)), DType.Q3_K: (110, (108,)),
    DType.Q4_K: (144, (0, 2)), DType.Q5_K: (176, (0, 2)), DType.Q6_K: (210, (208,)), DType.IQ4_XS: (136, (0,)),
}


def random_rows(dt: DType, rows: int, n_in: int, seed: int = 0) -> np.ndarray:
    """Random blocks whose f16 scales are finite (in [-0.05, 0.05]); every other byte random."""
    size, scale_offsets = BLOCKS[dt]
    be = dt.info.block_elems
    rng = np.random.default_rng(seed)
    nb = rows * n_in // be
    raw = rng.integers(0, 256, (nb, size), dtype=np.uint8)
    for off in scale_offsets:
        raw[:, off:off + 2] = rng.uniform(-0.05, 0.05, nb).astype(np.float16).view(np.uint8).reshape(nb, 2)
    return raw.reshape(-1)


def _x(tokens: int, n_in: int, seed: int = 1) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((tokens, n_in)).astype(np.float32)
    x[0, :32] = 0.0  # an all-zero activation block (scale 0)
    return x


@pytest.mark.parametrize("dt", list(BLOCKS), ids=lambda d: d.lname)
def test_unpacked_form_is_the_dequantized_weight(dt):
    rows, n_in = 3, 512
    raw = random_rows(dt, rows, n_in)
    w = core.dequantize(raw, dt, (rows, n_in))
    ref = _core.vecdot_unpack(raw, int(dt), rows, n_in, 0)
    for level in range(len(matmul_levels())):
        q, s, m = _core.vecdot_unpack(raw, int(dt), rows, n_in, level)
        # each SIMD unpacker writes the scalar unpacker's q, scales and mins exactly
        assert np.array_equal(q, ref[0]) and np.array_equal(s, ref[1]), f"{dt.lname} level {level}"
        assert (m is None) == (ref[2] is None) and (m is None or np.array_equal(m, ref[2])), f"{dt.lname} level {level}"
        s_el = np.repeat(s, 16, axis=1)
        y = s_el * q.astype(np.float32)
        if m is not None:
            y = y - np.repeat(m, 16, axis=1)
        assert np.array_equal(y, w), f"{dt.lname} level {level}"


# 1 and 2 tokens: dequantized in registers (Q8_0/Q4_0/IQ4_NL/Q5_0 straight from the blocks); 7: partial
# token tiles. Rows: 37 = tiles of 4 and 1; 6 and 7: tiles of 2 and 3.
@pytest.mark.parametrize("tokens,rows", [(1, 37), (2, 6), (1, 7), (7, 37)],
                         ids=["decode", "decode2-rows6", "decode-rows7", "prefill"])
@pytest.mark.parametrize("dt", list(BLOCKS), ids=lambda d: d.lname)
def test_every_level_and_thread_count_is_bit_equal_to_the_scalar_reference(dt, tokens, rows):
    n_in = 512
    raw = random_rows(dt, rows, n_in, seed=2)
    x = _x(tokens, n_in)
    for int8_act in (True, False):
        ref = matmul(raw, dt, rows, n_in, x, threads=1, level=0, int8_act=int8_act)
        for level in range(len(matmul_levels())):
            for threads in (1, 3):
                got = matmul(raw, dt, rows, n_in, x, threads=threads, level=level, int8_act=int8_act)
                assert np.array_equal(got, ref), f"{dt.lname} {matmul_levels()[level]} {threads} threads {int8_act}"


@pytest.mark.parametrize("dt", list(BLOCKS), ids=lambda d: d.lname)
def test_f32_activations_give_the_dequantized_product_within_float_rounding(dt):
    rows, n_in, tokens = 9, 768, 3
    raw = random_rows(dt, rows, n_in, seed=3)
    x = _x(tokens, n_in, seed=4).astype(np.float64)
    got = matmul(raw, dt, rows, n_in, x, threads=1, level=0)
    w = core.dequantize(raw, dt, (rows, n_in)).astype(np.float64)
    # fma per element into 8 lanes of n/8 terms, then a 3-level fold: (n/8 + 3)·u·Σ|w·x| first order
    tol = (n_in / 8 + 3) * U * (np.abs(x) @ np.abs(w).T)
    assert np.all(np.abs(got - x @ w.T) <= tol), dt.lname


@pytest.mark.parametrize("dt", list(BLOCKS), ids=lambda d: d.lname)
def test_int8_activations_give_the_dequantized_product_within_float_rounding(dt):
    rows, n_in, tokens = 9, 768, 3
    raw = random_rows(dt, rows, n_in, seed=3)
    x = _x(tokens, n_in, seed=4)
    got = matmul(raw, dt, rows, n_in, x, threads=1, level=0, int8_act=True).astype(np.float64)
    q, s, m = _core.vecdot_unpack(raw, int(dt), rows, n_in, 0)
    aq, ad, axs = _core.quantize_act(x)
    xhat = (aq.astype(np.float64) * np.repeat(ad, 32, axis=1))            # [T, n]
    main = (np.repeat(s, 16, axis=1) * q).astype(np.float64)              # [rows, n], exact in f32
    exact = xhat @ main.T
    mag = np.abs(xhat) @ np.abs(main).T
    # Float32 error of the defined evaluation: each term rounds at most twice (s*dx, then the fma: 2u),
    # each lane sums n/256 terms ((n/256)u), the 8-lane fold adds 3 more roundings: a first-order
    # bound of (n/256 + 5)·u·Σ|terms|. The min term: n/16 products summed sequentially,
    # (n/16 + 2)·u·Σ|m·xs|, and the final subtraction one more rounding of the result.
    tol = (n_in / 256 + 5) * U * mag
    if m is not None:
        xs = axs.astype(np.float64)
        exact = exact - xs @ m.astype(np.float64).T
        tol = tol + (n_in / 16 + 2) * U * (np.abs(xs) @ np.abs(m.astype(np.float64)).T)
    tol = tol + U * np.abs(exact)
    assert np.all(np.abs(got - exact) <= tol * 1.01 + 1e-30), dt.lname
    # against f32 activations: each activation is off by at most half its block's step (d/2)
    w = core.dequantize(raw, dt, (rows, n_in)).astype(np.float64)
    step = np.repeat(ad, 32, axis=1).astype(np.float64) / 2 * 1.0001    # rounding of d itself
    bound = step @ np.abs(w).T + tol * 1.01 + 1e-30
    assert np.all(np.abs(got - x.astype(np.float64) @ w.T) <= bound + 1e-6 * np.abs(exact)), dt.lname


@pytest.mark.parametrize("dt", [DType.F32, DType.F16, DType.BF16], ids=lambda d: d.lname)
def test_float_rows(dt):
    rows, n_in, tokens = 11, 100, 7  # 100: a tail after the 8-wide lanes
    w = np.random.default_rng(5).standard_normal((rows, n_in)).astype(np.float32)
    raw = core.quantize(w, dt)
    x = _x(tokens, n_in)
    ref = matmul(raw, dt, rows, n_in, x, threads=1, level=0)
    for level in range(len(matmul_levels())):
        assert np.array_equal(matmul(raw, dt, rows, n_in, x, threads=2, level=level), ref)
    wd = core.dequantize(raw, dt, (rows, n_in)).astype(np.float64)
    exact = x.astype(np.float64) @ wd.T
    tol = (n_in / 8 + 4) * U * (np.abs(x.astype(np.float64)) @ np.abs(wd).T)
    assert np.all(np.abs(ref - exact) <= tol)


def test_out_may_be_a_column_block_and_bounds_are_checked():
    dt, rows, n_in = DType.Q8_0, 8, 64
    raw = random_rows(dt, rows, n_in)
    x = _x(2, n_in)
    wide = np.full((2, 20), 7.0, np.float32)
    matmul(raw, dt, rows, n_in, x, out=wide[:, 4:12])
    assert np.array_equal(wide[:, 4:12], matmul(raw, dt, rows, n_in, x))
    assert np.all(wide[:, :4] == 7.0) and np.all(wide[:, 12:] == 7.0)
    with pytest.raises(UsageError, match="weight buffer holds"):
        matmul(raw[:-1], dt, rows, n_in, x)
    with pytest.raises(UsageError, match="not a multiple"):
        matmul(raw, dt, rows * 2, n_in // 2 + 16, x[:, :48])
    with pytest.raises(UsageError, match="expected"):
        matmul(raw, dt, rows, n_in, x[:, :32])
    assert matmul_supported(DType.Q4_K, 512) and not matmul_supported(DType.Q4_K, 96)
    assert not matmul_supported(DType.IQ2_XXS, 256)


def test_non_finite_activations_propagate():
    dt, rows, n_in = DType.Q4_K, 2, 256
    raw = random_rows(dt, rows, n_in)
    x = _x(2, n_in)
    x[1, 40] = np.inf
    for int8_act in (True, False):
        out = matmul(raw, dt, rows, n_in, x, int8_act=int8_act)
        assert np.all(np.isfinite(out[0])) and not np.any(np.isfinite(out[1]))


# Tall matrices get work items of more than 16 rows (about 16 items per thread, a multiple of the
# 4-row tile): the rows of each tile, and so every result, must not depend on the thread count.
# 1029 rows = 257 tiles of 4 and one of 1.
@pytest.mark.parametrize("dt", [DType.Q5_0, DType.Q4_K, DType.Q6_K, DType.F16], ids=lambda d: d.lname)
@pytest.mark.parametrize("tokens", [1, 7])
def test_tall_matrices_are_bit_equal_at_every_thread_count(dt, tokens):
    rows, n_in = 1029, 256
    if dt == DType.F16:
        raw = core.quantize(np.random.default_rng(3).standard_normal((rows, n_in)).astype(np.float32), dt)
    else:
        raw = random_rows(dt, rows, n_in, seed=3)
    x = _x(tokens, n_in)
    for int8_act in (True, False):
        ref = matmul(raw, dt, rows, n_in, x, threads=1, level=0, int8_act=int8_act)
        for threads in (2, 3, 5):
            for level in range(len(matmul_levels())):
                got = matmul(raw, dt, rows, n_in, x, threads=threads, level=level, int8_act=int8_act)
                assert np.array_equal(got, ref), f"{threads} threads, level {level}, int8 {int8_act}"


def test_back_to_back_and_concurrent_calls_through_the_pool():
    """Many short jobs in a row (workers still polling, or joining a job after the caller took every
    item, or one after it closed) and calls from several Python threads at once: every result equals
    the one-thread result."""
    from concurrent.futures import ThreadPoolExecutor

    cases = []
    for i, (dt, rows) in enumerate([(DType.Q5_0, 5), (DType.Q4_K, 64), (DType.Q8_0, 300)]):
        raw = random_rows(dt, rows, 256, seed=10 + i)
        x = _x(1, 256, seed=20 + i)
        cases.append((raw, dt, rows, x, matmul(raw, dt, rows, 256, x, threads=1)))

    def hammer(k: int) -> int:
        bad = 0
        for j in range(300):
            raw, dt, rows, x, ref = cases[(j + k) % len(cases)]
            bad += not np.array_equal(matmul(raw, dt, rows, 256, x, threads=2 + (j + k) % 2), ref)
        return bad

    assert hammer(0) == 0
    with ThreadPoolExecutor(3) as ex:
        assert sum(ex.map(hammer, range(3))) == 0
