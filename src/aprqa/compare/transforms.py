"""Expected transforms between a reference and a candidate tensor, undone and named.

* GGUF dim order: GGUF stores ``ne`` = reversed dims; the reader already gives the
  logical PyTorch-order shape, so only the name of the transform is recorded here.
* llama.cpp's Q/K RoPE row permutation (llama/mistral GGUF; never qwen2/qwen3):
  within each head, GGUF row ``2i`` = HF row ``i`` and GGUF row ``2i+1`` = HF row
  ``i + hd/2`` (shared/specs/gguf-quants.md §3). Which side carries it comes from
  ``naming.rope_permuted``; when exactly one side does, the comparison maps rows.

Row maps use one convention everywhere in compare/: ``perm[p]`` is the reference row
that candidate row ``p`` should hold (candidate[p] == reference[perm[p]]).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..formats.model import Model, TensorInfo
from ..formats.naming import rope_permuted


def rope_permutation(rows: int, n_head: int) -> np.ndarray:
    """llama.cpp's permute as a row map: ``gguf[p] == hf[perm[p]]``.

    Raises:
        ValueError: rows is not a multiple of 2*n_head.
    """
    if n_head <= 0 or rows % (2 * n_head):
        raise ValueError(f"{rows} rows cannot be split into {n_head} heads of even size")
    hd = rows // n_head
    p = np.arange(rows, dtype=np.int64).reshape(n_head, hd)
    i = np.arange(hd // 2, dtype=np.int64)
    out = np.empty_like(p)
    out[:, 0::2] = p[:, i]
    out[:, 1::2] = p[:, i + hd // 2]
    return out.reshape(-1)


def inverse(perm: np.ndarray) -> np.ndarray:
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.size, dtype=perm.dtype)
    return inv


@dataclass(frozen=True)
class RowMap:
    """An expected (or hypothesised) row permutation with its human name."""

    name: str
    perm: np.ndarray  # candidate[p] == reference[perm[p]]


def _rope_heads(name: str, ref: Model, cand: Model) -> int | None:
    for cfg in (ref.config, cand.config):
        if name.endswith(("q_proj.weight", "q_proj.bias")) and cfg.num_heads:
            return cfg.num_heads
        if name.endswith(("k_proj.weight", "k_proj.bias")) and (cfg.num_kv_heads or cfg.num_heads):
            return cfg.num_kv_heads or cfg.num_heads
    return None


def rope_map_for(name: str, ref: Model, cand: Model, rows: int) -> RowMap | None:
    """The expected RoPE row map when exactly one side stores this tensor permuted, else None."""
    a_p = rope_permuted(name, ref.config.architecture, ref.format)
    b_p = rope_permuted(name, cand.config.architecture, cand.format)
    if a_p == b_p:
        return None
    n_head = _rope_heads(name, ref, cand)
    if n_head is None or rows % (2 * n_head):
        return None
    perm = rope_permutation(rows, n_head)
    if b_p:  # candidate is the permuted one: candidate[p] == reference[perm[p]]
        return RowMap(f"rope-permute(n_head={n_head})", perm)
    return RowMap(f"rope-unpermute(n_head={n_head})", inverse(perm))


def rope_hypotheses(name: str, ref: Model, cand: Model, rows: int) -> list[RowMap]:
    """Both directions of the RoPE permutation, for diagnosing a wrongly (un)permuted q/k."""
    if not name.endswith(("q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias")):
        return []
    n_head = _rope_heads(name, ref, cand)
    if n_head is None or rows % (2 * n_head):
        return []
    perm = rope_permutation(rows, n_head)
    return [RowMap(f"rope-permute(n_head={n_head})", perm), RowMap(f"rope-unpermute(n_head={n_head})",
                                                                    inverse(perm))]


def layout_notes(ta: TensorInfo, tb: TensorInfo, ref: Model, cand: Model) -> list[str]:
    """Names of format-level transforms the readers already undid (for the report)."""
    for t, m in ((ta, ref), (tb, cand)):
        if len(t.shape) >= 2 and (m.format == "gguf" or (
                t.stored_shape is not None and tuple(t.stored_shape) == tuple(t.shape)[::-1]
                and tuple(t.shape) != tuple(t.shape)[::-1])):
            return ["gguf-dim-order" if m.format == "gguf" else "dim-order"]
    return []
