"""The batched screen of a group of failing pairs of one shape and types (compare's deferred diagnoses).

A model where a converter broke every tensor fails hundreds of same-shape pairs; screening each one's
hypotheses on its own costs a dozen native calls and numpy passes per tensor. Here a group's members
are screened together, in slices of at most ``SLICE_BYTES`` of decoded rows (bounded memory):

* the row sums of every member's sampled rows (``Diagnoser``'s sample) come from one native call per
  slice that decodes each pair of rows and reduces it in cache (``core.pair_row_sums``), keeping only
  the few rows a screen reads;
* each hypothesis' screen is evaluated for the whole slice in numpy (``[members, rows]`` row sums):
  the scaled/offset fit from its least-squares residual, the misread and transposed screens from a
  lower bound that needs only a few of their rows or elements decoded, the noise spread and few-rows
  tests per sampled row, the SWAPPED filter with each member's sketch against the signature index;
* a screen value that clears its threshold by more than its float32 rounding bound rules that
  hypothesis out for the member; any other member runs the hypothesis as before (screen, then the full
  pass), decoding its sampled rows itself. The batch only ever rules out, so every verdict and detail
  is the per-pair path's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from .. import core
from ..errors import AprqaError
from ..quant.dtypes import DType
from ._sampling import as_2d, sample_rows, sample_subset
from .diagnose import (_SCREEN_SLACK, CONFIRM_FLOAT_REL, SAMPLE_ELEMENTS, SIGNATURE_ELEMENTS, TRANSPOSE_ELEMENTS,
                       DiagnosisJob, Prescreen, same_size_dtypes, transposable)

if TYPE_CHECKING:
    from .verdicts import Deferred

SLICE_BYTES = 16 << 20   # decoded float32 rows a slice of a group holds at once
MIN_GROUP = 2            # a lone failing pair gains nothing from the batch: it screens itself
NOISE_SPREAD = 0.25      # diagnose_rows.noise: median sampled-row rel-L2 ≥ this × the full rel-L2
FEW_ROWS_BAD = 0.1       # diagnose_rows._few_rows_plausible: at most this share of sampled rows fails


def _gamma(n: int) -> float:
    """Relative error bound of a float32 sum of ``n`` rounded products of float32 differences
    (recursive summation: ``n·u``, plus the product's and the difference's roundings), the float64
    sums over rows on top adding nothing of note. ``core.pair_row_sums``' eight-lane sums and the
    fused kernel's are closer still."""
    return (n + 4) * 2.0 ** -24


def _key(job: DiagnosisJob) -> tuple | None:
    """The group a deferred pair's screen batches with, or None (screened alone): pairs with an expected
    row map or of a non-numeric/decoded layout keep the per-pair path."""
    if job.expected is not None or job.qb is not job.tb.dtype:
        return None
    return (id(job.ctx), tuple(job.ta.shape), job.ta.dtype, job.tb.dtype)


def slices(deferred: Sequence[Deferred]) -> list[list[int]]:
    """Positions of ``deferred`` cut into batches: each group's members (same shape and types) in
    slices of at most ``SLICE_BYTES`` of decoded rows, each pair that batches with nothing on its own."""
    groups: dict[tuple, list[int]] = {}
    alone: list[list[int]] = []
    for i, d in enumerate(deferred):
        k = _key(d.job) if d.job is not None else None
        if k is None:
            alone.append([i])
        else:
            groups.setdefault(k, []).append(i)
    out: list[list[int]] = []
    for members in groups.values():
        if len(members) < MIN_GROUP:
            alone.append(members)
            continue
        job = deferred[members[0]].job
        assert job is not None
        most = max(1, SLICE_BYTES // max(1, _member_bytes(job)))
        step = -(-len(members) // -(-len(members) // most))  # equal slices: no lone member at the end
        out += [members[i:i + step] for i in range(0, len(members), step)]
    return out + alone


def _member_bytes(job: DiagnosisJob) -> int:
    """Decoded float32 bytes one member's screen holds at most: the rows the screens read of both sides."""
    rows, cols = as_2d(tuple(job.ta.shape))
    pa, pb = _read_positions(rows, cols)
    return 4 * cols * (len(pa) + len(pb)) + 8 * 5 * len(sample_rows(rows, cols, SAMPLE_ELEMENTS))


def _misread_rows(rows: int, cols: int) -> int:
    """How many of the sampled rows the misread screen reads (an eighth)."""
    return max(1, len(sample_rows(rows, cols, SAMPLE_ELEMENTS)) // 8)


def _read_positions(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions in the sample of the rows the screens read: the reference's rows of the transposed
    screen where the sample holds them; the candidate's SWAPPED signature rows."""
    none = np.empty(0, np.int64)
    pos = sample_subset(rows, cols, SAMPLE_ELEMENTS, TRANSPOSE_ELEMENTS)
    sig = sample_subset(rows, cols, SAMPLE_ELEMENTS, SIGNATURE_ELEMENTS)
    return (pos if pos is not None else none), (sig if sig is not None else none)


class _SampledRows:
    """The slice's members resolved once for every native call of the screen (``core.Sources``), their
    sampled rows' sums and the rows the screens read (``_read_positions``), in one native call."""

    def __init__(self, jobs: list[DiagnosisJob], idx: np.ndarray):
        rows, cols = as_2d(tuple(jobs[0].ta.shape))
        self.src_a = core.resolve_sources([j.ta for j in jobs], (rows, cols))
        self.src_b = core.resolve_sources([j.tb for j in jobs], (rows, cols))
        self.at_a, self.at_b = _read_positions(rows, cols)
        self.sums, self._a, self._b = core.pair_row_sums(
            self.src_a, self.src_b, (rows, cols), idx, keep_a=self.at_a, keep_b=self.at_b,
            threads=jobs[0].ctx.threads)

    def a(self, pos: np.ndarray) -> np.ndarray:
        """A's sampled rows at positions ``pos`` (among ``at_a``): ``[members, len(pos), cols]``."""
        return self._a[:, np.searchsorted(self.at_a, pos)]

    def b(self, pos: np.ndarray) -> np.ndarray:
        """B's sampled rows at positions ``pos`` (among ``at_b``)."""
        return self._b[:, np.searchsorted(self.at_b, pos)]


def prescreen(deferred: Sequence[Deferred]) -> list[Prescreen | None]:
    """The batched screen of one slice (``slices``): a ``Prescreen`` per member, or None for each when the
    slice is a lone pair or its rows cannot be decoded together (each member then decodes its own)."""
    jobs = [d.job for d in deferred]
    if len(jobs) < MIN_GROUP or any(j is None for j in jobs):
        return [None] * len(jobs)
    try:
        return _prescreen([j for j in jobs if j is not None])
    except AprqaError:
        return [None] * len(jobs)


def _prescreen(jobs: list[DiagnosisJob]) -> list[Prescreen | None]:
    j0 = jobs[0]
    k = len(jobs)
    rows, cols = as_2d(tuple(j0.ta.shape))
    idx = sample_rows(rows, cols, SAMPLE_ELEMENTS)
    m = len(idx)
    g = _gamma(cols)
    pres = [Prescreen() for _ in range(k)]
    # per sampled row: Σa², Σd², Σa·d, Σa, Σd (float32 lane sums along a row, float64 across rows)
    read = _SampledRows(jobs, idx)
    sums = read.sums
    a2, d2 = sums[:, :, 0], sums[:, :, 1]
    ad, sa, sd = sums[:, :, 2].sum(1), sums[:, :, 3].sum(1), sums[:, :, 4].sum(1)
    saa, sdd = a2.sum(1), d2.sum(1)
    # a member's rows are all finite where its Σa² and Σd² are (a non-finite value makes them inf or nan;
    # an overflow of a finite square only leaves a member to screen itself)
    finite = np.isfinite(saa) & np.isfinite(sdd)
    _affine(pres, finite, saa, ad, sdd, sa, sd, float(m * cols), g, [j.thr for j in jobs])
    _row_screens(pres, jobs, finite, a2, d2, g)
    extra = same_size_dtypes(j0.tb.dtype, rows * cols, j0.tb.raw().nbytes)
    if extra and all(not dt.is_quantized for dt in extra):
        _misread(pres, jobs, finite, saa, read, idx, extra, g)
    if transposable(j0.ta, j0.tb):
        _transposed(pres, jobs, read, finite)
    _swapped(pres, jobs, read, finite)
    return list(pres)


def _affine(pres: list[Prescreen], finite: np.ndarray, saa: np.ndarray, sad: np.ndarray, sdd: np.ndarray,
            sa: np.ndarray, sd: np.ndarray, n: float, g: float, thr: list[float]) -> None:
    """Diagnoser.affine fits b ≈ k·a + c and keeps it only when rel_l2(fit, b) ≤ thr. For ANY k, c that
    rel-L2 is at least √(rss*) / ‖b‖ (rss*: the least-squares residual; the minimum of ‖b − f‖ / ‖f‖
    over f in span(a, 1) is ‖r*‖ / ‖b‖), so a member whose lower bound of it exceeds thr cannot be
    explained by the fit the kernel's sums give either.

    The sums come from a and d = b − a (Σab = Σa² + Σad, Σb² = Σa² + 2Σad + Σd²), each within γ of the
    magnitude of its terms; every one of those magnitudes is at most E = (‖a‖ + ‖d‖)² (≥ ‖b‖²), and for
    well-conditioned members (A's mean at most ~0.7 of its RMS: the centred Σa² keeps half of Σa²) the
    residual's terms move by under 16γ·E in all. A candidate far smaller than its reference (b ≈ 0.01·a)
    keeps a large E next to a small Σb², so it is never ruled out here."""
    sab, sbb, sb = saa + sad, saa + 2 * sad + sdd, sa + sd
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        e = (np.sqrt(saa) + np.sqrt(sdd)) ** 2
        ma, mb = sa / n, sb / n
        cond = finite & (sbb > 0) & (saa > 0) & (n * ma * ma <= 0.5 * saa)
        saa_c = saa - n * ma * ma
        sab_c = sab - n * ma * mb
        lo = sbb - n * mb * mb - sab_c * sab_c / saa_c - 16 * g * e
        # (1 + 8γ) on thr: the kernel's rounding of the float32 fit and of its rel-L2; Σb² at its largest
        out = cond & np.isfinite(lo) & (lo > (np.asarray(thr) * (1 + 8 * g)) ** 2 * (sbb + g * e))
    for p, o in zip(pres, out):
        p.no_affine = bool(o)


def _row_screens(pres: list[Prescreen], jobs: list[DiagnosisJob], finite: np.ndarray, a2: np.ndarray,
                 d2: np.ndarray, g: float) -> None:
    """diagnose_rows' sampled-row tests: the noise spread (median row rel-L2 ≥ 0.25 × the full pass's)
    and the few-rows plausibility (≤ 10 % of rows above thr), each decided only beyond rounding."""
    lo_f, hi_f = 1 - 4 * g, 1 + 4 * g
    ok = finite & (a2 > 0).all(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.sqrt(d2 / a2)                                   # [members, sampled rows]
    full_rel = np.array([j.full.rel_l2 for j in jobs])
    thr = np.array([j.thr for j in jobs])
    m = rel.shape[1]
    # the spread test needs 8 rows (diagnose_rows.noise skips it below that)
    spread = np.full(len(jobs), True) if m < 8 else \
        (full_rel >= 0) & (np.median(rel, axis=1) * lo_f >= NOISE_SPREAD * full_rel * hi_f)
    bad = np.count_nonzero(rel * lo_f > thr[:, None], axis=1)
    implausible = bad / m > FEW_ROWS_BAD
    for i, p in enumerate(pres):
        if ok[i]:
            p.noise_spread, p.few_rows_implausible = bool(spread[i]), bool(implausible[i])


def _misread(pres: list[Prescreen], jobs: list[DiagnosisJob], finite: np.ndarray, saa: np.ndarray,
             read: _SampledRows, idx: np.ndarray, extra: tuple, g: float) -> None:
    """Diagnoser.misread with float same-size types: each reading's rel-L2 over the sample must be ≤
    CONFIRM_FLOAT_REL. Its error over a few of the sampled rows (an eighth) over the whole sample's
    energy bounds it from below (the kernel's sums over finite pairs hold at least those rows' terms and
    at most the sample's energy), so only those rows are read, straight to their sums of squared error
    (a non-finite reading or an overflowing sum leaves the member to screen itself)."""
    j0 = jobs[0]
    rows, cols = as_2d(tuple(j0.ta.shape))
    far = finite.copy()
    for dt in extra:
        sums, _, _ = core.pair_row_sums(read.src_a, read.src_b.as_dtype(dt), (rows, cols),
                                        idx[:_misread_rows(rows, cols)], threads=j0.ctx.threads)
        err2 = sums[:, :, 1].sum(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel_lo = np.sqrt(err2 * (1 - 4 * g) / (saa * (1 + 4 * g)))
        far &= np.isfinite(err2) & (rel_lo > CONFIRM_FLOAT_REL)
    for p, f in zip(pres, far):
        p.no_misread = bool(f)


def _elements(ts: core.Sources, n: int, dtype: DType, flat: np.ndarray, threads: int | None) -> np.ndarray:
    """Elements ``flat`` of each tensor in ``ts`` (``n`` elements of ``dtype``), decoded as one-block rows
    (the same blocks, the same values): ``[len(ts), len(flat)]``."""
    blk = dtype.info.block_elems
    got = core.gather_rows(ts, (n // blk, blk), flat // blk, threads=threads)
    return got[:, np.arange(flat.size), flat % blk]


def _transposed(pres: list[Prescreen], jobs: list[DiagnosisJob], read: _SampledRows, finite: np.ndarray) -> None:
    """Diagnoser.transposed's screen: B's bytes read as [cols, rows] at the elements [cols_i, rows_j]
    against A's (rows_j, cols_i), rel-L2 ≤ thr. The error over an eighth of those columns over A's energy
    at all of them bounds it from below, so only those elements of B (and A's, where the sample lacks
    them) are decoded; a member not ruled out screens itself."""
    j0 = jobs[0]
    r, c = as_2d(tuple(j0.ta.shape))
    k, th = len(jobs), j0.ctx.threads
    cols_i = sample_rows(c, r, TRANSPOSE_ELEMENTS)
    rows_j = sample_rows(r, c, TRANSPOSE_ELEMENTS)
    pos = sample_subset(r, c, SAMPLE_ELEMENTS, TRANSPOSE_ELEMENTS)
    if pos is not None:
        a_s = read.a(pos)[:, :, cols_i].astype(np.float64)       # [k, rows_j, cols_i]
    else:
        flat_a = (rows_j[:, None] * c + cols_i[None, :]).reshape(-1)
        a_s = _elements(read.src_a, r * c, j0.ta.dtype, flat_a, th).reshape(
            k, len(rows_j), len(cols_i)).astype(np.float64)
    den = (a_s * a_s).sum(axis=(1, 2))
    few = cols_i[:max(1, len(cols_i) // 8)]
    flat = (few[:, None] * r + rows_j[None, :]).reshape(-1)  # B's elements [few, rows_j]; its block divides r
    b_s = _elements(read.src_b, r * c, j0.tb.dtype, flat, th).reshape(k, len(few), len(rows_j))
    a_few = a_s[:, :, :len(few)].transpose(0, 2, 1)               # [k, few, rows_j]
    ok = np.isfinite(a_s).all(axis=(1, 2)) & np.isfinite(b_s).all(axis=(1, 2))
    num = ((b_s.astype(np.float64) - a_few) ** 2).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_lo = np.sqrt(num / den)
    gt = _gamma(a_s.shape[1] * a_s.shape[2])
    for i, p in enumerate(pres):
        p.no_transposed = bool(ok[i] and finite[i] and rel_lo[i] * (1 - 4 * gt) > jobs[i].thr)


def _swapped(pres: list[Prescreen], jobs: list[DiagnosisJob], read: _SampledRows, finite: np.ndarray) -> None:
    """Diagnoser.swapped's index search for the slice: a member whose sketch the search's filter provably
    keeps no other reference for (``SignatureIndex.may_keep``, the whole slice at once) has no hit."""
    j0 = jobs[0]
    ctx = j0.ctx
    rows, cols = as_2d(tuple(j0.ta.shape))
    tensors, _, index = ctx.swap_index.signatures(tuple(j0.ta.shape), None)
    if len(tensors) < 2:
        for p in pres:
            p.no_swapped = True  # Diagnoser.swapped: nothing to have been swapped with
        return
    pos = sample_subset(rows, cols, SAMPLE_ELEMENTS, SIGNATURE_ELEMENTS)
    if index.sketch is None or pos is None:
        return  # the exact screen: each member searches itself
    sig = read.b(pos).reshape(len(jobs), -1)
    may = index.may_keep(sig, np.array([j.thr * _SCREEN_SLACK for j in jobs]))
    where = {t.name: i for i, t in enumerate(tensors)}
    for i, j in enumerate(jobs):
        own = where.get(j.ta.name)
        if own is not None:
            may[i, own] = False  # the member's own reference is no swap
    clear = finite & ~may.any(axis=1)
    for p, c in zip(pres, clear):
        if c:
            p.no_swapped = True
            index.queries += 1  # this member's query, answered here
