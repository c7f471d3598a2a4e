"""Canonical tensor names and the expected transforms of known converters.

Canonical names are Hugging Face names (``model.layers.0.self_attn.q_proj.weight``).
GGUF names (``blk.0.attn_q.weight``) map to them per architecture; APR files use
either scheme. This module is the one place that knows these tables; readers,
writers, compare and forward all use it.
"""

from __future__ import annotations

import re

# Architectures whose names follow the llama-family scheme below.
LLAMA_FAMILY = frozenset({"llama", "mistral", "qwen2", "qwen3"})

# Architectures for which llama.cpp's converter permutes Q/K rows for its
# adjacent-pair ("norm") RoPE. qwen2/qwen3 use NeoX RoPE and are not permuted.
ROPE_PERMUTED_ARCHS = frozenset({"llama", "mistral"})

_GLOBAL_GGUF_TO_HF = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
    "output.bias": "lm_head.bias",
    "rope_freqs.weight": "rope_freqs.weight",  # llama3 rope scaling factors, no HF counterpart
}

_BLOCK_GGUF_TO_HF = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_output.bias": "self_attn.o_proj.bias",
    "attn_q_norm.weight": "self_attn.q_norm.weight",
    "attn_k_norm.weight": "self_attn.k_norm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}

_GLOBAL_HF_TO_GGUF = {v: k for k, v in _GLOBAL_GGUF_TO_HF.items()}
_BLOCK_HF_TO_GGUF = {v: k for k, v in _BLOCK_GGUF_TO_HF.items()}

_GGUF_BLOCK_RE = re.compile(r"^blk\.(\d+)\.(.+)$")
_HF_BLOCK_RE = re.compile(r"^model\.layers\.(\d+)\.(.+)$")


def is_canonical(name: str) -> bool:
    """True when ``name`` is a known canonical (HF llama-family) tensor name."""
    if name in _GLOBAL_HF_TO_GGUF:
        return True
    m = _HF_BLOCK_RE.match(name)
    return bool(m and m.group(2) in _BLOCK_HF_TO_GGUF)


def canonical_name(source_name: str) -> tuple[str, bool]:
    """Map a stored tensor name (GGUF or HF scheme) to ``(canonical, known)``.

    An unknown name is returned unchanged with ``known=False``: it is flagged, never dropped.
    """
    if source_name in _GLOBAL_GGUF_TO_HF:
        return _GLOBAL_GGUF_TO_HF[source_name], True
    m = _GGUF_BLOCK_RE.match(source_name)
    if m:
        suffix = _BLOCK_GGUF_TO_HF.get(m.group(2))
        if suffix is not None:
            return f"model.layers.{m.group(1)}.{suffix}", True
        return source_name, False
    return source_name, is_canonical(source_name)


def gguf_name(canonical: str) -> str:
    """GGUF name of a canonical tensor name (unknown names pass through unchanged)."""
    if canonical in _GLOBAL_HF_TO_GGUF:
        return _GLOBAL_HF_TO_GGUF[canonical]
    m = _HF_BLOCK_RE.match(canonical)
    if m and m.group(2) in _BLOCK_HF_TO_GGUF:
        return f"blk.{m.group(1)}.{_BLOCK_HF_TO_GGUF[m.group(2)]}"
    return canonical


def layer_index(canonical: str) -> int | None:
    """Block index of a canonical name, or None for global tensors."""
    m = _HF_BLOCK_RE.match(canonical)
    return int(m.group(1)) if m else None


def rope_permuted(canonical: str, architecture: str | None, fmt: str) -> bool:
    """Whether a GGUF converter (llama.cpp) stores this tensor with the Q/K RoPE row permutation."""
    if fmt != "gguf" or (architecture or "") not in ROPE_PERMUTED_ARCHS:
        return False
    return bool(re.search(r"\.self_attn\.(q|k)_proj\.(weight|bias)$", canonical))
