"""Step models and measured step bands of the quantized types (docs/tolerances.md, "Faithful quantizers").

The geometry and bands are columns of the type rows (quant/dtypes.py); this module adds the numpy
arithmetic, shared by the tensor bands (comparison/bands.py) and the output calibration's step-noise
model (inference/calibrate.py).
"""

from __future__ import annotations

import math

import numpy as np

from .dtypes import TRAITS, DType, StepBand, StepGeometry

__all__ = ["GEOMETRY", "MEASURED_GAINS", "STEP_BANDS", "StepBand", "StepGeometry", "step_model_rel_l2"]


# The rows' columns as tables (quant/dtypes.py has the values and how they were measured).
GEOMETRY: dict[DType, StepGeometry] = {t.dtype: t.step for t in TRAITS.values() if t.step is not None}
STEP_BANDS: dict[DType, StepBand] = {t.dtype: t.band for t in TRAITS.values() if t.band is not None}
# Least-squares gains of llama.cpp's quantizer for the types whose gains fall outside the two-ends
# theory of compare/bands.gain_range (codebook, ternary, FP4 and binary grids): (lowest, highest).
MEASURED_GAINS: dict[DType, tuple[float, float]] = {t.dtype: t.gains for t in TRAITS.values() if t.gains is not None}


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
