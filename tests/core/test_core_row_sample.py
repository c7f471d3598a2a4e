"""core.RowSample: what a plain diff_stats pass takes for a failing pair's diagnosis as it decodes its pieces.

Its row sums are pair_row_sums' statistics (bit for bit where no row straddles two of the pass's
pieces, within pair_row_sums' stated bound where one does), its taken values are the decoded elements
at the asked positions, whatever the dtype, thread count or chunking, and the pass's own statistics
do not change."""

from __future__ import annotations

import numpy as np
import pytest

from aprqa import core
from aprqa.quant.dtypes import DType

DTYPES = [DType.F16, DType.BF16, DType.F32, DType.Q8_0, DType.Q4_K]


def _pair(dt: DType, rows: int, cols: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((rows, cols), dtype=np.float32)
    b = a + 0.05 * rng.standard_normal((rows, cols), dtype=np.float32)
    return core.quantize(a, dt), core.quantize(b, dt)


def _bound(cols: int) -> float:
    return (cols / 8 + 3) * 2.0 ** -24  # pair_row_sums' bound, relative to the magnitude of the terms


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("threads,chunk_bytes", [(1, 0), (2, 0), (2, 40_000)])
def test_rows_in_whole_pieces_give_pair_row_sums_bit_for_bit(dt, threads, chunk_bytes):
    rows, cols = 48, 2048  # a row is one of the pass's 2048-element pieces
    qa, qb = _pair(dt, rows, cols)
    rows_idx = np.array([0, 5, 17, 30, 47])
    s = core.RowSample(rows_idx, cols)
    core.diff_stats(qa, qb, a_dtype=dt, b_dtype=dt, shape=(rows * cols,), threads=threads, chunk_bytes=chunk_bytes,
                    row_sample=s)
    want = core.pair_row_sums(core.resolve_sources([qa], (rows, cols), [dt]),
                                    core.resolve_sources([qb], (rows, cols), [dt]), (rows, cols), rows_idx)
    assert np.array_equal(s.sums, want[0])


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("threads,chunk_bytes", [(1, 0), (2, 0), (2, 30_000)])
def test_rows_across_pieces_and_taken_values(dt, threads, chunk_bytes):
    rows, cols = 40, 3072  # rows straddle pieces: their parts add in float64
    qa, qb = _pair(dt, rows, cols, seed=1)
    a = core.dequantize(qa, dt, (rows, cols)).astype(np.float64)
    b = core.dequantize(qb, dt, (rows, cols)).astype(np.float64)
    rows_idx = np.array([1, 2, 20, 39])
    rng = np.random.default_rng(2)
    take_a = np.unique(rng.integers(0, rows * cols, 300))
    take_b = np.r_[np.arange(5 * cols, 7 * cols), np.unique(rng.integers(7 * cols, rows * cols, 200))]
    s = core.RowSample(rows_idx, cols, [take_a, take_a[::7]], [take_b])
    plain = core.diff_stats(qa, qb, a_dtype=dt, b_dtype=dt, shape=(rows * cols,), threads=threads,
                            chunk_bytes=chunk_bytes)
    sampled = core.diff_stats(qa, qb, a_dtype=dt, b_dtype=dt, shape=(rows * cols,), threads=threads,
                              chunk_bytes=chunk_bytes, row_sample=s)
    assert sampled == plain  # the pass's own statistics are untouched
    for got, at in zip(s.taken_a, [take_a, take_a[::7]]):  # overlapping lists, each its own output
        assert np.array_equal(got, a.reshape(-1)[at].astype(np.float32))
    assert np.array_equal(s.taken_b[0], b.reshape(-1)[take_b].astype(np.float32))
    _assert_within_bound(s.sums, a[rows_idx], b[rows_idx], cols)


def _assert_within_bound(got: np.ndarray, a: np.ndarray, b: np.ndarray, cols: int) -> None:
    """``got`` within pair_row_sums' bound of the exact row sums of rows ``a``, ``b`` (d = b − a in float32)."""
    ar, dr = a.astype(np.float64), (b.astype(np.float32) - a.astype(np.float32)).astype(np.float64)
    exact = np.stack([(ar * ar).sum(1), (dr * dr).sum(1), (ar * dr).sum(1), ar.sum(1), dr.sum(1)], axis=1)
    magnitude = np.stack([(ar * ar).sum(1), (dr * dr).sum(1), np.abs(ar * dr).sum(1), np.abs(ar).sum(1),
                          np.abs(dr).sum(1)], axis=1)
    assert (np.abs(got - exact) <= _bound(cols) * magnitude).all()


def test_again_gives_fresh_outputs_of_the_same_positions():
    qa, qb = _pair(DType.F16, 8, 2048)
    first = core.RowSample([0, 7], 2048, [[3, 9]], [[4], []])
    second = first.again()
    core.diff_stats(qa, qb, a_dtype=DType.F16, b_dtype=DType.F16, shape=(8 * 2048,), row_sample=second)
    assert not first.sums.any() and not first.taken_a[0].any()  # untouched
    assert second.rows is first.rows and second.sums.any() and [t.shape for t in second.taken_b] == [(1,), (0,)]


@pytest.mark.parametrize("kw,match", [
    (dict(rows=[3, 3]), "strictly increasing"),
    (dict(rows=[2, 1]), "strictly increasing"),
    (dict(rows=[-1]), "strictly increasing"),
    (dict(take_a=[[5, 4]]), r"take_a\[0\] must be non-negative and strictly increasing"),
    (dict(cols=0), "cols must be > 0"),
])
def test_bad_samples_are_refused_before_the_pass(kw, match):
    args = dict(rows=[0], cols=2048, take_a=(), take_b=())
    args.update(kw)
    with pytest.raises(core.CoreUsageError, match=match):
        core.RowSample(**args)


@pytest.mark.parametrize("sample,match", [
    (lambda: core.RowSample([8], 2048), r"sample_rows\[0\] = 8 is outside \[0, 8\)"),
    (lambda: core.RowSample([0], 2048, [[8 * 2048]]), r"take_a\[0\]\[0\] = 16384 is outside"),
    (lambda: core.RowSample([0], 2048, (), [[1], [0, 8 * 2048 + 1]]), r"take_b\[1\]\[1\] = 16385 is outside"),
    (lambda: core.RowSample([0], 3000), "3000 columns do not divide"),
])
def test_samples_outside_the_pair_are_refused_with_their_position(sample, match):
    qa, qb = _pair(DType.F16, 8, 2048)
    with pytest.raises(core.CoreUsageError, match=match):
        core.diff_stats(qa, qb, a_dtype=DType.F16, b_dtype=DType.F16, shape=(8 * 2048,), row_sample=sample())


def test_a_sample_needs_a_plain_pass_and_all_its_buffers():
    qa, qb = _pair(DType.F16, 8, 2048)
    with pytest.raises(core.CoreUsageError, match="untransformed pair only"):
        core.diff_stats(qa, qb, a_dtype=DType.F16, b_dtype=DType.F16, shape=(8, 2048),
                        transform=("transpose", 8, 2048), row_sample=core.RowSample([0], 2048))
    with pytest.raises(ValueError, match="together"):  # the native entry point checks its own arguments
        core._core.diff_plain(qa, int(DType.F16), qb, int(DType.F16), 8 * 2048, sample_rows=np.zeros(1, np.int64),
                              sample_cols=2048, row_sums=np.zeros((1, 5)))
    with pytest.raises(ValueError, match="row_sums"):  # an output too small for the rows
        core._core.diff_plain(qa, int(DType.F16), qb, int(DType.F16), 8 * 2048, sample_rows=np.arange(2),
                              sample_cols=2048, row_sums=np.zeros((1, 5)), take_a=[], taken_a=[], take_b=[],
                              taken_b=[], reread_rows=[], reread_dtypes=[], reread_sums=[])
    with pytest.raises(ValueError, match="1 position lists but 0 outputs"):
        core._core.diff_plain(qa, int(DType.F16), qb, int(DType.F16), 8 * 2048, sample_rows=np.arange(1),
                              sample_cols=2048, row_sums=np.zeros((1, 5)), take_a=[np.arange(3)], taken_a=[],
                              take_b=[], taken_b=[], reread_rows=[], reread_dtypes=[], reread_sums=[])


@pytest.mark.parametrize("own,other", [(DType.F16, DType.BF16), (DType.BF16, DType.F16)])
@pytest.mark.parametrize("threads", [1, 2])
def test_rereads_read_the_candidates_bytes_as_another_type(own, other, threads):
    """reread: rows whose sums read b's bytes as another type of as many bytes (the misread screen), within
    pair_row_sums' bound of the exact sums of those bytes decoded as that type."""
    rows, cols = 40, 3072  # rows straddle pieces: their parts add in float64
    qa, qb = _pair(own, rows, cols, seed=3)
    mis = np.array([0, 13, 39])
    s = core.RowSample([0, 1], cols, reread=[(other, mis), (own, [2])])
    core.diff_stats(qa, qb, a_dtype=own, b_dtype=own, shape=(rows * cols,), threads=threads, row_sample=s)
    a = core.dequantize(qa, own, (rows, cols))
    for (dt, at), got in zip(s.reread, s.reread_sums):
        _assert_within_bound(got, a[at], core.dequantize(qb, dt, (rows, cols))[at], cols)  # qb's bytes as dt


def test_rereads_need_a_type_of_one_element_per_block_and_as_many_bytes():
    qa, qb = _pair(DType.F16, 8, 2048)
    for other in (DType.F32, DType.Q8_0):
        with pytest.raises(core.CoreUsageError, match="as many bytes"):
            core.diff_stats(qa, qb, a_dtype=DType.F16, b_dtype=DType.F16, shape=(8 * 2048,),
                            row_sample=core.RowSample([0], 2048, reread=[(other, [1])]))
