"""Cheap access to parts of a tensor for hypothesis testing (rows, reinterpretations).

All decoding goes through ``aprqa.core`` (one dequantizer); this module only picks
which rows to decode; full-tensor passes are one native call each.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .. import core
from ..formats.model import TensorInfo
from ..quant.dtypes import DType

SAMPLE_ELEMENTS = 1 << 16      # elements decoded per side to choose a hypothesis
# Elements re-quantized per tensor to estimate its type's noise floor. Quantization errors are close
# to independent, so a rel-L2 over N elements has a relative spread of about sqrt(2/N): 1.1 % at
# 16K, far inside the err/noise limits (>= 1.5), and it keeps the floor off the streaming pass's
# critical path (about 5 % of a full-tensor diff at 16M elements).
NOISE_SAMPLE_ELEMENTS = 1 << 14
# A full diff walks tensors larger than this (both payloads together) in chunks (natively), releasing
# the pages of each chunk, so resident memory stays bounded.
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


@functools.lru_cache(maxsize=256)
def sample_rows(rows: int, cols: int, budget: int = SAMPLE_ELEMENTS) -> np.ndarray:
    """Evenly spread row indices (all rows when the tensor fits the budget), read-only.

    Cached: a model's tensors share a few shapes, and every failing tensor's diagnosis asks for the
    same samples of its shape several times."""
    k = max(1, min(rows, budget // max(cols, 1)))
    if k >= rows:
        idx = np.arange(rows, dtype=np.int64)
    else:
        idx = np.unique(np.linspace(0, rows - 1, k).round().astype(np.int64))
    idx.flags.writeable = False
    return idx


def subset_at(idx: np.ndarray, sub: np.ndarray) -> np.ndarray | None:
    """Positions of the (sorted, unique) rows ``sub`` in the sorted rows ``idx``, or None when some
    row of ``sub`` is not in ``idx``: rows already decoded at ``idx`` are then sliced, not re-read."""
    pos = np.searchsorted(idx, sub)
    if pos.size and (pos[-1] >= idx.size or not np.array_equal(idx[np.minimum(pos, idx.size - 1)], sub)):
        return None
    return pos


@functools.lru_cache(maxsize=256)
def sample_subset(rows: int, cols: int, budget: int, sub_budget: int) -> np.ndarray | None:
    """``subset_at(sample_rows(rows, cols, budget), sample_rows(rows, cols, sub_budget))``, cached per shape:
    every failing tensor of a shape asks it once per hypothesis."""
    pos = subset_at(sample_rows(rows, cols, budget), sample_rows(rows, cols, sub_budget))
    if pos is not None:
        pos.flags.writeable = False
    return pos


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


_F32 = int(DType.F32)


def diff_f32(a: np.ndarray, b: np.ndarray) -> core.DiffStats:
    """``core.diff_stats(a, b, threads=1)`` of two sample-sized float32 arrays, straight to the native
    kernel: a diagnosis makes a dozen such calls per failing tensor, and the wrapper's argument
    resolution cost about as much as the kernel on 16K elements (docs/performance.md)."""
    a = np.ascontiguousarray(a, dtype=np.float32).reshape(-1)
    b = np.ascontiguousarray(b, dtype=np.float32).reshape(-1)
    if a.size != b.size or a.size == 0:
        return core.diff_stats(a, b, threads=1)  # its typed error
    r = core._call(core._core.diff_plain, a, _F32, b, _F32, a.size, 0.0, 0.0, 1, chunk_bytes=0,
                   release_a=False, release_b=False)
    r["hist"] = tuple(r["hist"])
    return core.DiffStats(**r, atol=0.0, rtol=0.0)


def rel_l2(ref: np.ndarray, cand: np.ndarray) -> float:
    """‖cand − ref‖ / ‖ref‖ of two sample-sized float32 arrays (the core's fused kernel);
    inf when more than 1 % of the pairs are a non-finite mismatch."""
    s = diff_f32(ref, cand)
    if s.nonfinite_mismatch > 0.01 * s.n:
        return math.inf
    return s.rel_l2


# Drop the pages of a read-only file mapping (no-op for anything else): the native core's madvise.
release = core.release_pages


def chunked_diff(ta: TensorInfo, tb: TensorInfo, *, atol: float, rtol: float, threads: int | None,
                 chunk_bytes: int | None = None, b_dtype: DType | None = None,
                 row_sample: core.RowSample | None = None) -> core.DiffStats:
    """Full plain pass over two same-layout tensors: one native call that walks the pair in chunks
    of about ``chunk_bytes`` and releases each chunk's pages, so resident memory stays bounded. A pair
    that fits one chunk keeps its pages: the caller releases them once it has judged the pair (its
    other reads of the pair, a cast's rounding check or a quantized type's noise floor, then cost no
    page faults). ``row_sample``: rows of the ``[rows, cols]`` view whose sums the pass also takes
    (the diagnosis's sampled rows: ``core.RowSample``)."""
    rows, cols = as_2d(ta.shape)
    chunk = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    return core.diff_stats(ta.raw(), tb.raw(), a_dtype=ta.dtype, b_dtype=b_dtype or tb.dtype, atol=atol,
                           rtol=rtol, threads=threads, shape=(rows * cols,), chunk_bytes=chunk,
                           release=chunk == 0 or ta.nbytes + tb.nbytes > chunk, row_sample=row_sample)
