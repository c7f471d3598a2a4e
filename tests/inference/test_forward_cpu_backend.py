"""The CPU backend's own threading: row-split matmuls, per-kv-head attention, LM-head panels.

Oracles are plain numpy (float64 where it reduces) on the same inputs; the worker split must not
change what is computed, so the tolerance is float32 GEMM rounding over K ≤ 300 terms.
"""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from aprqa.inference.cpu_backend import NumpyBackend

RNG = np.random.default_rng(7)
TOL = 1e-4  # float32 dot products of ≤ 300 terms of O(1) values; BLAS panel order differs from the oracle's


def _f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("threads", [1, 2, 3, 5])
def test_linears_equal_separate_products(threads):
    be = NumpyBackend(threads)
    x = _f32(9, 300)
    ws = [_f32(37, 300), _f32(5, 300), _f32(130, 300)]  # row counts that do not fall on worker cuts
    bs = [_f32(37), None, _f32(130)]
    with be.compute():
        ys = be.linears(x, ws, bs)
    for y, w, b in zip(ys, ws, bs):
        want = x.astype(np.float64) @ w.T.astype(np.float64) + (0 if b is None else b)
        assert y.shape == want.shape and y.dtype == np.float32 and y.flags.c_contiguous
        assert np.abs(y - want).max() <= TOL


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_parallel_covers_every_index_once(threads):
    be = NumpyBackend(threads)
    for n in (0, 1, 15, 16, 17, 100, 1000):
        seen = np.zeros(n, np.int64)

        def mark(lo: int, hi: int) -> None:
            seen[lo:hi] += 1

        be._parallel(n, mark, align=16)
        assert (seen == 1).all(), (n, seen)


def test_worker_error_reaches_the_caller():
    be = NumpyBackend(2)

    def fail_late(lo: int, hi: int) -> None:
        if lo > 0:
            raise ValueError("worker failed")

    with pytest.raises(ValueError, match="worker failed"):
        be._parallel(100, fail_late)


def test_head_rows_fill_a_column_block():
    be = NumpyBackend(2)
    x, w = _f32(6, 64), _f32(2500, 64)  # more rows than one panel per worker
    out = np.full((6, 3000), np.nan, np.float32)
    with be.compute():
        be.head_rows(x, w, out[:, 300:2800])
    want = x.astype(np.float64) @ w.T.astype(np.float64)
    assert np.abs(out[:, 300:2800] - want).max() <= TOL
    assert np.isnan(out[:, :300]).all() and np.isnan(out[:, 2800:]).all()


def _attention_oracle(q, k_all, v_all, pos0):
    t_len, nh, hd = q.shape
    nkv, s_len, _ = k_all.shape
    g = nh // nkv
    out = np.empty((t_len, nh, hd))
    for h in range(nh):
        k, v = k_all[h // g].astype(np.float64), v_all[h // g].astype(np.float64)
        s = q[:, h].astype(np.float64) @ k.T / np.sqrt(hd)
        s[np.arange(s_len)[None, :] > (pos0 + np.arange(t_len))[:, None]] = -np.inf
        p = np.exp(s - s.max(-1, keepdims=True))
        out[:, h] = (p / p.sum(-1, keepdims=True)) @ v
    return out.reshape(t_len, nh * hd)


@pytest.mark.parametrize("nh,nkv,pos0", [(4, 1, 0), (6, 2, 0), (6, 3, 5), (4, 4, 2)])
def test_attention_per_kv_head_matches_oracle(nh, nkv, pos0):
    be = NumpyBackend(2)
    t_len, hd = 7, 16
    q = _f32(t_len, nh, hd)
    kv = _f32(t_len + pos0, nkv, hd), _f32(t_len + pos0, nkv, hd)
    k_all, v_all = (a.transpose(1, 0, 2) for a in kv)  # strided views, as the runner passes without a cache
    with be.compute():
        got = be.attention(q, k_all, v_all, pos0)
    assert got.shape == (t_len, nh * hd)
    assert np.abs(got - _attention_oracle(q, k_all, v_all, pos0)).max() <= TOL


def test_attention_above_the_parallel_threshold_matches_the_serial_run():
    """Short contexts run their kv heads in the caller (the cases above); long ones on the pool."""
    from aprqa.inference.cpu_backend import _ATTN_PARALLEL_MACS

    nh, nkv, t_len, hd, pos0 = 4, 2, 64, 64, 200
    assert (nh // nkv) * t_len * (t_len + pos0) * hd >= _ATTN_PARALLEL_MACS
    q = _f32(t_len, nh, hd)
    k_all, v_all = (np.ascontiguousarray(_f32(t_len + pos0, nkv, hd).transpose(1, 0, 2)) for _ in range(2))
    outs = []
    for threads in (1, 2):
        be = NumpyBackend(threads)
        with be.compute():
            outs.append(be.attention(q, k_all, v_all, pos0))
    assert np.array_equal(outs[0], outs[1])
    assert np.abs(outs[1] - _attention_oracle(q, k_all, v_all, pos0)).max() <= TOL


def test_compute_holds_blas_at_one_thread_and_restores():
    be = NumpyBackend(2)
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    if not blas:
        pytest.skip("numpy's BLAS is not visible to threadpoolctl")
    before = [i["num_threads"] for i in blas]
    with be.compute():
        assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before
