"""Cheap access to parts of a tensor for hypothesis testing (rows, reinterpretations).

All decoding goes through ``aprqa.core`` (one dequantizer); this module only picks
which rows to decode and merges per-chunk statistics.
"""

from __future__ import annotations

import ctypes
import math
import mmap
from typing import Any

import numpy as np

from .. import core
from ..dtypes import DType, payload_nbytes
from ..formats.model import TensorInfo

SAMPLE_ELEMENTS = 1 << 16      # elements decoded per side to choose a hypothesis
# Elements re-quantized per tensor to estimate its type's noise floor. Quantization errors are close
# to independent, so a rel-L2 over N elements has a relative spread of about sqrt(2/N): 1.1 % at
# 16K, far inside the err/noise limits (>= 1.5), and it keeps the floor off the streaming pass's
# critical path (about 5 % of a full-tensor diff at 16M elements).
NOISE_SAMPLE_ELEMENTS = 1 << 14
# A full diff walks tensors larger than this (both payloads together) in row chunks, releasing the
# pages of each chunk, so resident memory stays bounded.
CHUNK_BYTES = 64 << 20


def as_2d(shape: tuple[int, ...]) -> tuple[int, int]:
    """[rows, cols] view of a logical shape (1-D tensors are one column per element)."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], 1
    rows = 1
    for d in shape[:-1]:
        rows *= d
    return rows, shape[-1]


def sample_rows(rows: int, cols: int, budget: int = SAMPLE_ELEMENTS) -> np.ndarray:
    """Evenly spread row indices (all rows when the tensor fits the budget)."""
    k = max(1, min(rows, budget // max(cols, 1)))
    if k >= rows:
        return np.arange(rows, dtype=np.int64)
    return np.unique(np.linspace(0, rows - 1, k).round().astype(np.int64))


def row_aligned(dtype: DType, cols: int) -> bool:
    return dtype is not DType.APR_Q8 and cols % dtype.info.block_elems == 0


class RowReader:
    """Decode selected rows of a raw payload viewed as ``[rows, cols]`` of ``dtype``.

    Each ``rows_at`` call is one native call (``core.gather_rows``), for any row layout."""

    def __init__(self, raw: np.ndarray, dtype: DType, rows: int, cols: int, threads: int | None = None):
        self.raw, self.dtype, self.rows, self.cols, self.threads = raw, dtype, rows, cols, threads

    def rows_at(self, idx: np.ndarray) -> np.ndarray:
        return core.gather_rows([self.raw], (self.rows, self.cols), idx, dtypes=[self.dtype],
                                threads=self.threads)[0]


def rel_l2(ref: np.ndarray, cand: np.ndarray) -> float:
    """‖cand − ref‖ / ‖ref‖ of two sample-sized float32 arrays (the core's fused kernel);
    inf when more than 1 % of the pairs are a non-finite mismatch."""
    s = core.diff_stats(np.ascontiguousarray(ref, dtype=np.float32).reshape(-1),
                        np.ascontiguousarray(cand, dtype=np.float32).reshape(-1), threads=1)
    if s.nonfinite_mismatch > 0.01 * s.n:
        return math.inf
    return s.rel_l2


_PAGE = mmap.PAGESIZE
try:  # Linux/macOS: drop pages of a read-only file mapping once a chunk is done (bounded RSS)
    _libc = ctypes.CDLL(None, use_errno=True)
    _madvise = _libc.madvise
    _madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    _MADV_DONTNEED = 4
except (OSError, AttributeError):  # pragma: no cover - non-POSIX
    _madvise = None


def _file_mapped(view: np.ndarray) -> bool:
    base: Any = view
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):  # np.frombuffer(mmap) keeps a memoryview of the map
        base = base.obj
    return isinstance(base, mmap.mmap)


def release(view: np.ndarray) -> None:
    """Tell the kernel the pages under ``view`` (a read-only file mapping) may be dropped.

    Anything else (an in-memory array, e.g. values an expected transform produced) is left
    alone: dropping anonymous pages would zero them."""
    if _madvise is None or view.nbytes < 4 * _PAGE or not _file_mapped(view):
        return
    start = view.ctypes.data
    lo = (start + _PAGE - 1) // _PAGE * _PAGE
    hi = (start + view.nbytes) // _PAGE * _PAGE
    if hi > lo:
        _madvise(lo, hi - lo, _MADV_DONTNEED)


def chunked_diff(ta: TensorInfo, tb: TensorInfo, *, atol: float, rtol: float, threads: int | None,
                 chunk_bytes: int | None = None, b_dtype: DType | None = None) -> core.DiffStats:
    """Full plain pass over two same-layout tensors, in row chunks of about ``chunk_bytes``;
    pages are released after each chunk so resident memory stays bounded."""
    chunk_bytes = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    ra, rb = ta.raw(), tb.raw()
    bdt = b_dtype or tb.dtype
    rows, cols = as_2d(ta.shape)
    n = rows * cols
    if (ra.nbytes + rb.nbytes <= chunk_bytes or not row_aligned(ta.dtype, cols) or not row_aligned(bdt, cols)):
        s = core.diff_stats(ra, rb, a_dtype=ta.dtype, b_dtype=bdt, atol=atol, rtol=rtol, threads=threads,
                            shape=(n,))
        release(ra)
        release(rb)
        return s
    row_a = payload_nbytes(ta.dtype, cols)
    row_b = payload_nbytes(bdt, cols)
    step = max(1, chunk_bytes // (row_a + row_b))
    parts, offsets = [], []
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        va, vb = ra[r0 * row_a: r1 * row_a], rb[r0 * row_b: r1 * row_b]
        parts.append(core.diff_stats(va, vb, a_dtype=ta.dtype, b_dtype=bdt, atol=atol, rtol=rtol,
                                     threads=threads, shape=((r1 - r0) * cols,)))
        offsets.append(r0 * cols)
        release(va)
        release(vb)
    return core.merge_diff_stats(parts, offsets)
