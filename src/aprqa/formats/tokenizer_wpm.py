"""WordPiece tokenizers rebuilt from GGUF metadata (``tokenizer.ggml.model == "bert"``).

llama.cpp's converter spells a BERT vocabulary with phantom spaces: a word-start piece carries a
leading U+2581, a ``##`` continuation loses its marks, CONTROL tokens ([CLS], [SEP]...) are kept as
they are. llama.cpp's WPM tokenizer lowercases when ``tokenizer.ggml.normalizer.lowercase`` says so
(default false), strips accents when ``normalizer.strip_accents`` says so (default: as lowercase),
splits on whitespace, punctuation and CJK characters, and matches the longest vocabulary piece
first. The rebuild is a ``tokenizers`` WordPiece over the HF spelling recovered from the phantom
one, with BERT's normalizer and pre-tokenizer set to those options.

llama.cpp's accent stripping starts with its own "NFD": each character becomes the first character of its
canonical decomposition (one for one, so a Hangul syllable becomes its leading consonant jamo alone, where a
true NFD gives all its jamo). ``text_map`` is that mapping, applied to the text before the rebuilt tokenizer.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Any

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers

from ..errors import UsageError
from .model import Model
from .tokenizer_attrs import loaded_types
from .apr_tokenizer import gguf_tokenizer_kv

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
    lower = gguf_tokenizer_kv(model).get("tokenizer.ggml.normalizer.lowercase") is True
    strip = gguf_tokenizer_kv(model).get("tokenizer.ggml.normalizer.strip_accents")
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=lower,
                                                strip_accents=strip if isinstance(strip, bool) else lower)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    lt = loaded_types(info.tokens, types, gguf_tokenizer_kv(model))  # by llama.cpp's spelling; added in the HF one
    spelled = list(vocab)  # duplicates refused above: position i is token i
    tok.add_special_tokens([AddedToken(spelled[i], normalized=False, special=True, rstrip=i in lt.rstrip,
                                       lstrip=i in lt.lstrip) for i in lt.whole()])
    return tok


def text_map(model: Model) -> dict[int, int] | None:
    """``str.translate`` table of llama.cpp's one-for-one "NFD" when the file strips accents, else None."""
    lower = gguf_tokenizer_kv(model).get("tokenizer.ggml.normalizer.lowercase") is True
    strip = gguf_tokenizer_kv(model).get("tokenizer.ggml.normalizer.strip_accents")
    return _first_of_nfd() if (strip if isinstance(strip, bool) else lower) else None


@lru_cache(maxsize=1)
def _first_of_nfd() -> dict[int, int]:
    out = {}
    for cp in range(0x2FA20):  # no character past the CJK compatibility supplement decomposes
        ch = chr(cp)
        if unicodedata.decomposition(ch) or 0xAC00 <= cp <= 0xD7A3:  # Hangul syllables decompose algorithmically
            first = unicodedata.normalize("NFD", ch)[0]
            if first != ch:
                out[cp] = ord(first)
    return out
