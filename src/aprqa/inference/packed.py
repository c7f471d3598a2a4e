"""Weights left in their stored bytes for the native matmul, and the Q/K row order of llama.cpp.

A ``PackedWeight`` is a zero-copy view of a quantized ``[rows, cols]`` matrix in the memory map;
the CPU backend multiplies it block by block (``kernels.matmul``) and never expands it. llama/
mistral GGUF files store Q/K rows in llama.cpp's adjacent-pair RoPE order (the permutation is
``arch.rope_row_permutation``): an expanded weight has its rows put back (``arch.unpermute_rope_rows``),
a packed one the columns of its product (``unpermute_rope_cols``), so the forward pass always uses
split-halves ("neox") RoPE.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .. import core
from ..arch import inverse_permutation, rope_row_permutation, unpermute_rope_rows
from ..quant.dtypes import DType, payload_nbytes
from ..errors import UsageError
from ..formats.model import TensorInfo
from .kernels import matmul_supported


@dataclass(frozen=True)
class PackedWeight:
    """A ``[rows, cols]`` weight left in its stored bytes (a zero-copy view of the memory map).

    ``rope_heads``: the rows are in llama.cpp's Q/K order for that many heads; the product's
    columns are put back in split-halves order (``unpermute_rope_cols``) instead of the rows.
    """

    name: str
    raw: np.ndarray
    dtype: DType
    shape: tuple[int, int]
    rope_heads: int | None = None

    @property
    def nbytes(self) -> int:
        return int(self.raw.nbytes)

    def rows(self, start: int, stop: int) -> "PackedWeight":
        """Rows ``[start, stop)`` (whole rows of whole blocks: a byte slice)."""
        if self.rope_heads is not None or not 0 <= start <= stop <= self.shape[0]:
            raise UsageError(f"tensor '{self.name}': cannot slice rows [{start}, {stop}) of {list(self.shape)}")
        rb = self.raw.nbytes // self.shape[0]
        return PackedWeight(self.name, self.raw[start * rb:stop * rb], self.dtype, (stop - start, self.shape[1]))

    def to_f32(self) -> np.ndarray:
        """The weight as float32 ``[rows, cols]`` (rows in split-halves order): for the torch backend."""
        w = np.asarray(core.dequantize(self.raw, self.dtype, self.shape), dtype=np.float32).reshape(self.shape)
        return unpermute_rope_rows(w, self.rope_heads) if self.rope_heads is not None else w


def packable(info: TensorInfo) -> bool:
    """Whether the native matmul takes ``info``'s bytes as they are (a quantized 2-D weight of whole rows)."""
    if len(info.shape) != 2 or not info.dtype.is_quantized or not matmul_supported(info.dtype, info.shape[1]):
        return False
    return info.nbytes == info.shape[0] * payload_nbytes(info.dtype, info.shape[1])


def unpermute_rope_cols(y: np.ndarray, n_heads: int) -> np.ndarray:
    """``unpermute_rope_rows`` applied to the last axis of a product ``y [T, rows]``."""
    return y[:, _inverse_rope(y.shape[1], n_heads)]


@functools.lru_cache(maxsize=16)
def _inverse_rope(rows: int, n_heads: int) -> np.ndarray:
    """The inverse RoPE row permutation, kept: every decode step's Q/K products need it."""
    inv = inverse_permutation(rope_row_permutation(rows, n_heads))
    inv.setflags(write=False)
    return inv
