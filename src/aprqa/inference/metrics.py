"""Output-level metrics between a reference model A and a candidate B on the same token ids.

Per position t (softmax over the full vocabulary, float64):

* ``KL(A‖B) = Σ_i p_A,i (log p_A,i − log p_B,i)`` — mean, max and p99 (linear
  interpolation at ``0.99·(N−1)``, as llama-perplexity does). Unlike llama.cpp no
  −16-nat clamp is applied: both sides are exact float32 logits here.
* top-1 agreement (argmax equal), top-5 overlap (|top5_A ∩ top5_B| / 5),
  max |Δlogit|, RMS Δp where Δp = p_B(next) − p_A(next) for the known next token.
* greedy continuation: index of the first generated token where B's argmax differs from A's
  greedy choice; when A's top-2 logit gap there is below ``near_tie_delta`` it is a near-tie
  (reported, never a failure).

Results are frozen dataclasses: truthy when passed, ``to_dict()``, thresholds included.
Comparing zero positions is an error, never a pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from ..errors import UsageError
from ..quant.dtypes import TRAITS, DType, dtype_from_name
from .tokenizer import TokenizerComparison


@dataclass(frozen=True)
class OutputProfile:
    """Thresholds for one candidate dtype (see docs/tolerances.md, "Output-level profiles").

    Attributes:
        name: profile name (the candidate dtype it is meant for).
        max_mean_kl / max_p99_kl / max_kl: KL(A‖B) gates (nats); ``None`` = not gated.
        min_top1: minimum top-1 agreement (fraction 0..1) over positions where A's top-2 logit gap
            is ≥ ``near_tie_delta`` (all positions when none is).
        min_top5_overlap: minimum mean top-5 overlap (fraction 0..1).
        max_abs_logit: maximum |Δlogit| (``None`` = reported only).
        max_rms_dp: maximum RMS Δp of the next token (fraction, ``None`` = reported only).
        near_tie_delta: a greedy divergence where A's top-2 logit gap is below this is a near-tie.
        greedy_must_match: a greedy divergence that is not a near-tie fails.
        max_hidden_rel: ``locate``'s per-block relative error limit ‖h_B − h_A‖ / ‖h_A‖.
    """

    name: str
    max_mean_kl: float | None
    max_p99_kl: float | None
    max_kl: float | None
    min_top1: float
    min_top5_overlap: float
    max_abs_logit: float | None
    max_rms_dp: float | None
    near_tie_delta: float
    greedy_must_match: bool
    max_hidden_rel: float

    def __post_init__(self) -> None:
        for k in ("max_mean_kl", "max_p99_kl", "max_kl", "max_abs_logit", "max_rms_dp"):
            v = getattr(self, k)
            if v is not None and not (v >= 0 and math.isfinite(v)):
                raise UsageError(f"profile {self.name!r}: {k} must be a finite number ≥ 0, got {v!r}")
        for k in ("min_top1", "min_top5_overlap"):
            v = getattr(self, k)
            if not 0.0 <= v <= 1.0:
                raise UsageError(f"profile {self.name!r}: {k} must be a fraction in [0, 1], got {v!r}")
        if not (self.near_tie_delta >= 0 and math.isfinite(self.near_tie_delta)):
            raise UsageError(f"profile {self.name!r}: near_tie_delta must be ≥ 0, got {self.near_tie_delta!r}")
        if not (self.max_hidden_rel > 0 and math.isfinite(self.max_hidden_rel)):
            raise UsageError(f"profile {self.name!r}: max_hidden_rel must be > 0, got {self.max_hidden_rel!r}")

    def with_(self, **changes: Any) -> "OutputProfile":
        """A copy with some thresholds changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _p(name: str, mean_kl: float, p99_kl: float, max_kl: float | None, top1: float, top5: float,
       abs_logit: float | None, rms_dp: float | None, tie: float, greedy: bool, hidden: float) -> OutputProfile:
    return OutputProfile(name, mean_kl, p99_kl, max_kl, top1, top5, abs_logit, rms_dp, tie, greedy, hidden)


# Default profiles by candidate dtype. Derivation in docs/tolerances.md ("Output-level profiles"):
# the spec's suggested gates for sub-1B models, checked against measurements on our tiny models.
PROFILES: dict[str, OutputProfile] = {
    #        name      meanKL  p99KL  maxKL  top1  top5  |Δlogit| RMSΔp  tie   greedy hidden-rel
    "f32": _p("f32", 1e-6, 1e-5, 1e-4, 0.99, 0.99, 1e-3, 1e-3, 1e-3, True, 1e-4),
    "f16": _p("f16", 1e-4, 1e-3, 1e-2, 0.98, 0.95, None, 0.005, 0.02, False, 5e-3),
    "bf16": _p("bf16", 2e-3, 1e-2, 5e-2, 0.95, 0.90, None, 0.02, 0.05, False, 3e-2),
    "q8_0": _p("q8_0", 5e-3, 3e-2, 0.1, 0.95, 0.90, None, 0.02, 0.1, False, 6e-2),
    "q6_k": _p("q6_k", 1.5e-2, 8e-2, 0.3, 0.90, 0.85, None, 0.04, 0.25, False, 0.15),
    "q5_k": _p("q5_k", 3e-2, 0.15, 0.5, 0.85, 0.75, None, 0.06, 0.4, False, 0.3),
    "q4_k": _p("q4_k", 8e-2, 0.4, 1.0, 0.75, 0.65, None, 0.10, 0.5, False, 0.5),
    "q4_0": _p("q4_0", 0.15, 0.8, 2.0, 0.65, 0.60, None, 0.15, 0.5, False, 0.6),
    # derived from q4_k like the tensor bands (docs/tolerances.md): KL ∝ rel-L2², top-1/top-5 misses,
    # RMS Δp and hidden-rel ∝ rel-L2, with llama.cpp's typical rel-L2 q4_k 0.081, q3_k 0.151, q2_k 0.297
    "q3_k": _p("q3_k", 0.28, 1.4, 3.5, 0.53, 0.35, None, 0.19, 0.5, False, 0.93),
    "q2_k": _p("q2_k", 1.1, 5.4, 13.0, 0.08, 0.0, None, 0.37, 0.5, False, 1.8),
}

# Dtypes without a profile of their own use the nearest one: the type rows' ``profile`` column.
_PROFILE_OF_DTYPE = {t.dtype: t.profile for t in TRAITS.values() if t.profile is not None}


def profile_for(dtype: DType | str) -> OutputProfile:
    """Default profile of a candidate dtype (or profile name).

    Raises:
        UsageError: no profile covers that dtype (an integer type: give one explicitly).
    """
    if isinstance(dtype, str) and dtype.lower() in PROFILES:
        return PROFILES[dtype.lower()]
    dt = dtype_from_name(dtype)
    name = _PROFILE_OF_DTYPE.get(dt)
    if name is None:
        raise UsageError(f"no default output profile for {dt.lname}; pass profile=... "
                         f"(known: {', '.join(PROFILES)})")
    return PROFILES[name]


@dataclass(frozen=True)
class LogitMetrics:
    """Statistics of candidate logits against reference logits over ``n_positions`` positions."""

    n_positions: int
    kl_mean: float
    kl_max: float
    kl_p99: float
    top1_agreement: float
    top1_decisive: float  # top-1 agreement over positions where A's top-2 gap ≥ near_tie_delta
    n_decisive: int
    top5_overlap: float
    max_abs_logit_diff: float
    rms_dp: float | None
    n_dp: int
    finite: bool
    kl_per_position: tuple[float, ...]
    top1_per_position: tuple[bool, ...] = ()  # argmax of both sides equal, per position
    # top-5 overlap over the positions where A is not near-flat (its entropy < FLAT_ENTROPY_FRACTION·ln V:
    # its mass sits on few tokens, so its top-5 set means something); at near-flat positions any faithful
    # perturbation reorders the top five of thousands of near-equal tokens
    top5_decisive: float = 1.0  # all positions' overlap when every position is near-flat (then not gated)
    n_top5_decisive: int = 0
    ref_entropy_max: float = 0.0  # A's largest per-position entropy as a fraction of ln V (0..1)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["kl_per_position"] = list(self.kl_per_position)
        d["top1_per_position"] = list(self.top1_per_position)
        return d


# A reference position is near-flat when its entropy H is at least this fraction of ln V (V the vocabulary): the
# mass is spread over e^H ≥ V^0.75 tokens (≥ 11,585 of Gemma 3's 262,144, ≥ 108 of 512), so its "top five" are
# five of thousands of near-equal tokens and any faithful perturbation reorders them. For logits that are
# Gaussian with spread σ, H ≈ ln V − σ²/2, so 0.75 is σ ≈ √(ln V / 2) (2.5 nats at V = 262,144): a peaked
# trained model is far below, a random-weight one far above. Measured on the default prompt: the real Gemma 3
# 270M's positions reach at most 0.54; a random tiny qwen2 (V 512) sits at 0.91–0.94, a random
# Qwen2.5-Coder-0.5B-shaped model at 0.97–0.98 (docs/tolerances.md, "Top-k near flat outputs").
FLAT_ENTROPY_FRACTION = 0.75


def _log_softmax64(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))


def _top5(x: np.ndarray) -> np.ndarray:
    k = min(5, x.shape[-1])
    return np.argpartition(-x, k - 1, axis=-1)[:, :k]


def logit_metrics(reference: np.ndarray, candidate: np.ndarray, next_ids: Sequence[int] | None = None,
                  near_tie_delta: float = 0.0, chunk: int = 16) -> LogitMetrics:
    """Metrics of ``candidate`` logits against ``reference`` logits (both ``[N, vocab]``).

    Args:
        reference / candidate: float logits of the same positions.
        next_ids: the known next token of each position (``len ≤ N``, aligned from position 0)
            for Δp; positions beyond it have no Δp.
        near_tie_delta: positions where A's top-2 logit gap is below this are left out of
            ``top1_decisive`` (flat distributions flip top-1 under any perturbation). Top-5 leaves
            out the positions where A is near-flat by entropy (``FLAT_ENTROPY_FRACTION``).
        chunk: rows per float64 block (bounds the temporaries).
    Raises:
        UsageError: shapes differ or there are zero positions.
    """
    a, b = np.asarray(reference), np.asarray(candidate)
    if a.shape != b.shape or a.ndim != 2:
        raise UsageError(f"logit shapes differ: reference {a.shape}, candidate {b.shape}")
    n = a.shape[0]
    if n == 0 or a.shape[1] == 0:
        raise UsageError("zero positions to compare: an empty comparison never passes")
    finite = bool(np.isfinite(a).all() and np.isfinite(b).all())
    kl = np.empty(n, np.float64)
    top1 = np.empty(n, bool)
    decisive = np.empty(n, bool)
    entropy = np.zeros(n, np.float64)
    top5 = np.empty(n, np.float64)
    dps: list[float] = []
    nxt = list(next_ids or [])[:n]
    max_abs = 0.0
    for r0 in range(0, n, chunk):
        r1 = min(n, r0 + chunk)
        la, lb = _log_softmax64(a[r0:r1]), _log_softmax64(b[r0:r1])
        pa = np.exp(la)
        kl[r0:r1] = (pa * (la - lb)).sum(axis=-1)
        entropy[r0:r1] = -(pa * la).sum(axis=-1)
        top1[r0:r1] = a[r0:r1].argmax(-1) == b[r0:r1].argmax(-1)
        if a.shape[1] > 1:
            two = np.partition(a[r0:r1].astype(np.float64), a.shape[1] - 2, axis=-1)[:, -2:]
            decisive[r0:r1] = (two[:, 1] - two[:, 0]) >= near_tie_delta
        else:
            decisive[r0:r1] = True
        ta, tb = _top5(a[r0:r1]), _top5(b[r0:r1])
        top5[r0:r1] = [len(set(x) & set(y)) / ta.shape[1] for x, y in zip(ta.tolist(), tb.tolist())]
        max_abs = max(max_abs, float(np.abs(a[r0:r1].astype(np.float64) - b[r0:r1]).max()))
        for t in range(r0, min(r1, len(nxt))):
            tok = int(nxt[t])
            dps.append(math.exp(lb[t - r0, tok]) - math.exp(la[t - r0, tok]))
    if not finite:
        kl[:] = np.nan
        max_abs = float("nan")
    rms = float(np.sqrt(np.mean(np.square(dps)))) if dps else None
    # share of the maximum entropy ln V; a vocabulary of 1 has no spread at all
    flatness = entropy / math.log(a.shape[1]) if a.shape[1] > 1 else np.zeros(n)
    decisive5 = ~(flatness >= FLAT_ENTROPY_FRACTION) if finite else np.ones(n, bool)
    return LogitMetrics(
        n_positions=n, kl_mean=float(kl.mean()), kl_max=float(kl.max()),
        kl_p99=float(np.percentile(kl, 99)), top1_agreement=float(top1.mean()),
        top1_decisive=float(top1[decisive].mean()) if decisive.any() else float(top1.mean()),
        n_decisive=int(decisive.sum()), top5_overlap=float(top5.mean()),
        max_abs_logit_diff=max_abs, rms_dp=rms, n_dp=len(dps), finite=finite,
        kl_per_position=tuple(float(x) for x in kl), top1_per_position=tuple(bool(x) for x in top1),
        top5_decisive=float(top5[decisive5].mean()) if decisive5.any() else float(top5.mean()),
        n_top5_decisive=int(decisive5.sum()), ref_entropy_max=float(np.nanmax(flatness)) if finite else float("nan"),
    )


@dataclass(frozen=True)
class GreedyAgreement:
    """Greedy continuation of A versus B's choices on A's prefix (teacher-forced = free-running
    up to the first divergence).

    ``first_divergence`` is the index (0-based, into the generated tokens) where B would pick
    another token, or None when all ``n_generated`` agree. ``near_tie`` marks a divergence where
    A's top-2 logit gap (``top2_gap``) was below the profile's ``near_tie_delta``.
    """

    n_generated: int
    reference_ids: tuple[int, ...]
    candidate_ids: tuple[int, ...]  # B's argmax at each step of A's continuation
    first_divergence: int | None
    top2_gap: float | None
    near_tie: bool

    @property
    def agreed(self) -> int:
        return self.n_generated if self.first_divergence is None else self.first_divergence

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["reference_ids"], d["candidate_ids"], d["agreed"] = list(self.reference_ids), list(self.candidate_ids), self.agreed
        return d


def greedy_agreement(ref_logits: np.ndarray, cand_logits: np.ndarray, ref_ids: Sequence[int],
                     near_tie_delta: float) -> GreedyAgreement:
    """Compare B's argmax with A's greedy tokens; ``*_logits[j]`` chose generated token ``j``."""
    ref_ids = [int(t) for t in ref_ids]
    n = len(ref_ids)
    cand = [int(x) for x in np.asarray(cand_logits[:n]).argmax(-1)]
    first = next((j for j in range(n) if cand[j] != ref_ids[j]), None)
    gap = None
    tie = False
    if first is not None:
        row = np.sort(np.asarray(ref_logits[first], np.float64))
        gap = float(row[-1] - row[-2]) if row.size > 1 else float("inf")
        tie = gap < near_tie_delta
    return GreedyAgreement(n, tuple(ref_ids), tuple(cand), first, gap, tie)


@dataclass(frozen=True)
class OutputComparison:
    """Reference-vs-candidate output comparison. Truthy when every gate of ``profile`` passed.

    ``failures`` lists each failed gate as "metric value vs limit"; ``notes`` lists reported,
    non-failing findings (near-tie divergences, ungated metrics).
    """

    passed: bool
    profile: OutputProfile
    metrics: LogitMetrics | None
    greedy: GreedyAgreement | None
    tokenizer: TokenizerComparison | None
    token_ids: tuple[int, ...]
    failures: tuple[str, ...]
    notes: tuple[str, ...] = ()
    reference: str = ""
    candidate: str = ""
    engine: str = "aprqa"  # what ran the candidate: aprqa's forward pass or "llama.cpp (llama-cpp-python X)"
    # the calibrated band's measurements (inference/calibrate.py): the faithful twin's (and the engine's) KL,
    # the factor; None when a fixed profile judged (given explicitly, or the named fallback)
    calibration: dict[str, Any] | None = None

    def __bool__(self) -> bool:
        return self.passed

    @property
    def minimum_passing(self) -> dict[str, float | None]:
        """The tightest threshold of each gate this candidate would still have passed."""
        m = self.metrics
        if m is None:
            return {}
        return {"max_mean_kl": m.kl_mean, "max_p99_kl": m.kl_p99, "max_kl": m.kl_max,
                "min_top1": m.top1_decisive,
                "min_top5_overlap": m.top5_decisive,
                "max_abs_logit": m.max_abs_logit_diff, "max_rms_dp": m.rms_dp}

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed, "reference": self.reference, "candidate": self.candidate,
            "engine": self.engine, "profile": self.profile.to_dict(), "minimum_passing": self.minimum_passing,
            "token_ids": list(self.token_ids),
            "metrics": self.metrics.to_dict() if self.metrics else None,
            "greedy": self.greedy.to_dict() if self.greedy else None,
            "tokenizer": self.tokenizer.to_dict() if self.tokenizer else None,
            "failures": list(self.failures), "notes": list(self.notes), "calibration": self.calibration,
        }


def evaluate(metrics: LogitMetrics, greedy: GreedyAgreement | None, profile: OutputProfile) -> tuple[list[str], list[str]]:
    """The failed gates and the notes of ``metrics``/``greedy`` under ``profile``."""
    fails: list[str] = []
    notes: list[str] = []
    if metrics.n_positions == 0:
        fails.append("zero positions compared")
    if not metrics.finite:
        fails.append("non-finite logits (NaN/Inf)")

    def hi(label: str, value: float | None, limit: float | None) -> None:
        if limit is None or value is None:
            return
        if not value <= limit:  # NaN fails
            fails.append(f"{label} {value:.3g} > {limit:.3g}")

    hi("mean KL", metrics.kl_mean, profile.max_mean_kl)
    hi("p99 KL", metrics.kl_p99, profile.max_p99_kl)
    hi("max KL", metrics.kl_max, profile.max_kl)
    hi("max |Δlogit|", metrics.max_abs_logit_diff, profile.max_abs_logit)
    hi("RMS Δp", metrics.rms_dp, profile.max_rms_dp)
    if metrics.n_decisive == 0:
        # a flat distribution's argmax flips under any perturbation: no position can test top-1
        notes.append(f"every position is a near-tie (reference top-2 gap < {profile.near_tie_delta:g}): top-1 "
                     f"not gated ({metrics.top1_agreement:.1%} agree); the KL gates decide")
    elif not metrics.top1_decisive >= profile.min_top1:
        fails.append(f"top-1 agreement {metrics.top1_decisive:.1%} < {profile.min_top1:.1%} "
                     f"(over {metrics.n_decisive} of {metrics.n_positions} positions without a near-tie)")
    if metrics.n_top5_decisive == 0:
        notes.append(f"the reference is near-flat at every position (entropy ≥ {FLAT_ENTROPY_FRACTION:g}·ln V, "
                     f"up to {metrics.ref_entropy_max:.2f}·ln V): top-5 overlap {metrics.top5_overlap:.1%} "
                     "reported, not gated")
    elif not metrics.top5_decisive >= profile.min_top5_overlap:
        fails.append(f"top-5 overlap {metrics.top5_decisive:.1%} < {profile.min_top5_overlap:.1%} (over "
                     f"{metrics.n_top5_decisive} of {metrics.n_positions} positions where the reference is not "
                     "near-flat)")
    elif metrics.n_top5_decisive < metrics.n_positions:
        notes.append(f"top-5 gated over {metrics.n_top5_decisive} of {metrics.n_positions} positions: the "
                     f"reference is near-flat (entropy ≥ {FLAT_ENTROPY_FRACTION:g}·ln V) at the others")
    if greedy is not None and greedy.first_divergence is not None:
        where = (f"greedy continuation diverges at generated token {greedy.first_divergence} "
                 f"(reference {greedy.reference_ids[greedy.first_divergence]}, candidate "
                 f"{greedy.candidate_ids[greedy.first_divergence]}, reference top-2 gap {greedy.top2_gap:.3g})")
        if greedy.near_tie:
            notes.append(where + f": near-tie (gap < {profile.near_tie_delta:g}), not a failure")
        elif profile.greedy_must_match:
            fails.append(where)
        else:
            notes.append(where)
    return fails, notes
