# size: the hypotheses of one failing tensor share one Diagnoser (its sampled rows, their statistics), screened in order
"""Diagnosis of a failing tensor pair: which known fault explains the candidate?

Every hypothesis is screened on sampled rows and confirmed with one full fused pass
only when the sample fits. The work is bounded per failing tensor, whatever the
model's size: sampled rows are decoded in one native call (``core.gather_rows``),
and the SWAPPED screen searches a per-compare index of signatures (a few rows of each
same-shape reference tensor, decoded once, sketched once: ``signature_index``), so a model
where every tensor fails costs about what a passing one does, near-linearly in its tensors.

Hypotheses, in order: transposed, RoPE rows permuted (either direction, or forgotten),
another tensor's data (SWAPPED), bytes of another dtype (DTYPE-MISREAD), scaled/offset.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .. import core
from ..arch import layer_index
from ..errors import AprqaError
from ..formats.model import Model, TensorInfo
from ..quant.dtypes import DType, payload_nbytes
from ..quant.storable import quantizable
from . import transforms as tf
from ._sampling import as_2d, diff_f32, rel_l2, row_aligned, sample_rows, sample_subset
from .results import NoiseFloor, Verdict
from .signature_index import SignatureIndex, screen  # noqa: F401 (re-exported)
from .tolerance import Tolerance

if TYPE_CHECKING:
    from .verdicts import Context

SAMPLE_ELEMENTS = 1 << 14      # elements per side a hypothesis is screened on (rel-L2 spread ~1 %)
SIGNATURE_ELEMENTS = 1 << 12   # elements per reference tensor in the SWAPPED screen
# The signature is small: its rel-L2 estimate spreads by ~sqrt(2/4096) = 2 %; screening at twice the
# match threshold keeps every true match, and the full pass then decides.
_SCREEN_SLACK = 2.0
TRANSPOSE_ELEMENTS = 1 << 13  # elements per side of the transposed screen's rows and columns
_MAX_CONFIRMATIONS = 4         # full passes spent on SWAPPED candidates that pass the screen

# Rounding of each float type (unit roundoff): the noise a float "match" may carry.
FLOAT_EPS = {DType.F32: 2.0 ** -24, DType.F16: 2.0 ** -11, DType.BF16: 2.0 ** -8, DType.F64: 2.0 ** -53}
CONFIRM_FLOAT_REL = 2.0 ** -7   # a hypothesis on a float candidate must explain it to ~bf16 precision


def numeric(dt: DType) -> bool:
    return dt.is_float or dt.is_quantized


def dequantizable(dt: DType) -> bool:
    return bool(core._core.dequant_supported(int(dt)))


@functools.lru_cache(maxsize=1)
def decodable_numeric() -> tuple[DType, ...]:
    """Every float/quantized dtype the core can decode (the DTYPE-MISREAD candidates)."""
    return tuple(dt for dt in DType if numeric(dt) and dequantizable(dt))


@dataclass(frozen=True)
class Hypothesis:
    verdict: Verdict
    transform: str
    detail: str
    stats: core.DiffStats | None
    related: str | None = None


@dataclass(frozen=True)
class DiagnosisJob:
    """What a failing pair's diagnosis starts from, kept for its group's batched screen (``diagnose_batch``)."""

    ctx: Context
    ta: TensorInfo
    tb: TensorInfo
    qb: DType                      # the candidate's type as stored
    expected: tf.RowMap | None
    full: core.DiffStats           # the full pass
    thr: float                     # match_threshold
    # what the full pass took for the batched screen (``diagnose_batch.pass_sample``), or None: the
    # screen then reads the rows itself
    sample: core.RowSample | None = None


@dataclass
class Prescreen:
    """One pair's share of its group's batched screen (``diagnose_batch``): the hypotheses whose screens it
    has shown to fail beyond rounding (a ``True`` rules a hypothesis out; ``False`` leaves it to the pair's
    own screen, which then decides as it always does, decoding its sampled rows when it first needs them)."""

    no_transposed: bool = False
    no_swapped: bool = False
    no_misread: bool = False
    no_affine: bool = False
    noise_spread: bool = False     # the sampled rows' rel-L2 median is shown ≥ diagnose_rows' spread bound
    few_rows_implausible: bool = False  # shown: more than 10 % of the sampled rows fail the threshold


def match_threshold(tb_dtype: DType, noise: NoiseFloor | None, tol: Tolerance) -> float:
    """rel-L2 under which a hypothesis 'explains' the candidate."""
    if tb_dtype.is_quantized:
        floor = noise.rel_l2 if noise is not None and noise.rel_l2 > 0 else 0.05
        return floor * max(tol.max_noise_ratio or 1.5, 1.5) * 1.5
    return CONFIRM_FLOAT_REL


def expected_quant_noise(dt: DType, a: np.ndarray) -> float:
    try:
        q = core.quantize(a, dt)
        return rel_l2(a, core.dequantize(q, dt, a.shape))
    except AprqaError:
        return 0.1


def transposable(ta: TensorInfo, tb: TensorInfo) -> bool:
    """Can B's bytes be read as A transposed (the TRANSPOSED hypothesis applies)?"""
    rows, cols = as_2d(tuple(ta.shape))
    return len(ta.shape) == 2 and rows > 1 and cols > 1 and row_aligned(tb.dtype, rows)


def _rows(t: TensorInfo, shape: tuple[int, int], idx: np.ndarray, threads: int | None,
          dtype: DType | None = None) -> np.ndarray:
    """Rows ``idx`` of ``t`` viewed as ``shape`` (one native call), float32 [len(idx), cols]."""
    return core.gather_rows([t], shape, idx, dtypes=[dtype], threads=threads)[0]


@dataclass
class SwapIndex:
    """Signatures of the reference's tensors for the SWAPPED screen, built once per shape and row map.

    A signature is a few evenly spread rows (``SIGNATURE_ELEMENTS`` elements) of every same-shape
    reference tensor, decoded in one native call and indexed (``SignatureIndex``): a candidate's rows
    are compared exactly only with the references its sketch cannot rule out.
    """

    ref: Model
    threads: int | None = None
    _by_key: dict[tuple, tuple[list[TensorInfo], np.ndarray, SignatureIndex]] = field(default_factory=dict)
    _seeded: dict[tuple[int, ...], dict[str, np.ndarray]] = field(default_factory=dict)

    def seed(self, shape: tuple[int, ...], rows_by_name: dict[str, np.ndarray]) -> None:
        """Signature rows of reference tensors of ``shape`` already decoded elsewhere (a full pass took them:
        ``diagnose_batch.pass_sample``), each ``[rows · cols]`` float32 in the signature's row order: the
        index of this shape (without a row map) takes them instead of reading those tensors again."""
        if (tuple(shape), None) not in self._by_key:
            self._seeded.setdefault(tuple(shape), {}).update(rows_by_name)

    def signatures(self, shape: tuple[int, ...], row_map: tf.RowMap | None
                   ) -> tuple[list[TensorInfo], np.ndarray, SignatureIndex]:
        """``(tensors, candidate rows, index of the signatures [len(tensors), elements])`` for this shape
        and row map."""
        key = (tuple(shape), row_map.name if row_map is not None else None)
        hit = self._by_key.get(key)
        if hit is not None:
            return hit
        rows, cols = as_2d(tuple(shape))
        tensors = [t for t in self.ref.tensors.values() if tuple(t.shape) == tuple(shape) and not t.past_eof
                   and numeric(t.dtype) and dequantizable(t.dtype)]
        idx = sample_rows(rows, cols, SIGNATURE_ELEMENTS)
        ref_rows = row_map.perm[idx] if row_map is not None else idx
        seeded = self._seeded.pop(tuple(shape), {}) if row_map is None else {}
        read, got = self._read([t for t in tensors if t.name not in seeded], (rows, cols), ref_rows)
        tensors = [t for t in tensors if t.name in seeded or t.name in got]
        # one vector per tensor, as taken or read (the index reads them a few at a time: no copy)
        sigs = [seeded[t.name] if t.name in seeded else read[got[t.name]].reshape(-1) for t in tensors]
        hit = (tensors, idx, SignatureIndex(sigs if sigs else np.empty((0, len(idx) * cols), np.float32)))
        self._by_key[key] = hit
        return hit

    def _read(self, tensors: list[TensorInfo], shape: tuple[int, int], ref_rows: np.ndarray
              ) -> tuple[np.ndarray, dict[str, int]]:
        """Rows ``ref_rows`` of ``tensors``, decoded in one native call: ``([kept, rows, cols], {name: slot})``;
        a tensor that cannot be read is left out (then each is read on its own)."""
        try:
            return (core.gather_rows(tensors, shape, ref_rows, threads=self.threads),
                    {t.name: i for i, t in enumerate(tensors)})
        except AprqaError:  # one unreadable tensor: screen tensor by tensor instead
            parts, slots = [], {}
            for t in tensors:
                try:
                    parts.append(_rows(t, shape, ref_rows, self.threads))
                    slots[t.name] = len(parts) - 1
                except AprqaError:
                    continue
            return (np.stack(parts) if parts else np.empty((0, len(ref_rows), shape[1]), np.float32)), slots


class Diagnoser:
    """Tries hypotheses on sampled rows and confirms the first that fits with a full pass."""

    def __init__(self, ctx: Context, ta: TensorInfo, tb: TensorInfo, expected: tf.RowMap | None,
                 threshold: float, full: core.DiffStats | None = None, stored: DType | None = None,
                 pre: Prescreen | None = None):
        self.ctx, self.ta, self.tb, self.expected, self.thr, self.full = ctx, ta, tb, expected, threshold, full
        self.pre = pre
        # the candidate's type as its file stores it (``tb`` may be a row-padded tensor's decoded values)
        self.qb = stored if stored is not None else tb.dtype
        self.rows, self.cols = as_2d(ta.shape)
        self.shape2 = (self.rows, self.cols)
        self.idx = sample_rows(self.rows, self.cols, budget=SAMPLE_ELEMENTS)
        self.perm = expected.perm if expected is not None else None
        self.row_err: tuple[np.ndarray, np.ndarray] | None = None  # diagnose_rows.row_errors caches it here
        self.row_rel: np.ndarray | None = None  # diagnose_rows._sample_row_rel caches it here
        self._sample: core.DiffStats | None = None
        # B's bytes read as every same-size type (the DTYPE-MISREAD screen), and A's rows of the transposed
        # screen that the sample lacks, decoded with the samples
        self.misread_rows: np.ndarray | None = None
        self._a_t: np.ndarray | None = None
        self._a: np.ndarray | None = None
        self._b: np.ndarray | None = None
        if pre is None:
            self._load_samples()
        # else decoded when a hypothesis first needs them: the group's batched screen may have ruled
        # every one out that reads them

    def _load_samples(self) -> None:
        """A's and B's sampled rows (with the misread readings and the transposed screen's rows)."""
        both = self._gather_samples() if self.perm is None else None
        if both is not None:
            self._a, self._b = both[0], both[1]  # one native call for the two samples
        else:
            a_idx = self.perm[self.idx] if self.perm is not None else self.idx
            self._a = _rows(self.ta, self.shape2, a_idx, self.ctx.threads)
            self._b = _rows(self.tb, self.shape2, self.idx, self.ctx.threads)

    def _samples(self) -> tuple[np.ndarray, np.ndarray]:
        if self._a is None or self._b is None:
            self._load_samples()
        assert self._a is not None and self._b is not None
        return self._a, self._b

    @property
    def a(self) -> np.ndarray:
        """A's sampled rows (candidate order), float32 ``[len(idx), cols]``."""
        return self._samples()[0]

    @property
    def b(self) -> np.ndarray:
        """B's sampled rows, float32 ``[len(idx), cols]``."""
        return self._samples()[1]

    def _misread_dtypes(self) -> tuple[DType, ...]:
        if self.qb is not self.tb.dtype:
            return ()
        return same_size_dtypes(self.tb.dtype, self.rows * self.cols, self.tb.raw().nbytes)

    def _transposable(self) -> bool:
        return transposable(self.ta, self.tb)

    def _gather_samples(self) -> np.ndarray:
        """A's and B's sampled rows, B's bytes read as each same-size type, and A's rows of the transposed
        screen that the sample lacks, in one native call; ``[sources, sampled rows, cols]``."""
        m = len(self.idx)
        rows = self.idx
        if self._transposable() and sample_subset(self.rows, self.cols, SAMPLE_ELEMENTS, TRANSPOSE_ELEMENTS) is None:
            rows = np.concatenate([self.idx, sample_rows(self.rows, self.cols, TRANSPOSE_ELEMENTS)])
        extra = self._misread_dtypes()
        srcs, dts = [self.ta, self.tb], [None, None]
        out = None
        if extra:
            try:
                out = core.gather_rows(srcs + [self.tb.raw()] * len(extra), self.shape2, rows,
                                       dtypes=dts + list(extra), threads=self.ctx.threads)
                self.misread_rows = out[2:, :m]
            except AprqaError:
                pass  # decoded apart: the samples' error is raised, the misread screen finds nothing
        if out is None:
            out = core.gather_rows(srcs, self.shape2, rows, threads=self.ctx.threads)
        if len(rows) > m:
            self._a_t = out[0, m:]
        return out[:, :m]

    def _diff(self, a, b, **kw) -> core.DiffStats:
        return core.diff_stats(a, b, threads=self.ctx.threads, **kw)

    def sample_stats(self) -> core.DiffStats:
        """The fused kernel's statistics of the sampled rows (B against A), computed once."""
        if self._sample is None:
            self._sample = diff_f32(self.a, self.b)
        return self._sample

    def sample_rel_l2(self) -> float:
        """``rel_l2(self.a, self.b)`` from the cached statistics."""
        s = self.sample_stats()
        return math.inf if s.nonfinite_mismatch > 0.01 * s.n else s.rel_l2

    def _a_rows(self, budget: int) -> np.ndarray:
        """A's rows ``sample_rows(rows, cols, budget)`` (candidate order = reference order here): sliced
        from the sample when it holds them, else decoded (the transposed screen's: with the sample)."""
        pos = sample_subset(self.rows, self.cols, SAMPLE_ELEMENTS, budget) if self.perm is None else None
        if pos is not None:
            return self.a[pos]
        if budget == TRANSPOSE_ELEMENTS:
            if self._a is None:
                self._load_samples()  # decodes the transposed screen's rows with the samples
            if self._a_t is not None:
                return self._a_t
        return _rows(self.ta, self.shape2, sample_rows(self.rows, self.cols, budget), self.ctx.threads)

    def _b_rows(self, budget: int) -> np.ndarray:
        """B's rows ``sample_rows(rows, cols, budget)``: sliced from the sample when it holds them, else decoded."""
        pos = sample_subset(self.rows, self.cols, SAMPLE_ELEMENTS, budget)
        if pos is not None:
            return self.b[pos]
        return _rows(self.tb, self.shape2, sample_rows(self.rows, self.cols, budget), self.ctx.threads)

    def transposed(self) -> Hypothesis | None:
        if (self.pre is not None and self.pre.no_transposed) or not self._transposable():
            return None
        r, c = self.rows, self.cols
        # B's bytes read as [c, r] should be A^T: row i of that view is column i of A.
        cols_i = sample_rows(c, r, budget=TRANSPOSE_ELEMENTS)
        rows_j = sample_rows(r, c, budget=TRANSPOSE_ELEMENTS)
        a_s = self._a_rows(TRANSPOSE_ELEMENTS)[:, cols_i].T
        b_s = _rows(self.tb, (c, r), cols_i, self.ctx.threads)[:, rows_j]
        if rel_l2(a_s, b_s) > self.thr:
            return None
        s = self._diff(self.ta, self.tb.raw(), b_dtype=self.tb.dtype, transform=("transpose", r, c))
        if s.rel_l2 > self.thr:
            return None
        where = (f"data transposed (square [{r}, {c}]: the shape cannot show it)" if r == c else
                 f"stored [{c}, {r}] data under shape [{r}, {c}]")
        as_stored = self.sample_rel_l2() if self.perm is None else \
            rel_l2(_rows(self.ta, self.shape2, self.idx, self.ctx.threads), self.b)
        return Hypothesis(Verdict.TRANSPOSED, "transpose",
                          f"{where}: rel-L2 {as_stored:.3g} as stored → {s.rel_l2:.3g} "
                          "if transposed", s)

    def row_maps(self) -> Hypothesis | None:
        maps = tf.rope_hypotheses(self.ta.name, self.ctx.ref, self.ctx.cand, self.rows)
        if self.expected is not None:
            maps = [m for m in maps if m.name != self.expected.name]
            maps.insert(0, tf.RowMap("identity", np.arange(self.rows, dtype=np.int64)))
        for m in maps:
            a_s = _rows(self.ta, self.shape2, m.perm[self.idx], self.ctx.threads)
            if rel_l2(a_s, self.b) > self.thr:
                continue
            s = self._diff(self.ta, self.tb.raw(), b_dtype=self.tb.dtype, transform=("row_perm", m.perm))
            if s.rel_l2 > self.thr:
                continue
            cand = self.ctx.cand
            if m.name == "identity":
                assert self.expected is not None
                what = (f"rows are in the reference order, but {cand.format} {cand.config.architecture or ''} "
                        f"expects {self.expected.name}: the RoPE permutation was forgotten")
            elif self.expected is None:
                what = (f"rows match after {m.name}; {cand.format} {cand.config.architecture or ''} stores this "
                        "tensor unpermuted: the RoPE permutation was applied wrongly")
            else:
                what = f"rows match after {m.name} instead of the expected {self.expected.name}"
            return Hypothesis(Verdict.ROW_PERMUTED, m.name, f"{what} (rel-L2 {s.rel_l2:.3g})", s)
        return None

    def swapped(self) -> Hypothesis | None:
        if self.pre is not None and self.pre.no_swapped:
            return None
        me = self.ta.name
        tensors, sig_rows, index = self.ctx.swap_index.signatures(tuple(self.ta.shape), self.expected)
        if len(tensors) < 2:
            return None
        b_sig = self._b_rows(SIGNATURE_ELEMENTS).reshape(-1)  # the rows ``sig_rows``
        err = index.search(b_sig, self.thr * _SCREEN_SLACK)  # +inf beyond the screen's radius
        own = self.full.rel_l2 if self.full is not None else math.inf
        suffix = me.split(".", 3)[-1] if layer_index(me) is not None else None
        hits = [i for i in np.flatnonzero(err <= self.thr * _SCREEN_SLACK) if tensors[i].name != me]
        # closest first; the same role (another layer's tensor of this kind) wins a tie
        hits.sort(key=lambda i: (float(err[i]), 0 if suffix and tensors[i].name.endswith(suffix) else 1))
        kw = {"transform": ("row_perm", self.perm)} if self.perm is not None else {}
        for i in hits[:_MAX_CONFIRMATIONS]:
            other = tensors[i]
            s = self._diff(other, self.tb.raw(), b_dtype=self.tb.dtype, **kw)
            # it must explain the candidate, and better than the tensor's own reference does
            if s.rel_l2 <= self.thr and s.rel_l2 < own:
                return self._swap_or_copy(other, s)
        return None

    def _swap_or_copy(self, other: TensorInfo, s: core.DiffStats) -> Hypothesis:
        """SWAPPED when the candidate's ``other`` holds this tensor's data; COPIED when it still holds its own
        (the data was copied over this tensor, not exchanged)."""
        partner = self.ctx.cand.tensors.get(other.name)
        head = f"holds the data of {other.name} (rel-L2 {s.rel_l2:.3g} against it)"
        if partner is not None and tuple(partner.shape) == tuple(other.shape) and not partner.past_eof:
            idx = sample_rows(self.rows, self.cols, SIGNATURE_ELEMENTS)
            try:
                mine, theirs, cand_other = core.gather_rows([self.ta, other, partner], self.shape2, idx,
                                                            threads=self.ctx.threads)
            except AprqaError:
                mine = None
            if mine is not None:
                to_me, to_own = rel_l2(mine, cand_other), rel_l2(theirs, cand_other)
                if to_me <= self.thr and to_me < to_own:
                    return Hypothesis(Verdict.SWAPPED, "none", f"{head}, and the candidate's {other.name} holds "
                                      f"this tensor's (rel-L2 {to_me:.3g}): the two were exchanged", s,
                                      related=other.name)
                if to_own <= self.thr:
                    return Hypothesis(Verdict.COPIED, "none", f"{head}, which is also still in place (the "
                                      f"candidate's {other.name} matches its reference, rel-L2 {to_own:.3g}): "
                                      "copied over this tensor, this tensor's own data is gone", s,
                                      related=other.name)
        return Hypothesis(Verdict.SWAPPED, "none", head, s, related=other.name)

    def affine(self, full: core.DiffStats) -> Hypothesis | None:
        # least squares b ≈ k·a + c on the sample, from the fused kernel's double sums over finite pairs
        if self.pre is not None and self.pre.no_affine:
            return None
        st = self.sample_stats()
        n = st.n_finite
        if n < 2:
            return None
        ma, mb = st.sum_a / n, (st.sum_a + st.sum_d) / n
        saa = st.sum_a2 - n * ma * ma
        if not saa > 0:
            return None
        k = (st.sum_ab - n * ma * mb) / saa
        c = mb - k * ma
        if _fit_clearly_fails(st, k, c, ma, mb, saa, self.thr):
            return None
        fit = self.a * np.float32(k) + np.float32(c)
        fit_err = rel_l2(fit, self.b)
        # the fit must explain the candidate, and much better than "unchanged" does
        if fit_err > self.thr or not fit_err < 0.5 * self.sample_rel_l2():
            return None
        scale_a = math.sqrt(st.sum_a2 / n)
        # how far k and c must be from 1 and 0 to be a fault: the fit's own error, not the match threshold
        # (a quantized reference and candidate of one type can match to ~0, a band is ~0.1)
        tau = max(fit_err, 1e-6)
        is_offset = abs(k - 1) <= 4 * tau and abs(c) > tau * scale_a
        is_scale = abs(c) <= tau * scale_a and abs(k - 1) > 4 * tau
        # confirm on the full pass: an offset makes |d| constant, a scale keeps cosine at ±1
        if is_offset and full.n_finite:
            if abs(full.mean_d - c) <= 0.05 * abs(c) + self.thr * scale_a and \
                    full.max_abs <= abs(c) * 1.05 + 4 * self.thr * scale_a:
                return Hypothesis(Verdict.OFFSET, f"offset({c:+.4g})",
                                  f"candidate = reference {c:+.4g} (mean error {full.mean_d:+.4g}, "
                                  f"max |d| {full.max_abs:.4g})", None)
            return None
        if is_scale and abs(abs(full.cosine) - 1) <= max(self.thr, 4 * tau):
            k_full = math.copysign(math.sqrt(full.sum_b2 / full.sum_a2), full.sum_ab) if full.sum_a2 else k
            return Hypothesis(Verdict.SCALED, f"scale({k_full:.4g})",
                              f"candidate = {k_full:.4g} × reference (cosine {full.cosine:.6f})", None)
        if not is_offset and not is_scale and (abs(k - 1) > 4 * tau or abs(c) > tau * scale_a):
            return Hypothesis(Verdict.SCALED, f"affine({k:.4g}, {c:+.4g})",
                              f"candidate ≈ {k:.4g} × reference {c:+.4g} on sampled rows", None)
        return None

    def misread(self) -> Hypothesis | None:
        if self.qb is not self.tb.dtype or (self.pre is not None and self.pre.no_misread):
            return None  # decoded values (tf.decoded): no bytes of another type to read; or ruled out
        return misread_as(self.ctx, self.ta, self.tb, self.rows, self.cols, self.a if self.perm is None else None,
                          self.idx, self.misread_rows)


# Slack on the bounds below (each already covers its rounding with room to spare).
_FIT_SHORTCUT = 1.25


def _fit_clearly_fails(st: core.DiffStats, k: float, c: float, ma: float, mb: float, saa: float,
                       thr: float) -> bool:
    """Is the least-squares fit's rel-L2 (``rel_l2(k·a + c, b)`` on the sample) provably above ``thr``?

    From the sample's double sums: residual Σ(b − k·a − c)² = Sbb − k·Sab, ‖k·a + c‖² = k²·Saa + n·mb².
    The float32 fit differs from the exact one by at most ~3 roundings per element (``pert`` bounds
    that vector's norm with a 8× margin) and the sums from exact ones by less than ``e64``; the fit is
    skipped only when its error's lower bound over its norm's upper bound exceeds the threshold.
    Only when every sampled pair is finite (the kernel's sums then cover the same pairs as the fit's
    pass) and the fit cannot overflow float32; otherwise the fit is computed."""
    n = st.n_finite
    norm_a = math.sqrt(st.sum_a2)
    if n != st.n or not (abs(k) * norm_a + abs(c) < 1e30):
        return False
    rss = st.sum_b2 - n * mb * mb - k * (st.sum_ab - n * ma * mb)
    fit2 = k * k * saa + n * mb * mb
    # the kernel's sums may round each product to float32 (2^-24 relative per term): bound the error of
    # the cancellations below by 2^-20 of the magnitudes they cancel
    e64 = 2.0 ** -20 * (st.sum_b2 + abs(k) * norm_a * math.sqrt(st.sum_b2) + n * mb * mb + k * k * st.sum_a2)
    pert = 2.0 ** -20 * (abs(k) * norm_a + abs(c) * math.sqrt(n))
    if not (math.isfinite(rss) and math.isfinite(fit2) and math.isfinite(e64)):
        return False
    lo = math.sqrt(max(rss - e64, 0.0)) - pert
    hi = math.sqrt(max(fit2, 0.0) + e64) + pert
    return hi > 0 and lo > _FIT_SHORTCUT * thr * hi


@functools.lru_cache(maxsize=256)
def same_size_dtypes(labelled: DType, n: int, nbytes: int) -> tuple[DType, ...]:
    """The decodable types other than ``labelled`` whose ``n`` elements take ``nbytes`` bytes."""
    out = []
    for dt in decodable_numeric():
        if dt is labelled:
            continue
        try:
            if payload_nbytes(dt, n) == nbytes:
                out.append(dt)
        except AprqaError:
            continue
    return tuple(out)


def misread_as(ctx: Context, ta: TensorInfo, tb: TensorInfo, rows: int, cols: int,
               a_sample: np.ndarray | None = None, idx: np.ndarray | None = None,
               b_all: np.ndarray | None = None) -> Hypothesis | None:
    """Do B's bytes decode as A (within that dtype's noise) under another dtype of the same byte size?

    ``a_sample``: A's rows ``idx`` when the caller has them already; ``b_all``: B's rows ``idx`` read as
    each of ``same_size_dtypes`` (in that order), likewise."""
    n = rows * cols
    raw = tb.raw()
    same_size = same_size_dtypes(tb.dtype, n, raw.nbytes)
    if not same_size:
        return None
    if idx is None:
        idx = sample_rows(rows, cols, budget=SAMPLE_ELEMENTS)
    if a_sample is None:
        a_sample = _rows(ta, (rows, cols), idx, ctx.threads)
    if b_all is None:
        try:  # every reinterpretation's rows in one native call
            b_all = core.gather_rows([raw] * len(same_size), (rows, cols), idx, dtypes=list(same_size),
                                     threads=ctx.threads)
        except AprqaError:
            return None
    for dt, b_s in zip(same_size, b_all):
        err = rel_l2(a_sample, b_s)
        expected = expected_quant_noise(dt, a_sample) if dt.is_quantized and quantizable(dt) else \
            FLOAT_EPS.get(dt, 0.01)
        limit = max(expected * 2.0, 1e-6) if dt.is_quantized else CONFIRM_FLOAT_REL
        if err > limit:
            continue
        s = core.diff_stats(ta.raw(), raw, a_dtype=ta.dtype, b_dtype=dt, threads=ctx.threads, shape=(n,))
        if s.rel_l2 > limit:
            continue
        return Hypothesis(Verdict.DTYPE_MISREAD, f"reinterpret-as-{dt.lname}",
                          f"the bytes are {dt.lname} data labelled {tb.dtype.lname}: read as {dt.lname} they "
                          f"match (rel-L2 {s.rel_l2:.3g}, {dt.lname} noise ≈ {expected:.3g})", s)
    return None
