"""Quantizers: byte-identical to gguf-py for the legacy types, round-trip bounds for K/APR.

Byte identity of the K-quants with llama.cpp itself: tests/engines/test_llamacpp_quant.py."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as G
from gguf.quants import quantize as gguf_quantize

from aprqa import core
from aprqa.errors import DTypeError
from aprqa.quant.dtypes import DType

LEGACY = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0"]


def _inputs(rng: np.random.Generator) -> list[np.ndarray]:
    x = (rng.standard_normal((33, 256)) * 0.05).astype(np.float32)
    x[0] = 0.0  # all-zero blocks
    x[1, :32] = 1.0  # constant block
    x[2] *= 1e4  # large
    x[3] *= 1e-6  # tiny
    x[4, ::7] = -x[4, ::7] * 50  # outliers
    ties = (np.arange(256, dtype=np.float32) - 128) / 8  # exact .5 multiples
    return [x, ties.reshape(1, 256), rng.uniform(-3, 3, (5, 96)).astype(np.float32)]


@pytest.mark.parametrize("qt", LEGACY)
def test_legacy_quantizers_match_gguf(qt: str) -> None:
    rng = np.random.default_rng(2)
    for x in _inputs(rng):
        ours = core.quantize(x, qt, threads=2)
        ref = gguf_quantize(x, G[qt.upper()]).reshape(-1)
        assert ours.dtype == np.uint8
        assert np.array_equal(ours, ref), f"{qt}: {(ours != ref).sum()} bytes differ"


# relative RMSE bound on Gaussian weights (ggml's reference lands well inside these)
K_BOUNDS = {"q2_k": 0.33, "q3_k": 0.17, "q4_k": 0.12, "q5_k": 0.06, "q6_k": 0.03, "apr_q4": 0.2, "apr_q8": 0.015}


@pytest.mark.parametrize("qt", sorted(K_BOUNDS))
def test_roundtrip_error_bounds(qt: str) -> None:
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((16, 512)) * 0.02).astype(np.float32)
    q = core.quantize(x, qt)
    y = core.dequantize(q, qt, x.shape)
    rel = float(np.sqrt(np.mean((y - x) ** 2)) / np.std(x))
    assert rel < K_BOUNDS[qt], rel
    # a simple per-element bound: within one quantization step of the sub-block range
    if qt in ("q4_k", "q5_k", "q6_k"):
        levels = {"q4_k": 15, "q5_k": 31, "q6_k": 63}[qt]
        sub = 16 if qt == "q6_k" else 32
        xs, ys = x.reshape(-1, sub), y.reshape(-1, sub)
        step = (xs.max(1) - np.minimum(xs.min(1), 0)) / levels
        assert np.all(np.abs(ys - xs).max(1) <= 2.0 * step + 1e-6)


# max error on a ramp over [-1, 1]: groups above zero keep min 0 (ggml clamps min <= 0), so Q2_K's
# top group spans [0, 1] with 3 steps (half a step = 1/6)
RAMP_BOUND = {"q2_k": 0.17, "q3_k": 0.1, "q4_k": 0.1, "q5_k": 0.1, "q6_k": 0.1}


@pytest.mark.parametrize("qt", sorted(RAMP_BOUND))
def test_kquant_edge_blocks(qt: str) -> None:
    x = np.zeros((3, 256), np.float32)
    x[1] = 0.5
    x[2] = np.linspace(-1, 1, 256, dtype=np.float32)
    y = core.dequantize(core.quantize(x, qt), qt, x.shape)
    assert np.all(np.isfinite(y))
    assert np.array_equal(y[0], np.zeros(256, np.float32))
    assert np.abs(y[1] - 0.5).max() < 0.02
    assert np.abs(y[2] - x[2]).max() < RAMP_BOUND[qt]


@pytest.mark.parametrize("qt", ["q2_k", "q3_k", "q4_k", "q5_k", "q6_k"])
def test_kquant_non_finite_input_does_not_crash(qt: str) -> None:
    """NaN/Inf weights are garbage in, but must not crash or trip the sanitizers (ggml asserts instead)."""
    x = np.zeros((2, 256), np.float32)
    x[0, 5], x[0, 9], x[1, 7] = np.nan, np.inf, -np.inf
    assert core.quantize(x, qt).size == 2 * DType[qt.upper()].info.block_bytes


def test_apr_layouts() -> None:
    x = np.array([7.0, -7.0, 1.0, 0.0] + [0.0] * 36, np.float32)  # 40 values -> 2 blocks, padded
    q = core.quantize(x, "apr_q4")
    assert q.size == 36
    assert q[:2].view(np.float16)[0] == np.float16(1.0)
    assert q[2] == (15 | (1 << 4)) and q[3] == (9 | (8 << 4))
    assert np.all(q[18 + 2 + 4:] == 8 | (8 << 4)) or np.all(q[18 + 2:] == 0x88)
    assert q[18:20].view(np.float16)[0] == np.float16(1.0)  # all-zero block -> scale 1.0
    y = core.dequantize(q, "apr_q4", 40)
    np.testing.assert_array_equal(y[:4], [7.0, -7.0, 1.0, 0.0])

    z = np.array([0.0, 1.27, -1.27, 0.004], np.float32)
    q8 = core.quantize(z, "apr_q8")
    assert q8.size == 8
    scale = q8[:4].view(np.float32)[0]
    assert scale == np.float32(1.27) / np.float32(127)
    assert list(q8[4:].view(np.int8)) == [0, 127, -127, 0]
    assert core.quantize(np.zeros(5, np.float32), "apr_q8")[:4].view(np.float32)[0] == 1.0


def test_bad_calls() -> None:
    with pytest.raises(ValueError, match="last dimension 100 is not a multiple of block size 256"):
        core.quantize(np.zeros((2, 100), np.float32), "q4_k")
    with pytest.raises(ValueError, match="not a multiple of block size 32"):
        core.quantize(np.zeros(40, np.float32), "q8_0")
    with pytest.raises(DTypeError, match="unsupported dtype iq4_xs for quantization"):
        core.quantize(np.zeros(256, np.float32), "iq4_xs")
    with pytest.raises(DTypeError):
        core.quantize(np.zeros(256, np.float32), "nope")


def test_registry_quantizers_round_trip() -> None:
    rng = np.random.default_rng(8)
    x = rng.standard_normal(512).astype(np.float32)
    for dt in DType:
        from aprqa import _core

        if not _core.quant_supported(int(dt)):
            continue
        y = core.dequantize(core.quantize(x, dt), dt, 512)
        # Q2_K (2.6 bits per weight) keeps a correlation of ~0.96 on Gaussian weights
        assert np.corrcoef(x, y)[0, 1] > (0.95 if dt is DType.Q2_K else 0.98), dt.lname
