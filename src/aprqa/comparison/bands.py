"""Error bands of the family of faithful quantizers (docs/tolerances.md, "Faithful quantizers").

A quantized candidate is judged against what *any* faithful quantizer of its type produces, not
only aprqa's own:

  * the pipeline's intermediate precision: real files are quantized from an f16 or bf16 copy of
    the weights. ``INTERMEDIATES`` are tried in order; the one the data agree with is reported;
  * the error band of the type: where aprqa has a quantizer, a ratio to its error on the same
    rows (``NOISE_LIMITS``, the type rows' ``noise_limit``); where it has none, a *step model* — the rounding noise of the type's
    step (Δ²/12 per element, Δ from each sub-block's range) — times a factor measured against
    llama.cpp's quantizer on varied weight distributions, with and without an importance matrix
    (``STEP_BANDS``; scripts/measure_quant_bands.py prints the table);
  * the gain band: the least-squares gain ⟨a,b⟩/⟨b,b⟩ of a faithful quantizer lies between
    1/(1 + rel²) and 1 (``gain_range``); scales off by a few percent leave it;
  * the grid test: uniform-grid K-quants end by rounding every element to the nearest level of
    its sub-block (``grid_violations``), which scales off by a few percent break even where the
    error level cannot show it (Q2_K: 3 % is a tenth of its noise).
"""

from __future__ import annotations

import math

import numpy as np

from ..quant.dtypes import TRAITS, DType

# Float types a real pipeline may round the weights to before quantizing (llama.cpp quantizes
# from an f16/bf16 GGUF). None = quantized straight from the reference.
INTERMEDIATES: tuple[DType | None, ...] = (None, DType.F16, DType.BF16)


from ..quant.step_bands import GEOMETRY, MEASURED_GAINS, STEP_BANDS, StepBand, StepGeometry, step_model_rel_l2  # noqa: F401

# err/noise limits where aprqa has a quantizer of the type (ratio to its error on the same rows): the
# rows' ``noise_limit`` column (quant/dtypes.py says how each was measured).
NOISE_LIMITS: dict[DType, float] = {t.dtype: t.noise_limit for t in TRAITS.values() if t.noise_limit is not None}
STRICT_NOISE_LIMIT = 1.02

# The least-squares gain g = <a,b>/<b,b> of a faithful quantizer lies between the two ends of the
# family: error orthogonal to the reference (round-to-nearest with a fixed scale: g = 1/(1 + rel²))
# and error orthogonal to the reconstruction (least-squares scales: g = 1). Measured llama.cpp
# gains all fall inside with at most 0.006 to spare; GAIN_MARGIN is the allowance on both ends.
GAIN_MARGIN = 0.01
# Share of sampled elements allowed off their nearest grid level (measured: 0 for every K-quant,
# with and without an importance matrix; 0.67-3.6 % once the scales are off by 3 %).
GRID_TOLERANCE = 1e-3
# Intermediate rounding allowed in the grid test: half an ulp (relative) of the detected
# intermediate (None: float32 arithmetic only), or when it cannot be detected half an ulp of bf16,
# the coarsest intermediate in use (covers f16 and none).
HALF_ULP: dict[DType | None, float] = {None: 2.0 ** -20, DType.F16: 2.0 ** -11, DType.BF16: 2.0 ** -9}
GRID_MARGIN_REL = HALF_ULP[DType.BF16]


def grid_violations(a: np.ndarray, b: np.ndarray, dt: DType, scale: float = 1.0, margin_rel: float = 0.0) -> int:
    """Elements of ``b / scale`` that are not the nearest point of their sub-block's grid to ``a``.

    Every faithful quantizer of a uniform-grid type measured (llama.cpp's, with or without an
    importance matrix; aprqa's) ends by rounding each element to the nearest level of its
    sub-block's final (quantized) scale. The grid is read off the decoded values: its step is the
    smallest gap between a sub-block's distinct values (a multiple of the true step when levels
    are missing, which only loosens the test). Elements at a sub-block's lowest/highest decoded
    value that lie beyond it may be clamped and are not counted. ``margin_rel``·|a| allows the
    pipeline's intermediate rounding. 0 for types without a uniform grid (``UNIFORM_GRID``)."""
    g = GEOMETRY.get(dt)
    if dt not in UNIFORM_GRID or g is None or a.size % g.sub or a.size == 0:
        return 0
    A = a.reshape(-1, g.sub).astype(np.float64)
    B = b.reshape(-1, g.sub).astype(np.float64) / scale
    srt = np.sort(B, axis=1)
    hi, lo = srt[:, -1:], srt[:, :1]
    tiny = 1e-5 * np.maximum(np.abs(hi), np.abs(lo)) + 1e-30
    gaps = np.diff(srt, axis=1)
    step = np.where(gaps > tiny, gaps, np.inf).min(axis=1, keepdims=True)
    dev = A - B
    clamped = ((B >= hi - tiny) & (dev > 0)) | ((B <= lo + tiny) & (dev < 0))
    bound = step / 2 * (1 + 1e-3) + margin_rel * np.abs(A) + tiny
    return int(((np.abs(dev) > bound) & ~clamped & np.isfinite(step)).sum())


# Types whose levels are a uniform grid per sub-block and whose faithful quantizers end with
# round-to-nearest under the final scales: the rows' ``uniform_grid`` column. Not IQ4's non-linear grid;
# not Q4_0/Q5_0, whose imatrix path keeps the levels of its scale search while storing a refitted
# scale; not Q8_0, which rounds with the f32 scale and stores it as f16 (its own per-block bound covers that).
UNIFORM_GRID = frozenset(t.dtype for t in TRAITS.values() if t.uniform_grid)


def reference_on_grid(own: float, step: float | None, dt: DType) -> bool:
    """Whether aprqa's requantization error ``own`` is so far below what the type does on any
    measured distribution (``ON_GRID_FRACTION`` x the lowest faithful/step ratio) that the reference
    must already lie on the type's grid (a dequantized GGUF, a QAT release). aprqa's error then
    says nothing about other faithful quantizers, whose search may land on another grid."""
    band = STEP_BANDS.get(dt)
    return bool(step) and band is not None and own < ON_GRID_FRACTION * band.measured_lo * step


# A reference is "on the grid" when aprqa's requantization error is below a quarter of the least a
# faithful quantizer of the type produced on any measured distribution (relative to the step model).
# Quantizing ordinary weights never comes near (measured floor ≥ measured_lo); a reference that is
# one requantization away from the grid gives ~0.
ON_GRID_FRACTION = 0.25


# Quantized types with no band, and why (the rows' ``no_band`` column): they are judged NOT-JUDGED,
# never DEGRADED.
NO_BAND: dict[DType, str] = {t.dtype: t.no_band for t in TRAITS.values() if t.no_band is not None}


def band_basis(dt: DType, own_quantizer: bool) -> str | None:
    """How a quantized candidate of ``dt`` is judged: "aprqa" (ratio to aprqa's own quantizer of the
    type, with the step band for references already on its grid), "step" (the measured step band)
    or None (no band: NOT-JUDGED, reason in ``NO_BAND``)."""
    if own_quantizer:
        return "aprqa"
    if dt in GEOMETRY and dt in STEP_BANDS:
        return "step"
    return None


def step_limit(dt: DType) -> StepBand | None:
    return STEP_BANDS.get(dt)


def gain_range(rel_l2: float, dt: DType | None = None) -> tuple[float, float]:
    """The least-squares gains a faithful quantizer with this rel-L2 can have (see GAIN_MARGIN).

    Codebook, ternary and FP4 types fall outside the two-ends theory (their scales are fitted to a
    non-uniform or clamped grid; llama.cpp's IQ2 gains reach 0.75): their measured range
    (``MEASURED_GAINS``) widened by ``GAIN_MARGIN`` applies instead."""
    measured = MEASURED_GAINS.get(dt) if dt is not None else None
    if measured is not None:
        return measured[0] - GAIN_MARGIN, measured[1] + GAIN_MARGIN
    return 1.0 / (1.0 + rel_l2 * rel_l2) - GAIN_MARGIN, 1.0 + GAIN_MARGIN


def least_squares_gain(sum_ab: float, sum_b2: float) -> float:
    """⟨a,b⟩/⟨b,b⟩: the factor that best maps candidate b onto reference a."""
    return sum_ab / sum_b2 if sum_b2 > 0 else math.nan
