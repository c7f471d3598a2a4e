"""The tokenizer files an HF directory target gets, so that transformers (and llama.cpp's converter reading the dir)
tokenize exactly as the source's consumer does.

* An HF source: its tokenizer files as they are (a tokenizer.json rebuilt from the vocabulary would lose added
  tokens, normalizer and pre-tokenizer).
* A SentencePiece GGUF: a tokenizer.json rebuilt from scores and types, plus tokenizer.model and
  tokenizer_config.json's added-token types (llama.cpp's converter reads those back).
* A byte-level BPE GGUF/APR: the tokenizer aprqa itself tokenizes the file with (its pre-tokenizer, added and
  control tokens), BOS prepended where the file says so.
"""

from __future__ import annotations

from typing import Any

from tokenizers import processors

from ..fsio import CAP_TOKENIZER, read_json
from . import spm_model
from .model import Model, TokenizerInfo
from .tokenizer_bpe import rebuild_bpe
from .tokenizer_spm import rebuild_spm
from .apr_tokenizer import gguf_tokenizer_kv

HF_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "special_tokens_map.json", "added_tokens.json")


def hf_tokenizer_outputs(model: Model, info: TokenizerInfo | None) -> dict[str, Any]:
    """Keyword arguments for the SafeTensors writer: ``tokenizer_json`` (a ``tokenizers.Tokenizer``) and/or
    ``side_files`` (name -> bytes, or a dict merged into tokenizer_config.json). ``info``: the vocabulary as the
    target gets it (a GGUF's [PAD{id}] fillers removed)."""
    if model.format == "safetensors":
        return {"side_files": _hf_tokenizer_files(model)}
    if info is None:
        return {}
    if model.format in ("gguf", "apr") and model.tokenizer is not None and model.tokenizer.model_type == "llama":
        return {"tokenizer_json": _spm_tokenizer_json(model), "side_files": _spm_side_files(model)}
    if info.model_type == "gpt2":
        return {"tokenizer_json": _with_bos(rebuild_bpe(info, gguf_tokenizer_kv(model)), info)}
    return {}


def _with_bos(tok: Any, info: TokenizerInfo) -> Any:
    if info.add_bos and info.bos_id is not None:
        bos = info.tokens[info.bos_id]
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A $B",
                                                           special_tokens=[(bos, info.bos_id)])
    return tok


def _hf_tokenizer_files(model: Model) -> dict[str, Any]:
    root = model.path if model.path.is_dir() else model.path.parent
    out: dict[str, Any] = {name: (root / name).read_bytes() for name in HF_TOKENIZER_FILES if (root / name).is_file()}
    cfg = root / "tokenizer_config.json"
    if cfg.is_file():
        out["tokenizer_config.json"] = read_json(cfg, CAP_TOKENIZER)  # merged over the one written from the vocabulary
    return out


def _spm_tokenizer_json(model: Model) -> Any:
    """A GGUF's SentencePiece vocabulary as a tokenizer.json transformers loads (merges from the
    scores, byte fallback, control/user-defined tokens; BOS prepended when the GGUF says so)."""
    assert model.tokenizer is not None
    return _with_bos(rebuild_spm(model), model.tokenizer)


def _spm_side_files(model: Model) -> dict[str, Any]:
    """What an HF dir needs besides tokenizer.json so that llama.cpp's converter writes the GGUF's
    SentencePiece vocabulary back (its SPM path reads tokenizer.model, and tokenizer_config.json's
    added_tokens_decoder for CONTROL / USER_DEFINED types), and transformers adds what llama.cpp adds."""
    info = model.tokenizer
    assert info is not None
    meta = gguf_tokenizer_kv(model)
    scores = list(meta.get("tokenizer.ggml.scores") or [])
    types = list(info.token_types)
    out: dict[str, Any] = {}
    unk = info.unk_id if info.unk_id is not None and 0 <= info.unk_id < len(types) else \
        next((i for i, k in enumerate(types) if k == 2), None)
    if len(scores) == len(types) == len(info.tokens) and unk is not None:  # sentencepiece needs an unknown piece
        prefix = meta.get("tokenizer.ggml.add_space_prefix") is not False
        kinds = [2 if i == unk else k for i, k in enumerate(types)]  # tokenizer_config restores a CONTROL <unk>
        out["tokenizer.model"] = spm_model.model_bytes(list(zip(info.tokens, map(float, scores), kinds)), prefix)
    decoder = {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                        "special": k == 3}
               for i, (t, k) in enumerate(zip(info.tokens, types)) if k in (3, 4)}
    cfg: dict[str, Any] = {"added_tokens_decoder": decoder}
    for typ in ("bos", "eos", "sep"):
        flag = meta.get(f"tokenizer.ggml.add_{typ}_token")
        if isinstance(flag, bool):
            cfg[f"add_{typ}_token"] = flag
    out["tokenizer_config.json"] = cfg
    return out
