"""A GGUF/APR BPE ("gpt2") vocabulary rebuilt as a ``tokenizers.Tokenizer`` that splits and merges as llama.cpp does
for its ``tokenizer.ggml.pre`` (``aprqa.pretokenize.splits``: every name llama.cpp knows; none means its "default" rules):
byte-level for most names, SentencePiece-style (spaces as U+2581, raw UTF-8, <0xXX> byte fallback) for gemma4-like
ones. Used to tokenize such a file (forward, compare) and to write it as an HF tokenizer.json."""

from __future__ import annotations

import re
from typing import Any

from tokenizers import AddedToken, Tokenizer as HFTokenizer, decoders, models, normalizers

from ..errors import UsageError
from ..pretokenize.splits import hf_pre_tokenizer, lookup
from .model import TokenizerInfo
from .tokenizer_attrs import loaded_types

_SPECIAL_RE = re.compile(r"^<\|[^|]*\|>$|^<(s|/s|unk|pad|mask)>$|^\[(PAD|UNK|CLS|SEP|MASK)\d*\]$")


def rebuild_bpe(info: TokenizerInfo, metadata: dict[str, Any] | None = None) -> Any:
    """A ``tokenizers.Tokenizer`` equivalent to a GGUF/APR BPE ("gpt2") vocabulary as llama.cpp reads it.

    ``metadata``: the file's KV (``general.name``, ``tokenizer.ggml.pre``, fill-in-the-middle ids), which decide
    some token types and strip flags llama.cpp's loader gives (``tokenizer_attrs``).

    Raises:
        UsageError: not a BPE, no tokens/merges, or a pre-tokenizer aprqa cannot rebuild.
    """
    if info.model_type != "gpt2":
        raise UsageError(f"cannot rebuild a '{info.model_type}' tokenizer from the file's metadata (only byte-level "
                         "BPE 'gpt2' is supported; SentencePiece 'llama' needs scores the reader does not keep)",)
    if not info.tokens or not info.merges:
        raise UsageError(f"tokenizer has {len(info.tokens)} tokens and {len(info.merges)} merges; "
                         "a byte-level BPE needs both")
    vocab = {t: i for i, t in enumerate(info.tokens)}
    merges = []
    for m in info.merges:
        a, sep, b = m.partition(" ")
        if not sep:
            raise UsageError(f"BPE merge {m!r} is not 'left right'")
        merges.append((a, b))
    # llama.cpp splits by tokenizer.ggml.pre and falls back to its "default" rules without one.
    pre = lookup(info.pre or "default")
    try:
        model = models.BPE(vocab=vocab, merges=merges, fuse_unk=False, ignore_merges=pre.ignore_merges,
                           byte_fallback=pre.spm_style)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # noqa: BLE001 (a merge of unexpected pieces can make the library panic)
        raise UsageError(f"the tokenizers library cannot build this BPE vocabulary: {type(err).__name__}: "
                         f"{str(err).strip()[:200]}") from None
    tok = HFTokenizer(model)
    tok.pre_tokenizer = hf_pre_tokenizer(pre)
    if pre.spm_style:
        # llama.cpp escapes spaces in the raw text between special tokens, then merges UTF-8 characters; a
        # character with no token becomes its <0xXX> byte tokens.
        tok.normalizer = normalizers.Replace(" ", "\u2581")
        tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    else:
        tok.decoder = decoders.ByteLevel()
    if len(info.token_types) == len(info.tokens):  # matched whole before BPE, as llama.cpp's loader types them
        lt = loaded_types(info.tokens, info.token_types, metadata or {})
        tok.add_special_tokens([AddedToken(info.tokens[i], special=True, normalized=False, rstrip=i in lt.rstrip,
                                           lstrip=i in lt.lstrip) for i in lt.whole()])
        return tok
    specials = {i for i in (info.bos_id, info.eos_id, info.pad_id, info.unk_id) if i is not None}
    specials |= {i for i, t in enumerate(info.tokens) if _SPECIAL_RE.match(t)}
    tok.add_special_tokens([AddedToken(info.tokens[i], special=True, normalized=False)
                            for i in sorted(specials) if 0 <= i < len(info.tokens)])
    return tok
