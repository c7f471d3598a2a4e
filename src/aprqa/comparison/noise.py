"""Is a quantized candidate what a faithful quantizer of its type produces? (docs/tolerances.md)

The judgement of one quantized tensor against the band of ``bands``: its error relative to an
expected error measured on the same rows (aprqa's quantizer of the type, or the type's step
model), the per-block bound of the round-to-nearest types, the pipeline's intermediate precision
(detected from the data) and the least-squares gain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import core
from ..formats.model import TensorInfo
from ..quant.dtypes import TRAITS, DType, payload_nbytes
from ..quant.storable import quantizable
from . import bands
from .diagnose import FLOAT_EPS
from ._sampling import NOISE_SAMPLE_ELEMENTS, RowReader, as_2d, rel_l2, row_aligned, sample_rows
from .results import NoiseFloor
from .tolerance import Statistic, Tolerance

# Per-element bound |a − deq| ≤ k·d + (qmax + k)·h, d the stored f16 scale and h ≥ its rounding
# error (half an f16 ulp at d, 2^-25 once d is subnormal): the rows' ``block_bound`` column (k, qmax)
# (quant/dtypes.py says how each k was measured).
_BLOCK_BOUND = {t.dtype: t.block_bound for t in TRAITS.values() if t.block_bound is not None}


def _rounded(a: np.ndarray, via: DType | None) -> np.ndarray:
    """``a`` as the pipeline's intermediate float type holds it (None: unchanged)."""
    if via is None:
        return a
    return core.dequantize(core.quantize(a, via), via, a.shape)


def _intermediate_name(via: DType | None) -> str:
    return "none" if via is None else via.lname


def _block_violations(dt: DType, got: np.ndarray, a: np.ndarray, b: np.ndarray, ref_dtype: DType) -> int:
    """Elements past the per-block bound |a − deq| ≤ k·d (Q8_0, Q4_0; ``d`` the candidate's own
    f16 scale), with ``a`` the (intermediate-rounded) reference."""
    bb = dt.info.block_bytes
    d = np.abs(got.reshape(-1, bb)[:, :2].copy().view(np.float16).astype(np.float64).ravel())
    a32 = a.reshape(-1, 32)
    err = np.abs(b.reshape(-1, 32) - a32)
    k, qmax = _BLOCK_BOUND[dt]
    h = np.maximum(d * 2.0 ** -11, 2.0 ** -25)
    # a reference stored narrower than f32 may have been quantized from its wider source:
    # allow its own half-ulp on top of the block bound
    slack = FLOAT_EPS[ref_dtype] if ref_dtype in (DType.F16, DType.BF16) else 0.0  # narrower than f32 only
    bound = (k * d + (qmax + k) * h)[:, None] * (1 + 1e-6) + slack * np.abs(a32) + 1e-30
    return int((err > bound).sum())


def _padded(x: np.ndarray, width: int | None) -> np.ndarray:
    """Rows ``x`` zero-padded to ``width`` columns (None: unchanged), as aprender quantizes them."""
    if width is None or x.shape[-1] == width:
        return x
    out = np.zeros((x.shape[0], width), np.float32)
    out[:, : x.shape[-1]] = x
    return out


def measure(ta: TensorInfo, tb: TensorInfo, perm: np.ndarray | None, threads: int | None,
            full: core.DiffStats, padded: TensorInfo | None = None) -> "Measured | None":
    """Measure the candidate against the faithful band of its type on evenly spread rows.

    ``padded``: the candidate as stored when it is aprender's row-padded K-quant layout (``tb`` is then
    its decoded values): every row is quantized zero-padded to whole super-blocks, as aprender does, and
    judged on its real columns. None when aprqa has neither a quantizer nor a step model of the type."""
    stored = padded if padded is not None else tb
    dt = stored.dtype
    own = quantizable(dt)
    rows, cols = as_2d(ta.shape)
    width = core.row_padded_width(padded) if padded is not None else None
    # padded rows are whole super-blocks each: sampled rows are read as the quantizer saw them
    aligned = dt is not DType.APR_Q8 and (row_aligned(dt, cols) or width is not None)
    if not own and (not aligned or bands.GEOMETRY.get(dt) is None or cols % bands.GEOMETRY[dt].sub):
        return None
    idx = sample_rows(rows, cols, NOISE_SAMPLE_ELEMENTS) if aligned else np.arange(rows, dtype=np.int64)
    if aligned and len(idx) < rows and full.argmax >= 0:
        # the row of the largest difference is always measured: a few moved or damaged rows dilute a whole
        # tensor's rel-L2 into its band, but their per-block bound and grid test still fail there
        idx = np.union1d(idx, np.array([min(full.argmax // max(cols, 1), rows - 1)], dtype=np.int64))
    ra = RowReader(ta.raw(), ta.dtype, rows, cols, threads)
    a = ra.rows_at(perm[idx] if perm is not None else idx)
    b = RowReader(tb.raw(), tb.dtype, rows, cols, threads).rows_at(idx)
    cand = rel_l2(a, b)
    got = None
    if aligned:
        row_b = payload_nbytes(dt, width or cols)
        raw_b = stored.raw()
        got = np.concatenate([raw_b[i * row_b:(i + 1) * row_b] for i in idx]) if len(idx) < rows else raw_b

    via, blocks_equal, blocks, detected = None, 0, 0, False
    if own:
        # Which intermediate reproduces the candidate's bytes best (ties: the plainest)?
        best = -1
        for t in bands.INTERMEDIATES:
            q = core.quantize(_padded(_rounded(a, t), width), dt, threads=1)
            if got is None or got.nbytes != q.nbytes or got.nbytes % dt.info.block_bytes:
                break
            bb = dt.info.block_bytes
            eq = int((got.reshape(-1, bb) == q.reshape(-1, bb)).all(axis=1).sum())
            if eq > best:
                best, via, blocks_equal, blocks = eq, t, eq, got.nbytes // bb
            if eq == got.nbytes // bb:
                break  # every block reproduced: a later intermediate could only tie, and ties keep this one
        detected = blocks > 0 and blocks_equal == blocks

    violations: int | None = None
    if got is not None and dt in _BLOCK_BOUND:
        # the bound holds against the intermediate the pipeline rounded to: try them in order
        order = ([via] if detected else []) + [t for t in bands.INTERMEDIATES if not (detected and t is via)]
        counts = {}
        for t in order:
            counts[t] = _block_violations(dt, got, _rounded(a, t), b, ta.dtype)
            if counts[t] == 0:
                via, detected = t, True
                break
        violations = min(counts.values())

    off_grid = None
    # the grid is per sub-block: on real columns only when padded rows keep them whole
    if dt in bands.UNIFORM_GRID and (width is None or cols % bands.GEOMETRY[dt].sub == 0):
        margin = bands.HALF_ULP[via] if detected else bands.GRID_MARGIN_REL
        off_grid = bands.grid_violations(a, b, dt, margin_rel=margin)

    def floor_of(x: np.ndarray) -> tuple[float, str]:
        """(floor, basis) on rows ``x``."""
        step = bands.step_model_rel_l2(_padded(x, width), dt)
        if not own:
            return (step or 0.0), "step"
        xi = _padded(_rounded(x, via if detected else None), width)
        deq = core.dequantize(core.quantize(xi, dt, threads=threads if x.size > (1 << 20) else 1), dt, xi.shape,
                              threads=threads)
        f = rel_l2(x, np.ascontiguousarray(deq[:, :cols]) if width is not None else deq)
        if not detected:  # stated margin: an undetected f16/bf16 step before quantizing
            f = math.hypot(f, rel_l2(x, _rounded(x, DType.BF16)))
        if bands.reference_on_grid(f, step, dt):
            return step, "grid-reference"
        return f, "aprqa"

    floor, basis = floor_of(a)
    n_floor_rows = len(idx)
    if len(idx) < rows and not _same_error(full.rel_l2, cand):
        # The sampled rows do not represent the tensor (damage elsewhere, or rows of very different
        # scale): measure the floor on every row instead of trusting the sample.
        every = np.arange(rows, dtype=np.int64)
        floor, basis = floor_of(ra.rows_at(perm if perm is not None else every))
        n_floor_rows = rows
        ratio = _ratio(full.rel_l2, floor)
    elif len(idx) < rows:
        ratio = _ratio(cand, floor)  # like for like: candidate and floor on the same sampled rows
    else:
        ratio = _ratio(full.rel_l2, floor)
    gain = bands.least_squares_gain(full.sum_ab, full.sum_b2)
    intermediate = _intermediate_name(via) if detected else None
    noise = NoiseFloor(dt.lname, floor, cand, ratio, n_floor_rows, rows, blocks_equal, blocks, violations,
                       basis=basis, intermediate=intermediate, gain=gain, off_grid=off_grid,
                       grid_checked=a.size if off_grid is not None else 0)
    return Measured(noise, a, b, representative=len(idx) == rows or _same_error(full.rel_l2, cand))


@dataclass(frozen=True)
class Measured:
    """The reported measurement and the sampled rows it was made on (for the scale search)."""

    floor: NoiseFloor
    a: np.ndarray
    b: np.ndarray
    representative: bool = True  # the sampled rows' error agrees with the whole tensor's


def faithful_evidence(m: Measured, full: core.DiffStats) -> str | None:
    """Direct evidence that the candidate is a faithful quantization, whatever its error level: the
    sampled blocks are bit-identical to aprqa's quantizer of the reference (the same algorithm), or
    every sampled element sits at its nearest grid level under the stored scales with a gain in the
    family's range (what every faithful grid quantizer ends with). Only when the sample represents
    the tensor (its error agrees with the whole tensor's) and nothing is non-finite; None otherwise.
    A candidate with such evidence is never failed for its error level (a reference already on a
    grid, or f16-rounded, can push aprqa's own error to ~0)."""
    n = m.floor
    if not m.representative or full.nonfinite_mismatch:
        return None
    if n.blocks_compared and n.blocks_bit_equal == n.blocks_compared and not n.block_bound_violations:
        return f"bit-identical to our {n.dtype} quantizer on {n.blocks_bit_equal:,}/{n.blocks_compared:,} sampled blocks"
    if n.off_grid is not None and n.grid_checked and n.off_grid == 0 and _gain_ok(n.gain, full.rel_l2, n.dtype):
        return f"all {n.grid_checked:,} sampled elements at their nearest grid level, gain {n.gain:.4f} in range"
    return None


def _on_grid(noise: NoiseFloor) -> bool:
    return noise.off_grid is None or noise.off_grid <= bands.GRID_TOLERANCE * noise.grid_checked


def in_band(noise: NoiseFloor, limit: float | None, full: core.DiffStats) -> bool:
    """Error within the band, per-block bound and grid test met, gain within the family's range."""
    return (limit is not None and noise.ratio <= limit and not noise.block_bound_violations
            and _on_grid(noise) and _gain_ok(noise.gain, full.rel_l2, noise.dtype))


def _gain_ok(g: float | None, rel: float, dtype: str) -> bool:
    lo, hi = bands.gain_range(rel, DType[dtype.upper()])
    return g is not None and math.isfinite(g) and lo <= g <= hi


def limit_for(noise: NoiseFloor, tol: Tolerance, tol_source: str) -> float | None:
    """The err/noise limit that applies: the step band's for a type judged by its step model
    (unless an override sets one), else the tolerance's."""
    if tol.statistic is not Statistic.NOISE:
        return None
    if noise.basis in ("step", "grid-reference") and not tol_source.startswith("override"):
        band = bands.step_limit(DType[noise.dtype.upper()])
        return band.limit if band is not None else None  # no measured band: NOT-JUDGED, never a guess
    return tol.max_noise_ratio


def scaled(m: Measured, limit: float, full: core.DiffStats) -> tuple[float, str] | None:
    """When the candidate is a faithful quantization times a wrong factor, ``(factor, why)``.

    Grid types: the factor that puts every element back on its nearest grid level (searched
    over 0.80-1.25), if the error is then inside the band. Others: the least-squares gain, if it
    is out of the family's range and the error once it is undone is inside the band."""
    noise = m.floor
    g = noise.gain
    if g is None or not math.isfinite(g) or g <= 0 or not full.sum_a2 or not math.isfinite(noise.ratio) \
            or noise.candidate_rel_l2 <= 0:
        return None
    if noise.off_grid is not None:
        a, b = m.a, m.b
        dt = DType[noise.dtype.upper()]

        def off(k: float) -> int:
            return bands.grid_violations(a, b, dt, scale=k, margin_rel=bands.GRID_MARGIN_REL)

        coarse = min(np.arange(0.80, 1.2501, 0.01), key=off)
        fine = np.arange(coarse - 0.01, coarse + 0.01001, 0.0005)
        counts = np.array([off(k) for k in fine])
        k = float(np.median(fine[counts == counts.min()]))  # the middle of the best-fitting factors
        left = off(k)
        if abs(k - 1) < 0.005 or left > bands.GRID_TOLERANCE * a.size:
            return None
        after = rel_l2(a, b / np.float32(k))
        ratio_after = after / noise.rel_l2 if noise.rel_l2 > 0 else math.inf
        if ratio_after > limit:
            return None
        return k, (f"candidate = {k:.4g} × a faithful {noise.dtype} quantization of the reference: divided by "
                   f"{k:.4g}, {left:,} of {a.size:,} sampled elements are off their nearest grid level "
                   f"({noise.off_grid:,} as stored) and rel-L2 is {after:.3g}, err/noise {ratio_after:.3g} ≤ {limit:g}")
    if _gain_ok(g, full.rel_l2, noise.dtype):
        return None
    # error of g·b against a, from the pass's sums: Σa² − ⟨a,b⟩²/Σb² (Cauchy-Schwarz residual)
    resid = max(full.sum_a2 - full.sum_ab * full.sum_ab / full.sum_b2, 0.0)
    after = math.sqrt(resid / full.sum_a2)
    ratio_after = noise.ratio * after / max(full.rel_l2, 1e-300)
    if ratio_after > limit:
        return None
    lo, hi = bands.gain_range(after, DType[noise.dtype.upper()])
    return 1 / g, (f"candidate = {1 / g:.4g} × a faithful {noise.dtype} quantization of the reference (gain "
                   f"{g:.4f} outside {lo:.4f}..{hi:.4f}; with the scale undone rel-L2 {after:.3g}, err/noise "
                   f"{ratio_after:.3g} ≤ {limit:g})")


def describe(noise: NoiseFloor, limit: float | None, full: core.DiffStats) -> str:
    """One line saying which band was used and where the candidate lies in it."""
    dt = noise.dtype
    if noise.basis == "step":
        basis = f"{dt} step model {noise.rel_l2:.3g}"
    elif noise.basis == "grid-reference":
        basis = (f"{dt} step model {noise.rel_l2:.3g} (the reference is already on the {dt} grid: aprqa's "
                 "requantization reproduces it, so the type's own step sets the band)")
    else:
        basis = f"aprqa's {dt} error {noise.rel_l2:.3g}"
        if noise.intermediate not in (None, "none"):
            basis += f" from the {noise.intermediate}-rounded reference"
    band = f"band ≤ {limit * noise.rel_l2:.3g} = {limit:g} × {basis}" if limit is not None else basis
    s = (f"{dt} band: rel-L2 {noise.candidate_rel_l2:.3g} (err/noise {noise.ratio:.3g}), {band} "
         f"for this distribution; gain {noise.gain:.4f}, cos {full.cosine:.6f}, SQNR {full.sqnr_db:.1f} dB")
    if noise.blocks_compared and noise.blocks_bit_equal == noise.blocks_compared:
        via = "" if noise.intermediate in (None, "none") else f" applied to the {noise.intermediate}-rounded reference"
        s += f"; bit-identical to our {dt} quantizer{via} on {noise.blocks_bit_equal:,}/{noise.blocks_compared:,} " \
             "sampled blocks"
    elif noise.intermediate not in (None, "none"):
        s += f"; quantized from an {noise.intermediate} intermediate (detected from the per-block bound)"
    if noise.block_bound_violations:
        s += f"; {noise.block_bound_violations:,} sampled elements exceed the per-block bound"
    if noise.off_grid is not None:
        s += (f"; {noise.off_grid:,} of {noise.grid_checked:,} sampled elements are not on their nearest grid level"
              if noise.off_grid else f"; all {noise.grid_checked:,} sampled elements on their nearest grid level")
    lo, hi = bands.gain_range(full.rel_l2, DType[dt.upper()])
    if not _gain_ok(noise.gain, full.rel_l2, dt):
        s += f"; gain outside {lo:.4f}..{hi:.4f}"
    return s


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
