"""A GGUF tokenizer carried in APR metadata, in aprender's spelling, so that APR -> GGUF writes it back whole.

aprender stores a GGUF's tokenizer keys in the APR metadata JSON as ``tokenizer.<name>`` (the GGUF key without
``ggml.``: ``tokenizer.scores``, ``tokenizer.token_type``, ``tokenizer.bos_token_id``...), the token list as
``tokenizer.vocabulary`` and the pre-tokenizer name as ``tokenizer.pre_type``, and its APR -> GGUF export maps them
back. aprqa follows the same rule for every tokenizer key llama.cpp's converter writes (SentencePiece scores and
``add_space_prefix``, WordPiece separator/mask ids, normalizer flags, ``token_type_count``...), so an APR carries
what a SentencePiece, BPE or WordPiece GGUF needs.
"""

from __future__ import annotations

from typing import Any

from .model import Model

_GGML = "tokenizer.ggml."
_RENAMED = {"tokenizer.ggml.tokens": "tokenizer.vocabulary", "tokenizer.ggml.pre": "tokenizer.pre_type"}
_BACK = {v: k for k, v in _RENAMED.items()}
# APR keys aprqa or aprender use for other facts (never a GGUF tokenizer key)
_NOT_GGUF = frozenset({"tokenizer.vocab_size", "tokenizer.model_type", "tokenizer.architecture",
                       "tokenizer.model_name"})


def apr_key(gguf_key: str) -> str | None:
    """The APR metadata key of a GGUF tokenizer key (None: not a tokenizer key)."""
    if gguf_key in _RENAMED:
        return _RENAMED[gguf_key]
    if gguf_key.startswith(_GGML):
        return "tokenizer." + gguf_key[len(_GGML):]
    if gguf_key.startswith("tokenizer.chat_template"):
        return gguf_key
    return None


def gguf_key(key: str) -> str | None:
    """The GGUF key of an APR tokenizer metadata key (None: not one)."""
    if key in _BACK:
        return _BACK[key]
    if key.startswith("tokenizer.chat_template"):
        return key
    if key.startswith("tokenizer.") and key not in _NOT_GGUF:
        return _GGML + key[len("tokenizer."):]
    return None


def to_apr(kv: dict[str, Any]) -> dict[str, Any]:
    """The tokenizer keys of a GGUF KV dict, in APR spelling (list values as lists)."""
    out = {}
    for k, v in kv.items():
        a = apr_key(k)
        if a is not None and v is not None:
            out[a] = list(v) if isinstance(v, (list, tuple)) or hasattr(v, "sha256") else v
    return out


def gguf_tokenizer_kv(model: Model) -> dict[str, Any]:
    """The model's tokenizer keys in GGUF spelling: a GGUF's as stored, an APR's mapped back (aprender's keys)."""
    if model.format != "apr":
        return model.metadata
    out = {}
    for k, v in model.metadata.items():
        g = gguf_key(k)
        if g is not None:
            out[g] = v
    return out
