"""The verdict of one tensor pair: expected transform undone, one full fused pass, and on
failure a diagnosis.

Order of work for a pair (A = reference, B = candidate):
  1. structural checks (readable, dtype kind, shape); a shape mismatch with the same
     element count is tested for transposed data, a wrong shape over the same data and a
     dtype misread before it is reported as SHAPE-MISMATCH;
  2. one full ``core.diff_stats`` pass (with the expected RoPE row map, if any), chunked
     so that resident memory stays bounded;
  3. the expectation of the dtype pair: bit-equal (IDENTICAL), exactly the
     round-to-nearest-even cast (EXACT-CAST) or within the noise floor of re-quantizing
     A with B's type (QUANT-FAITHFUL);
  4. otherwise hypotheses, each first tried on a few evenly spread rows and only then
     confirmed with a full pass: transposed, RoPE rows permuted (either direction, or
     forgotten), another tensor's data (SWAPPED), scaled / offset, bytes of another dtype
     (DTYPE-MISREAD); then NAN/INF, DEGRADED (still the same tensor) or CORRUPT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import core
from ..dtypes import DType, payload_nbytes
from ..errors import AprqaError, DTypeError
from ..formats.model import Model, TensorInfo
from ..arch import layer_index
from . import transforms as tf
from ._sampling import (NOISE_SAMPLE_ELEMENTS, RowReader, as_2d, chunked_diff, rel_l2, release, row_aligned,
                        sample_rows)
from .report import NoiseFloor, TensorResult, TensorStats, Verdict
from .tolerance import Statistic, Tolerance, TolerancePolicy

CHUNK_BYTES = 64 << 20
_FLOAT_EPS = {DType.F32: 2.0 ** -24, DType.F16: 2.0 ** -11, DType.BF16: 2.0 ** -8, DType.F64: 2.0 ** -53}
_CONFIRM_FLOAT_REL = 2.0 ** -7   # a hypothesis on a float candidate must explain it to ~bf16 precision
_SAME_TENSOR_COSINE = 0.95      # DEGRADED vs CORRUPT


@dataclass
class Context:
    ref: Model
    cand: Model
    policy: TolerancePolicy
    threads: int | None = None
    chunk_bytes: int = CHUNK_BYTES
    _by_shape: dict[tuple[int, ...], list[TensorInfo]] = field(default_factory=dict)

    def ref_same_shape(self, shape: tuple[int, ...]) -> list[TensorInfo]:
        if not self._by_shape:
            for t in self.ref.tensors.values():
                self._by_shape.setdefault(tuple(t.shape), []).append(t)
        return self._by_shape.get(tuple(shape), [])


def to_stats(s: core.DiffStats, shape: tuple[int, ...]) -> TensorStats:
    idx: tuple[int, ...] = ()
    if s.argmax >= 0:
        idx = tuple(int(i) for i in np.unravel_index(s.argmax, shape)) if shape else (0,)
    return TensorStats(
        n=s.n, n_equal=s.n_equal, max_abs=s.max_abs, max_abs_index=idx, mean_abs=s.mean_abs, rmse=s.rmse,
        rel_l2=s.rel_l2, cosine=s.cosine, sqnr_db=s.sqnr_db, nmse=s.nmse, n_fail=s.n_fail, min_atol=s.min_atol,
        rtol=s.rtol, reference_nan=s.nan_a, reference_inf=s.inf_a, candidate_nan=s.nan_b, candidate_inf=s.inf_b,
        histogram=tuple(s.hist))


def _numeric(dt: DType) -> bool:
    return dt.is_float or dt.is_quantized


def _dequantizable(dt: DType) -> bool:
    return bool(core._core.dequant_supported(int(dt)))


def _quantizable(dt: DType) -> bool:
    return bool(core._core.quant_supported(int(dt)))


# ----------------------------------------------------------------------------- casts


def _round_to(x: np.ndarray, dt: DType) -> np.ndarray:
    """``x`` (float32) correctly rounded (nearest-even) to float type ``dt``, as raw bytes."""
    if dt is DType.F64:
        return x.astype(np.float64).view(np.uint8).ravel()  # widening: exact
    if dt in (DType.F32, DType.F16, DType.BF16):
        return core.quantize(x, dt)
    raise DTypeError(f"no round-to-nearest cast to {dt.lname}")


def _rne_check(ta: TensorInfo, tb: TensorInfo, perm: np.ndarray | None, threads: int | None,
               chunk_bytes: int) -> tuple[int, int]:
    """``(mismatched elements, of which rounded toward zero)`` versus the exact RNE cast of A."""
    rows, cols = as_2d(ta.shape)
    rb = tb.raw()
    itemsize = tb.dtype.info.block_bytes
    step = max(1, (chunk_bytes // 8) // max(cols, 1))
    whole_a = core.dequantize(ta, threads=threads).reshape(rows, cols) if perm is not None else None
    bad = toward_zero = 0
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        if whole_a is not None:
            a = whole_a[perm[r0:r1]]
        else:
            a = core.dequantize_rows(ta, None, (rows, cols), r0, r1, threads=threads)
        want = _round_to(a, tb.dtype)
        got = rb[r0 * cols * itemsize: r1 * cols * itemsize]
        if not np.array_equal(want, got):
            w = want.view(_np_dtype(tb.dtype)).reshape(-1)
            g = got.view(_np_dtype(tb.dtype)).reshape(-1)
            diff = w != g
            bad += int(diff.sum())
            gv = core.dequantize(np.ascontiguousarray(g[diff]), tb.dtype)
            wv = core.dequantize(np.ascontiguousarray(w[diff]), tb.dtype)
            toward_zero += int((np.abs(gv) < np.abs(wv)).sum())
        release(got)
    return bad, toward_zero


def _np_dtype(dt: DType) -> type:
    return {DType.F32: np.uint32, DType.F16: np.uint16, DType.BF16: np.uint16, DType.F64: np.uint64}[dt]


# ----------------------------------------------------------------------------- noise floor


def _noise_floor(ta: TensorInfo, tb: TensorInfo, perm: np.ndarray | None, threads: int | None,
                 full_rel_l2: float) -> NoiseFloor | None:
    """Re-quantize sampled rows of A with B's type (our quantizer) and measure both errors."""
    dt = tb.dtype
    if not _quantizable(dt):
        return None
    rows, cols = as_2d(ta.shape)
    if dt is DType.APR_Q8 or not row_aligned(dt, cols):
        idx = np.arange(rows, dtype=np.int64)  # tensor-wide scale / unaligned rows: whole tensor
    else:
        idx = sample_rows(rows, cols, NOISE_SAMPLE_ELEMENTS)
    ra = RowReader(ta.raw(), ta.dtype, rows, cols, threads)
    rb = RowReader(tb.raw(), dt, rows, cols, threads)
    a = ra.rows_at(perm[idx] if perm is not None else idx)
    b = rb.rows_at(idx)
    q = core.quantize(a, dt, threads=threads if a.size > (1 << 20) else 1)
    deq = core.dequantize(q, dt, a.shape, threads=1)
    floor = rel_l2(a, deq)
    cand = rel_l2(a, b)
    blocks_equal = blocks = 0
    violations: int | None = None
    if dt is not DType.APR_Q8 and row_aligned(dt, cols):
        row_b = payload_nbytes(dt, cols)
        raw_b = tb.raw()
        got = np.concatenate([raw_b[i * row_b:(i + 1) * row_b] for i in idx]) if len(idx) < rows else raw_b
        bb = dt.info.block_bytes
        if got.nbytes == q.nbytes and got.nbytes % bb == 0:
            eq = (got.reshape(-1, bb) == q.reshape(-1, bb)).all(axis=1)
            blocks_equal, blocks = int(eq.sum()), int(eq.size)
        if dt in (DType.Q8_0, DType.Q4_0):
            d = np.abs(got.reshape(-1, bb)[:, :2].copy().view(np.float16).astype(np.float32).ravel())
            k = 0.5625 if dt is DType.Q8_0 else 1.0625  # d/2 (d for Q4_0's clamped edge) + f16 scale rounding
            a32 = a.reshape(-1, 32)
            err = np.abs(b.reshape(-1, 32) - a32)
            # a reference stored narrower than f32 may have been quantized from its wider source:
            # allow its own half-ulp on top of the block bound
            slack = _FLOAT_EPS.get(ta.dtype, 0.0) if ta.dtype is not DType.F32 else 0.0
            bound = (k * d)[:, None] * (1 + 1e-6) + slack * np.abs(a32) + 1e-30
            violations = int((err > bound).sum())
    n_floor_rows = len(idx)
    if len(idx) < rows and not _same_error(full_rel_l2, cand):
        # The sampled rows do not represent the tensor (damage elsewhere, or rows of very different
        # scale): measure the floor on every row instead of trusting the sample.
        every = np.arange(rows, dtype=np.int64)
        a_all = ra.rows_at(perm if perm is not None else every)
        floor = rel_l2(a_all, core.dequantize(core.quantize(a_all, dt, threads=threads), dt, a_all.shape,
                                              threads=threads))
        n_floor_rows = rows
        ratio = _ratio(full_rel_l2, floor)
    elif len(idx) < rows:
        ratio = _ratio(cand, floor)  # like for like: candidate and floor on the same sampled rows
    else:
        ratio = _ratio(full_rel_l2, floor)
    return NoiseFloor(dt.lname, floor, cand, ratio, n_floor_rows, rows, blocks_equal, blocks, violations)


def _same_error(full: float, sample: float, factor: float = 1.25) -> bool:
    """Whether the whole-tensor rel-L2 and the sampled rows' rel-L2 agree within ``factor``."""
    if not (math.isfinite(full) and math.isfinite(sample)):
        return False
    if full == 0 or sample == 0:
        return full == sample
    return 1 / factor <= full / sample <= factor


def _ratio(err: float, floor: float) -> float:
    if floor > 0:
        return err / floor
    return 1.0 if err == 0 else math.inf


# ----------------------------------------------------------------------------- hypotheses


@dataclass(frozen=True)
class Hypothesis:
    verdict: Verdict
    transform: str
    detail: str
    stats: core.DiffStats | None
    related: str | None = None


def _match_threshold(tb_dtype: DType, noise: NoiseFloor | None, tol: Tolerance) -> float:
    """rel-L2 under which a hypothesis 'explains' the candidate."""
    if tb_dtype.is_quantized:
        floor = noise.rel_l2 if noise is not None and noise.rel_l2 > 0 else 0.05
        return floor * max(tol.max_noise_ratio or 1.5, 1.5) * 1.5
    return _CONFIRM_FLOAT_REL


def _expected_quant_noise(dt: DType, a: np.ndarray) -> float:
    try:
        q = core.quantize(a, dt)
        return rel_l2(a, core.dequantize(q, dt, a.shape))
    except AprqaError:
        return 0.1


class Diagnoser:
    """Tries hypotheses on sampled rows and confirms the first that fits with a full pass."""

    def __init__(self, ctx: Context, ta: TensorInfo, tb: TensorInfo, expected: tf.RowMap | None,
                 threshold: float):
        self.ctx, self.ta, self.tb, self.expected, self.thr = ctx, ta, tb, expected, threshold
        self.rows, self.cols = as_2d(ta.shape)
        self.idx = sample_rows(self.rows, self.cols, budget=1 << 16)
        self.ra = RowReader(ta.raw(), ta.dtype, self.rows, self.cols, ctx.threads)
        self.rb = RowReader(tb.raw(), tb.dtype, self.rows, self.cols, ctx.threads)
        self.b = self.rb.rows_at(self.idx)

    def _diff(self, a, b, **kw) -> core.DiffStats:
        return core.diff_stats(a, b, threads=self.ctx.threads, **kw)

    def transposed(self) -> Hypothesis | None:
        if len(self.ta.shape) != 2 or self.rows == 1 or self.cols == 1:
            return None
        r, c = self.rows, self.cols
        if not row_aligned(self.tb.dtype, r):
            return None
        # B's bytes read as [c, r] should be A^T: row i of that view is column i of A.
        bt = RowReader(self.tb.raw(), self.tb.dtype, c, r, self.ctx.threads)
        cols_i = sample_rows(c, r, budget=1 << 15)
        rows_j = sample_rows(r, c, budget=1 << 15)
        a_s = self.ra.rows_at(rows_j)[:, cols_i].T
        b_s = bt.rows_at(cols_i)[:, rows_j]
        if rel_l2(a_s, b_s) > self.thr:
            return None
        s = self._diff(self.ta, self.tb.raw(), b_dtype=self.tb.dtype, transform=("transpose", r, c))
        if s.rel_l2 > self.thr:
            return None
        where = (f"data transposed (square [{r}, {c}]: the shape cannot show it)" if r == c else
                 f"stored [{c}, {r}] data under shape [{r}, {c}]")
        return Hypothesis(Verdict.TRANSPOSED, "transpose",
                          f"{where}: rel-L2 "
                          f"{self._as_stored_rel():.3g} as stored → {s.rel_l2:.3g} if transposed", s)

    def _as_stored_rel(self) -> float:
        return rel_l2(self.ra.rows_at(self.idx), self.b)

    def row_maps(self) -> Hypothesis | None:
        maps = tf.rope_hypotheses(self.ta.name, self.ctx.ref, self.ctx.cand, self.rows)
        if self.expected is not None:
            maps = [m for m in maps if m.name != self.expected.name]
            maps.insert(0, tf.RowMap("identity", np.arange(self.rows, dtype=np.int64)))
        for m in maps:
            a_s = self.ra.rows_at(m.perm[self.idx])
            if rel_l2(a_s, self.b) > self.thr:
                continue
            s = self._diff(self.ta, self.tb.raw(), b_dtype=self.tb.dtype, transform=("row_perm", m.perm))
            if s.rel_l2 > self.thr:
                continue
            if m.name == "identity":
                what = (f"rows are in the reference order, but {self.ctx.cand.format} "
                        f"{self.ctx.cand.config.architecture or ''} expects {self.expected.name}: "
                        "the RoPE permutation was forgotten")
            elif self.expected is None:
                what = (f"rows match after {m.name}; {self.ctx.cand.format} "
                        f"{self.ctx.cand.config.architecture or ''} stores this tensor unpermuted: the RoPE "
                        "permutation was applied wrongly")
            else:
                what = f"rows match after {m.name} instead of the expected {self.expected.name}"
            return Hypothesis(Verdict.ROW_PERMUTED, m.name, f"{what} (rel-L2 {s.rel_l2:.3g})", s)
        return None

    def swapped(self) -> Hypothesis | None:
        me = self.ta.name
        cands = [t for t in self.ctx.ref_same_shape(self.ta.shape) if t.name != me]
        suffix = me.split(".", 3)[-1] if layer_index(me) is not None else None
        cands.sort(key=lambda t: (0 if suffix and t.name.endswith(suffix) else 1))
        for other in cands[:64]:
            try:
                ro = RowReader(other.raw(), other.dtype, self.rows, self.cols, self.ctx.threads)
            except AprqaError:
                continue
            perm = self.expected.perm if self.expected is not None else None
            a_s = ro.rows_at(perm[self.idx] if perm is not None else self.idx)
            if rel_l2(a_s, self.b) > self.thr:
                continue
            kw = {"transform": ("row_perm", perm)} if perm is not None else {}
            s = self._diff(other, self.tb.raw(), b_dtype=self.tb.dtype, **kw)
            if s.rel_l2 <= self.thr:
                return Hypothesis(Verdict.SWAPPED, "none", f"holds the data of {other.name} "
                                  f"(rel-L2 {s.rel_l2:.3g} against it)", s, related=other.name)
        return None

    def affine(self, full: core.DiffStats) -> Hypothesis | None:
        perm = self.expected.perm if self.expected is not None else None
        a = self.ra.rows_at(perm[self.idx] if perm is not None else self.idx).astype(np.float64).ravel()
        b = self.b.astype(np.float64).ravel()
        ok = np.isfinite(a) & np.isfinite(b)
        a, b = a[ok], b[ok]
        if a.size < 2 or float(np.var(a)) == 0:
            return None
        k, c = np.polyfit(a, b, 1)
        fit = k * a + c
        if rel_l2(fit.astype(np.float32), b.astype(np.float32)) > self.thr:
            return None
        scale_a = math.sqrt(float(np.mean(a * a)))
        is_offset = abs(k - 1) <= 4 * self.thr and abs(c) > self.thr * scale_a
        is_scale = abs(c) <= self.thr * scale_a and abs(k - 1) > 4 * self.thr
        # confirm on the full pass: an offset makes |d| constant, a scale keeps cosine at ±1
        if is_offset and full.n_finite:
            if abs(full.mean_d - c) <= 0.05 * abs(c) + self.thr * scale_a and \
                    full.max_abs <= abs(c) * 1.05 + 4 * self.thr * scale_a:
                return Hypothesis(Verdict.OFFSET, f"offset({c:+.4g})",
                                  f"candidate = reference {c:+.4g} (mean error {full.mean_d:+.4g}, "
                                  f"max |d| {full.max_abs:.4g})", None)
            return None
        if is_scale and abs(abs(full.cosine) - 1) <= self.thr:
            k_full = math.copysign(math.sqrt(full.sum_b2 / full.sum_a2), full.sum_ab) if full.sum_a2 else k
            return Hypothesis(Verdict.SCALED, f"scale({k_full:.4g})",
                              f"candidate = {k_full:.4g} × reference (cosine {full.cosine:.6f})", None)
        if not is_offset and not is_scale and (abs(k - 1) > 4 * self.thr or abs(c) > self.thr * scale_a):
            return Hypothesis(Verdict.SCALED, f"affine({k:.4g}, {c:+.4g})",
                              f"candidate ≈ {k:.4g} × reference {c:+.4g} on sampled rows", None)
        return None

    def misread(self) -> Hypothesis | None:
        return misread_as(self.ctx, self.ta, self.tb, self.ra, self.idx, self.rows, self.cols)


def misread_as(ctx: Context, ta: TensorInfo, tb: TensorInfo, ra: RowReader | None, idx: np.ndarray | None,
               rows: int, cols: int) -> Hypothesis | None:
    """Do B's bytes decode as A (within that dtype's noise) under another dtype of the same byte size?"""
    n = rows * cols
    raw = tb.raw()
    if ra is None:
        ra = RowReader(ta.raw(), ta.dtype, rows, cols, ctx.threads)
    if idx is None:
        idx = sample_rows(rows, cols, budget=1 << 16)
    a_s = ra.rows_at(idx)
    for dt in DType:
        if dt is tb.dtype or not _numeric(dt) or not _dequantizable(dt):
            continue
        try:
            if payload_nbytes(dt, n) != raw.nbytes:
                continue
        except AprqaError:
            continue
        try:
            b_s = RowReader(raw, dt, rows, cols, ctx.threads).rows_at(idx)
        except AprqaError:
            continue
        err = rel_l2(a_s, b_s)
        expected = _expected_quant_noise(dt, a_s) if dt.is_quantized and _quantizable(dt) else \
            _FLOAT_EPS.get(dt, 0.01)
        limit = max(expected * 2.0, 1e-6) if dt.is_quantized else _CONFIRM_FLOAT_REL
        if err > limit:
            continue
        s = core.diff_stats(ta.raw(), raw, a_dtype=ta.dtype, b_dtype=dt, threads=ctx.threads, shape=(n,))
        if s.rel_l2 > limit:
            continue
        return Hypothesis(Verdict.DTYPE_MISREAD, f"reinterpret-as-{dt.lname}",
                          f"the bytes are {dt.lname} data labelled {tb.dtype.lname}: read as {dt.lname} they "
                          f"match (rel-L2 {s.rel_l2:.3g}, {dt.lname} noise ≈ {expected:.3g})", s)
    return None


# ----------------------------------------------------------------------------- the judge


def _result(ta: TensorInfo | None, tb: TensorInfo | None, name: str, verdict: Verdict, passed: bool,
            **kw) -> TensorResult:
    return TensorResult(
        name=name, verdict=verdict, passed=passed,
        reference_dtype=ta.dtype.lname if ta else None, candidate_dtype=tb.dtype.lname if tb else None,
        reference_shape=tuple(ta.shape) if ta else None, candidate_shape=tuple(tb.shape) if tb else None,
        nbytes=(ta.nbytes if ta else 0) + (tb.nbytes if tb else 0), layer=layer_index(name), **kw)


def judge_pair(ctx: Context, ta: TensorInfo, tb: TensorInfo, name: str | None = None) -> TensorResult:
    """Verdict for reference ``ta`` vs candidate ``tb`` (``name``: the pair's canonical name).

    The pages of both payloads are released afterwards (bounded resident memory)."""
    try:
        return _judge_pair(ctx, ta, tb, name or ta.name)
    finally:
        for t in (ta, tb):
            if not t.past_eof:
                try:
                    release(t.raw())
                except AprqaError:
                    pass


def _judge_pair(ctx: Context, ta: TensorInfo, tb: TensorInfo, name: str) -> TensorResult:
    tol, tol_src = ctx.policy.for_tensor(name, ta.dtype, tb.dtype)
    ta, tb, offset_name = tf.offset_undone(name, ta, tb, ctx.ref, ctx.cand)
    base = dict(tolerance=tol, tolerance_source=tol_src)
    for t, side in ((ta, "reference"), (tb, "candidate")):
        if t.past_eof:
            return _result(ta, tb, name, Verdict.UNREADABLE, False, detail=f"{side} payload runs past the end "
                           f"of {t.file.name}", **base)
        if _numeric(t.dtype) and not _dequantizable(t.dtype):
            return _result(ta, tb, name, Verdict.UNREADABLE, False,
                           detail=f"{side} dtype {t.dtype.lname} cannot be decoded by aprqa's core", **base)
    if not (_numeric(ta.dtype) and _numeric(tb.dtype)):
        if ta.dtype == tb.dtype and tuple(ta.shape) == tuple(tb.shape):
            same = ta.nbytes == tb.nbytes and bool(np.array_equal(ta.raw(), tb.raw()))
            return _result(ta, tb, name, Verdict.IDENTICAL if same else Verdict.CORRUPT, same,
                           detail="byte-equal" if same else f"{ta.dtype.lname} payload bytes differ", **base)
        return _result(ta, tb, name, Verdict.DTYPE_CHANGE, False,
                       detail=f"{ta.dtype.lname} → {tb.dtype.lname}: not a float/quantized conversion", **base)
    rows, cols = as_2d(ta.shape)
    if tuple(ta.shape) != tuple(tb.shape):
        return _judge_shape_mismatch(ctx, ta, tb, name, base)

    notes = tf.layout_notes(ta, tb, ctx.ref, ctx.cand)
    expected = tf.rope_map_for(name, ctx.ref, ctx.cand, rows)
    transform = tuple(notes + ([expected.name] if expected else []) + ([offset_name] if offset_name else []))
    atol, rtol = (tol.atol, tol.rtol)
    if expected is not None:
        raw = core.diff_stats(ta, tb.raw(), b_dtype=tb.dtype, atol=atol, rtol=rtol, threads=ctx.threads,
                              transform=("row_perm", expected.perm))
    else:
        raw = chunked_diff(ta, tb, atol=atol, rtol=rtol, threads=ctx.threads, chunk_bytes=ctx.chunk_bytes)
    stats = to_stats(raw, tuple(ta.shape))
    perm = expected.perm if expected is not None else None
    res = dict(base, transform=transform, stats=stats)
    explicit = tol.statistic is Statistic.ELEMENTWISE

    # ---- the expectation of this dtype pair
    natural: Verdict | None = None
    detail = ""
    noise: NoiseFloor | None = None
    if raw.n_equal == raw.n:
        natural, detail = Verdict.IDENTICAL, "bit-equal after dequantization"
    if natural is None and not tb.dtype.is_quantized and raw.nonfinite_mismatch == 0 \
            and tb.dtype in (DType.F16, DType.BF16, DType.F32) and tb.dtype is not ta.dtype:
        bad, toward_zero = _rne_check(ta, tb, perm, ctx.threads, ctx.chunk_bytes)
        if bad == 0:
            natural, detail = Verdict.EXACT_CAST, f"exactly {ta.dtype.lname} rounded to nearest-even " \
                                                  f"{tb.dtype.lname} (max |d| {raw.max_abs:.3g})"
        else:
            how = " — all toward zero: truncation instead of rounding" if toward_zero == bad else \
                (f" ({toward_zero:,} toward zero)" if toward_zero else "")
            detail = (f"not round-to-nearest-even: {bad:,} of {raw.n:,} elements differ from the correctly "
                      f"rounded {tb.dtype.lname} value{how}; max |d| {raw.max_abs:.3g}")
    if natural is None and tb.dtype.is_quantized and tb.dtype != ta.dtype and raw.nonfinite_mismatch == 0:
        noise = _noise_floor(ta, tb, perm, ctx.threads, raw.rel_l2)
        if noise is not None:
            res["noise"] = noise
            limit = tol.max_noise_ratio if tol.statistic is Statistic.NOISE else None
            ok = limit is not None and noise.ratio <= limit and not noise.block_bound_violations
            ok = ok and _aggregate_ok(tol, raw)
            same_alg = (f"; bit-identical to our {noise.dtype} quantizer on {noise.blocks_bit_equal:,}/"
                        f"{noise.blocks_compared:,} sampled blocks" if noise.blocks_compared and
                        noise.blocks_bit_equal == noise.blocks_compared else "")
            desc = (f"err/noise {noise.ratio:.3g} (rel-L2 {raw.rel_l2:.3g}, {noise.dtype} noise "
                    f"{noise.rel_l2:.3g}), cos {raw.cosine:.6f}, SQNR {raw.sqnr_db:.1f} dB{same_alg}")
            if noise.block_bound_violations:
                desc += f"; {noise.block_bound_violations:,} sampled elements exceed the per-block bound"
            if ok:
                natural, detail = Verdict.QUANT_FAITHFUL, desc
            elif limit is not None:
                detail = desc + f" > limit {limit:g}"
            else:
                detail = desc

    if natural is not None and not (tol.statistic is Statistic.EXACT and ctx.policy.profile == "exact"
                                    and natural is not Verdict.IDENTICAL):
        if explicit and raw.n_fail:
            pass  # an explicit elementwise tolerance is stricter than the natural verdict: diagnose
        else:
            return _result(ta, tb, name, natural, True, detail=detail, **res)
    if explicit and raw.n_fail == 0 and raw.nonfinite_mismatch == 0 and _aggregate_ok(tol, raw):
        return _result(ta, tb, name, Verdict.WITHIN_TOLERANCE, True,
                       detail=f"within {tol.describe()} ({tol_src}); max |d| {raw.max_abs:.3g}"
                              + (f"; {detail}" if detail else ""), **res)

    # ---- diagnosis
    thr = _match_threshold(tb.dtype, noise, tol)
    dg = Diagnoser(ctx, ta, tb, expected, thr)
    for hyp in (dg.transposed, dg.row_maps, dg.swapped, dg.misread):
        h = hyp()
        if h is not None:
            return _failed(ta, tb, name, h, res)
    h = dg.affine(raw)
    if h is not None:
        return _failed(ta, tb, name, h, res)
    if raw.nonfinite_mismatch:
        return _result(ta, tb, name, Verdict.NAN_INF, False,
                       detail=f"{raw.nan_b - raw.nan_both:,} NaN and {raw.inf_b:,} Inf in the candidate where the "
                              f"reference is finite ({raw.nan_a:,} NaN / {raw.inf_a:,} Inf in the reference)", **res)
    if math.isfinite(raw.cosine) and raw.cosine >= _SAME_TENSOR_COSINE:
        if not detail:
            detail = f"rel-L2 {raw.rel_l2:.3g}, max |d| {raw.max_abs:.3g}, cos {raw.cosine:.6f}"
        if explicit:
            detail += f"; {raw.n_fail:,} of {raw.n:,} elements outside {tol.describe()}"
        return _result(ta, tb, name, Verdict.DEGRADED, False, detail=detail, **res)
    return _result(ta, tb, name, Verdict.CORRUPT, False,
                   detail=f"no known fault explains it: rel-L2 {raw.rel_l2:.3g}, cos {raw.cosine:.4f}, "
                          f"max |d| {raw.max_abs:.3g}", **res)


def _aggregate_ok(tol: Tolerance, s: core.DiffStats) -> bool:
    if tol.min_cosine is not None and not (s.cosine >= tol.min_cosine):
        return False
    if tol.max_rel_l2 is not None and not (s.rel_l2 <= tol.max_rel_l2):
        return False
    if tol.max_nmse is not None and not (s.nmse <= tol.max_nmse):
        return False
    return True


def _failed(ta: TensorInfo, tb: TensorInfo, name: str, h: Hypothesis, res: dict) -> TensorResult:
    res = dict(res)
    res["transform"] = tuple(res.get("transform", ())) + ((h.transform,) if h.transform != "none" else ())
    if h.stats is not None:
        res["explained_stats"] = to_stats(h.stats, tuple(ta.shape))
    return _result(ta, tb, name, h.verdict, False, detail=h.detail, related=h.related, **res)


def _judge_shape_mismatch(ctx: Context, ta: TensorInfo, tb: TensorInfo, name: str, base: dict) -> TensorResult:
    sa, sb = list(ta.shape), list(tb.shape)
    rows, cols = as_2d(ta.shape)
    n_a, n_b = ta.n_elements, tb.n_elements
    if n_a == n_b and n_a > 0:
        if len(sa) == 2 and sb == sa[::-1] and row_aligned(tb.dtype, rows):
            s = core.diff_stats(ta, tb.raw(), b_dtype=tb.dtype, threads=ctx.threads,
                                transform=("transpose", rows, cols))
            if s.rel_l2 <= _loose(ta, tb):
                return _result(ta, tb, name, Verdict.TRANSPOSED, False, transform=("transpose",),
                               detail=f"stored as [{sb[0]}, {sb[1]}] = the reference transposed (dim reversal "
                                      f"forgotten?); rel-L2 {s.rel_l2:.3g} once transposed back",
                               explained_stats=to_stats(s, tuple(ta.shape)), **base)
        s = core.diff_stats(ta.raw(), tb.raw(), a_dtype=ta.dtype, b_dtype=tb.dtype, threads=ctx.threads,
                            shape=(n_a,))
        if s.rel_l2 <= _loose(ta, tb):
            return _result(ta, tb, name, Verdict.SHAPE_MISMATCH, False, transform=("reshape",),
                           detail=f"same data in the same order under shape {sb} instead of {sa} "
                                  f"(a metadata error, rel-L2 {s.rel_l2:.3g})",
                           explained_stats=to_stats(s, (n_a,)), **base)
    # bytes of A's element count under another dtype?
    if _numeric(ta.dtype):
        h = misread_as(ctx, ta, tb, None, None, rows, cols)
        if h is not None:
            return _result(ta, tb, name, Verdict.DTYPE_MISREAD, False, transform=(h.transform,),
                           detail=h.detail + f" (the file claims shape {sb})",
                           explained_stats=to_stats(h.stats, tuple(ta.shape)) if h.stats else None, **base)
    return _result(ta, tb, name, Verdict.SHAPE_MISMATCH, False,
                   detail=f"reference {sa} ({n_a:,} elements), candidate {sb} ({n_b:,} elements)", **base)


def _loose(ta: TensorInfo, tb: TensorInfo) -> float:
    return 0.2 if tb.dtype.is_quantized else _CONFIRM_FLOAT_REL


ProgressFn = Callable[[int, int, str], None]
