"""core.gather_rows: rows of several tensors decoded in one native call.

Truth: gguf-py's dequantizer for the quantized types (an independent implementation),
numpy casts for the float types; plus the bounds the native call must refuse."""

from __future__ import annotations

import numpy as np
import pytest

from aprqa.errors import DTypeError
from gguf import GGMLQuantizationType as G
from gguf.quants import dequantize as gguf_dequantize
from gguf.quants import quantize as gguf_quantize

from aprqa import _core, core
from aprqa.errors import AprqaError, UsageError
from aprqa.formats import open_model
from aprqa.quant.dtypes import DType

ROWS, COLS = 48, 512


@pytest.fixture(scope="module")
def weights() -> np.ndarray:
    return (np.random.default_rng(7).standard_normal((ROWS, COLS)) * 0.05).astype(np.float32)


def test_rows_of_mixed_dtypes_match_gguf_py_and_numpy(weights):
    q8 = gguf_quantize(weights, G.Q8_0).reshape(-1)
    q4 = gguf_quantize(weights, G.Q4_0).reshape(-1)
    h = weights.astype(np.float16)
    idx = np.array([5, 0, 47, 5, 31], np.int64)  # any order, repeats allowed
    got = core.gather_rows([q8, q4, h.view(np.uint8).reshape(-1)], (ROWS, COLS), idx,
                           dtypes=["q8_0", "q4_0", "f16"], threads=2)
    assert got.shape == (3, len(idx), COLS) and got.dtype == np.float32
    want_q8 = gguf_dequantize(q8, G.Q8_0).reshape(ROWS, COLS)[idx]
    want_q4 = gguf_dequantize(q4, G.Q4_0).reshape(ROWS, COLS)[idx]
    assert np.array_equal(got[0].view(np.uint32), want_q8.astype(np.float32).view(np.uint32))
    assert np.array_equal(got[1].view(np.uint32), want_q4.astype(np.float32).view(np.uint32))
    assert np.array_equal(got[2], h.astype(np.float32)[idx])


def test_rows_that_start_inside_a_block(weights):
    """Rows of 48 elements over Q8_0 (blocks of 32): most rows start mid-block."""
    q8 = gguf_quantize(weights, G.Q8_0).reshape(-1)
    flat = gguf_dequantize(q8, G.Q8_0).reshape(-1).astype(np.float32)
    rows = weights.size // 48
    idx = np.arange(rows, dtype=np.int64)[::-3]
    got = core.gather_rows([q8], (rows, 48), idx, dtypes=["q8_0"])[0]
    assert np.array_equal(got, flat.reshape(rows, 48)[idx])


def test_tensor_info_sources(qwen2_dir):
    m = open_model(qwen2_dir)
    t = max(m.tensors.values(), key=lambda x: x.n_elements if len(x.shape) == 2 else 0)
    rows = t.shape[0]
    idx = np.array([rows - 1, 0], np.int64)
    got = core.gather_rows([t, t], tuple(t.shape), idx)
    want = core.dequantize(t)[idx]
    assert np.array_equal(got[0], want) and np.array_equal(got[1], want)
    m.close()


@pytest.mark.parametrize("idx", [[ROWS], [-1]])
def test_row_index_out_of_range_is_refused(weights, idx):
    with pytest.raises(UsageError, match="outside"):
        core.gather_rows([weights], (ROWS, COLS), idx, dtypes=["f32"])


def test_short_payload_is_refused(weights):
    q8 = gguf_quantize(weights, G.Q8_0).reshape(-1)
    with pytest.raises(UsageError, match=r"sources\[1\].*need"):
        core.gather_rows([q8, q8[:-1]], (ROWS, COLS), [0], dtypes=["q8_0", "q8_0"])


def test_unknown_dtype_is_refused_before_the_core():
    # Every DType decodes now, so the refusal case is an id outside the table (a file's misread type byte).
    raw = np.zeros(64, np.uint8)
    with pytest.raises(DTypeError, match="unknown dtype id 99"):
        core.gather_rows([raw], (4, 4), [0], dtypes=[99])
