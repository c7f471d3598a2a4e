"""SentencePiece tokenizers rebuilt from GGUF metadata (``tokenizer.ggml.model == "llama"``).

llama.cpp's SentencePiece tokenizer merges, in a piece, the adjacent pair whose concatenation is
in the vocabulary with the highest score, until none is; pieces left over are spelled as byte
tokens ``<0xNN>`` (byte fallback). A BPE whose merges are ranked by the merged piece's score does
the same, so the rebuild is a ``tokenizers`` BPE: merges from the vocabulary and
``tokenizer.ggml.scores``, ``byte_fallback``, spaces as U+2581 (with a leading one when
``tokenizer.ggml.add_space_prefix`` says so). Control tokens (type 3) are special and
user-defined tokens (type 4, e.g. ``<think>``, whitespace runs) are matched whole on the raw text,
as llama.cpp and transformers do.
"""

from __future__ import annotations

from typing import Any

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

from ..errors import UsageError
from .model import Model

SPACE = "\u2581"
NORMAL, CONTROL, USER_DEFINED, BYTE = 1, 3, 4, 6


def _array(model: Model, key: str, n: int) -> list:
    v = model.metadata.get(key)
    if v is None:
        raise UsageError(f"{model.path}: SentencePiece tokenizer without '{key}'; cannot rebuild it")
    v = list(v)
    if len(v) != n:
        raise UsageError(f"{model.path}: '{key}' has {len(v):,} entries for {n:,} tokens")
    return v


def spm_merges(tokens: list[str], scores: list[float], types: list[int]) -> list[tuple[str, str]]:
    """Every (left, right) whose concatenation is a normal piece, best merged score first."""
    ids = {t: i for i, t in enumerate(tokens) if types[i] in (NORMAL, USER_DEFINED)}
    found: list[tuple[float, int, int, str, str]] = []
    for piece, i in ids.items():
        if types[i] != NORMAL:
            continue
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            li, ri = ids.get(left), ids.get(right)
            if li is not None and ri is not None:
                found.append((-float(scores[i]), li, ri, left, right))
    found.sort()
    return [(a, b) for _, _, _, a, b in found]


def rebuild_spm(model: Model) -> Any:
    """A ``tokenizers.Tokenizer`` equivalent to the model's SentencePiece vocabulary.

    Raises:
        UsageError: not a SentencePiece vocabulary, or scores/token types missing or mis-sized.
    """
    info = model.tokenizer
    if info is None or info.model_type != "llama" or not info.tokens:
        raise UsageError(f"{model.path}: no SentencePiece ('llama') vocabulary to rebuild")
    tokens = list(info.tokens)
    scores = _array(model, "tokenizer.ggml.scores", len(tokens))
    types = _array(model, "tokenizer.ggml.token_type", len(tokens))
    vocab = {t: i for i, t in enumerate(tokens)}
    unk = tokens[info.unk_id] if info.unk_id is not None and 0 <= info.unk_id < len(tokens) else None
    tok = Tokenizer(models.BPE(vocab=vocab, merges=spm_merges(tokens, scores, types), unk_token=unk,
                               fuse_unk=True, byte_fallback=True))
    steps = [normalizers.Replace(" ", SPACE)]
    if model.metadata.get("tokenizer.ggml.add_space_prefix") is True:
        steps.insert(0, normalizers.Prepend(SPACE))
    tok.normalizer = normalizers.Sequence(steps)
    tok.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for i, t in enumerate(tokens)
                    if types[i] == USER_DEFINED])
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for i, t in enumerate(tokens)
                            if types[i] == CONTROL])
    return tok
