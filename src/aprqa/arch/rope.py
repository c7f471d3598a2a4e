"""llama.cpp's Q/K RoPE row permutation: the one definition the converter, compare and tests use.

llama.cpp's converter stores the Q and K projections of "norm"-style RoPE families (llama,
mistral, ...) with rows reordered per head: stored row ``2i`` is HF row ``i`` and stored row
``2i+1`` is HF row ``i + head_dim/2``. Q is split into ``num_heads`` heads, K into
``num_kv_heads`` — which is ``num_heads`` when the config states none (multi-head attention).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["rope_heads", "rope_row_permutation", "inverse_permutation", "permute_rope_rows", "unpermute_rope_rows"]

_Q_RE = re.compile(r"\.self_attn\.q_proj\.(weight|bias)$")
_K_RE = re.compile(r"\.self_attn\.k_proj\.(weight|bias)$")


def rope_heads(canonical: str, num_heads: int | None, num_kv_heads: int | None) -> int | None:
    """Heads the permutation of this tensor splits rows into (None: not Q/K, or no head count known)."""
    if _Q_RE.search(canonical):
        return num_heads or None
    if _K_RE.search(canonical):
        return num_kv_heads or num_heads or None  # no kv-head count stated: as many as query heads
    return None


def rope_row_permutation(rows: int, n_heads: int) -> np.ndarray:
    """Index array ``p`` with ``stored_row[i] == hf_row[p[i]]`` (llama.cpp's Q/K permutation).

    Raises:
        UsageError: ``rows`` does not split into ``n_heads`` heads of an even number of rows.
    """
    if n_heads <= 0 or rows % n_heads or (rows // n_heads) % 2:
        raise UsageError(f"cannot RoPE-permute {rows} rows into {n_heads} heads of even size")
    hd = rows // n_heads
    import numpy as np  # declared lazy import: the arch registry is read by `aprqa inspect`, which needs no numpy

    return np.arange(rows, dtype=np.int64).reshape(n_heads, 2, hd // 2).transpose(0, 2, 1).reshape(rows)


def inverse_permutation(perm: np.ndarray) -> np.ndarray:
    """``q`` with ``q[perm[i]] == i``: undoes ``perm``."""
    import numpy as np  # declared lazy import (see rope_row_permutation)

    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.size, dtype=perm.dtype)
    return inv


def permute_rope_rows(w: np.ndarray, n_heads: int) -> np.ndarray:
    """``w``'s rows (a weight ``[rows, in]`` or a bias ``[rows]``) in llama.cpp's stored Q/K order."""
    return w[rope_row_permutation(w.shape[0], n_heads)]


def unpermute_rope_rows(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Rows stored in llama.cpp's Q/K order put back in HF's (split halves) order."""
    return w[inverse_permutation(rope_row_permutation(w.shape[0], n_heads))]
