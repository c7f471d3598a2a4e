"""Float casts in core.quantize: f16 / bf16 round-to-nearest-even, f32 copy."""

import numpy as np
import pytest

from aprqa import core


def _awkward_values() -> np.ndarray:
    rng = np.random.default_rng(7)
    mant = rng.standard_normal(50_000).astype(np.float32)
    scale = (np.float32(2.0) ** rng.integers(-140, 120, 50_000)).astype(np.float32)
    with np.errstate(over="ignore"):
        x = (mant * scale).astype(np.float32)
    special = np.array([np.inf, -np.inf, 0.0, -0.0, 65504, 65519.99, 65520, 2.0**-24, 2.0**-25, 3 * 2.0**-26,
                        1e-45, 3.4e38, 1.00390625, 1.01171875], np.float32)
    # exact ties for bf16 rounding: mantissa low half == 0x8000
    ties = (np.arange(1, 200, dtype=np.uint32) << 16 | np.uint32(0x8000) | np.uint32(0x3F800000)).view(np.float32)
    return np.concatenate([x, special, -special, ties])


def test_f16_matches_ieee_cast():
    x = _awkward_values()
    with np.errstate(over="ignore"):
        want = x.astype(np.float16).view(np.uint16)
    assert np.array_equal(core.quantize(x, "f16").view(np.uint16), want)


def test_bf16_matches_torch_round_to_nearest_even():
    torch = pytest.importorskip("torch")
    x = _awkward_values()
    want = torch.from_numpy(x.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(core.quantize(x, "bf16").view(np.uint16), want)


def test_nan_stays_nan_and_f32_is_a_copy():
    x = np.array([np.nan, -np.nan, 1.5], np.float32)
    for dt in ("f16", "bf16"):
        back = core.dequantize(core.quantize(x, dt), dt)
        assert np.isnan(back[:2]).all() and back[2] == 1.5
    assert core.quantize(x, "f32").tobytes() == x.tobytes()
