"""Expected transforms between a reference and a candidate tensor, undone and named.

* GGUF dim order: GGUF stores ``ne`` = reversed dims; the reader already gives the
  logical PyTorch-order shape, so only the name of the transform is recorded here.
* llama.cpp's Q/K RoPE row permutation (llama/mistral GGUF; never qwen2/qwen3):
  within each head, GGUF row ``2i`` = HF row ``i`` and GGUF row ``2i+1`` = HF row
  ``i + hd/2`` (docs/format-facts.md §3). Which side carries it comes from
  ``arch.rope_permuted``; when exactly one side does, the comparison maps rows.

* gemma norm offset (gemma/gemma2/gemma3 GGUF): llama.cpp stores every ``*norm.weight`` as
  ``1 + w``; the GGUF side's values minus the offset are compared (``offset_undone``).

Row maps use one convention everywhere in compare/: ``perm[p]`` is the reference row
that candidate row ``p`` should hold (candidate[p] == reference[perm[p]]).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .. import core
from ..arch import NORM_OFFSET, inverse_permutation, norm_offset, rope_heads, rope_permuted, rope_row_permutation
from ..formats.model import Model, TensorInfo
from ..quant.dtypes import DType


@dataclass(frozen=True)
class RowMap:
    """An expected (or hypothesised) row permutation with its human name."""

    name: str
    perm: np.ndarray  # candidate[p] == reference[perm[p]]


def _rope_heads(name: str, ref: Model, cand: Model) -> int | None:
    for cfg in (ref.config, cand.config):
        n = rope_heads(name, cfg.num_heads, cfg.num_kv_heads)
        if n is not None:
            return n
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
    perm = rope_row_permutation(rows, n_head)
    if b_p:  # candidate is the permuted one: candidate[p] == reference[perm[p]]
        return RowMap(f"rope-permute(n_head={n_head})", perm)
    return RowMap(f"rope-unpermute(n_head={n_head})", inverse_permutation(perm))


def rope_hypotheses(name: str, ref: Model, cand: Model, rows: int) -> list[RowMap]:
    """Both directions of the RoPE permutation, for diagnosing a wrongly (un)permuted q/k."""
    if not name.endswith(("q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias")):
        return []
    n_head = _rope_heads(name, ref, cand)
    if n_head is None or rows % (2 * n_head):
        return []
    perm = rope_row_permutation(rows, n_head)
    return [RowMap(f"rope-permute(n_head={n_head})", perm), RowMap(f"rope-unpermute(n_head={n_head})",
                                                                    inverse_permutation(perm))]


def layout_notes(ta: TensorInfo, tb: TensorInfo, ref: Model, cand: Model) -> list[str]:
    """Names of format-level transforms the readers already undid (for the report)."""
    for t, m in ((ta, ref), (tb, cand)):
        if len(t.shape) >= 2 and (m.format == "gguf" or (
                t.stored_shape is not None and tuple(t.stored_shape) == tuple(t.shape)[::-1]
                and tuple(t.shape) != tuple(t.shape)[::-1])):
            return ["gguf-dim-order" if m.format == "gguf" else "dim-order"]
    return []


class _InMemory:
    """Stands in for a file mapping: a TensorInfo whose payload is values computed here."""

    def __init__(self, values: np.ndarray) -> None:
        self.array = np.ascontiguousarray(values).view(np.uint8).reshape(-1)
        self.size = self.array.nbytes

    def view(self, offset: int, nbytes: int) -> np.ndarray:
        return self.array[offset:offset + nbytes]


def decoded(t: TensorInfo) -> TensorInfo:
    """``t`` itself, or for aprender's row-padded K-quant layout (rows zero-padded to whole super-blocks) its
    values decoded row by row as an in-memory F32 tensor of the real shape: every pass over raw bytes
    (diff, sampled rows, hypotheses) then reads the real row length. Its band is measured on ``t``
    itself (``noise.measure``'s ``padded``)."""
    if t.past_eof or core.row_padded_width(t) is None:
        return t
    values = np.asarray(core.dequantize(t), dtype=np.float32)
    return replace(t, dtype=DType.F32, nbytes=values.nbytes, offset=0, _mapped=_InMemory(values))


def offset_undone(name: str, ta: TensorInfo, tb: TensorInfo, ref: Model,
                  cand: Model) -> tuple[TensorInfo, TensorInfo, str | None]:
    """Both sides on one scale where exactly one stores a norm as ``offset + w``.

    Either the offset is taken off that side (what transformers' GGUF loader computes) or put on
    the other (what llama.cpp's converter computes), in float32; ``(w + 1) - 1`` is not always
    ``w`` in float32, so the way that reproduces the other side bit for bit is used, else the
    first (norm vectors are small: both are cheap)."""
    off_a = norm_offset(name, ref.config.architecture, ref.format)
    off_b = norm_offset(name, cand.config.architecture, cand.format)
    if off_a == off_b or ta.past_eof or tb.past_eof:
        return ta, tb, None
    va = np.asarray(core.dequantize(ta), dtype=np.float32).reshape(ta.shape)
    vb = np.asarray(core.dequantize(tb), dtype=np.float32).reshape(tb.shape)
    shift = np.float32(off_b - off_a)  # what to add to the reference to reach the candidate's scale
    taken_off = (va, vb - shift) if off_b else (va + shift, vb)  # the offset side moves down
    put_on = (va + shift, vb) if off_b else (va, vb - shift)  # the plain side moves up
    pick = put_on if np.array_equal(*put_on) and not np.array_equal(*taken_off) else taken_off

    def mem(t: TensorInfo, values: np.ndarray) -> TensorInfo:
        return replace(t, dtype=DType.F32, nbytes=values.nbytes, offset=0, _mapped=_InMemory(values))

    return mem(ta, pick[0]), mem(tb, pick[1]), NORM_OFFSET
