"""Test and benchmark helpers: write variants of a model (not part of the public API).

``write_variant`` re-writes an opened model in another format / dtype, optionally with
a tensor altered, independently of ``aprqa.convert`` (so forward tests check the
converter's conventions rather than reuse them). For llama/mistral GGUF it applies
llama.cpp's Q/K row permutation (gguf-quants.md §3) itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from .. import core
from ..arch import rope_permuted
from ..formats import format_module, gguf_vocab
from ..formats.model import Model, TensorData
from ..quant.dtypes import DType, dtype_from_name
from ..arch import permute_rope_rows
from ..conversion import apr_tokenizer_keys
from .weights import dequantize_full

def _cast(w: np.ndarray, dt: DType) -> tuple[DType, object]:
    if dt is DType.F32:
        return dt, np.ascontiguousarray(w, np.float32)
    if dt is DType.F16:
        return dt, w.astype(np.float16)
    if dt is DType.BF16:  # round-to-nearest-even on the top 16 bits
        b = np.ascontiguousarray(w, np.float32).view(np.uint32).astype(np.uint64)
        b = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)
        return dt, b
    if dt.info.block_elems > 1 and w.shape[-1] % dt.info.block_elems:
        dt = dt.traits.row_fallback or DType.F16  # llama-quantize's fallback (docs/format-facts.md §3)
        if dt is not DType.F16 and w.shape[-1] % dt.info.block_elems:
            dt = DType.F16
        if dt is DType.F16:
            return dt, w.astype(np.float16)
    return dt, core.quantize(w, dt)


def write_variant(model: Model, path: str | Path, fmt: str, dtype: str | DType = "f32", *,
                  mutate: Callable[[str, np.ndarray], np.ndarray] | None = None,
                  permute_rope: bool = True, tokenizer=None) -> Path:
    """Write ``model`` as ``fmt`` with 2-D weights in ``dtype`` (norms/biases stay F32).

    Args:
        mutate: ``f(name, float32 array) -> array`` applied before casting (e.g. break a tensor).
        permute_rope: apply llama.cpp's Q/K permutation for llama/mistral GGUF.
        tokenizer: a ``TokenizerInfo`` to write instead of the model's.
    """
    dt = dtype_from_name(dtype)
    cfg = model.config
    arch = cfg.architecture
    tensors = []
    for info in model.tensors.values():
        w = np.array(dequantize_full(info), dtype=np.float32)
        if mutate is not None:
            w = np.ascontiguousarray(mutate(info.name, w), np.float32)
        if permute_rope and rope_permuted(info.name, arch, fmt) and w.ndim == 2:
            heads = cfg.num_heads if ".q_proj." in info.name else (cfg.num_kv_heads or cfg.num_heads)
            w = permute_rope_rows(w, heads)
        tdt, data = _cast(w, dt) if w.ndim == 2 else (DType.F32, w)
        tensors.append(TensorData(info.name, tdt, tuple(w.shape), data))
    out = Path(path)
    tok = tokenizer if tokenizer is not None else model.tokenizer
    extra = None
    if fmt == "gguf" and tokenizer is None and tok is not None:  # as aprqa's converter writes it
        embed = model.tensors.get("model.embed_tokens.weight")
        tok = gguf_vocab.for_gguf(model, tok, embed.shape[0] if embed is not None else None)
    if fmt == "apr" and tokenizer is None and tok is not None:  # as aprqa's converter writes it (its pre-tokenizer)
        carried = apr_tokenizer_keys(model, None)
        if carried is not None:
            tok, extra = carried
    if extra is not None:
        format_module(fmt).write(out, tensors, cfg, tok, extra)
    else:
        format_module(fmt).write(out, tensors, cfg, tok)
    return out
