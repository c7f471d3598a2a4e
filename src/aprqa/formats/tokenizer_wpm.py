"""WordPiece tokenizers rebuilt from GGUF metadata (``tokenizer.ggml.model == "bert"``).

llama.cpp's converter spells a BERT vocabulary with phantom spaces: a word-start piece carries a
leading U+2581, a ``##`` continuation loses its marks, CONTROL tokens ([CLS], [SEP]...) are kept as
they are. llama.cpp's WPM tokenizer lowercases when ``tokenizer.ggml.normalizer.lowercase`` says so
(default false), strips accents when ``normalizer.strip_accents`` says so (default: as lowercase),
splits on whitespace, punctuation and CJK characters, and matches the longest vocabulary piece
first. The rebuild is a ``tokenizers`` WordPiece over the HF spelling recovered from the phantom
one, with BERT's normalizer and pre-tokenizer set to those options.
"""

from __future__ import annotations

from typing import Any

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers

from ..errors import UsageError
from .model import Model

SPACE = "\u2581"
CONTROL = 3


def hf_spelling(token: str, kind: int) -> str:
    """The HF WordPiece spelling of a llama.cpp phantom-space token."""
    if kind == CONTROL:
        return token
    return token[1:] if token.startswith(SPACE) else "##" + token


def rebuild_wpm(model: Model) -> Any:
    """A ``tokenizers.Tokenizer`` equivalent to the model's WordPiece vocabulary (no special tokens added).

    Raises:
        UsageError: not a WordPiece vocabulary, token types missing or mis-sized, or two ids spelled the same.
    """
    info = model.tokenizer
    if info is None or info.model_type != "bert" or not info.tokens:
        raise UsageError(f"{model.path}: no WordPiece ('bert') vocabulary to rebuild")
    types = list(info.token_types)
    if len(types) != len(info.tokens):
        raise UsageError(f"{model.path}: 'tokenizer.ggml.token_type' has {len(types):,} entries for "
                         f"{len(info.tokens):,} tokens; cannot rebuild the WordPiece vocabulary")
    vocab: dict[str, int] = {}
    for i, (t, k) in enumerate(zip(info.tokens, types)):
        spelled = hf_spelling(t, k)
        if vocab.setdefault(spelled, i) != i:
            raise UsageError(f"{model.path}: tokens {vocab[spelled]} and {i} are both '{spelled}' in WordPiece "
                             "spelling; llama.cpp refuses such a vocabulary")
    unk = info.tokens[info.unk_id] if info.unk_id is not None and 0 <= info.unk_id < len(info.tokens) else "[UNK]"
    if unk not in vocab:  # the library would fail on the first word outside the vocabulary, untyped
        raise UsageError(f"{model.path}: the WordPiece vocabulary has no unknown token {unk!r} "
                         "(tokenizer.ggml.unknown_token_id); a word outside it could not be tokenized")
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token=unk, max_input_chars_per_word=100))
    lower = model.metadata.get("tokenizer.ggml.normalizer.lowercase") is True
    strip = model.metadata.get("tokenizer.ggml.normalizer.strip_accents")
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=lower,
                                                strip_accents=strip if isinstance(strip, bool) else lower)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True)
                            for t, k in zip(info.tokens, types) if k == CONTROL])
    return tok
