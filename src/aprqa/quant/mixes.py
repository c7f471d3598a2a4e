"""llama.cpp quantization recipes: which ggml type each tensor of a model gets for a target name.

``tensor_type(name, shape, n_layers, mix)`` maps one tensor (aprqa canonical name, PyTorch
shape ``[out, in]``, so ``shape[-1]`` is GGML's ``ne[0]``) to the type it is written with.

Mixes (llama-quantize's ``Q4_K_M``, ``Q5_K_M``, ``Q3_K_S/M/L`` and ``Q2_K`` ftypes) — docs/quantizations.md has the table:

* ``q4_k_m`` / ``q5_k_m``: default Q4_K / Q5_K; ``lm_head`` (llama.cpp ``output.weight``) Q6_K;
  ``v_proj`` (``attn_v``, or a fused ``attn_qkv``) and ``down_proj`` (``ffn_down``) Q6_K in "more bits" layers
  ``i < n/8 or i >= 7n/8 or (i - n/8) % 3 == 2`` (integer division), the default elsewhere.
* ``q3_k_s``: Q3_K everywhere but ``lm_head`` Q6_K.
* ``q3_k_m``: default Q3_K; ``v_proj`` Q5_K in layers 0-1, Q4_K after; ``down_proj`` Q5_K for
  ``i < n/16``, Q4_K after; ``o_proj`` Q4_K; ``lm_head`` Q6_K.
* ``q3_k_l``: default Q3_K; ``v_proj``, ``down_proj`` and ``o_proj`` Q5_K; ``lm_head`` Q6_K.
* ``q2_k``: default Q2_K; ``v_proj`` Q4_K when n_heads/n_kv_heads >= 4, else Q3_K; ``down_proj``
  and ``o_proj`` Q3_K; ``lm_head`` Q6_K.
* With tied embeddings (no ``lm_head``) the output rule applies to ``embed_tokens`` instead;
  otherwise ``embed_tokens`` gets the default type.

Uniform names (``f32 f16 bf16 q8_0 q6_k q5_k q5_0 q5_1 q4_k q4_0 q4_1 q3_k apr-q8 apr-q4``) give every
quantized weight that one type (llama-quantize would also raise ``output.weight`` to Q6_K for
the legacy types; aprqa's uniform names do not).

Always: 1-D tensors, norms and biases stay F32. Then llama.cpp's shape fallbacks when a row
length is not a multiple of 256: Q4_K→Q5_0, Q5_K→Q5_1, Q6_K→Q8_0, Q2_K/Q3_K→Q4_0; F16 if the row
is not a multiple of 32 either (the fallback's block) — per tensor, after the mix rule.

The q4_k_m/q5_k_m rules and the fallbacks are in docs/format-facts.md §3; the
q2_k and q3_k_s/m/l rules are our reading of llama.cpp's ``llama_tensor_get_type``, checked per
tensor against ``llama_model_quantize`` in tests/engines/test_llamacpp_quant.py. The rules read a tensor's GGUF
name (``arch.gguf_name``), as llama.cpp does, so every family's roles are found (bert's ``attention.self.value``
is an ``attn_v``, phi3's fused ``qkv_proj`` an attn_v-like ``attn_qkv``). Model-specific exceptions llama.cpp
also has (Falcon, 70B attn_v, MoE experts, IQ types) are not modelled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from ..errors import UsageError
from .dtypes import TRAITS, DType, dtype_from_name

__all__ = ["QUANT_CHOICES", "MIXES", "FALLBACK", "Mix", "file_type", "mix_base", "tensor_type", "use_more_bits",
           "is_mix", "row_fallback"]

# mix -> (its default (most common) type, llama.cpp's file type for it: llama_ftype in general.file_type)
_MIX_ROWS: dict[str, tuple[DType, int]] = {"q4_k_m": (DType.Q4_K, 15), "q5_k_m": (DType.Q5_K, 17),
                                           "q3_k_s": (DType.Q3_K, 11), "q3_k_m": (DType.Q3_K, 12),
                                           "q3_k_l": (DType.Q3_K, 13), "q2_k": (DType.Q2_K, 10)}
MIXES: dict[str, DType] = {m: base for m, (base, _ft) in _MIX_ROWS.items()}

# llama-quantize's fallbacks when ne[0] % 256 != 0 (spec §3): the rows' ``row_fallback`` column.
FALLBACK: dict[DType, DType] = {t.dtype: t.row_fallback for t in TRAITS.values() if t.row_fallback is not None}


def _bits_order(name: str) -> tuple[float, int, int, int]:
    """Most to fewest bits: by the nominal type's bits per weight, a mix just before its default type
    (more-bits variants first: q3_k_l, q3_k_m, q3_k_s)."""
    n = name.lower()
    if n in _MIX_ROWS:
        base, ft = _MIX_ROWS[n]
        return -base.traits.bits_per_weight, int(base), 0, -ft
    base = dtype_from_name(n)
    return -base.traits.bits_per_weight, int(base), 1, 0


# `aprqa convert --quant` choices, most to fewest bits (here, not in convert.py, so that the CLI's parser
# stays light): every type aprqa's core quantizes to (the rows' ``quant_name``) and every mix.
QUANT_CHOICES: tuple[str, ...] = tuple(sorted(
    {t.quant_name for t in TRAITS.values() if t.quant_name is not None} | set(_MIX_ROWS), key=_bits_order))


def file_type(name: str) -> int | None:
    """llama.cpp's ``general.file_type`` for a ``--quant`` name: the mix's own (q4_k_m is 15 even where most
    of its tensors fall back to Q5_0), else the type row's; None where llama.cpp has none (APR's types).

    Raises:
        UsageError: unknown name.
    """
    n = name.lower()
    if n in _MIX_ROWS:
        return _MIX_ROWS[n][1]
    return mix_base(n).traits.file_type


SUPER_BLOCK = 256

_BLOCK = re.compile(r"^blk\.(\d+)\.")


def is_mix(name: str) -> bool:
    return name.lower() in MIXES


def mix_base(name: str) -> DType:
    """The default type of a mix (``q4_k_m`` → Q4_K), or the type a uniform name names.

    Raises:
        UsageError: unknown name.
    """
    n = name.lower()
    if n in MIXES:
        return MIXES[n]
    try:
        return dtype_from_name(n.replace("-", "_"))
    except Exception as err:
        raise UsageError(f"unknown quantization {name!r} (mixes: {', '.join(MIXES)}; or a dtype name)") from err


def use_more_bits(i_layer: int, n_layers: int) -> bool:
    """llama.cpp's "more bits" layers: the first and last eighth, and every third layer between."""
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


def _is_float_kept(name: str, shape: Sequence[int]) -> bool:
    return len(shape) < 2 or not name.endswith(".weight") or name.endswith("norm.weight")


def row_fallback(want: DType, row: int) -> DType:
    """llama-quantize's type for a row of ``row`` elements when ``want``'s block does not divide it
    (K types: ``FALLBACK``; then F16 when the row is not a multiple of the block either)."""
    if not want.is_quantized:
        return want
    if want in FALLBACK and row % SUPER_BLOCK:
        want = FALLBACK[want]
    if row % want.info.block_elems:
        return DType.F16
    return want


def _mix_rule(gguf: str, n_layers: int, mix: str, has_output: bool, n_gqa: int) -> DType:
    """llama.cpp's rule for one tensor, by its GGUF name as llama_tensor_get_type reads it: the output (and a
    tied token embedding), then attn_v-like tensors (``attn_v``, a fused ``attn_qkv``), ffn_down, attn_output."""
    base = MIXES[mix]
    if gguf == "output.weight" or (not has_output and gguf == "token_embd.weight"):
        return DType.Q6_K
    m = _BLOCK.match(gguf)
    if m is None:
        return base
    i = int(m.group(1))
    if "attn_qkv.weight" in gguf or "attn_v.weight" in gguf:
        if mix in ("q4_k_m", "q5_k_m"):
            return DType.Q6_K if use_more_bits(i, n_layers) else base
        if mix == "q3_k_m":
            return DType.Q5_K if i < 2 else DType.Q4_K
        if mix == "q3_k_l":
            return DType.Q5_K
        if mix == "q2_k":
            return DType.Q4_K if n_gqa >= 4 else DType.Q3_K
        return base  # q3_k_s
    if "attn_output.weight" in gguf:
        return {"q3_k_m": DType.Q4_K, "q3_k_l": DType.Q5_K, "q2_k": DType.Q3_K}.get(mix, base)
    if "ffn_down" in gguf:
        if mix in ("q4_k_m", "q5_k_m"):
            return DType.Q6_K if use_more_bits(i, n_layers) else base
        if mix == "q3_k_m":
            return DType.Q5_K if i < n_layers // 16 else DType.Q4_K
        if mix == "q3_k_l":
            return DType.Q5_K
        if mix == "q2_k":
            return DType.Q3_K
        return base  # q3_k_s
    return base


def tensor_type(name: str, shape: Sequence[int], n_layers: int, mix: str, *, has_output: bool = True,
                n_gqa: int = 1, arch: str | None = None) -> DType:
    """The ggml type llama.cpp's recipe ``mix`` gives tensor ``name`` (aprqa canonical name).

    Args:
        name: canonical tensor name (``model.layers.3.mlp.down_proj.weight``).
        shape: PyTorch-order shape; ``shape[-1]`` is the row length (GGML ne[0]).
        n_layers: the model's layer count (the "more bits" rule depends on it).
        mix: ``q4_k_m``, ``q5_k_m``, ``q3_k_s/m/l``, ``q2_k`` or a uniform type name (``q8_0``, ``f16``...).
        has_output: False for tied embeddings (no ``lm_head``): ``embed_tokens`` then gets the output rule.
        n_gqa: num_heads / num_kv_heads (used by q2_k's attn_v rule).
        arch: the architecture whose GGUF names ``name`` maps to (llama's when None): the rules read the
            GGUF name, so a bert ``attention.self.value`` is an ``attn_v`` and its word embedding the token_embd.
    Returns:
        The DType (F32 for 1-D tensors, norms and biases).
    Raises:
        UsageError: unknown mix name, n_layers < 1.
    Example:
        >>> tensor_type("model.layers.0.mlp.down_proj.weight", (256, 512), 8, "q4_k_m").lname
        'q6_k'
        >>> tensor_type("model.layers.2.mlp.down_proj.weight", (256, 512), 8, "q4_k_m").lname
        'q4_k'
        >>> tensor_type("model.layers.0.mlp.down_proj.weight", (256, 544), 8, "q4_k_m").lname
        'q8_0'
    """
    mix = mix.lower()
    if n_layers < 1:
        raise UsageError(f"n_layers must be >= 1, got {n_layers}")
    if _is_float_kept(name, shape):
        return DType.F32
    if mix in MIXES:
        from ..arch import gguf_name  # lazy: the CLI imports this module for QUANT_CHOICES only

        want = _mix_rule(gguf_name(name, arch), n_layers, mix, has_output, n_gqa)
    else:
        want = mix_base(mix)
    return row_fallback(want, int(shape[-1]))


@dataclass(frozen=True)
class Mix:
    """A mix bound to one model's layer count (what the converter passes around).

    Attributes:
        name: the mix name (``q4_k_m``).
        n_layers: the model's layer count.
        has_output: whether the model has a separate ``lm_head``.
        n_gqa: num_heads / num_kv_heads.
        arch: the model's architecture (maps canonical names to the GGUF names the rules read).
    """

    name: str
    n_layers: int
    has_output: bool = True
    n_gqa: int = 1
    arch: str | None = None

    def type_for(self, name: str, shape: Sequence[int]) -> DType:
        return tensor_type(name, shape, self.n_layers, self.name, has_output=self.has_output, n_gqa=self.n_gqa,
                           arch=self.arch)

    @property
    def lname(self) -> str:
        return self.name
