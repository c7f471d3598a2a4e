"""Hugging Face side files: config.json, tokenizer.json, tokenizer_config.json.

Read into ArchConfig-ready dicts / TokenizerInfo, and written back so that an
HF directory aprqa writes loads in transformers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..arch import config_keys
from ..errors import FormatError
from ..fsio import CAP_CONFIG, CAP_TOKENIZER, read_json
from .model import ArchConfig, TokenizerInfo


def _read_json(path: Path) -> Any:
    """A side file (bounded read, regular files only; typed errors for every malformed input)."""
    cap = CAP_TOKENIZER if path.name.startswith("tokenizer") else CAP_CONFIG
    return read_json(path, cap, path.name)


def read_hf_config(root: Path) -> dict[str, Any]:
    cfg = _read_json(root / "config.json")
    if not isinstance(cfg, dict):
        raise FormatError(root / "config.json", "expected a JSON object", offset=0)
    return cfg


def _token_content(tok: Any) -> str | None:
    if isinstance(tok, str):
        return tok
    if isinstance(tok, dict) and isinstance(tok.get("content"), str):
        return tok["content"]
    return None


def read_hf_tokenizer(root: Path, hf_config: dict[str, Any]) -> TokenizerInfo | None:
    """TokenizerInfo from tokenizer.json (+ tokenizer_config.json), or None when absent."""
    tj_path = root / "tokenizer.json"
    if not tj_path.exists():
        return None
    tj = _read_json(tj_path)
    model = tj.get("model") if isinstance(tj, dict) else None
    if not isinstance(model, dict):
        raise FormatError(tj_path, "no 'model' object", field="model", offset=0)
    vocab = model.get("vocab") or {}
    id_to_tok: dict[int, str] = {}
    if isinstance(vocab, dict):
        for tok, i in vocab.items():
            if isinstance(i, int) and i >= 0:
                id_to_tok[i] = tok
    elif isinstance(vocab, list):  # Unigram: [[piece, score], ...]
        for i, item in enumerate(vocab):
            id_to_tok[i] = item[0] if isinstance(item, list) and item else str(item)
    added_list = tj.get("added_tokens")
    for added in added_list if isinstance(added_list, list) else []:
        if isinstance(added, dict) and isinstance(added.get("id"), int) and isinstance(added.get("content"), str):
            id_to_tok[added["id"]] = added["content"]
    size = max(id_to_tok) + 1 if id_to_tok else 0
    # Holes in the id space are filled below: bound them by what the file and config.json state,
    # so one stray id (9,999,999) cannot make millions of filler tokens.
    stated = hf_config.get("vocab_size")
    room = max(len(id_to_tok), stated if isinstance(stated, int) and not isinstance(stated, bool) else 0) + 1024
    if size > min(room, 10_000_000):
        raise FormatError(tj_path, f"token id {size - 1:,} is beyond the {len(id_to_tok):,} tokens the file holds "
                          f"(config vocab_size {stated!r})", field="model.vocab")
    # llama.cpp fills holes in the id space with [PAD{i}] tokens; do the same so views agree.
    tokens = tuple(id_to_tok.get(i, f"[PAD{i}]") for i in range(size))
    merges_raw = model.get("merges") or []
    if not isinstance(merges_raw, list):
        raise FormatError(tj_path, f"merges is a JSON {type(merges_raw).__name__}, expected a list",
                          field="model.merges")
    merges = tuple(" ".join(map(str, m)) if isinstance(m, list) else str(m) for m in merges_raw)
    mtype = model.get("type")
    if mtype == "BPE":
        model_type = "llama" if model.get("byte_fallback") else "gpt2"
    elif mtype == "Unigram":
        model_type = "llama"
    elif mtype == "WordPiece":
        model_type = "bert"
    else:
        model_type = str(mtype).lower() if mtype else None
    tcfg_path = root / "tokenizer_config.json"
    tcfg = _read_json(tcfg_path) if tcfg_path.exists() else {}
    if not isinstance(tcfg, dict):
        raise FormatError(tcfg_path, f"expected a JSON object, got {type(tcfg).__name__}", offset=0)
    tok_to_id = {t: i for i, t in enumerate(tokens)}

    def special(name: str) -> int | None:
        content = _token_content(tcfg.get(f"{name}_token"))
        if content is not None and content in tok_to_id:
            return tok_to_id[content]
        v = hf_config.get(f"{name}_token_id")
        return v if isinstance(v, int) else None

    chat = tcfg.get("chat_template")
    add_bos = tcfg.get("add_bos_token")
    return TokenizerInfo(
        model_type=model_type, tokens=tokens, merges=merges,
        bos_id=special("bos"), eos_id=special("eos"), pad_id=special("pad"), unk_id=special("unk"),
        chat_template=chat if isinstance(chat, str) else None,
        add_bos=add_bos if isinstance(add_bos, bool) else None,
    )


def write_hf_config(root: Path, config: ArchConfig, tokenizer: TokenizerInfo | None = None,
                    source: dict[str, Any] | None = None, rope_theta_swa: float | None = None) -> None:
    """config.json that transformers loads, for the families the registry maps completely.

    Raises:
        UsageError: the architecture's config is not mapped (arch.config_keys.to_hf names what).
    """
    cfg = config_keys.to_hf(config, tokenizer, source, rope_theta_swa)
    (root / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")


def write_hf_tokenizer(root: Path, tok: TokenizerInfo) -> None:
    """tokenizer.json + tokenizer_config.json (byte-level BPE for gpt2-type vocabularies)."""
    specials = {i for i in (tok.bos_id, tok.eos_id, tok.pad_id, tok.unk_id) if i is not None}
    vocab = {t: i for i, t in enumerate(tok.tokens) if i not in specials}
    byte_level = tok.model_type == "gpt2"
    tj: dict[str, Any] = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": tok.tokens[i], "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for i in sorted(specials)
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True} if byte_level else None,
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True} if byte_level else None,
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": tok.model_type == "llama",
            "ignore_merges": False, "vocab": vocab, "merges": [m.split(" ", 1) for m in tok.merges],
        },
    }
    (root / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False) + "\n", encoding="utf-8")
    tcfg: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1 << 20}
    for name, i in (("bos", tok.bos_id), ("eos", tok.eos_id), ("pad", tok.pad_id), ("unk", tok.unk_id)):
        if i is not None:
            tcfg[f"{name}_token"] = tok.tokens[i]
    if tok.chat_template is not None:
        tcfg["chat_template"] = tok.chat_template
    if tok.add_bos is not None:
        tcfg["add_bos_token"] = tok.add_bos
    (root / "tokenizer_config.json").write_text(json.dumps(tcfg, indent=2, ensure_ascii=False) + "\n",
                                                encoding="utf-8")
