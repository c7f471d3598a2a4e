# size: the verdict of a pair in the order its rules apply (undo the expected transform, one fused pass, bands, diagnosis)
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

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import core
from ..arch import layer_index
from ..errors import AprqaError, DTypeError
from ..formats.model import Model, TensorInfo
from ..quant.dtypes import DType
from . import noise as noise_mod
from . import transforms as tf
from ._sampling import CHUNK_BYTES, as_2d, chunked_diff, release, row_aligned
from .diagnose import CONFIRM_FLOAT_REL as _CONFIRM_FLOAT_REL
from .diagnose import DiagnosisJob, Diagnoser, Hypothesis, Prescreen, SwapIndex, misread_as
from .diagnose import dequantizable as _dequantizable
from .diagnose import match_threshold as _match_threshold
from .diagnose import numeric as _numeric
from .diagnose_batch import pass_sample
from .diagnose_rows import noise as added_noise, rows_permuted
from .results import NoiseFloor, TensorResult, TensorStats, Verdict
from .tolerance import Statistic, Tolerance, TolerancePolicy

_SAME_TENSOR_COSINE = 0.95      # DEGRADED vs CORRUPT


# Bytes of full-pass samples (diagnose_batch.pass_sample) that deferred pairs may hold in all: past it,
# the next failing pairs take none and their batched screen reads their rows from the files again.
# About 50 KB a 256 × 2048 pair; a 70B model's widest rows take ~0.5 MB a pair.
SAMPLE_BUDGET = 128 << 20


@dataclass
class Context:
    ref: Model
    cand: Model
    policy: TolerancePolicy
    threads: int | None = None
    chunk_bytes: int = CHUNK_BYTES
    swap_index: SwapIndex = field(init=False)
    # per shape: whether its last judged pair was deferred to a diagnosis. The next pair of a shape that
    # just failed has its full pass take what the batched screen reads (diagnose_batch.pass_sample);
    # a model whose pairs pass pays nothing for it.
    last_deferred: dict[tuple[int, ...], bool] = field(init=False, default_factory=dict)
    sampled_bytes: int = field(init=False, default=0)  # what deferred pairs' samples hold (SAMPLE_BUDGET)

    def __post_init__(self) -> None:
        self.swap_index = SwapIndex(self.ref, self.threads)


def to_stats(s: core.DiffStats, shape: tuple[int, ...]) -> TensorStats:
    idx: tuple[int, ...] = ()
    if s.argmax >= 0:
        idx = tuple(int(i) for i in np.unravel_index(s.argmax, shape)) if shape else (0,)
    return TensorStats(
        n=s.n, n_equal=s.n_equal, max_abs=s.max_abs, max_abs_index=idx, mean_abs=s.mean_abs, rmse=s.rmse,
        rel_l2=s.rel_l2, cosine=s.cosine, sqnr_db=s.sqnr_db, nmse=s.nmse, n_fail=s.n_fail, min_atol=s.min_atol,
        rtol=s.rtol, reference_nan=s.nan_a, reference_inf=s.inf_a, candidate_nan=s.nan_b, candidate_inf=s.inf_b,
        histogram=tuple(s.hist))


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


# Significant bits and smallest spacing of the float types a reference may already be rounded to.
_FLOAT_GRID = {DType.F16: (11, 2.0 ** -24), DType.BF16: (8, 2.0 ** -133)}


def _sibling_cast_bad(ta: TensorInfo, tb: TensorInfo, perm: np.ndarray | None, threads: int | None,
                      chunk_bytes: int) -> int:
    """Elements of B that are not a correct rounding of any value inside A's own rounding interval.

    A reference that is itself rounded (f16/bf16) and a candidate rounded from the same finer original
    (the f32 weights) are siblings, not parent and child: B = RNE(x) where A = RNE(x) for an unknown x,
    so B must lie between the roundings to B's type of A's interval ends (A ± half its spacing)."""
    p, tiny = _FLOAT_GRID[ta.dtype]
    rows, cols = as_2d(ta.shape)
    step = max(1, (chunk_bytes // 8) // max(cols, 1))
    whole_a = core.dequantize(ta, threads=threads).reshape(rows, cols) if perm is not None else None
    bad = 0
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        a = whole_a[perm[r0:r1]] if whole_a is not None else \
            core.dequantize_rows(ta, None, (rows, cols), r0, r1, threads=threads)
        a64 = a.astype(np.float64).reshape(-1)
        m, e = np.frexp(np.abs(a64))  # |a| = m·2^e, m in [0.5, 1)
        up = np.maximum(np.ldexp(1.0, e - p), tiny)
        down = np.where(m == 0.5, up / 2, up)  # below a power of two the spacing halves
        down = np.maximum(down, tiny)
        sign = np.where(a64 < 0, -1.0, 1.0)
        ends = (np.abs(a64) - down / 2, np.abs(a64) + up / 2)
        lo_hi = [core.dequantize(np.ascontiguousarray(_round_to((sign * x).astype(np.float32), tb.dtype)
                                                      .view(_np_dtype(tb.dtype))), tb.dtype).astype(np.float64)
                 for x in ends]
        lo, hi = np.minimum(*lo_hi), np.maximum(*lo_hi)
        b = core.dequantize_rows(tb, None, (rows, cols), r0, r1, threads=threads).astype(np.float64).reshape(-1)
        finite = np.isfinite(a64) & np.isfinite(b)
        bad += int((finite & ((b < lo) | (b > hi))).sum())
    return bad


def _np_dtype(dt: DType) -> type:
    return {DType.F32: np.uint32, DType.F16: np.uint16, DType.BF16: np.uint16, DType.F64: np.uint64}[dt]


# ----------------------------------------------------------------------------- noise floor: comparison/noise.py
# ----------------------------------------------------------------------------- diagnosis: comparison/diagnose.py


# ----------------------------------------------------------------------------- the judge


def _result(ta: TensorInfo | None, tb: TensorInfo | None, name: str, verdict: Verdict, passed: bool,
            **kw) -> TensorResult:
    return TensorResult(
        name=name, verdict=verdict, passed=passed,
        reference_dtype=ta.dtype.lname if ta else None, candidate_dtype=tb.dtype.lname if tb else None,
        reference_shape=tuple(ta.shape) if ta else None, candidate_shape=tuple(tb.shape) if tb else None,
        nbytes=(ta.nbytes if ta else 0) + (tb.nbytes if tb else 0), layer=layer_index(name), **kw)


@dataclass(frozen=True)
class Deferred:
    """A failing pair judged up to its diagnosis (``judge_or_defer``): ``finish()`` runs the hypotheses
    and returns the verdict ``judge_pair`` returns.

    compare runs every pair's full pass first and the diagnoses after them, back to back: a diagnosis
    is many small steps (sampled rows, a signature search) whose code and data each full pass evicts
    from the caches; after one another they run about twice as fast (docs/performance.md)."""

    name: str
    nbytes: int
    run: Callable[[Prescreen | None], TensorResult]
    ta: TensorInfo
    tb: TensorInfo
    job: DiagnosisJob | None = None  # what a group's batched screen needs (diagnose_batch)

    def finish(self, pre: Prescreen | None = None) -> TensorResult:
        """The verdict; ``pre``: this pair's share of its group's batched screen (``diagnose_batch``)."""
        try:
            return _as_stored(self.run(pre), self.ta, self.tb)
        finally:
            _release(self.ta, self.tb)


def judge_pair(ctx: Context, ta: TensorInfo, tb: TensorInfo, name: str | None = None) -> TensorResult:
    """Verdict for reference ``ta`` vs candidate ``tb`` (``name``: the pair's canonical name).

    The pages of both payloads are released afterwards (bounded resident memory)."""
    r = judge_or_defer(ctx, ta, tb, name, defer=False)
    assert isinstance(r, TensorResult)
    return r


def judge_or_defer(ctx: Context, ta: TensorInfo, tb: TensorInfo, name: str | None = None, *,
                   defer: bool = True) -> TensorResult | Deferred:
    """``judge_pair``, except that with ``defer`` a pair that needs a diagnosis comes back as
    ``Deferred`` (its full pass done, its hypotheses not yet tried), unless its values were decoded
    into memory (then it is diagnosed at once: holding them would grow memory with the failing tensors)."""
    try:
        r = _judge_pair(ctx, ta, tb, name or ta.name, defer)
        ctx.last_deferred[tuple(ta.shape)] = isinstance(r, Deferred)
        if isinstance(r, Deferred):
            return r
        return _as_stored(r, ta, tb)
    finally:
        _release(ta, tb)


def _as_stored(r: TensorResult, ta: TensorInfo, tb: TensorInfo) -> TensorResult:
    if any(not t.past_eof and core.row_padded_width(t) is not None for t in (ta, tb)):
        # judged on decoded values (tf.decoded): the result names the types the files store
        r = dataclasses.replace(r, reference_dtype=ta.dtype.lname, candidate_dtype=tb.dtype.lname,
                                nbytes=ta.nbytes + tb.nbytes)
    return r


def _release(*tensors: TensorInfo) -> None:
    for t in tensors:
        if not t.past_eof:
            try:
                release(t.raw())
            except AprqaError:
                pass


def _judge_pair(ctx: Context, ta: TensorInfo, tb: TensorInfo, name: str,
                defer: bool = False) -> TensorResult | Deferred:
    tol, tol_src = ctx.policy.for_tensor(name, ta.dtype, tb.dtype)
    stored_a, stored_b = ta, tb
    ta, tb, offset_name = tf.offset_undone(name, ta, tb, ctx.ref, ctx.cand)
    base = dict(tolerance=tol, tolerance_source=tol_src)
    for t, side in ((ta, "reference"), (tb, "candidate")):
        if t.past_eof:
            return _result(ta, tb, name, Verdict.UNREADABLE, False, detail=f"{side} payload runs past the end "
                           f"of {t.file.name}", **base)
        if _numeric(t.dtype) and not _dequantizable(t.dtype):
            return _result(ta, tb, name, Verdict.NOT_JUDGED, False,
                           detail=f"NOT-JUDGED: {side} dtype {t.dtype.lname} cannot be decoded by aprqa's core "
                                  "(the other tensors are still compared)", **base)
    if not (_numeric(ta.dtype) and _numeric(tb.dtype)):
        if ta.dtype == tb.dtype and tuple(ta.shape) == tuple(tb.shape):
            same = ta.nbytes == tb.nbytes and bool(np.array_equal(ta.raw(), tb.raw()))
            return _result(ta, tb, name, Verdict.IDENTICAL if same else Verdict.CORRUPT, same,
                           detail="byte-equal" if same else f"{ta.dtype.lname} payload bytes differ", **base)
        return _result(ta, tb, name, Verdict.DTYPE_CHANGE, False,
                       detail=f"{ta.dtype.lname} → {tb.dtype.lname}: not a float/quantized conversion", **base)
    rows, cols = as_2d(ta.shape)
    padded_b = tb if core.row_padded_width(tb) is not None else None
    qb = tb.dtype  # the candidate's type as stored: its band, whatever layout its values are read from
    ta, tb = tf.decoded(ta), tf.decoded(tb)
    if tuple(ta.shape) != tuple(tb.shape):
        return _judge_shape_mismatch(ctx, ta, tb, name, base)

    notes = tf.layout_notes(ta, tb, ctx.ref, ctx.cand)
    expected = tf.rope_map_for(name, ctx.ref, ctx.cand, rows)
    transform = tuple(notes + ([expected.name] if expected else []) + ([offset_name] if offset_name else []))
    atol, rtol = (tol.atol, tol.rtol)
    sample: core.RowSample | None = None
    if expected is not None:
        raw = core.diff_stats(ta, tb.raw(), b_dtype=tb.dtype, atol=atol, rtol=rtol, threads=ctx.threads,
                              transform=("row_perm", expected.perm))
    else:
        # a pair compare may defer (its bytes still the file's), after one of its shape failed, takes what
        # its diagnosis's batched screen reads in this pass: that screen then reads no page of it again
        if defer and ta is stored_a and tb is stored_b and ctx.last_deferred.get(tuple(ta.shape)) \
                and ctx.sampled_bytes < SAMPLE_BUDGET:
            sample = pass_sample(tuple(ta.shape), tb.dtype)
        raw = chunked_diff(ta, tb, atol=atol, rtol=rtol, threads=ctx.threads, chunk_bytes=ctx.chunk_bytes,
                           row_sample=sample)
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
    if natural is None and not qb.is_quantized and raw.nonfinite_mismatch == 0 \
            and tb.dtype in (DType.F16, DType.BF16, DType.F32) and tb.dtype is not ta.dtype:
        bad, toward_zero = _rne_check(ta, tb, perm, ctx.threads, ctx.chunk_bytes)
        if bad and ta.dtype in _FLOAT_GRID and _sibling_cast_bad(ta, tb, perm, ctx.threads, ctx.chunk_bytes) == 0:
            natural, detail = Verdict.EXACT_CAST, (
                f"{tb.dtype.lname} correctly rounded from the {ta.dtype.lname} reference's own original: every "
                f"element is the nearest-even {tb.dtype.lname} of a value inside the reference's {ta.dtype.lname} "
                f"rounding interval ({bad:,} differ from rounding the {ta.dtype.lname} values themselves); "
                f"max |d| {raw.max_abs:.3g}")
        elif bad == 0:
            natural, detail = Verdict.EXACT_CAST, f"exactly {ta.dtype.lname} rounded to nearest-even " \
                                                  f"{tb.dtype.lname} (max |d| {raw.max_abs:.3g})"
        else:
            how = " — all toward zero: truncation instead of rounding" if toward_zero == bad else \
                (f" ({toward_zero:,} toward zero)" if toward_zero else "")
            detail = (f"not round-to-nearest-even: {bad:,} of {raw.n:,} elements differ from the correctly "
                      f"rounded {tb.dtype.lname} value{how}; max |d| {raw.max_abs:.3g}")
    not_judged = ""
    if natural is None and qb.is_quantized and raw.nonfinite_mismatch == 0:
        # a quantized reference of the same type too: a GGUF requantized to its own type
        measured = noise_mod.measure(ta, tb, perm, ctx.threads, raw, padded=padded_b)
        if measured is None:
            not_judged = (f"no error band for {qb.lname} on this tensor (aprqa has no {qb.lname} "
                          "quantizer and no step model fits its rows)")
        else:
            limit = noise_mod.limit_for(measured.floor, tol, tol_src)
            noise = dataclasses.replace(measured.floor, limit=limit)
            res["noise"] = noise
            evidence = noise_mod.faithful_evidence(measured, raw)
            in_band = noise_mod.in_band(noise, limit, raw)
            ok = (in_band or evidence is not None) and _aggregate_ok(tol, raw)
            desc = noise_mod.describe(noise, limit, raw)
            scaled = noise_mod.scaled(measured, limit, raw) if not ok and limit is not None else None
            if ok:
                natural, detail = Verdict.QUANT_FAITHFUL, ("within the " + desc if in_band else
                                                           f"{evidence}: a faithful {qb.lname} quantization "
                                                           f"whatever its error level; {desc}")
            elif scaled is not None:
                return _result(ta, tb, name, Verdict.SCALED, False, detail=f"{scaled[1]}; not in the {desc}",
                               **dict(res, transform=transform + (f"scale({scaled[0]:.4g})",)))
            elif limit is None and tol.statistic is Statistic.NOISE:
                not_judged = (f"no measured error band for {qb.lname} (scripts/measure_quant_bands.py); "
                              f"{desc}")
            else:
                detail = ("not in the " if limit is not None else "") + desc

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

    thr = _match_threshold(qb, noise, tol)

    def diagnosis(pre: Prescreen | None = None) -> TensorResult:
        return _diagnose(ctx, ta, tb, name, qb, expected, raw, noise, tol, res, detail, not_judged, thr, pre)

    if defer and ta is stored_a and tb is stored_b:  # both still the file's bytes: only a sample held
        ctx.sampled_bytes += sample.nbytes if sample is not None else 0
        return Deferred(name, stored_a.nbytes + stored_b.nbytes, diagnosis, stored_a, stored_b,
                        DiagnosisJob(ctx, ta, tb, qb, expected, raw, thr, sample))
    return diagnosis()


def _diagnose(ctx: Context, ta: TensorInfo, tb: TensorInfo, name: str, qb: DType, expected: tf.RowMap | None,
              raw: core.DiffStats, noise: NoiseFloor | None, tol: Tolerance, res: dict, detail: str,
              not_judged: str, thr: float, pre: Prescreen | None = None) -> TensorResult:
    """A failing pair: the first hypothesis that explains it, else NAN/INF, NOT-JUDGED, DEGRADED or CORRUPT.

    ``pre``: the pair's share of its group's batched screen, which rules hypotheses out (never in)."""
    explicit = tol.statistic is Statistic.ELEMENTWISE
    dg = Diagnoser(ctx, ta, tb, expected, thr, raw, stored=qb, pre=pre)
    for hyp in (dg.transposed, dg.row_maps, dg.swapped, dg.misread, lambda: rows_permuted(dg)):
        h = hyp()
        if h is not None:
            return _failed(ta, tb, name, h, res)
    h = dg.affine(raw) or (added_noise(dg, raw) if raw.nonfinite_mismatch == 0 else None)
    if h is not None:
        return _failed(ta, tb, name, h, res)
    if raw.nonfinite_mismatch:
        return _result(ta, tb, name, Verdict.NAN_INF, False,
                       detail=f"{raw.nan_b - raw.nan_both:,} NaN and {raw.inf_b:,} Inf in the candidate where the "
                              f"reference is finite ({raw.nan_a:,} NaN / {raw.inf_a:,} Inf in the reference)", **res)
    if not_judged and raw.cosine > 0:
        # the structural faults above were ruled out; the error level itself cannot be judged
        return _result(ta, tb, name, Verdict.NOT_JUDGED, False, detail=f"NOT-JUDGED: {not_judged}; rel-L2 "
                       f"{raw.rel_l2:.3g}, cos {raw.cosine:.6f}", **res)
    if _same_tensor(raw, noise):
        if not detail:
            detail = f"rel-L2 {raw.rel_l2:.3g}, max |d| {raw.max_abs:.3g}, cos {raw.cosine:.6f}"
        if explicit:
            detail += f"; {raw.n_fail:,} of {raw.n:,} elements outside {tol.describe()}"
        return _result(ta, tb, name, Verdict.DEGRADED, False, detail=detail, **res)
    return _result(ta, tb, name, Verdict.CORRUPT, False,
                   detail=f"no known fault explains it: rel-L2 {raw.rel_l2:.3g}, cos {raw.cosine:.4f}, "
                          f"max |d| {raw.max_abs:.3g}", **res)


def _same_tensor(s: core.DiffStats, noise: NoiseFloor | None) -> bool:
    """DEGRADED (still this tensor) rather than CORRUPT: cosine ≥ 0.95, or for a quantized candidate
    an error within 3× what its type produces (a faithful Q2_K tensor's own cosine is about 0.95)."""
    if not math.isfinite(s.cosine):
        return False
    if s.cosine >= _SAME_TENSOR_COSINE:
        return True
    return noise is not None and s.cosine > 0 and s.rel_l2 <= 3 * noise.rel_l2


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
        h = misread_as(ctx, ta, tb, rows, cols)
        if h is not None:
            return _result(ta, tb, name, Verdict.DTYPE_MISREAD, False, transform=(h.transform,),
                           detail=h.detail + f" (the file claims shape {sb})",
                           explained_stats=to_stats(h.stats, tuple(ta.shape)) if h.stats else None, **base)
    return _result(ta, tb, name, Verdict.SHAPE_MISMATCH, False,
                   detail=f"reference {sa} ({n_a:,} elements), candidate {sb} ({n_b:,} elements)", **base)


def _loose(ta: TensorInfo, tb: TensorInfo) -> float:
    return 0.2 if tb.dtype.is_quantized else _CONFIRM_FLOAT_REL


ProgressFn = Callable[[int, int, str], None]


_ON_GRID = re.compile(r"all [\d,]+ sampled elements (on|at) their nearest grid level")


def contradiction(t: TensorResult) -> str | None:
    """Why ``t``'s verdict contradicts its own detail, or None: a failing verdict whose detail
    states evidence of faithfulness (bit-identical to our quantizer; every element on its nearest
    grid level with the gain in range), or a passing one whose detail says it is outside its band."""
    d = t.detail or ""
    if t.passed:
        return "passing verdict whose detail says it is outside its band" if d.startswith("not in the ") else None
    if t.verdict is Verdict.SCALED and "× a faithful" in d:
        return None  # evidence *after* undoing the scale: the verdict names that scale
    if "bit-identical to our" in d:
        return f"{t.verdict.value} although the detail says bit-identical to our quantizer"
    if _ON_GRID.search(d) and "gain outside" not in d:
        return f"{t.verdict.value} although every sampled element is on its nearest grid level with the gain in range"
    return None
