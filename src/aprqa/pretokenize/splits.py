"""llama.cpp's BPE pre-tokenizers: look one up by its GGUF name, rebuild it, recognise it.

A GGUF's ``tokenizer.ggml.pre`` tells llama.cpp how to split text before BPE merges run.
Missing, it falls back to "default" (and warns that generation quality will be degraded);
unknown, it refuses to load the file. aprqa uses the same table (``pretokenizer_table``) to

* tokenize any GGUF the way llama.cpp does (``hf_pre_tokenizer``: the split rules as a
  ``tokenizers`` pre-tokenizer sequence followed by the byte-level mapping), and
* name the pre-tokenizer of a Hugging Face tokenizer when writing a GGUF (``identify``): first
  as llama.cpp's converter does (sha256 of the check text's token ids), then, for tokenizers
  the converter has never seen, by the exact identity of the tokenizer.json split regexes with
  a llama.cpp type's rules.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from .table import _LINEAR_SPLITS, _SAME_SPLITS, _SPLITS, CHECK_HASHES, LLAMA_CPP_NAMES

__all__ = ["CHECK_TEXT", "PreTokenizer", "PreTokenizerError", "lookup", "known_names", "identify",
           "hf_pre_tokenizer", "linear_split", "same_splits"]

# The text llama.cpp's converter tokenizes to fingerprint a pre-tokenizer (whitespace runs,
# emoji sequences, digit runs, scripts, contractions in both cases).
CHECK_TEXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) "
    "✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ "
    "------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you "
    "sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"
)

# Types whose llama.cpp splitting is a hand-written routine rather than its regexes.
_CUSTOM = {"kimi_k2": "a custom Han/digit splitter", "afmoe": "a custom digit-grouping splitter"}
_NOT_BYTE_LEVEL = {"gemma4", "sarvam_moe", "whitespace"}
# SentencePiece-style BPE: llama.cpp writes every space as U+2581, splits only at newlines and merges raw
# UTF-8 characters (unknown ones fall back to <0xXX> byte tokens).
_SPM_STYLE = {"gemma4", "sarvam_moe"}
# When several names share rules, the name written for a tokenizer recognised by its regexes.
_PREFERRED = ("gpt-2", "llama-bpe", "qwen2", "qwen35", "deepseek-llm", "deepseek-coder", "deepseek-v3",
              "starcoder", "falcon", "tekken", "gpt-4o", "bloom", "default")
# HF spells case-insensitive contractions with (?i:...); llama.cpp (std::regex) spells them out.
_HF_CONTRACTIONS = "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
_LLAMA_CONTRACTIONS = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
_GPT2_HF = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"


class PreTokenizerError(UsageError):
    """A pre-tokenizer llama.cpp does not know, or one aprqa cannot identify or rebuild.

    Attributes:
        name: the offending ``tokenizer.ggml.pre`` value (None when it could not be identified).
    """

    def __init__(self, message: str, name: str | None = None) -> None:
        self.name = name
        super().__init__(message)


@dataclass(frozen=True)
class PreTokenizer:
    """One ``tokenizer.ggml.pre`` name as llama.cpp reads it.

    Attributes:
        name: the GGUF string ("qwen2", "deepseek-r1-qwen", ...).
        kind: llama.cpp's pre-tokenizer type it selects (several names share one).
        splits: regexes applied in order; each isolates its matches in the current pieces.
        ignore_merges: a piece that is itself a token is taken whole, before any merge.
        byte_level: pieces go through the GPT-2 byte-to-unicode mapping before BPE.
        spm_style: SentencePiece-style BPE (spaces as U+2581, raw UTF-8 merges, <0xXX> byte fallback).
        custom: why aprqa cannot reproduce it ("" when it can).
    """

    name: str
    kind: str
    splits: tuple[str, ...]
    ignore_merges: bool
    byte_level: bool
    custom: str = ""
    spm_style: bool = False


def known_names() -> list[str]:
    """Every ``tokenizer.ggml.pre`` string llama.cpp accepts, sorted."""
    return sorted(LLAMA_CPP_NAMES)


def lookup(name: str) -> PreTokenizer:
    """The pre-tokenizer llama.cpp selects for ``name``.

    Raises:
        PreTokenizerError: llama.cpp does not know ``name`` (it refuses such a file).
    """
    if name not in LLAMA_CPP_NAMES:
        raise PreTokenizerError(f"unknown pre-tokenizer {name!r}: llama.cpp refuses to load a GGUF with it "
                                f"('unknown pre-tokenizer type'); known: {', '.join(known_names())}", name)
    kind, ignore_merges = LLAMA_CPP_NAMES[name]
    splits = _SPLITS[_SAME_SPLITS.get(kind, kind)]
    return PreTokenizer(name, kind, splits, ignore_merges, kind not in _NOT_BYTE_LEVEL, _CUSTOM.get(kind, ""),
                        kind in _SPM_STYLE)


def same_splits(a: str, b: str) -> bool:
    """True when two names make llama.cpp split text identically (e.g. qwen2 and deepseek-r1-qwen)."""
    pa, pb = lookup(a), lookup(b)
    return (pa.splits, pa.ignore_merges, pa.byte_level) == (pb.splits, pb.ignore_merges, pb.byte_level)


def hf_pre_tokenizer(pre: PreTokenizer) -> Any:
    """A ``tokenizers`` pre-tokenizer that splits text as llama.cpp does for ``pre``.

    Raises:
        PreTokenizerError: llama.cpp splits it with hand-written code, or it is neither byte-level nor
            SentencePiece-style.
    """
    # Declared lazy import (tests/test_architecture_imports.py): the tokenizers library loads only
    # when a pre-tokenizer is built; identifying one by name or hash (inspect, the GGUF writer) needs none.
    from tokenizers import pre_tokenizers

    if pre.custom:
        raise PreTokenizerError(f"pre-tokenizer {pre.name!r}: llama.cpp splits it with {pre.custom}, which "
                                "aprqa does not reproduce; give token ids instead of text", pre.name)
    if not pre.byte_level and not pre.spm_style:
        raise PreTokenizerError(f"pre-tokenizer {pre.name!r} is neither byte-level nor SentencePiece-style BPE; "
                                "aprqa does not rebuild it", pre.name)
    steps = [linear_split(r) for r in pre.splits]
    if pre.byte_level:
        steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False))
    return pre_tokenizers.Sequence(steps)


def linear_split(regex: str, behavior: str = "isolated") -> Any:
    """A ``tokenizers`` Split isolating ``regex``'s matches, run in time linear in the text: llama.cpp's
    two digit-grouping splits are replaced by their linear equivalents (``_LINEAR_SPLITS``)."""
    from tokenizers import Regex, pre_tokenizers  # declared lazy import (as in hf_pre_tokenizer)

    if behavior == "isolated" and regex in _LINEAR_SPLITS:
        regex, behavior = _LINEAR_SPLITS[regex]
    return pre_tokenizers.Split(Regex(regex), behavior=behavior, invert=False)


def check_hash(encode_ids: list[int]) -> str:
    """The converter's fingerprint of a tokenizer: sha256 of ``str(ids of CHECK_TEXT)``."""
    return hashlib.sha256(str(list(encode_ids)).encode()).hexdigest()


def _split_rules(pre: Any) -> tuple[str, ...] | None:
    """The split regexes of a tokenizer.json ``pre_tokenizer`` in llama.cpp's spelling (None: not regex-based)."""
    if not isinstance(pre, dict):
        return None
    kind = pre.get("type")
    if kind == "ByteLevel":
        # GPT-2's built-in regex; llama.cpp's spelling has no trailing \s+ (same pieces).
        return (_SPLITS["gpt2"][0],) if pre.get("use_regex", True) else ()
    if kind == "Split":
        pattern = pre.get("pattern") or {}
        regex = pattern.get("Regex") if isinstance(pattern, dict) else None
        if not isinstance(regex, str) or pre.get("behavior") != "Isolated" or pre.get("invert"):
            return None
        regex = regex.replace(_HF_CONTRACTIONS, _LLAMA_CONTRACTIONS)
        return (_SPLITS["gpt2"][0],) if regex == _GPT2_HF else (regex,)
    if kind == "Digits":
        return (r"\p{N}",) if pre.get("individual_digits") else (r"\p{N}+",)
    if kind == "Sequence":
        out: list[str] = []
        for step in pre.get("pretokenizers") or []:
            rules = _split_rules(step)
            if rules is None:
                return None
            out.extend(rules)
        return tuple(out)
    return None


def _byte_level(tokenizer_json: dict) -> bool:
    steps = [tokenizer_json.get("pre_tokenizer")]
    if isinstance(steps[0], dict) and steps[0].get("type") == "Sequence":
        steps = steps[0].get("pretokenizers") or []
    return any(isinstance(s, dict) and s.get("type") == "ByteLevel" for s in steps)


def by_regex(tokenizer_json: dict) -> str | None:
    """The name whose llama.cpp rules are exactly the tokenizer.json split regexes (None: no such name)."""
    rules = _split_rules(tokenizer_json.get("pre_tokenizer"))
    if not rules or not _byte_level(tokenizer_json):
        return None
    model = tokenizer_json.get("model") or {}
    ignore_merges = bool(model.get("ignore_merges", False)) if isinstance(model, dict) else False
    matches = [n for n in LLAMA_CPP_NAMES if (p := lookup(n)).splits == rules and p.byte_level
               and p.ignore_merges == ignore_merges and not p.custom]
    if not matches:
        return None
    preferred = [n for n in _PREFERRED if n in matches]
    return preferred[0] if preferred else matches[0]


@dataclass(frozen=True)
class Identification:
    """How a tokenizer's pre-tokenizer was named: ``how`` is "hash", "regex" or "given"."""

    name: str
    how: str
    check_hash: str


def identify(tokenizer_json: dict, backend: Any) -> Identification | None:
    """Name the pre-tokenizer of a Hugging Face tokenizer for ``tokenizer.ggml.pre``.

    Args:
        tokenizer_json: the parsed tokenizer.json.
        backend: the loaded ``tokenizers.Tokenizer`` (encodes the check text).
    Returns:
        The name (by the converter's hash, else by exact regex identity), or None.
    """
    digest = check_hash(backend.encode(CHECK_TEXT).ids)
    if digest in CHECK_HASHES and CHECK_HASHES[digest] in LLAMA_CPP_NAMES:
        return Identification(CHECK_HASHES[digest], "hash", digest)
    name = by_regex(tokenizer_json)
    return Identification(name, "regex", digest) if name else None
