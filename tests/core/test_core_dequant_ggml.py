"""Dequantization bit-exact against ggml's own ``to_float`` (the pinned llama.cpp's type traits).

Every type the pinned ggml can write is quantized by ggml itself (``ggml_quantize_chunk``, with an
importance matrix where ggml requires one) from varied weights, and aprqa's decode of those real
blocks must equal ggml's bit for bit; random block bytes with finite scales are checked too.
"""

from __future__ import annotations

import numpy as np
import pytest

from aprqa import core
from aprqa.quant.dtypes import DType

llamacpp_quant = pytest.importorskip("llamacpp_quant", reason="tests/helpers on sys.path")
pytest.importorskip("llama_cpp", reason="llama-cpp-python (the [test] extra) carries ggml")

# Every ggml type id of the pinned version that has a block layout (4, 5, 31-33, 36-38 were removed).
GGML_IDS = [i for i in range(43) if i not in (4, 5, 31, 32, 33, 36, 37, 38)]
# Types ggml_quantize_chunk writes (ggml.c): the ones llama_model_quantize can put in a file.
WRITTEN = [DType.Q1_0, DType.Q2_0, DType.Q4_0, DType.Q4_1, DType.Q5_0, DType.Q5_1, DType.Q8_0, DType.MXFP4,
           DType.NVFP4, DType.Q2_K, DType.Q3_K, DType.Q4_K, DType.Q5_K, DType.Q6_K, DType.TQ1_0, DType.TQ2_0,
           DType.IQ2_XXS, DType.IQ2_XS, DType.IQ3_XXS, DType.IQ3_S, DType.IQ2_S, DType.IQ1_S, DType.IQ1_M,
           DType.IQ4_NL, DType.IQ4_XS]


def _bits_equal(x: np.ndarray, y: np.ndarray) -> bool:
    nx, ny = np.isnan(x), np.isnan(y)
    return bool(np.array_equal(nx, ny) and np.array_equal(x.view(np.uint32)[~nx], y.view(np.uint32)[~ny]))


def test_registry_matches_ggml_type_table() -> None:
    """Every ggml type id of the pinned version is a DType with ggml's own block geometry."""
    for gid in GGML_IDS:
        name, be, bb, _ = llamacpp_quant.ggml_type_traits(gid)
        dt = DType(gid)
        assert (dt.lname, dt.info.block_elems, dt.info.block_bytes) == (name.lower(), be, bb), (gid, name)


def _weights(rows: int, cols: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((rows, cols))
    g = np.where(rng.random((rows, cols)) < 0.01, 8 * g, g) * np.exp(rng.normal(0, 1, (rows, 1)))
    return (0.02 * g).astype(np.float16).astype(np.float32)


@pytest.mark.parametrize("dt", WRITTEN, ids=lambda d: d.lname)
def test_real_ggml_blocks_decode_bit_exactly(dt: DType) -> None:
    rows, cols = (2 if dt in (DType.IQ1_S, DType.IQ1_M) else 8), 512  # ggml's IQ1 search is slow (~3 s a row)
    a = _weights(rows, cols, int(dt))
    im = np.exp(np.random.default_rng(1).normal(0, 1, cols)).astype(np.float32) \
        if llamacpp_quant.requires_imatrix(int(dt)) else None
    raw = llamacpp_quant.quantize_array(a, int(dt), im)
    want = llamacpp_quant.to_float(raw, int(dt), a.size)
    got = core.dequantize(raw, dt, (a.size,))
    assert _bits_equal(got, want), f"{dt.lname}: {int((got != want).sum())} of {a.size} elements differ from ggml"


@pytest.mark.parametrize("dt", [DType.Q1_0, DType.Q2_0, DType.NVFP4, DType.MXFP4, DType.TQ1_0, DType.TQ2_0],
                         ids=lambda d: d.lname)
def test_random_block_bytes_decode_like_ggml(dt: DType) -> None:
    """Every bit pattern of the quant fields (and every UE4M3/E8M0 scale byte) as ggml decodes it."""
    rng = np.random.default_rng(7)
    nb = 512
    raw = rng.integers(0, 256, (nb, dt.info.block_bytes), dtype=np.uint8)
    if dt in (DType.Q1_0, DType.Q2_0):  # f16 scale first: keep it finite (NaN payloads are not compared)
        raw[:, :2] = (rng.standard_normal(nb) * 0.05).astype(np.float16).view(np.uint8).reshape(-1, 2)
    if dt in (DType.TQ1_0, DType.TQ2_0):
        o = dt.info.block_bytes - 2
        raw[:, o:] = (rng.standard_normal(nb) * 0.05).astype(np.float16).view(np.uint8).reshape(-1, 2)
    if dt is DType.NVFP4:
        raw[:256, :4] = np.arange(256, dtype=np.uint8)[:, None]  # every scale byte
    n = nb * dt.info.block_elems
    want = llamacpp_quant.to_float(raw.ravel(), int(dt), n)
    got = core.dequantize(raw.ravel(), dt, (n,))
    assert _bits_equal(got, want)


@pytest.mark.parametrize("dt", [DType.Q1_0, DType.Q2_0, DType.NVFP4], ids=lambda d: d.lname)
def test_truncated_payload_is_refused(dt: DType) -> None:
    """The bound check: one byte short of the stated element count is a typed error, never a read past."""
    from aprqa.errors import AprqaError

    raw = np.zeros(2 * dt.info.block_bytes - 1, np.uint8)
    with pytest.raises((AprqaError, ValueError)):
        core.dequantize(raw, dt, (2 * dt.info.block_elems,))
