# size: the batched screen of every hypothesis and the geometry of what a full pass takes for them
"""The batched screen of a group of failing pairs of one shape and types (compare's deferred diagnoses).

A model where a converter broke every tensor fails hundreds of same-shape pairs; screening each one's
hypotheses on its own costs a dozen native calls and numpy passes per tensor. Here a group's members
are screened together, in slices of at most ``SLICE_BYTES`` (bounded memory):

* what the screens read — the row sums of every member's sampled rows (``Diagnoser``'s sample), the
  transposed screen's elements, the SWAPPED signature rows, the misread rows — was taken by each
  member's own full pass as it decoded them (``pass_sample``, ``core.RowSample``), for the pairs of a
  shape whose last pair failed: the screen then reads no page the pass released. A slice whose members
  took nothing (the first failure of a shape, or past ``verdicts.SAMPLE_BUDGET``) reads them instead,
  one native call for the sums (``core.pair_row_sums``) and one per screen for the values;
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

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .. import core
from ..errors import AprqaError
from ..quant.dtypes import DType, payload_nbytes
from ._sampling import as_2d, sample_rows
from .diagnose import (_SCREEN_SLACK, CONFIRM_FLOAT_REL, SAMPLE_ELEMENTS, SIGNATURE_ELEMENTS, TRANSPOSE_ELEMENTS,
                       DiagnosisJob, Prescreen, same_size_dtypes, transposable)
from .signature_index import MAX_SKETCH_COLS

if TYPE_CHECKING:
    from .verdicts import Deferred

# Bytes a slice of a group holds at once: its largest array stays below 4 MB, where numpy asks for huge
# pages (whose first faults, compacting memory, cost more than the screen)
SLICE_BYTES = 8 << 20
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
    # members whose full passes took their screen's inputs batch apart from those that read them
    return (id(job.ctx), tuple(job.ta.shape), job.ta.dtype, job.tb.dtype, job.sample is not None)


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
        job = deferred[members[0]].job
        assert job is not None
        if job.sample is not None:
            _seed_signatures([deferred[i].job for i in members])  # type: ignore[misc]
        if len(members) < MIN_GROUP:
            alone.append(members)
            continue
        most = max(1, SLICE_BYTES // max(1, _member_bytes(job)))
        step = -(-len(members) // -(-len(members) // most))  # equal slices: no lone member at the end
        out += [members[i:i + step] for i in range(0, len(members), step)]
    return out + alone


def _seed_signatures(jobs: list[DiagnosisJob]) -> None:
    """The references' signature rows the members' full passes took, handed to the SWAPPED index of their
    shape (``SwapIndex.seed``): it reads only the other same-shape references."""
    g = _geometry(*as_2d(tuple(jobs[0].ta.shape)))
    if len(g.sig_rows):
        jobs[0].ctx.swap_index.seed(tuple(jobs[0].ta.shape), {
            j.ta.name: j.sample.taken_a[SIGNATURE] for j in jobs})  # type: ignore[union-attr]


def _member_bytes(job: DiagnosisJob) -> int:
    """Bytes one member's screen holds at most: its rows' sums and the values the screens read (gathered
    as whole blocks where the full pass did not take them)."""
    rows, cols = as_2d(tuple(job.ta.shape))
    g = _geometry(rows, cols)
    blk = max(job.ta.dtype.info.block_elems, job.tb.dtype.info.block_elems)
    gathered = blk * (len(g.flat_a_t) + len(g.flat_b_t)) + (len(g.sig_rows) + 2 * len(g.mis_rows)) * cols
    return 8 * 5 * len(g.idx) + 4 * gathered


def _misread_rows(rows: int, cols: int) -> int:
    """How many of the sampled rows the misread screen reads (an eighth)."""
    return max(1, len(sample_rows(rows, cols, SAMPLE_ELEMENTS)) // 8)


# The lists of positions a full pass takes of each side (core.RowSample.take_a / take_b), in this order
TRANSPOSED, SIGNATURE = 0, 1


@dataclass(frozen=True)
class _Geometry:
    """What the screens of a ``[rows, cols]`` group read, as flat element positions of each side: the
    transposed screen's elements of A (``[rows_j, cols_i]``) and of B (``[few, rows_j]`` of B read as
    ``[cols, rows]``), both sides' SWAPPED signature rows (``sig_rows``: B's the query, A's the reference's
    signature the index would read again; none where the index does not sketch them), and the misread
    screen's rows (``mis_rows``)."""

    idx: np.ndarray
    cols_i: np.ndarray
    rows_j: np.ndarray
    few: np.ndarray
    sig_rows: np.ndarray
    mis_rows: np.ndarray
    flat_a_t: np.ndarray
    flat_b_t: np.ndarray
    sig_flat: np.ndarray


@functools.lru_cache(maxsize=64)
def _geometry(rows: int, cols: int) -> _Geometry:
    idx = sample_rows(rows, cols, SAMPLE_ELEMENTS)
    none = np.empty(0, np.int64)
    if rows > 1 and cols > 1:
        cols_i, rows_j = sample_rows(cols, rows, TRANSPOSE_ELEMENTS), sample_rows(rows, cols, TRANSPOSE_ELEMENTS)
        few = cols_i[:max(1, len(cols_i) // 8)]
        flat_a_t = (rows_j[:, None] * cols + cols_i[None, :]).reshape(-1)
        flat_b_t = (few[:, None] * rows + rows_j[None, :]).reshape(-1)
    else:
        cols_i = rows_j = few = flat_a_t = flat_b_t = none
    sig_rows = sample_rows(rows, cols, SIGNATURE_ELEMENTS)
    if len(sig_rows) * cols > MAX_SKETCH_COLS:
        sig_rows = none  # the index screens such signatures exactly: each member searches itself
    sig_flat = (sig_rows[:, None] * cols + np.arange(cols)[None, :]).reshape(-1)
    return _Geometry(idx, cols_i, rows_j, few, sig_rows, idx[:_misread_rows(rows, cols)], flat_a_t, flat_b_t,
                     sig_flat)


def _rereadable(b_dtype: DType, n: int) -> tuple[DType, ...]:
    """The misread screen's types a full pass can read B's bytes as: float types of one element per
    block and as many bytes as B's (the same element at the same offset)."""
    if b_dtype.info.block_elems != 1:
        return ()
    return tuple(dt for dt in same_size_dtypes(b_dtype, n, payload_nbytes(b_dtype, n))
                 if not dt.is_quantized and dt.info.block_elems == 1)


@functools.lru_cache(maxsize=64)
def _template(rows: int, cols: int, b_dtype: DType) -> core.RowSample:
    """The full pass's ``core.RowSample`` of a group's screens: the sampled rows' sums, the misread rows'
    with B's bytes read as each rereadable type, and each side's positions, one list per screen
    (``TRANSPOSED``, ``SIGNATURE``)."""
    g = _geometry(rows, cols)
    return core.RowSample(g.idx, cols, (g.flat_a_t, g.sig_flat), (g.flat_b_t, g.sig_flat),
                          [(dt, g.mis_rows) for dt in _rereadable(b_dtype, rows * cols)])


def pass_sample(shape: tuple[int, ...], b_dtype: DType) -> core.RowSample:
    """What a deferrable pair's full pass takes for its group's screen (``core.RowSample``): the sampled
    rows' sums and the values the transposed, SWAPPED and misread screens read."""
    return _template(*as_2d(shape), b_dtype).again()


class _SampledRows:
    """The slice's members resolved once for every native call of the screen (``core.Sources``), their
    sampled rows' sums and the values the transposed, SWAPPED and misread screens read (``_Geometry``).

    Where every member's full pass took them (``DiagnosisJob.sample``, from ``pass_sample``), nothing is
    decoded here; otherwise one native call decodes every sampled row of the slice and reduces it in
    cache, and each screen gathers its values."""

    def __init__(self, jobs: list[DiagnosisJob]):
        rows, cols = self.shape = as_2d(tuple(jobs[0].ta.shape))
        self.geo = g = _geometry(rows, cols)
        self.jobs, self.threads = jobs, jobs[0].ctx.threads
        taken = [j.sample for j in jobs]
        self.taken_a: list[list[np.ndarray]] | None = None  # each member's, as its pass took them
        self.taken_b: list[list[np.ndarray]] | None = None
        self.template = _template(rows, cols, jobs[0].tb.dtype)
        if all(t is not None and t.origin is self.template for t in taken):
            self.sums = np.stack([t.sums for t in taken])  # type: ignore[union-attr]
            self.taken_a = [t.taken_a for t in taken]  # type: ignore[union-attr]
            self.taken_b = [t.taken_b for t in taken]  # type: ignore[union-attr]
        else:
            self.sums = core.pair_row_sums(self.src_a, self.src_b, (rows, cols), g.idx, threads=self.threads)

    @staticmethod
    def _stack(taken: list[list[np.ndarray]], which: int) -> np.ndarray:
        """The members' taken values of one list of positions: ``[members, positions]``."""
        return np.stack([t[which] for t in taken])

    @functools.cached_property
    def src_a(self) -> core.Sources:
        """The members' references resolved once for the native calls that read them (only where the
        full passes did not take what the screens read)."""
        return core.resolve_sources([j.ta for j in self.jobs], self.shape)

    @functools.cached_property
    def src_b(self) -> core.Sources:
        return core.resolve_sources([j.tb for j in self.jobs], self.shape)

    def _gather(self, src: core.Sources, dtype: DType, flat: np.ndarray) -> np.ndarray:
        """Elements ``flat`` of each member's side ``src``, decoded as one-block rows (the same blocks,
        the same values): ``[members, len(flat)]``."""
        rows, cols = self.shape
        blk = dtype.info.block_elems
        got = core.gather_rows(src, (rows * cols // blk, blk), flat // blk, threads=self.threads)
        return got[:, np.arange(flat.size), flat % blk]

    def transposed_a(self) -> np.ndarray:
        """A's ``[members, rows_j, cols_i]`` elements of the transposed screen."""
        g = self.geo
        got = self._stack(self.taken_a, TRANSPOSED) if self.taken_a is not None else \
            self._gather(self.src_a, self.jobs[0].ta.dtype, g.flat_a_t)
        return got.reshape(len(self.jobs), len(g.rows_j), len(g.cols_i))

    def transposed_b(self) -> np.ndarray:
        """B's ``[members, few, rows_j]`` elements of the transposed screen (B read as ``[cols, rows]``)."""
        g = self.geo
        got = self._stack(self.taken_b, TRANSPOSED) if self.taken_b is not None else \
            self._gather(self.src_b, self.jobs[0].tb.dtype, g.flat_b_t)
        return got.reshape(len(self.jobs), len(g.few), len(g.rows_j))

    def signature_b(self) -> np.ndarray | list[np.ndarray]:
        """B's SWAPPED signature rows, flattened: ``[members, len(sig_rows) · cols]`` (as each member's pass
        took them: a list of vectors, not copied into one array)."""
        g = self.geo
        if self.taken_b is not None:
            return [t[SIGNATURE] for t in self.taken_b]
        got = core.gather_rows(self.src_b, self.shape, g.sig_rows, threads=self.threads)
        return got.reshape(len(self.jobs), -1)

    def misread_sums(self, dtype: DType) -> np.ndarray:
        """Row sums of A's misread rows against B's bytes of those rows read as ``dtype``:
        ``[members, len(mis_rows), 5]``: as the members' full passes took them, else read from the files."""
        reread = [dt for dt, _ in self.template.reread]
        if self.taken_a is not None and dtype in reread:
            at = reread.index(dtype)
            return np.stack([j.sample.reread_sums[at] for j in self.jobs])  # type: ignore[union-attr]
        return core.pair_row_sums(self.src_a, self.src_b.as_dtype(dtype), self.shape, self.geo.mis_rows,
                                  threads=self.threads)


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
    read = _SampledRows(jobs)
    idx = read.geo.idx
    m = len(idx)
    g = _gamma(cols)
    pres = [Prescreen() for _ in range(k)]
    # per sampled row: Σa², Σd², Σa·d, Σa, Σd (float32 lane sums along a row, float64 across rows)
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
        _misread(pres, finite, saa, read, extra, g)
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


def _misread(pres: list[Prescreen], finite: np.ndarray, saa: np.ndarray, read: _SampledRows, extra: tuple,
             g: float) -> None:
    """Diagnoser.misread with float same-size types: each reading's rel-L2 over the sample must be ≤
    CONFIRM_FLOAT_REL. Its error over a few of the sampled rows (an eighth) over the whole sample's
    energy bounds it from below (the kernel's sums over finite pairs hold at least those rows' terms and
    at most the sample's energy), so only those rows are read, straight to their sums of squared error
    (a non-finite reading or an overflowing sum leaves the member to screen itself)."""
    far = finite.copy()
    for dt in extra:
        err2 = read.misread_sums(dt)[:, :, 1].sum(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel_lo = np.sqrt(err2 * (1 - 4 * g) / (saa * (1 + 4 * g)))
        far &= np.isfinite(err2) & (rel_lo > CONFIRM_FLOAT_REL)
    for p, f in zip(pres, far):
        p.no_misread = bool(f)


def _transposed(pres: list[Prescreen], jobs: list[DiagnosisJob], read: _SampledRows, finite: np.ndarray) -> None:
    """Diagnoser.transposed's screen: B's bytes read as [cols, rows] at the elements [cols_i, rows_j]
    against A's (rows_j, cols_i), rel-L2 ≤ thr. The error over an eighth of those columns over A's energy
    at all of them bounds it from below, so only those elements of B (and A's at all of them) are read;
    a member not ruled out screens itself."""
    a_s = read.transposed_a().astype(np.float64)                  # [k, rows_j, cols_i]
    den = (a_s * a_s).sum(axis=(1, 2))
    b_s = read.transposed_b()                                       # [k, few, rows_j]
    a_few = a_s[:, :, :b_s.shape[1]].transpose(0, 2, 1)             # [k, few, rows_j]
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
    tensors, idx_sig, index = ctx.swap_index.signatures(tuple(j0.ta.shape), None)
    if len(tensors) < 2:
        for p in pres:
            p.no_swapped = True  # Diagnoser.swapped: nothing to have been swapped with
        return
    sig_rows = read.geo.sig_rows
    if index.sketch is None or not len(sig_rows) or not np.array_equal(sig_rows, idx_sig):
        return  # the exact screen: each member searches itself
    sig = read.signature_b()
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
