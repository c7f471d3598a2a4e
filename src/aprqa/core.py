# size: the typed wrapper of every native entry point, each validating its buffers before calling C++, in one place
"""Native numeric core: dequantize, quantize and the fused diff kernel.

Thin typed wrappers over ``aprqa._core`` (C++). Every call validates buffer sizes
against the dtype's block geometry in C++ before touching memory and releases
the GIL while it runs. Dequantization is bit-exact with ggml / gguf-py.

Errors: a dtype that is unknown or cannot be (de)quantized raises
:class:`aprqa.errors.DTypeError`; inconsistent sizes, shapes, ranges or
arguments raise :class:`aprqa.errors.UsageError` (also a ``ValueError``).
"""

from __future__ import annotations

import math
import mmap
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Sequence, Union

import numpy as np

from . import _core
from .errors import DTypeError, UsageError
from .quant.dtypes import DType, dtype_from_name

__all__ = [
    "DIFF_FIELDS",
    "DiffStats",
    "HIST_BUCKETS",
    "RowSample",
    "dequantize",
    "dequantize_rows",
    "diff_stats",
    "hist_bucket_edges",
    "quantize",
    "row_padded_width",
    "release_pages",
    "set_simd",
    "set_threads",
    "simd_level",
]

DTypeLike = Union[DType, str, int]
HIST_BUCKETS = 64
# Every statistic the native diff returns -> its merge rule across threads and chunks ("count" and
# "sum" add, "max_abs" takes the max and its chunk's "argmax", "max" takes the max, "hist" adds
# bucket-wise). The one list lives in csrc/diff.h (APRQA_DIFF_COUNTS / APRQA_DIFF_SUMS).
DIFF_FIELDS: dict[str, str] = dict(_core.diff_fields())


class CoreUsageError(UsageError, ValueError):
    """Bad sizes, shapes or arguments passed to a core kernel (a ``ValueError``)."""


def _dtype(dt: DTypeLike) -> DType:
    if isinstance(dt, DType):
        return dt
    if isinstance(dt, (int, np.integer)) and not isinstance(dt, bool):
        try:
            return DType(int(dt))
        except ValueError:
            raise DTypeError(f"unknown dtype id {int(dt)}") from None
    return dtype_from_name(dt)


def _call(fn: Any, *args: Any, **kw: Any) -> Any:
    """Run a core function, mapping its ValueError to aprqa's typed errors."""
    try:
        return fn(*args, **kw)
    except _core.DTypeError as err:  # registered in csrc/bindings.cpp: mapped by type, not message
        raise DTypeError(str(err)) from err
    except ValueError as err:
        raise CoreUsageError(str(err)) from err


def _is_tensor_info(obj: Any) -> bool:
    return hasattr(obj, "raw") and hasattr(obj, "dtype") and hasattr(obj, "shape") and callable(obj.raw)


def _as_bytes(raw: Any) -> Any:
    """A C-contiguous buffer the core can read (numpy arrays/bytes/memoryviews pass through)."""
    if isinstance(raw, np.ndarray):
        if not raw.flags.c_contiguous:
            raise CoreUsageError("raw buffer must be C-contiguous")
        return raw.reshape(-1).view(np.uint8) if raw.dtype != np.uint8 else raw
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return raw
    raise CoreUsageError(f"expected a bytes-like object or numpy array, got {type(raw).__name__}")


def _nbytes(buf: Any) -> int:
    return buf.nbytes if isinstance(buf, (np.ndarray, memoryview)) else len(buf)


def _shape_tuple(shape: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    out = tuple(int(s) for s in shape)
    if any(s < 0 for s in out):
        raise CoreUsageError(f"shape {out} has a negative dimension")
    return out


def _prod(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _infer_elements(dt: DType, nbytes: int) -> int:
    info = dt.info
    if dt is DType.APR_Q8:
        if nbytes < 4:
            raise CoreUsageError(f"apr_q8: payload of {nbytes} bytes is shorter than its 4-byte scale")
        return nbytes - 4
    if nbytes % info.block_bytes:
        raise CoreUsageError(
            f"{dt.lname}: payload of {nbytes} bytes is not a multiple of the block size {info.block_bytes} bytes; "
            "pass shape= explicitly"
        )
    return nbytes // info.block_bytes * info.block_elems


_SUPER = 256  # K-quant super-block


def _padded_width(t: Any) -> int | None:
    """The stored row length of a row-padded K-quant tensor, else None.

    aprender writes a 2-D Q4_K/Q6_K tensor whose rows are not whole super-blocks row by row, each row
    zero-padded to a multiple of 256 (its ``quantize_q4_k_matrix``): rows × ceil(cols/256) blocks. Read as
    one flat stream those bytes would give wrong values, so such a tensor is decoded row-wise and handed on as
    float32 (no other producer writes that size: llama.cpp needs whole super-blocks per row)."""
    shp = tuple(t.shape)
    if len(shp) < 2 or t.dtype not in (DType.Q4_K, DType.Q6_K) or shp[-1] % _SUPER == 0:
        return None
    width = -(-shp[-1] // _SUPER) * _SUPER
    return width if t.nbytes == _prod(shp[:-1]) * (width // _SUPER) * t.dtype.info.block_bytes else None


def row_padded_width(t: Any) -> int | None:
    """The stored row length of a ``TensorInfo`` in aprender's row-padded K-quant layout, else None."""
    return _padded_width(t)


def _row_padded_values(t: Any, row_start: int = 0, row_stop: int | None = None) -> np.ndarray | None:
    """Rows ``[row_start, row_stop)`` (default: all) of a row-padded K-quant tensor as float32 ``[n, cols]``
    (all rows: the tensor's shape); None for any other tensor. Only the bytes of those rows are read."""
    width = _padded_width(t)
    if width is None:
        return None
    shp = tuple(t.shape)
    cols, rows = shp[-1], _prod(shp[:-1])
    stop = rows if row_stop is None else row_stop
    row_bytes = (width // _SUPER) * t.dtype.info.block_bytes
    buf = _as_bytes(t.raw())[row_start * row_bytes:stop * row_bytes]
    full = np.empty((stop - row_start) * width, np.float32)
    _call(_core.dequantize, buf, int(t.dtype), full.size, full, 0, full.size, 0)
    out = np.ascontiguousarray(full.reshape(stop - row_start, width)[:, :cols])
    return out.reshape(shp) if row_start == 0 and row_stop is None else out


def _resolve(raw: Any, dtype: DTypeLike | None, shape: int | Sequence[int] | None) -> tuple[Any, DType, tuple[int, ...]]:
    if _is_tensor_info(raw):
        dt = raw.dtype if dtype is None else _dtype(dtype)
        shp = tuple(raw.shape) if shape is None else _shape_tuple(shape)
        padded = _row_padded_values(raw) if dt is raw.dtype else None
        if padded is not None:
            return padded, DType.F32, shp
        return _as_bytes(raw.raw()), dt, shp
    if isinstance(raw, np.ndarray) and raw.dtype == np.float32 and dtype is None:
        return raw if raw.flags.c_contiguous else np.ascontiguousarray(raw), DType.F32, tuple(raw.shape)
    if dtype is None:
        raise CoreUsageError("dtype is required for a raw buffer")
    dt = _dtype(dtype)
    buf = _as_bytes(raw)
    shp = (_infer_elements(dt, _nbytes(buf)),) if shape is None else _shape_tuple(shape)
    return buf, dt, shp


def dequantize(
    raw: Any,
    dtype: DTypeLike | None = None,
    shape: int | Sequence[int] | None = None,
    *,
    out: np.ndarray | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Dequantize a raw tensor payload to float32.

    Args:
        raw: contiguous bytes-like / numpy array holding the payload, or a
            ``TensorInfo`` (its ``.raw()``, ``.dtype`` and ``.shape`` are used).
        dtype: ``DType``, name (``"q4_k"``) or id; optional for a ``TensorInfo``.
        shape: int or tuple; default 1-D of the element count inferred from the
            payload size (a ``TensorInfo``'s own shape).
        out: optional caller-owned C-contiguous float32 array with ``prod(shape)``
            elements; it is filled and returned (reshaped view).
        threads: worker threads (default: ``set_threads`` value, else all cores).

    Returns:
        A float32 array of ``shape`` (a fresh array unless ``out`` was given).

    Raises:
        DTypeError: the dtype is unknown or has no dequantizer.
        UsageError: the payload is too short for ``shape``, the element count is
            not a whole number of blocks, or ``out`` has the wrong size/dtype.

    Example:
        >>> dequantize(np.zeros(34, np.uint8), "q8_0").shape
        (32,)
    """
    buf, dt, shp = _resolve(raw, dtype, shape)
    n = _prod(shp)
    dst = _out_array(out, n)
    _call(_core.dequantize, buf, int(dt), n, dst, 0, n, threads or 0)
    return dst.reshape(shp)


def _out_array(out: np.ndarray | None, n: int) -> np.ndarray:
    if out is None:
        return np.empty(n, np.float32)
    if not isinstance(out, np.ndarray) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise CoreUsageError("out must be a C-contiguous float32 numpy array")
    if out.size != n:
        raise CoreUsageError(f"out has {out.size} elements, expected {n}")
    return out.reshape(-1)


def dequantize_rows(
    raw: Any,
    dtype: DTypeLike | None,
    shape: Sequence[int] | None,
    row_start: int,
    row_stop: int,
    *,
    out: np.ndarray | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Dequantize rows ``[row_start, row_stop)`` of a 2-D tensor ``[rows, cols]``.

    Only the bytes of the requested rows are read (layer streaming).

    Args:
        raw: payload (bytes-like / numpy) or a ``TensorInfo``.
        dtype: dtype (optional for a ``TensorInfo``).
        shape: ``(rows, cols)``; more dims are flattened into rows; optional
            for a ``TensorInfo``.
        row_start: first row (inclusive).
        row_stop: last row (exclusive).
        out: optional float32 array of ``(row_stop-row_start)*cols`` elements.
        threads: worker threads.

    Returns:
        float32 array of shape ``(row_stop - row_start, cols)``.

    Raises:
        DTypeError: unknown or unsupported dtype.
        UsageError: bad row range or payload size.
    """
    if (_is_tensor_info(raw) and dtype in (None, raw.dtype) and (shape is None or tuple(shape) == tuple(raw.shape))
            and _padded_width(raw) is not None):
        rows = _prod(tuple(raw.shape)[:-1])
        if not (0 <= row_start <= row_stop <= rows):
            raise CoreUsageError(f"row range [{row_start}, {row_stop}) is outside [0, {rows}]")
        vals = _row_padded_values(raw, row_start, row_stop)
        if out is None:
            return vals
        _out_array(out, vals.size)[:] = vals.reshape(-1)
        return out.reshape(vals.shape)
    buf, dt, shp = _resolve(raw, dtype, shape)
    if len(shp) < 1:
        raise CoreUsageError("dequantize_rows needs a shape with at least one dimension")
    cols = shp[-1] if len(shp) >= 2 else 1
    rows = _prod(shp[:-1]) if len(shp) >= 2 else shp[0]
    if not (0 <= row_start <= row_stop <= rows):
        raise CoreUsageError(f"row range [{row_start}, {row_stop}) is outside [0, {rows}]")
    count = (row_stop - row_start) * cols
    dst = _out_array(out, count)
    _call(_core.dequantize, buf, int(dt), rows * cols, dst, row_start * cols, count, threads or 0)
    return dst.reshape(row_stop - row_start, cols)


@dataclass(frozen=True)
class Sources:
    """Payloads resolved once for several batched native calls (``resolve_sources``): each source's
    buffer and dtype id, so a ``TensorInfo``'s lookups (its mapped view, a row-padded layout) are made
    once, not per call. The core still checks every buffer against each call's shape."""

    buffers: tuple[Any, ...]
    dtypes: tuple[int, ...]
    raw: tuple[bool, ...]  # the buffer is the stored bytes (False: a row-padded tensor's decoded values)

    def __len__(self) -> int:
        return len(self.buffers)

    def as_dtype(self, dtype: DTypeLike) -> "Sources":
        """The same bytes read as ``dtype`` (a reinterpretation)."""
        if not all(self.raw):
            raise CoreUsageError("a row-padded tensor's decoded values cannot be read as another dtype")
        return Sources(self.buffers, (int(_dtype(dtype)),) * len(self.buffers), self.raw)

    def __add__(self, other: "Sources") -> "Sources":
        return Sources(self.buffers + other.buffers, self.dtypes + other.dtypes, self.raw + other.raw)


def resolve_sources(sources: Sequence[Any], shape: Sequence[int],
                    dtypes: Sequence[DTypeLike | None] | None = None) -> Sources:
    """``sources`` (``TensorInfo`` objects or raw payloads with ``dtypes``) resolved for ``gather_rows``
    and ``pair_row_sums`` calls over the ``shape`` view."""
    shp = _shape_tuple(shape)
    dts = list(dtypes) if dtypes is not None else [None] * len(sources)
    if len(dts) != len(sources):
        raise CoreUsageError(f"{len(sources)} sources but {len(dts)} dtypes")
    bufs, ids, raw = [], [], []
    for src, dt in zip(sources, dts):
        buf, d, _ = _resolve(src, dt, shp)
        bufs.append(buf)
        ids.append(int(d))
        padded = _is_tensor_info(src) and (dt is None or _dtype(dt) is src.dtype) and _padded_width(src) is not None
        raw.append(not padded)
    return Sources(tuple(bufs), tuple(ids), tuple(raw))


def _view(shape: Sequence[int]) -> tuple[int, int]:
    """``(rows, cols)`` of the ``[rows, cols]`` view a batched call reads its sources as."""
    shp = _shape_tuple(shape)
    cols = shp[-1] if len(shp) >= 2 else 1
    return (_prod(shp[:-1]) if len(shp) >= 2 else (shp[0] if shp else 1)), cols


def gather_rows(
    sources: Sequence[Any] | Sources,
    shape: Sequence[int],
    rows: Any,
    *,
    dtypes: Sequence[DTypeLike | None] | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Decode the same rows of several same-shape tensors in one native call.

    Args:
        sources: ``TensorInfo`` objects or raw payloads (then ``dtypes`` names each dtype), or
            ``Sources`` resolved before (then without ``dtypes``).
        shape: the ``[rows, cols]`` view every source is read as (more dims are flattened
            into rows, a 1-D shape is one column per row).
        rows: row indices (int64-convertible, any order, repeats allowed).
        dtypes: per-source dtype overrides (``None`` entries: the TensorInfo's own).
        threads: worker threads.

    Returns:
        float32 array ``[len(sources), len(rows), cols]``.

    Raises:
        DTypeError: unknown or non-dequantizable dtype.
        UsageError: a payload too short for ``shape``, or a row index out of range.
    """
    if isinstance(sources, Sources):
        if dtypes is not None:
            raise CoreUsageError("resolved Sources carry their dtypes: use Sources.as_dtype")
        src = sources
    else:
        src = resolve_sources(sources, shape, dtypes)
    n_rows, cols = _view(shape)
    idx = np.ascontiguousarray(np.asarray(rows, dtype=np.int64).reshape(-1))
    out = np.empty((len(src), idx.size, cols), np.float32)
    if out.size:
        _call(_core.gather_rows, list(src.buffers), list(src.dtypes), n_rows, cols, idx, out, threads or 0)
    return out


ROW_SUMS = ("sum_a2", "sum_d2", "sum_ad", "sum_a", "sum_d")  # pair_row_sums' last axis, in order


def pair_row_sums(a_sources: Sequence[Any] | Sources, b_sources: Sequence[Any] | Sources, shape: Sequence[int], rows: Any, *,
                  threads: int | None = None, simd: bool | None = None) -> np.ndarray:
    """Per-row sums of pairs of same-shape tensors, decoding each pair of rows once, in cache.

    For each pair ``(a_sources[i], b_sources[i])`` and each row ``rows[j]`` of the ``[rows, cols]``
    view: Σa², Σd², Σa·d, Σa, Σd (``ROW_SUMS``) with ``d = b − a`` rounded to float32; each a float32
    sum in eight lanes (products rounded before they are added), the lanes added in float64, so a
    sum is within ``(cols/8 + 3)·2⁻²⁴`` of the magnitude of its terms (NaN/Inf propagate).

    Args:
        a_sources, b_sources: ``TensorInfo`` objects (the same count), or ``Sources`` resolved before.
        shape: the ``[rows, cols]`` view both sides are read as.
        rows: row indices (int64-convertible).
        threads: worker threads.
        simd: False forces the scalar path (the same values); None follows the process setting.

    Returns:
        The sums, float64 ``[len(a_sources), len(rows), 5]``.

    Raises:
        DTypeError: a non-dequantizable dtype.
        UsageError: different source counts, a payload too short for ``shape``, a row out of range.
    """
    a = a_sources if isinstance(a_sources, Sources) else resolve_sources(a_sources, shape)
    b = b_sources if isinstance(b_sources, Sources) else resolve_sources(b_sources, shape)
    if len(a) != len(b):
        raise CoreUsageError(f"{len(a)} reference sources but {len(b)} candidate sources")
    n_rows, cols = _view(shape)
    idx = np.ascontiguousarray(np.asarray(rows, dtype=np.int64).reshape(-1))
    out = np.empty((len(a), idx.size, len(ROW_SUMS)), np.float64)
    if len(a):
        _call(_core.pair_row_sums, list(a.buffers), list(a.dtypes), list(b.buffers), list(b.dtypes), n_rows, cols,
              idx, out, threads or 0, -1 if simd is None else int(simd))
    return out


SKETCH_DIM = 64  # the sketch width sketch_filter takes (comparison/signature_index.SKETCH_DIM)


def sketch_filter(ref_sketch_t: np.ndarray, ref_sk2c: np.ndarray, ref_root_energy: np.ndarray,
                  ref_slack: np.ndarray, queries: np.ndarray, sb2c: np.ndarray, radius: np.ndarray,
                  reach0: np.ndarray, *, threads: int | None = None, simd: bool | None = None) -> np.ndarray:
    """The batched SWAPPED screen's filter for every (query, reference) pair, without temporaries.

    ``out[i, j] = not ((ref_sk2c[j] + sb2c[i]) − 2·dot > ((radius[i]·ref_root_energy[j] + reach0[i])
    + ref_slack[j])²)`` with ``dot`` the float32 fused dot product of ``queries[i]`` and column ``j`` of
    ``ref_sketch_t``, in coordinate order (the SIMD path returns the scalar path's values); NaN
    anywhere gives True. ``SignatureIndex.may_keep`` derives the inputs and proves the bound.

    Args:
        ref_sketch_t: float32 ``[SKETCH_DIM, N]`` (the references' sketches, transposed).
        ref_sk2c, ref_root_energy, ref_slack: float64 ``[N]``.
        queries: float32 ``[q, SKETCH_DIM]``.
        sb2c, radius, reach0: float64 ``[q]``.
        threads: worker threads; simd: False forces the scalar path.

    Returns:
        bool ``[q, N]``.
    """
    n_ref = ref_sketch_t.shape[1] if ref_sketch_t.ndim == 2 else -1
    n_q = queries.shape[0] if queries.ndim == 2 else -1
    checks = [(ref_sketch_t, np.float32, (SKETCH_DIM, n_ref)), (queries, np.float32, (n_q, SKETCH_DIM))]
    checks += [(x, np.float64, (n_ref,)) for x in (ref_sk2c, ref_root_energy, ref_slack)]
    checks += [(x, np.float64, (n_q,)) for x in (sb2c, radius, reach0)]
    for x, dt, shape in checks:
        if not (isinstance(x, np.ndarray) and x.dtype == dt and x.shape == shape and x.flags.c_contiguous):
            got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
            raise CoreUsageError(f"sketch_filter: expected C-contiguous {np.dtype(dt)} {shape}, got {got}")
    out = np.empty((n_q, n_ref), np.uint8)
    if out.size:
        _call(_core.sketch_filter, ref_sketch_t, ref_sk2c, ref_root_energy, ref_slack, n_ref, queries, sb2c, radius,
              reach0, n_q, out, threads or 0, -1 if simd is None else int(simd))
    return out.view(bool)

def quantize(array: Any, dtype: DTypeLike, *, threads: int | None = None) -> np.ndarray:
    """Quantize float values to a raw payload.

    Supported: ``f32`` (copy), ``f16, bf16`` (round-to-nearest-even casts),
    ``q4_0, q4_1, q5_0, q5_1, q8_0`` (byte-identical to ggml/gguf-py),
    ``q4_k, q5_k, q6_k`` (ggml's reference search), ``apr_q4, apr_q8`` (APR spec).

    Args:
        array: array-like of floats (converted to C-contiguous float32).
        dtype: target dtype.
        threads: worker threads.

    Returns:
        1-D ``uint8`` array of the exact payload (APR q8: 4-byte f32 scale + N int8;
        APR q4: zero-padded to whole 32-element blocks).

    Raises:
        DTypeError: the dtype has no quantizer.
        UsageError: the last dimension is not a multiple of the block size
            (GGML block types).
    """
    dt = _dtype(dtype)
    x = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
    if not _core.quant_supported(int(dt)):
        raise DTypeError(f"unsupported dtype {dt.lname} for quantization")
    be = dt.info.block_elems
    if be > 1 and dt is not DType.APR_Q4:
        last = x.shape[-1] if x.ndim else 1
        if last % be:
            raise CoreUsageError(
                f"{dt.lname}: last dimension {last} is not a multiple of block size {be}"
            )
    n = x.size
    out = np.empty(_call(_core.storage_bytes, int(dt), n), np.uint8)
    _call(_core.quantize, x.reshape(-1), int(dt), n, out, threads or 0)
    return out


def matmul(raw: np.ndarray, dtype: DType, n_out: int, n_in: int, x: np.ndarray, out: np.ndarray | None = None,
           *, threads: int = 0, level: int = -1, int8_act: bool = False) -> np.ndarray:
    """``x · Wᵀ`` (``[T, n_out]`` float32) for a weight ``W [n_out, n_in]`` given as its raw row-major bytes.

    By default quantized rows are dequantized in cache (bit-equal to ``core.dequantize``) and
    multiply ``x`` as float32: the dequantize-then-matmul product within float32 rounding. With
    ``int8_act`` they multiply ``x`` quantized to int8 blocks of 32 with an f32 scale (ggml's
    scheme, what llama.cpp computes: exact integer block sums, one float multiply-add per 32
    products; faster, and off by the activations' rounding). F32/F16/BF16 rows always use
    float32. ``out`` may be a column block of a wider C-contiguous array (its row stride is
    used). ``threads``: 0 = the core's default; ``level``: -1 = best.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != n_in:
        raise CoreUsageError(f"matmul: x has shape {x.shape}, expected [tokens, {n_in}]")
    if out is None:
        out = np.empty((x.shape[0], n_out), np.float32)
        ldo = n_out
    else:
        if out.dtype != np.float32 or out.ndim != 2 or out.shape != (x.shape[0], n_out) or out.strides[1] != 4:
            raise CoreUsageError(f"matmul: out must be float32 [{x.shape[0]}, {n_out}] with unit column stride")
        ldo = out.strides[0] // 4
    # the core checks sizes against the buffer it is given: hand it the whole rows of `out`
    base = out if out.flags.c_contiguous else _row_span(out, ldo)
    _call(_core.matmul_q, raw, int(dtype), n_out, n_in, x, x.shape[0], base, ldo, threads, level, int8_act)
    return out


def _row_span(out: np.ndarray, ldo: int) -> np.ndarray:
    """The contiguous float32 span from ``out[0, 0]`` to its last element (``out`` a column block)."""
    n = (out.shape[0] - 1) * ldo + out.shape[1]
    return np.lib.stride_tricks.as_strided(out, shape=(n,), strides=(4,), writeable=True)


@dataclass(frozen=True)
class DiffStats:
    """Statistics of ``d = b - a`` (``a`` = reference, ``b`` = candidate) from one fused pass.

    Non-finite pairs are counted but excluded from every sum, ``max_abs`` and
    ``min_atol``. Both-NaN and same-signed-infinity pairs match; any other pair
    with a NaN or Inf on either side is a failure (``nonfinite_mismatch``).
    ``n_equal`` compares f32 bit patterns (``+0 != -0``; NaN equals only the same
    NaN bits). The histogram has 64 buckets of ``|d|`` over finite pairs: 0 = exact
    zero, 1 = ``(0, 2^-40)``, k in 2..61 = ``[2^(k-42), 2^(k-41))``, 62 = ``>= 2^20``,
    63 = non-finite pairs (see :func:`hist_bucket_edges`).

    Attributes:
        n: elements compared.
        n_equal: bit-identical elements after dequantization.
        n_finite: pairs where both sides are finite (the sums' population).
        n_fail: finite elements with ``|d| - rtol*|a| > atol`` plus non-finite mismatches
            (so the check passes exactly when ``min_atol <= atol``).
        nan_a, nan_b, inf_a, inf_b: NaN / Inf counts per side.
        nan_both: indices where both sides are NaN (a match).
        nonfinite_mismatch: non-finite pairs that fail.
        sum_d, sum_abs, sum_sq: Σd, Σ|d|, Σd² (double, pairwise).
        sum_a, sum_a2, sum_b2, sum_ab: Σa, Σa², Σb², Σab over finite pairs.
        sum_ad: Σa·d over finite pairs, accumulated directly (for :attr:`one_minus_cosine`;
            nan when unknown, e.g. a DiffStats built by hand).
        max_abs: max |d| over finite pairs (0 if none).
        argmax: flat index into ``a`` of the first max |d| (-1 if no finite pair).
        min_atol: smallest atol that passes at ``rtol`` (``inf`` if a non-finite mismatch).
        atol, rtol: the tolerance applied.
        hist: 64 bucket counts.
    """

    n: int
    n_equal: int
    n_finite: int
    n_fail: int
    nan_a: int
    nan_b: int
    inf_a: int
    inf_b: int
    nan_both: int
    nonfinite_mismatch: int
    sum_d: float
    sum_abs: float
    sum_sq: float
    sum_a: float
    sum_a2: float
    sum_b2: float
    sum_ab: float
    max_abs: float
    argmax: int
    min_atol: float
    atol: float
    rtol: float
    hist: tuple[int, ...] = field(default=())
    sum_ad: float = math.nan

    @property
    def mean_abs(self) -> float:
        """Mean |d| over finite pairs (nan when there are none)."""
        return self.sum_abs / self.n_finite if self.n_finite else math.nan

    @property
    def mean_d(self) -> float:
        """Mean signed error (bias) over finite pairs."""
        return self.sum_d / self.n_finite if self.n_finite else math.nan

    @property
    def mse(self) -> float:
        return self.sum_sq / self.n_finite if self.n_finite else math.nan

    @property
    def rmse(self) -> float:
        return math.sqrt(self.mse) if self.n_finite else math.nan

    @property
    def rel_l2(self) -> float:
        """‖d‖ / ‖a‖ (inf when ‖a‖ = 0 and d ≠ 0, 0 when both are 0)."""
        if self.sum_a2 > 0:
            return math.sqrt(self.sum_sq / self.sum_a2)
        return 0.0 if self.sum_sq == 0 else math.inf

    @property
    def one_minus_cosine(self) -> float:
        """1 - cosine, with its relative accuracy kept when cosine is within 1e-12 of 1 (nan if a norm is 0).

        With b = a + d: 1 - cos² = (Σa²Σd² - (Σad)²) / (Σa²Σb²), so
        1 - cos = (Σa²Σd² - (Σad)²) / (Σa²Σb²(1 + cos)). (Σad)² <= Σa²Σd² (Cauchy-Schwarz) and for
        rounding-like noise (Σad)² << Σa²Σd², so nothing cancels. Used while Σd² < Σb² (then cos > 0 and
        the error is at most ~2ε of the sums' relative error ε); otherwise, e.g. b ≈ 0 where
        Σa² ≈ -Σad, it is 1 - Σab/(‖a‖‖b‖) from the directly accumulated Σab. Identical tensors give
        exactly 0 (Σd² = Σad = 0).
        """
        A, B, D, P = self.sum_a2, self.sum_b2, self.sum_sq, self.sum_ad
        if not (A > 0 and B > 0):
            return math.nan
        cos = self.sum_ab / (math.sqrt(A) * math.sqrt(B))
        if D < B and math.isfinite(P):
            num = max(A * D - P * P, 0.0)
            return num / (A * B * (1.0 + min(max(cos, 0.0), 1.0)))
        return 1.0 - cos

    @property
    def cosine(self) -> float:
        """Cosine similarity of a and b over finite pairs (nan if either norm is 0); 1 - :attr:`one_minus_cosine`."""
        omc = self.one_minus_cosine
        return 1.0 - omc if omc == omc else math.nan

    @property
    def sqnr_db(self) -> float:
        """10·log10(Σa² / Σd²); inf when d is all zero."""
        if self.sum_sq == 0:
            return math.inf
        if self.sum_a2 == 0:
            return -math.inf
        return 10.0 * math.log10(self.sum_a2 / self.sum_sq)

    @property
    def nmse(self) -> float:
        """MSE / var(a), var(a) the population variance of the reference over finite pairs.

        1.0 means as bad as predicting the mean of ``a``; inf when var(a) = 0 and MSE > 0.
        """
        if not self.n_finite:
            return math.nan
        mean = self.sum_a / self.n_finite
        var = max(self.sum_a2 / self.n_finite - mean * mean, 0.0)
        if var > 0:
            return self.mse / var
        return 0.0 if self.sum_sq == 0 else math.inf

    @property
    def nan_mismatch(self) -> int:
        """Indices where exactly one side is NaN (≤ nonfinite_mismatch)."""
        return (self.nan_a - self.nan_both) + (self.nan_b - self.nan_both)

    @property
    def passed(self) -> bool:
        """True when nothing failed. Comparing zero elements never passes."""
        return self.n > 0 and self.n_fail == 0 and self.nonfinite_mismatch == 0

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        """All raw statistics, the derived metrics and ``passed``, JSON-friendly."""
        d = asdict(self)
        d["hist"] = list(self.hist)
        for k in ("mean_abs", "mean_d", "mse", "rmse", "rel_l2", "cosine", "one_minus_cosine", "sqnr_db", "nmse",
                  "nan_mismatch", "passed"):
            d[k] = getattr(self, k)
        return d


# DiffStats declares each native statistic (for typing and docs); a field added in C++ but not here
# would be dropped silently, so the two lists are checked against each other once, at import.
_missing = set(DIFF_FIELDS) - {f.name for f in fields(DiffStats)}
if _missing:  # pragma: no cover - a build out of step with this module
    raise ImportError(f"aprqa._core returns statistics DiffStats lacks: {sorted(_missing)}")


def _file_mapped(buf: Any) -> bool:
    """True for a numpy view (or memoryview) into an ``mmap.mmap``: pages the kernel can re-read."""
    base: Any = buf
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):  # np.frombuffer(mmap) keeps a memoryview of the map
        base = base.obj
    return isinstance(base, mmap.mmap)


def release_pages(view: Any) -> None:
    """Let the OS drop the resident pages under ``view`` when it is a read-only file mapping.

    Anything else (an in-memory array, e.g. values an expected transform produced) is left alone:
    dropping anonymous pages would zero them. The pages are re-read from the file on the next touch.
    """
    if isinstance(view, np.ndarray) and view.flags.c_contiguous and _file_mapped(view):
        _core.release_pages(view.reshape(-1).view(np.uint8))


def hist_bucket_edges() -> list[tuple[float, float]]:
    """``[lo, hi)`` of each histogram bucket of :class:`DiffStats` (63: non-finite -> (nan, nan))."""
    edges: list[tuple[float, float]] = [(0.0, 0.0), (0.0, 2.0**-40)]
    edges += [(2.0 ** (k - 42), 2.0 ** (k - 41)) for k in range(2, 62)]
    edges += [(2.0**20, math.inf), (math.nan, math.nan)]
    return edges


def _side(x: Any, dtype: DTypeLike | None, what: str) -> tuple[Any, DType, tuple[int, ...] | None]:
    if _is_tensor_info(x):
        padded = _row_padded_values(x) if dtype is None or _dtype(dtype) is x.dtype else None
        if padded is not None:
            return padded, DType.F32, tuple(x.shape)
        return _as_bytes(x.raw()), (x.dtype if dtype is None else _dtype(dtype)), tuple(x.shape)
    if isinstance(x, np.ndarray) and dtype is None:
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        return np.ascontiguousarray(x), DType.F32, tuple(x.shape)
    if dtype is None:
        raise CoreUsageError(f"{what}: dtype is required for a raw buffer")
    return _as_bytes(x), _dtype(dtype), None


def diff_stats(
    a: Any,
    b: Any,
    *,
    a_dtype: DTypeLike | None = None,
    b_dtype: DTypeLike | None = None,
    atol: float = 0.0,
    rtol: float = 0.0,
    threads: int | None = None,
    transform: tuple[Any, ...] | None = None,
    shape: Sequence[int] | None = None,
    chunk_bytes: int = 0,
    release: bool = False,
    row_sample: RowSample | None = None,
) -> DiffStats:
    """Compare candidate ``b`` with reference ``a`` in one fused, multi-threaded pass.

    Both sides are dequantized tile by tile (never materialized in full).

    Args:
        a: reference - ``TensorInfo``, raw payload (+ ``a_dtype``) or a numpy array
            (float32 unless ``a_dtype`` says it is a raw payload).
        b: candidate, same kinds as ``a``.
        a_dtype, b_dtype: dtypes of raw payloads.
        atol, rtol: an element fails when ``|b-a| - rtol*|a| > atol``.
        threads: worker threads.
        transform: ``None``; ``("transpose", rows, cols)`` - ``b`` is ``[cols, rows]``
            and is compared to ``a`` ``[rows, cols]`` transposed; or
            ``("row_perm", perm)`` - row ``i`` of ``b`` is compared with row
            ``perm[i]`` of ``a`` (``perm`` a permutation, int64; ``a`` is 2-D,
            its shape taken from ``shape``, a ``TensorInfo`` or a numpy array).
        shape: logical shape of ``a`` when it is a raw payload (default: inferred 1-D).
        chunk_bytes: walk the (untransformed) pair in consecutive chunks of about this many bytes of
            both payloads (0: one chunk); the statistics are those of one pass (sums up to order).
        release: drop each chunk's pages of a side that is a read-only file mapping once the chunk is
            done, so resident memory stays about one chunk (other buffers are never touched).
        row_sample: rows of the ``[n / row_sample.cols, row_sample.cols]`` view whose sums the pass
            also writes to ``row_sample.sums`` (an untransformed pair only).

    Returns:
        A :class:`DiffStats`; ``bool(stats)`` is ``stats.passed``.

    Raises:
        DTypeError: unknown or non-dequantizable dtype.
        UsageError: element counts differ, buffers are too short, bad transform,
            negative/non-finite tolerance.
    """
    ba, da, sa = _side(a, a_dtype, "a")
    bb, db, sb = _side(b, b_dtype, "b")
    if shape is not None:
        sa = _shape_tuple(shape)
    na = _prod(sa) if sa is not None else _infer_elements(da, _nbytes(ba))
    nb = _prod(sb) if sb is not None else _infer_elements(db, _nbytes(bb))
    if na != nb:
        raise CoreUsageError(f"element counts differ: a has {na}, b has {nb}")
    if na == 0:
        raise CoreUsageError("nothing to compare: both tensors are empty")
    t = threads or 0
    atol, rtol = float(atol), float(rtol)
    if chunk_bytes < 0:
        raise CoreUsageError(f"chunk_bytes must be >= 0, got {chunk_bytes}")
    if transform is not None and (chunk_bytes or release or row_sample is not None):
        raise CoreUsageError("chunk_bytes, release and row_sample apply to an untransformed pair only")
    if transform is None:
        sample = {}
        if row_sample is not None:
            if na % row_sample.cols:
                raise CoreUsageError(f"RowSample: {row_sample.cols} columns do not divide {na} elements")
            sample = row_sample.native_args()
        r = _call(_core.diff_plain, ba, int(da), bb, int(db), na, atol, rtol, t, chunk_bytes=int(chunk_bytes),
                  release_a=release and _file_mapped(ba), release_b=release and _file_mapped(bb), **sample)
    else:
        kind = transform[0] if transform else None
        if kind == "transpose":
            if len(transform) != 3:
                raise CoreUsageError("transform ('transpose', rows, cols) expects two sizes")
            rows, cols = int(transform[1]), int(transform[2])
            if rows * cols != na:
                raise CoreUsageError(f"transpose {rows}x{cols} does not match {na} elements")
            r = _call(_core.diff_transpose, ba, int(da), bb, int(db), rows, cols, atol, rtol, t)
        elif kind == "row_perm":
            if len(transform) != 2:
                raise CoreUsageError("transform ('row_perm', perm) expects one array")
            perm = np.ascontiguousarray(np.asarray(transform[1], dtype=np.int64).reshape(-1))
            rows = perm.size
            if rows == 0 or na % rows:
                raise CoreUsageError(f"row_perm of {rows} rows does not divide {na} elements")
            if sa is not None and len(sa) >= 2 and _prod(sa[:-1]) != rows:
                raise CoreUsageError(f"perm has {rows} entries but a has {_prod(sa[:-1])} rows")
            r = _call(_core.diff_row_perm, ba, int(da), bb, int(db), rows, na // rows, perm, atol, rtol, t)
        else:
            raise CoreUsageError(f"unknown transform {transform!r}; use None, ('transpose', rows, cols) or ('row_perm', perm)")
    r["hist"] = tuple(r["hist"])
    return DiffStats(**r, atol=atol, rtol=rtol)


class RowSample:
    """What a plain :func:`diff_stats` pass also takes from the pieces it decodes: per-row sums of rows
    of the pair's ``[rows, cols]`` view, the same sums with the candidate's bytes read as other types,
    and each side's values at a few lists of flat positions.

    After the pass, ``sums`` (float64 ``[len(rows), 5]``) holds :func:`pair_row_sums`' statistics
    (``ROW_SUMS``: Σa², Σd², Σa·d, Σa, Σd, d = b − a in float32), ``reread_sums[i]`` those of rows
    ``reread[i][1]`` with ``b``'s bytes read as type ``reread[i][0]`` (one of as many bytes per element:
    a misread), and ``taken_a[i]`` / ``taken_b[i]`` (float32) the decoded values at positions
    ``take_a[i]`` / ``take_b[i]``. A row that spans two of the pass's pieces adds its parts in float64,
    so a sum keeps :func:`pair_row_sums`' bound (within ``(cols/8 + 3)·2⁻²⁴`` of the magnitude of its
    terms), not necessarily its bits.

    A failing pair's diagnosis reads these first (comparison/diagnose_batch.py): taken in the pass, they
    cost no second decode and, for a file-mapped pair whose pages were released, no page faults.

    Args:
        rows: row indices, strictly increasing.
        cols: the view's row length (must divide the pair's element count).
        take_a, take_b: lists of flat element positions (each strictly increasing; lists may overlap).
        reread: ``(dtype, rows)`` pairs.
    """

    def __init__(self, rows: Any, cols: int, take_a: Sequence[Any] = (), take_b: Sequence[Any] = (),
                 reread: Sequence[tuple[DTypeLike, Any]] = ()):
        self.cols = int(cols)
        if self.cols <= 0:
            raise CoreUsageError(f"RowSample: cols must be > 0, got {cols}")
        self.rows = _increasing(rows, "rows")
        self.take_a = tuple(_increasing(x, f"take_a[{i}]") for i, x in enumerate(take_a))
        self.take_b = tuple(_increasing(x, f"take_b[{i}]") for i, x in enumerate(take_b))
        self.reread = tuple((_dtype(dt), _increasing(r, f"reread[{i}] rows")) for i, (dt, r) in enumerate(reread))
        self.origin = self  # the sample ``again`` copies its positions from
        self._fresh()

    def _fresh(self) -> None:
        self.sums = np.zeros((self.rows.size, len(ROW_SUMS)), np.float64)
        self.reread_sums = [np.zeros((r.size, len(ROW_SUMS)), np.float64) for _, r in self.reread]
        self.taken_a = [np.zeros(x.size, np.float32) for x in self.take_a]
        self.taken_b = [np.zeros(x.size, np.float32) for x in self.take_b]

    def again(self) -> RowSample:
        """A sample of the same rows and positions with fresh outputs (for the next pair: no re-check)."""
        fresh = object.__new__(RowSample)
        fresh.cols, fresh.rows, fresh.take_a, fresh.take_b = self.cols, self.rows, self.take_a, self.take_b
        fresh.reread, fresh.origin = self.reread, self.origin
        fresh._fresh()
        return fresh

    @property
    def nbytes(self) -> int:
        """Bytes of its outputs (what a pair holding it keeps)."""
        return (self.sums.nbytes + sum(x.nbytes for x in self.reread_sums) + sum(x.nbytes for x in self.taken_a)
                + sum(x.nbytes for x in self.taken_b))

    def native_args(self) -> dict[str, Any]:
        """``_core.diff_plain``'s keyword arguments for this sample."""
        return dict(sample_rows=self.rows, sample_cols=self.cols, row_sums=self.sums, take_a=self.take_a,
                    taken_a=self.taken_a, take_b=self.take_b, taken_b=self.taken_b,
                    reread_rows=[r for _, r in self.reread], reread_dtypes=[int(dt) for dt, _ in self.reread],
                    reread_sums=self.reread_sums)


def _increasing(x: Any, what: str) -> np.ndarray:
    """``x`` as contiguous int64, checked non-negative and strictly increasing (read-only arrays pass as is)."""
    v = np.ascontiguousarray(np.asarray(x, dtype=np.int64).reshape(-1))
    if v.size and (v[0] < 0 or (v.size > 1 and not (v[1:] > v[:-1]).all())):
        raise CoreUsageError(f"RowSample: {what} must be non-negative and strictly increasing")
    return v


def set_threads(n: int | None) -> None:
    """Set the default worker-thread count for all kernels (``None``/0 = all cores)."""
    if n is not None and n < 0:
        raise CoreUsageError(f"thread count must be >= 0, got {n}")
    _core.set_threads(int(n or 0))


def set_simd(on: bool) -> None:
    """Enable (default) or disable the SIMD kernels; ``False`` forces the scalar ``_ref`` path.

    ``APRQA_NO_SIMD=1`` in the environment disables SIMD at import time.
    """
    _core.set_simd(bool(on))


def simd_level() -> str:
    """The kernel level in use: ``"avx2"`` or ``"scalar"``."""
    return str(_core.simd_level())
