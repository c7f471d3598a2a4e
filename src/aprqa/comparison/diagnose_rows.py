"""Row-level diagnoses of a failing tensor pair: a few rows moved, or random noise added.

Both scan the per-row error of the whole tensor once (decoded in bounded chunks, cached on the
``Diagnoser``): a swap of two rows among 262,144 is invisible to the sampled rows the other
hypotheses are screened on.
"""

from __future__ import annotations

import math

import numpy as np

from .. import core
from .diagnose import FLOAT_EPS, Diagnoser, Hypothesis, _rows, screen
from .results import Verdict

ROW_SCAN_BYTES = 32 << 20      # decoded float32 bytes per chunk of the per-row error scan (bounded memory)
MAX_MOVED_ROWS = 64            # a row fault names its rows; more moved rows than this is not "a few rows"
NOISE_MAX_CORR = 0.1           # |corr(error, reference)| of added noise is ~1/sqrt(n); a scale fault's is ~1


def row_errors(dg: Diagnoser) -> tuple[np.ndarray, np.ndarray]:
    """Per-row squared error and reference energy over every row (decoded in bounded chunks), cached."""
    if dg.row_err is None:
        step = max(1, (ROW_SCAN_BYTES // 8) // max(dg.cols, 1))
        err = np.empty(dg.rows, np.float64)
        energy = np.empty(dg.rows, np.float64)
        for r0 in range(0, dg.rows, step):
            r1 = min(dg.rows, r0 + step)
            a = core.dequantize_rows(dg.ta, None, dg.shape2, r0, r1, threads=dg.ctx.threads)
            b = core.dequantize_rows(dg.tb, None, dg.shape2, r0, r1, threads=dg.ctx.threads)
            if dg.perm is not None:
                a = _rows(dg.ta, dg.shape2, dg.perm[r0:r1], dg.ctx.threads)
            d = (b - a).astype(np.float64)
            err[r0:r1] = np.einsum("ij,ij->i", d, d)
            energy[r0:r1] = np.einsum("ij,ij->i", a, a, dtype=np.float64)
        dg.row_err = (err, energy)
    return dg.row_err


def _sample_row_rel(dg: Diagnoser) -> np.ndarray:
    """rel-L2 of each sampled row (evenly spread rows, already decoded), computed once per tensor."""
    if dg.row_rel is None:
        d = (dg.b - dg.a).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            dg.row_rel = np.sqrt(np.einsum("ij,ij->i", d, d) / np.einsum("ij,ij->i", dg.a, dg.a, dtype=np.float64))
    return dg.row_rel


def _few_rows_plausible(dg: Diagnoser) -> bool:
    """Before scanning every row: a float candidate must differ in at most MAX_MOVED_ROWS rows' worth of
    elements; any candidate must match on nearly all sampled rows."""
    full = dg.full
    if full is not None and not dg.qb.is_quantized and full.n - full.n_equal > MAX_MOVED_ROWS * dg.cols:
        return False
    if dg.pre is not None and dg.pre.few_rows_implausible:
        return False  # the group's batched screen showed it (diagnose_batch)
    rel = _sample_row_rel(dg)
    return float(np.mean(~(rel <= dg.thr))) <= 0.1


def _find_row(dg: Diagnoser, row: np.ndarray) -> int | None:
    """The reference row (in candidate order) ``row`` matches, scanning every row in bounded chunks."""
    step = max(1, (ROW_SCAN_BYTES // 4) // max(dg.cols, 1))
    for r0 in range(0, dg.rows, step):
        r1 = min(dg.rows, r0 + step)
        if dg.perm is not None:
            a = _rows(dg.ta, dg.shape2, dg.perm[r0:r1], dg.ctx.threads)
        else:
            a = core.dequantize_rows(dg.ta, None, dg.shape2, r0, r1, threads=dg.ctx.threads)
        errs = screen(a, row)
        if np.isfinite(errs).any():
            k = int(np.nanargmin(errs))
            if errs[k] <= dg.thr:
                return r0 + k
    return None


def rows_permuted(dg: Diagnoser) -> Hypothesis | None:
    """A few rows moved (two swapped, a cycle, one row copied over another): every other row matches."""
    if len(dg.ta.shape) != 2 or dg.rows < 2 or not _few_rows_plausible(dg):
        return None
    err, energy = row_errors(dg)
    bad = np.flatnonzero((err > 0) & ~(err <= dg.thr * dg.thr * energy))
    if len(bad) == 0 or len(bad) > MAX_MOVED_ROWS or len(bad) == dg.rows:
        return None
    ref_rows = np.arange(dg.rows, dtype=np.int64) if dg.perm is None else dg.perm
    a_bad = _rows(dg.ta, dg.shape2, ref_rows[bad], dg.ctx.threads)
    b_bad = _rows(dg.tb, dg.shape2, bad, dg.ctx.threads)
    perm = ref_rows.copy()
    moves = []
    for j, row in enumerate(b_bad):
        errs = screen(a_bad, row)
        k = int(np.nanargmin(errs)) if np.isfinite(errs).any() else -1
        src = int(bad[k]) if k >= 0 and errs[k] <= dg.thr else _find_row(dg, row)
        if src is None:
            return None
        perm[bad[j]] = ref_rows[src]
        moves.append((int(bad[j]), src))
    s = dg._diff(dg.ta, dg.tb.raw(), b_dtype=dg.tb.dtype, transform=("row_perm", perm))
    if s.rel_l2 > dg.thr:
        return None
    moves = [(j, k) for j, k in moves if j != k]
    if not moves:
        return None
    sources = [k for _, k in moves]
    if len(set(sources)) < len(sources):
        what = "rows copied over others (the overwritten rows are gone): " + \
            ", ".join(f"row {k} → row {j}" for j, k in moves if j != k)
    elif len(moves) == 2:
        what = f"rows {moves[0][0]} and {moves[1][0]} swapped"
    else:
        what = "rows permuted: " + ", ".join(f"row {j} holds row {k}" for j, k in moves)
    return Hypothesis(Verdict.ROW_PERMUTED, "rows(" + ",".join(f"{j}<-{k}" for j, k in moves) + ")",
                      f"{what}; every other row matches (rel-L2 {s.rel_l2:.3g} once moved back)", s)


def _median(x: np.ndarray) -> float:
    """``np.median(x)`` of a float64 vector (nan when it holds a nan), without its generic machinery."""
    s = np.sort(x)
    n = len(s)
    if np.isnan(s[-1]):  # a sort puts nan last
        return math.nan
    return float(s[n // 2]) if n % 2 else float((s[n // 2 - 1] + s[n // 2]) / 2)


def noise(dg: Diagnoser, full: core.DiffStats) -> Hypothesis | None:
    """A float candidate = reference + random noise: most elements moved, by more than the float type's
    rounding, the error uncorrelated with the reference and spread over every row."""
    eps = FLOAT_EPS.get(dg.qb)
    if eps is not None:  # an error within the coarser side's rounding is that precision, not added noise
        eps = max(eps, FLOAT_EPS.get(dg.ta.dtype, 0.0) if not dg.ta.dtype.is_quantized else eps)
    if eps is None or not full.n or full.n_equal > 0.5 * full.n or not full.sum_a2 > 0:
        return None
    rel = full.rel_l2
    if not rel > 4 * eps:
        return None
    # correlation of the error with the reference: a scale or a bias correlates, noise does not
    corr = (full.sum_ab - full.sum_a2) / math.sqrt(full.sum_a2 * max(full.sum_sq, 1e-300))  # Σa·d = Σab − Σa²
    if abs(corr) > NOISE_MAX_CORR:
        return None
    if dg.pre is None or not dg.pre.noise_spread:  # else shown by the group's batched screen
        per_row = _sample_row_rel(dg)
        if len(per_row) >= 8 and not _median(per_row) >= 0.25 * rel:  # concentrated in a few rows: not noise
            return None
    sigma = full.rmse
    return Hypothesis(Verdict.NOISE, f"noise(sigma={sigma:.3g})",
                      f"random noise added: σ {sigma:.3g} ({rel:.2%} of the reference's RMS), "
                      f"{full.n - full.n_equal:,} of {full.n:,} elements moved, uncorrelated with the "
                      f"weights (corr {corr:+.3f}) and spread over all rows; a float cast moves them by at "
                      f"most {eps:.2g} relative", None)
