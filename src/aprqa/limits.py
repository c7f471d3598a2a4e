"""The limits aprqa enforces on values it reads, named in the errors (docs/reliability.md).

A config value is a promise about the tensors; before anything is allocated from it, it is
checked for type and range here, and the forward pass checks it against the tensors the
file holds (``forward.weights``). Prompt and generation lengths are capped so that a typo
(``-n 1e9``) is an error naming the limit, not a 477 GiB allocation.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .errors import FormatError, UsageError

MAX_DIM = (1 << 31) - 1  # sizes are uint32 in GGUF; anything larger is not a real config
# numpy refuses an array of more than 2**63-1 bytes, and aprqa makes float32 and float64 arrays of a
# tensor's shape (dequantized values, the diffs of the statistics): 8-byte elements bound the count.
MAX_ELEMENTS = ((1 << 63) - 1) // 8  # 2**60-1
MAX_ELEMENTS_TEXT = "2**60-1"
MAX_PROMPT_TOKENS = 1 << 16  # 65,536 prompt ids
MAX_NEW_TOKENS = 1 << 16  # 65,536 generated ids per call

# config.json keys that are sizes (positive integers) and positive finite numbers.
_INT_KEYS = {"hidden_size", "n_embd", "d_model", "num_attention_heads", "n_head", "num_key_value_heads",
             "head_dim", "vocab_size", "num_hidden_layers", "n_layer", "intermediate_size", "n_inner",
             "max_position_embeddings", "n_positions"}
_FLOAT_KEYS = {"rope_theta", "rms_norm_eps"}


def shape_fits(dims: tuple[int, ...] | list[int]) -> bool:
    """Whether a float64 array of this shape can exist in numpy: the product of its non-zero dimensions is at
    most ``MAX_ELEMENTS`` (numpy refuses a 0-element shape such as (2**53, 2**15, 0) too, and checks it with
    the item size: a 0 must not hide the others)."""
    n = 1
    for d in dims:
        if d < 0 or d > MAX_ELEMENTS:
            return False
        n *= max(d, 1)
    return n <= MAX_ELEMENTS


def check_config_value(source: str | Path, key: str, value: Any) -> Any:
    """``value`` when it has the type and range ``key`` needs; else ``FormatError`` naming both."""
    if key in _INT_KEYS:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_DIM:
            raise FormatError(source, f"{key} = {_short(value)} is not an integer in 1..{MAX_DIM:,}", field=key)
    elif key in _FLOAT_KEYS:
        if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
                or value <= 0):
            raise FormatError(source, f"{key} = {_short(value)} is not a positive finite number", field=key)
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_token_counts(n_prompt: int, n_new: int = 0, context: int | None = None) -> None:
    """Refuse prompt/generation lengths over ``MAX_PROMPT_TOKENS`` / ``MAX_NEW_TOKENS``, and a prompt
    plus generation longer than the model's ``context`` length (when it states one): positions past
    it were never trained, and the KV cache would be sized for them."""
    if n_prompt > MAX_PROMPT_TOKENS:
        raise UsageError(f"prompt has {n_prompt:,} tokens; the limit is {MAX_PROMPT_TOKENS:,} (aprqa.limits)")
    if not 0 <= n_new <= MAX_NEW_TOKENS:
        raise UsageError(f"cannot generate {n_new:,} tokens; the limit is 0..{MAX_NEW_TOKENS:,} per call "
                         "(aprqa.limits)")
    if context is not None and context > 0 and n_prompt + n_new > context:
        raise UsageError(f"prompt of {n_prompt:,} tokens + {n_new:,} to generate exceeds the model's "
                         f"context length of {context:,} tokens")
