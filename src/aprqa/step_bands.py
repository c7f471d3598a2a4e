"""Step models and measured step bands of the quantized types (docs/tolerances.md, "Faithful quantizers").

A leaf module (numpy and the dtype table only) shared by the tensor bands (comparison/bands.py) and the
output calibration's step-noise model (inference/calibrate.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .dtypes import DType


@dataclass(frozen=True)
class StepGeometry:
    """Rounding step of a block-quantized type: every ``sub`` elements share a scale; the step is
    ``amax / half_levels`` (symmetric grids) or ``(max − min) / (levels − 1)`` (grids with a min)."""

    sub: int
    levels: int
    symmetric: bool

    def step(self, blocks: np.ndarray) -> np.ndarray:
        if self.symmetric:
            return np.abs(blocks).max(axis=1) / (self.levels / 2)
        return (blocks.max(axis=1) - blocks.min(axis=1)) / (self.levels - 1)


GEOMETRY: dict[DType, StepGeometry] = {
    DType.Q8_0: StepGeometry(32, 254, True), DType.Q4_0: StepGeometry(32, 16, True),
    DType.Q5_0: StepGeometry(32, 32, True), DType.Q4_1: StepGeometry(32, 16, False),
    DType.Q5_1: StepGeometry(32, 32, False), DType.Q2_K: StepGeometry(16, 4, False),
    DType.Q3_K: StepGeometry(16, 8, True), DType.Q4_K: StepGeometry(32, 16, False),
    DType.Q5_K: StepGeometry(32, 32, False), DType.Q6_K: StepGeometry(16, 64, True),
    # non-linear 16-entry grid spanning −127..113 units of d: mean step ≈ amax/8
    DType.IQ4_NL: StepGeometry(32, 16, True), DType.IQ4_XS: StepGeometry(32, 16, True),
    # E2M1 grids (±0..6 in 8 uneven steps) under a power-of-two (MXFP4) or UE4M3 (NVFP4) scale
    DType.MXFP4: StepGeometry(32, 16, True), DType.NVFP4: StepGeometry(16, 16, True),
    # codebook types: the sub-block sharing one scale, and the distinct magnitudes per sign of their
    # grid (IQ3: 8 levels, IQ2: 4, IQ1: ternary ±1 around a ±1/8 shift)
    DType.IQ3_XXS: StepGeometry(32, 8, True), DType.IQ3_S: StepGeometry(32, 8, True),
    DType.IQ2_XXS: StepGeometry(32, 4, True), DType.IQ2_XS: StepGeometry(16, 4, True),
    DType.IQ2_S: StepGeometry(16, 4, True), DType.IQ1_S: StepGeometry(32, 2, True),
    DType.IQ1_M: StepGeometry(16, 2, True),
    # ternary / binary types, one scale per block: TQ1_0/TQ2_0/Q2_0 {−d, 0, d} with d = amax
    # (Q2_0's fourth level 2d is never chosen), Q1_0 ±mean|x|
    DType.TQ1_0: StepGeometry(256, 2, True), DType.TQ2_0: StepGeometry(256, 2, True),
    DType.Q2_0: StepGeometry(64, 2, True), DType.Q1_0: StepGeometry(128, 2, True),
}


@dataclass(frozen=True)
class StepBand:
    """rel-L2 of a faithful quantizer / step-model rel-L2, as measured (lo, hi) and as allowed."""

    measured_lo: float
    measured_hi: float
    limit: float


# Measured with scripts/measure_quant_bands.py (llama.cpp 0.3.36's ggml_quantize_chunk on f16-rounded
# weights, 7 weight distributions x {no imatrix, random imatrix}; IQ2_XXS/IQ2_XS/IQ1_S with an imatrix
# only, as ggml requires; docs/tolerances.md has the table): rel-L2 / step model spans
# measured_lo..measured_hi; the limit is measured_hi x 1.10 (margin for distributions not measured),
# checked against the real Gemma 3 270M weights (``--gemma3``). The types aprqa quantizes itself are
# listed too: their step band judges a reference that already lies on their grid (bands.reference_on_grid).
STEP_BANDS: dict[DType, StepBand] = {
    DType.Q8_0: StepBand(0.983, 0.990, 1.09),
    DType.Q6_K: StepBand(0.917, 1.084, 1.19),
    DType.Q5_K: StepBand(0.910, 0.985, 1.08),
    DType.Q4_K: StepBand(0.870, 0.958, 1.05),
    DType.Q5_0: StepBand(0.926, 1.031, 1.13),
    DType.Q5_1: StepBand(0.750, 0.971, 1.07),  # lo: real Gemma 3 weights
    DType.Q4_0: StepBand(0.847, 1.213, 1.33),  # hi: real Gemma 3 weights
    DType.Q4_1: StepBand(0.917, 0.972, 1.07),
    DType.Q3_K: StepBand(0.750, 1.093, 1.20),
    DType.Q2_K: StepBand(0.753, 0.896, 0.99),
    DType.IQ4_NL: StepBand(0.679, 1.115, 1.23),
    DType.IQ4_XS: StepBand(0.687, 1.129, 1.24),
    DType.IQ3_S: StepBand(0.715, 1.176, 1.29),
    DType.IQ3_XXS: StepBand(0.881, 1.734, 1.91),
    DType.IQ2_S: StepBand(0.860, 1.106, 1.22),
    DType.IQ2_XS: StepBand(0.966, 1.426, 1.57),
    DType.IQ2_XXS: StepBand(0.910, 1.579, 1.74),
    DType.IQ1_M: StepBand(0.543, 1.099, 1.21),
    DType.IQ1_S: StepBand(0.512, 0.995, 1.09),
    DType.TQ2_0: StepBand(0.298, 1.000, 1.10),
    DType.TQ1_0: StepBand(0.298, 1.000, 1.10),
    DType.MXFP4: StepBand(0.966, 1.986, 2.18),
    DType.NVFP4: StepBand(0.734, 2.260, 2.49),
    DType.Q2_0: StepBand(0.364, 0.994, 1.09),
    DType.Q1_0: StepBand(0.396, 1.003, 1.10),
}

# Least-squares gains of llama.cpp's quantizer, measured like STEP_BANDS, for the types whose gains
# fall outside the two-ends theory of compare/bands.gain_range (codebook, ternary, FP4 and binary
# grids): (lowest, highest).
MEASURED_GAINS: dict[DType, tuple[float, float]] = {
    DType.IQ3_S: (0.899, 0.972), DType.IQ3_XXS: (0.866, 0.978), DType.IQ2_S: (0.761, 0.956),
    DType.IQ2_XS: (0.872, 0.929), DType.IQ2_XXS: (0.752, 0.942), DType.IQ1_M: (0.726, 0.857),
    DType.IQ1_S: (0.779, 0.840), DType.TQ2_0: (0.649, 0.784), DType.TQ1_0: (0.649, 0.784),
    DType.MXFP4: (1.008, 1.025), DType.NVFP4: (0.995, 1.036), DType.Q2_0: (0.687, 0.846),
    DType.Q1_0: (1.000, 1.000),
}


def step_model_rel_l2(a: np.ndarray, dt: DType) -> float | None:
    """rel-L2 of rounding ``a`` (rows whose length is a multiple of the sub-block) with ``dt``'s
    step: sqrt(Σ sub·Δ²/12 / Σ a²). None when the type has no step model."""
    g = GEOMETRY.get(dt)
    if g is None or a.size % g.sub:
        return None
    blocks = a.reshape(-1, g.sub).astype(np.float64)
    den = float(np.square(blocks).sum())
    if den == 0:
        return None
    mse = float(np.square(g.step(blocks)).sum()) * g.sub / 12.0
    return math.sqrt(mse / den)


