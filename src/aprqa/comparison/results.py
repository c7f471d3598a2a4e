"""Results of ``compare`` as data: frozen dataclasses with ``passed``/``__bool__``/``to_dict``.

Nothing here prints; report/ renders these objects (console, JSON, HTML, Markdown).
The JSON layout is documented in docs/compare-json.md (``schema_version`` bumps on
any incompatible change).
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .metadata import SectionDiff
from .tolerance import Tolerance, TolerancePolicy

if TYPE_CHECKING:  # typing only: importing aprqa.inference loads the forward pass (numba), which --fast never needs
    from ..inference.locate import Localization
    from ..inference.metrics import OutputComparison

SCHEMA_VERSION = 1


class Verdict(str, enum.Enum):
    """What a tensor pair is, in order from best to worst."""

    IDENTICAL = "IDENTICAL"              # bit-equal after dequantization
    EXACT_CAST = "EXACT-CAST"            # candidate == reference rounded to nearest-even (float narrowing)
    QUANT_FAITHFUL = "QUANT-FAITHFUL"    # quantized, error within the type's noise floor
    TIED = "TIED"                        # lm_head absent on one side / a copy of embed_tokens (tied embeddings)
    EXPECTED = "EXPECTED"                # only on one side by a converter's deliberate choice (arch/conventions.py)
    WITHIN_TOLERANCE = "WITHIN-TOLERANCE"  # not the expected bits/noise, but inside an explicit user tolerance
    NOT_JUDGED = "NOT-JUDGED"            # no band for the type / undecodable type: not measured, so not a pass
    DEGRADED = "DEGRADED"                # same tensor, error above the noise floor / not the exact rounding
    SCALED = "SCALED"                    # candidate ≈ k·reference
    OFFSET = "OFFSET"                    # candidate ≈ reference + c (e.g. norm stored ±1)
    NOISE = "NOISE"                      # candidate = reference + random noise of a stated level
    TRANSPOSED = "TRANSPOSED"            # data transposed (same or swapped shape)
    ROW_PERMUTED = "ROW-PERMUTED"        # rows reordered (RoPE permutation applied/undone wrongly, ...)
    SWAPPED = "SWAPPED"                  # candidate holds another reference tensor's data (and that one holds its)
    COPIED = "COPIED"                    # candidate holds another reference tensor's data, which is still in place
    DTYPE_MISREAD = "DTYPE-MISREAD"      # candidate bytes decode correctly as another dtype
    NAN_INF = "NAN/INF"                  # NaN/Inf where the reference is finite
    CORRUPT = "CORRUPT"                  # none of the above explains the difference
    SHAPE_MISMATCH = "SHAPE-MISMATCH"    # shapes differ and no explanation was found
    DTYPE_CHANGE = "DTYPE-CHANGE"        # dtypes that cannot be compared numerically (float <-> int, ...)
    MISSING = "MISSING"                  # only in the reference
    EXTRA = "EXTRA"                      # only in the candidate
    UNREADABLE = "UNREADABLE"            # payload past EOF / not decodable

    @property
    def passing(self) -> bool:
        return self in _PASSING


_PASSING = {Verdict.IDENTICAL, Verdict.EXACT_CAST, Verdict.QUANT_FAITHFUL, Verdict.TIED, Verdict.EXPECTED,
            Verdict.WITHIN_TOLERANCE}

# worst first when sorting failures
_SEVERITY = {v: i for i, v in enumerate(reversed(list(Verdict)))}


def _clean(x: Any) -> Any:
    """JSON-safe: NaN/Inf floats become strings ("nan", "inf", "-inf")."""
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


@dataclass(frozen=True)
class TensorStats:
    """Statistics of one full fused pass (reference vs candidate), copied from the core's DiffStats."""

    n: int
    n_equal: int
    max_abs: float
    max_abs_index: tuple[int, ...]
    mean_abs: float
    rmse: float
    rel_l2: float
    cosine: float
    sqnr_db: float
    nmse: float
    n_fail: int
    min_atol: float
    rtol: float
    reference_nan: int
    reference_inf: int
    candidate_nan: int
    candidate_inf: int
    histogram: tuple[int, ...] = ()

    @property
    def equal(self) -> bool:
        return self.n_equal == self.n

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["max_abs_index"] = list(self.max_abs_index)
        d["histogram"] = list(self.histogram)
        return d


@dataclass(frozen=True)
class NoiseFloor:
    """The expected error of a faithful quantizer of the candidate's type, on the same rows
    (comparison/noise.py, docs/tolerances.md "Faithful quantizers").

    Attributes:
        dtype: the quantized type.
        rel_l2: the floor: rel-L2 of aprqa's quantizer on the reference (basis "aprqa"), or the
            type's step model (basis "step", no aprqa quantizer for the type).
        candidate_rel_l2: the candidate's relative L2 error on the same rows.
        ratio: candidate error / floor on the same rows (1.0 = as good as our quantizer): on the
            sampled rows when the whole-tensor error agrees with theirs within 25 %, else the
            whole-tensor error over a floor re-measured on every row.
        rows_sampled, rows_total: rows the floor was measured on (evenly spread), of all rows.
        blocks_bit_equal, blocks_compared: candidate bytes equal to our quantizer's bytes
            (same algorithm) on the sampled rows.
        block_bound_violations: Q8_0/Q4_0: elements past the per-block bound |a−deq| ≤ d/2
            (d for Q4_0's clamped edge) on the sampled rows; None when not applicable.
        basis: "aprqa", "step" (see rel_l2) or "grid-reference": the reference already lies on the
            type's grid (a dequantized GGUF, a QAT release), so aprqa's requantization error is ~0 and
            says nothing about other faithful quantizers; the floor is the type's step model then.
        intermediate: the float type the data show the weights were rounded to before quantizing
            ("none", "f16", "bf16"); None when not detectable.
        gain: least-squares gain ⟨a,b⟩/⟨b,b⟩ over the whole tensor (faithful: between
            1/(1 + rel²) and 1, plus a margin).
        off_grid, grid_checked: uniform-grid K-quants: sampled elements that are not at the nearest
            level of their sub-block's grid, of those checked; None when not applicable.
        limit: the err/noise limit applied (the band is ``limit × rel_l2``).
    """

    dtype: str
    rel_l2: float
    candidate_rel_l2: float
    ratio: float
    rows_sampled: int
    rows_total: int
    blocks_bit_equal: int
    blocks_compared: int
    block_bound_violations: int | None = None
    basis: str = "aprqa"
    intermediate: str | None = None
    gain: float | None = None
    off_grid: int | None = None
    grid_checked: int = 0
    limit: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class TensorResult:
    """One paired (or unpaired) tensor and its verdict.

    Attributes:
        name: canonical name.
        verdict: the diagnosis.
        passed: whether it meets its tolerance.
        reference_dtype/candidate_dtype, reference_shape/candidate_shape: None when absent.
        transform: the expected transforms undone before comparing (``gguf-dim-order``,
            ``rope-permute(n_head=32)``), or for a failure the transform that explains it.
        stats: the full-pass statistics as stored (None when nothing could be compared).
        explained_stats: the full-pass statistics after undoing the diagnosed fault
            (e.g. transposed back), when a hypothesis was confirmed.
        noise: the noise floor of a quantized candidate.
        tolerance: the criterion applied; tolerance_source says where it came from.
        detail: one sentence with the numbers.
        related: another tensor involved (the tensor a SWAPPED candidate holds, the name a
            MISSING tensor was found under, the embedding an lm_head is tied to).
        nbytes: reference + candidate payload bytes read.
    """

    name: str
    verdict: Verdict
    passed: bool
    reference_dtype: str | None
    candidate_dtype: str | None
    reference_shape: tuple[int, ...] | None
    candidate_shape: tuple[int, ...] | None
    transform: tuple[str, ...] = ()
    stats: TensorStats | None = None
    explained_stats: TensorStats | None = None
    noise: NoiseFloor | None = None
    tolerance: Tolerance | None = None
    tolerance_source: str = ""
    detail: str = ""
    related: str | None = None
    nbytes: int = 0
    layer: int | None = None

    def __bool__(self) -> bool:
        return self.passed

    @property
    def severity(self) -> int:
        return _SEVERITY[self.verdict]

    @property
    def error_score(self) -> float:
        """A sortable badness: for quantized, err/noise (over its limit: the share of the band used,
        so types judged by different bases rank together); rel-L2 otherwise (inf for structural
        failures)."""
        if self.stats is None:
            return math.inf if not self.passed else 0.0
        if self.noise is not None and math.isfinite(self.noise.ratio):
            return self.noise.ratio / self.noise.limit if self.noise.limit else self.noise.ratio
        r = self.stats.rel_l2
        return r if math.isfinite(r) else math.inf

    def to_dict(self) -> dict[str, Any]:
        return _clean({
            "name": self.name, "verdict": self.verdict.value, "passed": self.passed, "layer": self.layer,
            "reference": None if self.reference_dtype is None else
            {"dtype": self.reference_dtype, "shape": list(self.reference_shape or ())},
            "candidate": None if self.candidate_dtype is None else
            {"dtype": self.candidate_dtype, "shape": list(self.candidate_shape or ())},
            "transform": list(self.transform), "detail": self.detail, "related": self.related,
            "stats": self.stats.to_dict() if self.stats else None,
            "explained_stats": self.explained_stats.to_dict() if self.explained_stats else None,
            "noise": self.noise.to_dict() if self.noise else None,
            "tolerance": self.tolerance.to_dict() if self.tolerance else None,
            "tolerance_source": self.tolerance_source, "nbytes": self.nbytes,
        })


@dataclass(frozen=True)
class ModelSummary:
    """One side of the comparison, as shown in the report header."""

    path: str
    format: str
    dialect: str
    architecture: str | None
    tensors: int
    nbytes: int
    dtypes: dict[str, int]
    config_line: str = ""
    elements: int = 0               # weights (elements) of all tensors

    @property
    def bits_per_weight(self) -> float | None:
        """Tensor payload bits per element, the size axis of a quantization trade-off."""
        return self.nbytes * 8 / self.elements if self.elements else None

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["bits_per_weight"] = self.bits_per_weight
        return d


@dataclass(frozen=True)
class Report:
    """The outcome of ``aprqa.compare``.

    ``passed`` is True only when at least one tensor pair was compared, every tensor result
    passed, the metadata and tokenizer sections passed, and (when run) the output-level check
    passed. ``bool(report) == report.passed``.
    """

    reference: ModelSummary
    candidate: ModelSummary
    tensors: tuple[TensorResult, ...]
    metadata: SectionDiff
    tokenizer: SectionDiff
    policy: TolerancePolicy
    fast: bool
    only: str | None = None
    outputs: OutputComparison | None = None  # forward.compare_outputs result, when run
    outputs_note: str = ""          # why the output-level check did not run
    localization: Localization | None = None  # forward.locate result (--locate), diagnostic only
    locate_note: str = ""           # what was located on, or why it could not run
    corpus: Any = None              # compare.corpus.CorpusKL (--corpus): a measurement, it does not change passed
    seconds: float = 0.0
    bytes_read: int = 0
    errors: tuple[str, ...] = ()    # report-level failures (e.g. nothing compared)

    @property
    def pairs_compared(self) -> int:
        return sum(1 for t in self.tensors if t.stats is not None)

    @property
    def passed(self) -> bool:
        outputs_ok = self.outputs is None or self.outputs.passed
        return (not self.errors and self.pairs_compared > 0 and all(t.passed for t in self.tensors)
                and self.metadata.passed and self.tokenizer.passed and outputs_ok)

    def __bool__(self) -> bool:
        return self.passed

    def failures(self) -> list[TensorResult]:
        """Failing tensors, worst first."""
        return sorted((t for t in self.tensors if not t.passed), key=lambda t: (-t.severity, -t.error_score))

    def verdict_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for t in self.tensors:
            counts[t.verdict.value] = counts.get(t.verdict.value, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: _SEVERITY[Verdict(kv[0])]))

    def worst_passing(self) -> TensorResult | None:
        ok = [t for t in self.tensors if t.passed and t.stats is not None]
        return max(ok, key=lambda t: t.error_score, default=None)

    def min_atol(self) -> float | None:
        """Smallest atol (at each tensor's rtol) under which every compared tensor's elements pass."""
        vals = [t.stats.min_atol for t in self.tensors if t.stats is not None]
        return max(vals) if vals else None

    def divergent_layer_tensors(self) -> list[TensorResult]:
        """Tensor results of the first divergent layer found by ``--locate`` (empty if none)."""
        first = self.localization.first_bad if self.localization is not None else None
        if first is None or first.layer < 0:
            return []
        return [t for t in self.tensors if t.layer == first.layer]

    def dtype_changes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tensors:
            if t.reference_dtype and t.candidate_dtype and t.reference_dtype != t.candidate_dtype:
                k = f"{t.reference_dtype}→{t.candidate_dtype}"
                out[k] = out.get(k, 0) + 1
        return out

    def summary(self) -> str:
        """A few plain-text lines: verdict counts, the failures with their numbers, the result."""
        lines = ["verdicts   " + " · ".join(f"{k} {v}" for k, v in self.verdict_counts().items())]
        for t in self.failures()[:20]:
            lines.append(f"  {t.name}  {t.verdict.value}  {t.detail}")
        for sec in (self.metadata, self.tokenizer):
            for f in sec.problems():
                lines.append(f"  {sec.name}.{f.field}  {f.status}  reference {f.reference!r}, "
                             f"candidate {f.candidate!r}{'  ' + f.note if f.note else ''}")
            if sec.failed_outright:
                lines.append(f"  {sec.name}  FAIL  {sec.note}")
        for e in self.errors:
            lines.append(f"  error: {e}")
        lines.append(f"result     {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return _clean({
            "schema": "aprqa.comparison", "schema_version": SCHEMA_VERSION,
            "passed": self.passed, "fast": self.fast, "only": self.only,
            "reference": self.reference.to_dict(), "candidate": self.candidate.to_dict(),
            "policy": self.policy.to_dict(),
            "counts": {"pairs_compared": self.pairs_compared, "tensors": len(self.tensors),
                       "failed": sum(1 for t in self.tensors if not t.passed),
                       "verdicts": self.verdict_counts(), "dtype_changes": self.dtype_changes()},
            "min_atol": self.min_atol(),
            "metadata": self.metadata.to_dict(), "tokenizer": self.tokenizer.to_dict(),
            "outputs": self.outputs.to_dict() if self.outputs is not None else None,
            "outputs_note": self.outputs_note,
            "localization": self.localization.to_dict() if self.localization is not None else None,
            "locate_note": self.locate_note,
            "corpus": self.corpus.to_dict() if self.corpus is not None else None,
            "errors": list(self.errors), "seconds": self.seconds, "bytes_read": self.bytes_read,
            "tensors": [t.to_dict() for t in self.tensors],
        })

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, default=str)
