"""What llama.cpp's loader refuses or aborts on in a GGUF's metadata, checked without loading it.

aprqa's reader accepts these files (their tensors are fine); llama.cpp ends the whole process with a
``GGML_ASSERT`` (SIGABRT) or refuses the file. The facts are from the pinned llama.cpp
(llama-model.cpp ``load_hparams``, llama-vocab.cpp ``load``, ggml-cpu ops.cpp): the GGUF writer refuses
to write such a file and compare fails a candidate that is one (docs/reliability.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

LLAMA_MAX_LAYERS = 512  # llama-hparams.h
LLAMA_MAX_EXPERTS = 1024
_N_ROT_ARCHS = frozenset({"llama", "deci", "falcon", "llama-embed"})  # "invalid n_rot" is checked for these only


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _max_int(v: Any) -> int | None:
    """A scalar, or the largest of a per-layer array (llama.cpp's ``n_expert_used_max``)."""
    if isinstance(v, (list, tuple)):
        vals = [x for x in map(_int, v) if x is not None]
        return max(vals) if vals else None
    return _int(v)


def duplicate_token(tokens: Iterable[str]) -> tuple[int, int, str] | None:
    """(first id, second id, string) of the first string two ids share; None when all differ."""
    seen: dict[str, int] = {}
    for i, t in enumerate(tokens):
        j = seen.setdefault(t, i)
        if j != i:
            return j, i, t
    return None


def loader_problems(kv: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, why) for every metadata value llama.cpp's loader aborts on or refuses; empty when none."""
    arch = kv.get("general.architecture")
    out: list[tuple[str, str]] = []
    if isinstance(arch, str):
        a = f"{arch}."
        n_layer = _int(kv.get(a + "block_count"))
        if n_layer is not None and not 0 < n_layer <= LLAMA_MAX_LAYERS:
            out.append((a + "block_count", f"{n_layer:,} layers: llama.cpp aborts on load "
                                           f"(GGML_ASSERT n_layer in 1..{LLAMA_MAX_LAYERS})"))
        n_expert = _int(kv.get(a + "expert_count")) or 0
        used = _max_int(kv.get(a + "expert_used_count")) or 0
        if n_expert > LLAMA_MAX_EXPERTS:
            out.append((a + "expert_count", f"{n_expert:,} experts: llama.cpp aborts on load "
                                            f"(GGML_ASSERT n_expert <= {LLAMA_MAX_EXPERTS})"))
        elif used > n_expert:
            out.append((a + "expert_used_count", f"{used:,} experts used of {n_expert:,}: llama.cpp aborts on load "
                                                 "(GGML_ASSERT n_expert_used <= n_expert)"))
        elif n_expert > 0 and used == 0:
            out.append((a + "expert_count", f"{n_expert:,} experts but none used per token (expert_used_count): "
                                            "llama.cpp aborts on load (GGML_ASSERT n_expert_used > 0)"))
        for key in ("attention.layer_norm_rms_epsilon", "attention.layer_norm_epsilon"):
            eps = kv.get(a + key)
            if isinstance(eps, (int, float)) and not isinstance(eps, bool) and eps < 0:
                out.append((a + key, f"{eps:g} is negative: llama.cpp aborts in its first evaluation "
                                     "(GGML_ASSERT eps >= 0 in its norm)"))
        n_rot = _int(kv.get(a + "rope.dimension_count"))
        n_embd, n_head = _int(kv.get(a + "embedding_length")), _int(kv.get(a + "attention.head_count"))
        head_k = _int(kv.get(a + "attention.key_length")) or (n_embd // n_head if n_embd and n_head else None)
        if arch in _N_ROT_ARCHS and n_rot is not None and head_k is not None and n_rot != head_k:
            out.append((a + "rope.dimension_count", f"{n_rot:,} but the head dimension is {head_k:,}: llama.cpp "
                                                    "refuses to load it (invalid n_rot)"))
    tokens = kv.get("tokenizer.ggml.tokens")
    if tokens is not None and not isinstance(tokens, str):
        dup = duplicate_token(tokens)
        if dup is not None:
            j, i, t = dup
            out.append(("tokenizer.ggml.tokens", f"tokens {j} and {i} are both spelled {t[:40]!r}: llama.cpp aborts "
                                                 "on load (GGML_ASSERT id_to_token.size() == token_to_id.size())"))
    if kv.get("tokenizer.ggml.model") == "llama" and tokens is not None and "tokenizer.ggml.scores" not in kv:
        out.append(("tokenizer.ggml.scores", "a SentencePiece ('llama') vocabulary without scores: llama.cpp aborts "
                                             "when it tokenizes (std::out_of_range)"))
    return out
