"""The tokenizer a GGUF carries, prepared the way llama.cpp's converter prepares it.

What llama.cpp needs besides tokens and merges (facts from convert_hf_to_gguf.py / gguf-py's
SpecialVocab and llama-vocab.cpp):

* ``tokenizer.ggml.pre``: named by ``aprqa.pretokenize.splits.identify`` (the converter's check-text
  hash, else exact regex identity); a tokenizer that cannot be named is refused with
  ``PreTokenizerError`` unless the caller names it (``aprqa convert --pre-tokenizer``), never
  written without one (llama.cpp would silently fall back to its "default" splitting).
* ``tokenizer.ggml.token_type``: ids the tokenizer does not define are UNUSED ``[PAD{id}]``
  entries, added tokens marked special (or that look like control tokens) are CONTROL, other
  added tokens USER_DEFINED, the rest NORMAL.
* the token list padded with ``[PAD{id}]`` up to the embedding's row count: llama.cpp refuses a
  file whose ``token_embd.weight`` has more rows than the vocabulary has tokens (every
  Qwen2/Qwen2.5 model: vocab_size 151936, 151665 tokens).
* ``add_bos_token`` / ``add_eos_token`` as the Hugging Face tokenizer behaves (does encoding with
  special tokens add a leading / trailing id?), written explicitly because llama.cpp's defaults
  differ by pre-tokenizer; the chat template, also from ``chat_template.jinja``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..fsio import CAP_CONFIG, CAP_TOKENIZER, parse_json, read_bounded, read_json
from ..pretokenize.splits import CHECK_TEXT, Identification, PreTokenizerError, check_hash, identify, known_names, lookup
from ..pretokenize.guard import load_tokenizer_json
from .model import Model, TokenizerInfo

__all__ = ["TokenType", "for_gguf", "padded", "default_token_types", "hf_token_types", "looks_special"]


class TokenType(IntEnum):
    """``tokenizer.ggml.token_type`` values (gguf-py's TokenType)."""

    NORMAL = 1
    UNKNOWN = 2
    CONTROL = 3
    USER_DEFINED = 4
    UNUSED = 5
    BYTE = 6


def pad_token(i: int) -> str:
    return f"[PAD{i}]"


def looks_special(token: str) -> bool:
    """Added tokens the converter marks CONTROL even when the tokenizer does not say special."""
    return (token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]") or (token.startswith("<|") and token.endswith("|>"))
            or (token.startswith("<｜") and token.endswith("｜>"))
            or (token.startswith("<unused") and token.endswith(">")))


def default_token_types(info: TokenizerInfo) -> tuple[int, ...]:
    """Token types when only the token list is known: special ids and control-looking tokens are
    CONTROL, ``[PAD{id}]`` fillers UNUSED, everything else NORMAL."""
    specials = {i for i in (info.bos_id, info.eos_id, info.pad_id, info.unk_id) if i is not None}
    return tuple(TokenType.CONTROL if i in specials or looks_special(t)
                 else TokenType.UNUSED if t == pad_token(i) else TokenType.NORMAL
                 for i, t in enumerate(info.tokens))


def lookup_pre(name: str) -> str:
    """``name`` when llama.cpp knows it as a ``tokenizer.ggml.pre`` (PreTokenizerError otherwise)."""
    lookup(name)
    return name


def hf_token_types(tokenizer_json: dict, n_tokens: int) -> tuple[int, ...]:
    """Token types of a tokenizer.json vocabulary of ``n_tokens`` ids, as the converter assigns them."""
    model = tokenizer_json.get("model") or {}
    vocab = model.get("vocab") if isinstance(model, dict) else None
    known = set(vocab.values()) if isinstance(vocab, dict) else set(range(len(vocab or [])))
    added: dict[int, tuple[str, bool]] = {}
    for a in tokenizer_json.get("added_tokens") or []:
        if isinstance(a, dict) and isinstance(a.get("id"), int) and isinstance(a.get("content"), str):
            added[a["id"]] = (a["content"], bool(a.get("special")))
    out = []
    for i in range(n_tokens):
        if i in added:
            content, special = added[i]
            out.append(TokenType.CONTROL if special or looks_special(content) else TokenType.USER_DEFINED)
        elif i in known:
            out.append(TokenType.NORMAL)
        else:
            out.append(TokenType.UNUSED)
    return tuple(out)


def padded(info: TokenizerInfo, rows: int | None) -> TokenizerInfo:
    """``info`` with ``[PAD{id}]`` UNUSED tokens appended up to ``rows`` (the embedding's row count).

    Raises:
        UsageError: more tokens than embedding rows (llama.cpp refuses such a file too).
    """
    types = info.token_types or default_token_types(info)
    n = len(info.tokens)
    if rows is None or rows == n:
        return replace(info, token_types=types)
    if rows < n:
        raise UsageError(f"the tokenizer has {n:,} tokens but the embedding only {rows:,} rows; llama.cpp refuses "
                         "to load such a GGUF (token_embd.weight has wrong shape)")
    return replace(info, tokens=tuple(info.tokens) + tuple(pad_token(i) for i in range(n, rows)),
                   token_types=types + (TokenType.UNUSED,) * (rows - n))


def unpadded(info: TokenizerInfo) -> TokenizerInfo:
    """``info`` without the trailing ``[PAD{id}]`` fillers a GGUF carries (an HF tokenizer has none); a filler a
    special id names (a BOS id past the SentencePiece model's pieces) is kept."""
    n = len(info.tokens)
    named = [i for i in (info.bos_id, info.eos_id, info.pad_id, info.unk_id) if i is not None and i < n]
    floor = max(named) + 1 if named else 0
    while n > floor and info.tokens[n - 1] == pad_token(n - 1) and (
            not info.token_types or info.token_types[n - 1] == TokenType.UNUSED):
        n -= 1
    if n == len(info.tokens):
        return info
    return replace(info, tokens=tuple(info.tokens[:n]), token_types=tuple(info.token_types[:n]))


def hf_root(model: Model) -> Path | None:
    """The HF directory of a model read from one (None for other sources or without tokenizer.json)."""
    if model.format != "safetensors":
        return None
    root = model.path if model.path.is_dir() else model.path.parent
    return root if (root / "tokenizer.json").is_file() else None


def _read_json(path: Path) -> Any:
    return read_json(path, CAP_TOKENIZER, path.name)  # bounded, regular files only, typed errors


def _added_specials(backend: Any) -> tuple[bool, bool]:
    """(add_bos, add_eos): does encoding with special tokens add a leading / trailing id?"""
    plain = backend.encode("a", add_special_tokens=False).ids
    full = backend.encode("a", add_special_tokens=True).ids
    if len(full) <= len(plain):
        return False, False
    at = next((k for k in range(len(full) - len(plain) + 1) if full[k:k + len(plain)] == plain), 0)
    return at > 0, at + len(plain) < len(full)


def missing_pre(what: str, digest: str | None) -> PreTokenizerError:
    hashed = f" (check-text hash {digest[:16]}...)" if digest else ""
    return PreTokenizerError(
        f"{what}: cannot tell which llama.cpp pre-tokenizer this tokenizer uses{hashed}; a GGUF without "
        "tokenizer.ggml.pre makes llama.cpp fall back to its 'default' splitting and degrade generation, "
        "so none is written. Name it: aprqa convert --pre-tokenizer NAME (known: "
        f"{', '.join(known_names())})")


@dataclass(frozen=True)
class HFFacts:
    """What an HF tokenizer.json says a GGUF of it must carry (None pre: not identifiable)."""

    pre: Identification | None
    check_hash: str
    token_types: tuple[int, ...]
    add_bos: bool
    add_eos: bool
    chat_template: str | None


def hf_facts(model: Model) -> HFFacts | None:
    """The GGUF tokenizer facts of an HF directory's byte-level BPE tokenizer.json (None otherwise)."""
    root = hf_root(model)
    info = model.tokenizer
    if root is None or info is None or info.model_type != "gpt2":
        return None
    return _hf_facts_cached(root.resolve(), _version(root), info.chat_template, len(info.tokens))


def _version(root: Path) -> tuple:
    st = (root / "tokenizer.json").stat()
    template_file = root / "chat_template.jinja"
    return st.st_mtime_ns, st.st_size, template_file.stat().st_mtime_ns if template_file.is_file() else None


def hf_pre(model: Model) -> Identification | None:
    """The llama.cpp pre-tokenizer an HF directory's tokenizer.json names, whatever vocabulary type aprqa's
    reader infers for it (a BPE tokenizer.json with SentencePiece-style normalizer, as transformers writes
    for Gemma 3, is read as 'llama' but converted by llama.cpp as 'gpt2' with a named pre)."""
    root = hf_root(model)
    info = model.tokenizer
    if root is None or info is None or not (root / "tokenizer.json").is_file():
        return None
    return _hf_facts_cached(root.resolve(), _version(root), info.chat_template, len(info.tokens)).pre


@lru_cache(maxsize=8)
def _hf_facts_cached(root: Path, _version: tuple, chat_template: str | None, n_tokens: int) -> HFFacts:
    """One tokenizer.json load per file version (compare and the playbook gates ask repeatedly)."""
    # Declared lazy import (tests/test_architecture_imports.py): the tokenizers library loads only
    # when a tokenizer.json is read; `aprqa inspect` of a GGUF never does.
    raw = read_bounded(root / "tokenizer.json", CAP_TOKENIZER, "tokenizer.json")
    tj = parse_json(raw, root / "tokenizer.json", "tokenizer.json")
    # regexes refused or run under a time budget per text
    backend = load_tokenizer_json(raw, tj, root / "tokenizer.json")
    add_bos, add_eos = _added_specials(backend)
    template = chat_template
    if template is None and (root / "chat_template.jinja").is_file():
        template = read_bounded(root / "chat_template.jinja", CAP_CONFIG, "chat_template.jinja").decode(
            "utf-8", errors="replace")
    return HFFacts(identify(tj, backend), check_hash(backend.encode(CHECK_TEXT).ids),
                   hf_token_types(tj, n_tokens), add_bos, add_eos, template)


def with_identified_pre(model: Model) -> TokenizerInfo | None:
    """``model.tokenizer`` with the pre-tokenizer named when an HF tokenizer.json identifies it
    (APR keeps it, so a later APR -> GGUF conversion can write it)."""
    info = model.tokenizer
    if info is None or info.pre is not None:
        return info
    facts = hf_facts(model)
    return replace(info, pre=facts.pre.name) if facts is not None and facts.pre is not None else info


def for_gguf(model: Model, info: TokenizerInfo, rows: int | None, pre: str | None = None) -> TokenizerInfo:
    """The tokenizer to write into a GGUF converted from ``model``.

    Args:
        model: the source model (an HF directory's tokenizer.json is read again for types and
            the pre-tokenizer; other sources keep what they carry).
        info: the source's tokenizer.
        rows: the embedding's row count (the token list is padded to it); None: unknown.
        pre: a ``tokenizer.ggml.pre`` name chosen by the user (overrides identification).
    Raises:
        PreTokenizerError: ``pre`` unknown to llama.cpp, or a byte-level BPE whose pre-tokenizer
            cannot be identified and was not given.
        UsageError: more tokens than embedding rows.
    """
    if pre is not None:
        lookup(pre)  # refuse names llama.cpp does not know
    facts = hf_facts(model) if info is model.tokenizer else None
    if facts is not None:
        if pre is None and facts.pre is None:
            raise missing_pre(f"{model.path}", facts.check_hash)
        info = replace(info, pre=pre or (facts.pre.name if facts.pre else None), token_types=facts.token_types,
                       add_bos=facts.add_bos, add_eos=facts.add_eos, chat_template=facts.chat_template)
    elif info.model_type == "gpt2":
        name = pre or info.pre
        if name is None:
            raise missing_pre(f"{model.path}", None)
        lookup(name)
        info = replace(info, pre=name)
    elif pre is not None:
        info = replace(info, pre=pre)
    return padded(info, rows)
