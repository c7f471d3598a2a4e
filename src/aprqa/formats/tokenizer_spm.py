"""SentencePiece tokenizers rebuilt from GGUF metadata (``tokenizer.ggml.model == "llama"``).

llama.cpp's SentencePiece tokenizer merges, in a piece, the adjacent pair whose concatenation is
in the vocabulary with the highest score, until none is; pieces left over are spelled as byte
tokens ``<0xNN>`` (byte fallback). A BPE whose merges are ranked by the merged piece's score does
the same, so the rebuild is a ``tokenizers`` BPE: merges from the vocabulary and
``tokenizer.ggml.scores``, ``byte_fallback``, spaces as U+2581 (with a leading one when
``tokenizer.ggml.add_space_prefix`` says so). Control and unknown tokens are special and user-defined
tokens (e.g. ``<think>``, whitespace runs) are matched whole on the raw text, with the types and strip flags
llama.cpp's loader gives them (``tokenizer_attrs``: a ``<end_of_turn>`` typed NORMAL is CONTROL there).
"""

from __future__ import annotations

from typing import Any

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

from ..errors import UsageError
from .model import Model
from .tokenizer_attrs import loaded_types
from .apr_tokenizer import gguf_tokenizer_kv

SPACE = "\u2581"
NORMAL, CONTROL, USER_DEFINED, BYTE = 1, 3, 4, 6


def _array(model: Model, key: str, n: int) -> list:
    v = gguf_tokenizer_kv(model).get(key)
    if v is None:
        raise UsageError(f"{model.path}: SentencePiece tokenizer without '{key}'; cannot rebuild it")
    v = list(v)
    if len(v) != n:
        raise UsageError(f"{model.path}: '{key}' has {len(v):,} entries for {n:,} tokens")
    return v


_SHORT = 64  # pieces up to this length are cut by slicing (cheap); longer ones through rolling hashes
# the merges may hold this many characters per vocabulary character, plus the slack (docs/reliability.md):
# real vocabularies need a few; one-letter runs at every length need ~N^3/3 in all
MERGE_CHARS_PER_CHAR = 64
MERGE_CHARS_SLACK = 1 << 20
_MOD = (1 << 61) - 1
_BASE = 1_000_003


def _hash(text: str) -> int:
    h, power = 0, 1
    for ch in text:
        h = (h + ord(ch) * power) % _MOD
        power = power * _BASE % _MOD
    return h


def _long_cuts(piece: str, hashes: set[int]) -> list[int]:
    """Cut points k where the hashes of piece[:k] and piece[k:] are both vocabulary hashes: O(len)."""
    n = len(piece)
    prefix = [0] * (n + 1)
    h, power = 0, 1
    for k, ch in enumerate(piece):
        h = (h + ord(ch) * power) % _MOD
        power = power * _BASE % _MOD
        prefix[k + 1] = h
    cuts, h = [], 0
    for k in range(n - 1, 0, -1):
        h = (ord(piece[k]) + _BASE * h) % _MOD  # hash of piece[k:]
        if h in hashes and prefix[k] in hashes:
            cuts.append(k)
    return cuts


def spm_merges(tokens: list[str], scores: list[float], types: list[int],
               budget: int | None = None, chars: dict[str, int] | None = None) -> list[tuple[str, str]]:
    """Every (left, right) whose concatenation is a normal piece, best merged score first.

    Linear in the vocabulary's characters plus the merges found: short pieces are cut by slicing,
    long ones by rolling hashes (a hit is verified on the strings). ``budget`` bounds the characters
    the merges may hold (default: ``MERGE_CHARS_PER_CHAR`` x the vocabulary's + ``MERGE_CHARS_SLACK``); a
    vocabulary needing more is refused.

    Raises:
        UsageError: the merges would exceed the budget (a degenerate vocabulary, e.g. long runs of
            one character at every length).
    """
    ids = {t: i for i, t in enumerate(tokens) if types[i] in (NORMAL, USER_DEFINED)}
    total = sum(len(t) for t in ids)
    parts = {**(chars or {}), **ids}
    budget = MERGE_CHARS_PER_CHAR * total + MERGE_CHARS_SLACK if budget is None else budget
    hashes: set[int] | None = None
    found: list[tuple[float, int, int, str, str]] = []
    spent = 0
    for piece, i in ids.items():
        if types[i] != NORMAL or len(piece) < 2:
            continue
        if len(piece) <= _SHORT:
            cuts: Any = range(1, len(piece))
        else:
            if hashes is None:
                hashes = {_hash(t) for t in parts}
            cuts = _long_cuts(piece, hashes)
        for cut in cuts:
            left, right = piece[:cut], piece[cut:]
            li, ri = parts.get(left), parts.get(right)
            if li is not None and ri is not None:
                spent += len(piece)
                if spent > budget:
                    raise UsageError(f"SentencePiece vocabulary: its merges would hold over {budget:,} characters "
                                     f"(piece {i} alone is {len(piece):,} long); refusing to rebuild it")
                found.append((-float(scores[i]), li, ri, left, right))
    found.sort()
    return [(a, b) for _, _, _, a, b in found]


def lone_chars(tokens: list[str], types: list[int]) -> list[str]:
    """Characters that are no piece but start or end a normal piece next to a piece (or another such
    character): llama.cpp merges them; a BPE needs them in its vocabulary to do the same."""
    ids = {t for i, t in enumerate(tokens) if types[i] in (NORMAL, USER_DEFINED)}
    out: set[str] = set()
    for i, piece in enumerate(tokens):
        if types[i] != NORMAL or len(piece) < 2:
            continue
        a, b = piece[0], piece[-1]
        if a not in ids and (piece[1:] in ids or len(piece) == 2):
            out.add(a)
        if b not in ids and (piece[:-1] in ids or len(piece) == 2):
            out.add(b)
    return sorted(out)


def rebuild_spm(model: Model, lone: bool = False) -> Any:
    """A ``tokenizers.Tokenizer`` equivalent to the model's SentencePiece vocabulary.

    ``lone``: also give the characters of ``lone_chars`` vocabulary ids past the model's (for a
    tokenizer used through ``forward.tokenizer.Tokenizer``, which spells a leftover one as its byte
    tokens, as llama.cpp does); an exported tokenizer.json is built without them.

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
    chars = {c: len(tokens) + k for k, c in enumerate(lone_chars(tokens, types))} if lone else {}
    unk = tokens[info.unk_id] if info.unk_id is not None and 0 <= info.unk_id < len(tokens) else None
    tok = Tokenizer(models.BPE(vocab={**chars, **vocab}, merges=spm_merges(tokens, scores, types, chars=chars),
                               unk_token=unk, fuse_unk=True, byte_fallback=True))
    steps = [normalizers.Replace(" ", SPACE)]
    if gguf_tokenizer_kv(model).get("tokenizer.ggml.add_space_prefix") is not False:  # llama.cpp's SPM default: true
        steps.insert(0, normalizers.Prepend(SPACE))
    tok.normalizer = normalizers.Sequence(steps)
    tok.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()])
    add_whole_tokens(tok, tokens, types, gguf_tokenizer_kv(model))
    return tok


def add_whole_tokens(tok: Any, tokens: list[str], types: list[int], metadata: dict[str, Any]) -> None:
    """The tokens llama.cpp matches whole in the raw text, with the types and strip flags its loader gives them
    (``tokenizer_attrs``): user-defined ones as added tokens, control and unknown ones as special tokens."""
    lt = loaded_types(tokens, types, metadata)

    def added(i: int) -> AddedToken:
        return AddedToken(tokens[i], normalized=False, special=lt.types[i] != USER_DEFINED,
                          rstrip=i in lt.rstrip, lstrip=i in lt.lstrip)

    whole = lt.whole()
    tok.add_tokens([added(i) for i in whole if lt.types[i] == USER_DEFINED])
    tok.add_special_tokens([added(i) for i in whole if lt.types[i] != USER_DEFINED])


def byte_spelling(model: Model, tok: Any) -> dict[int, list[int]]:
    """Vocabulary ids past the model's (``rebuild_spm(lone=True)``) -> the model's byte-token ids."""
    info = model.tokenizer
    n = len(info.tokens) if info is not None else 0
    ids = {t: i for i, t in enumerate(info.tokens)} if info is not None else {}
    unk = info.unk_id if info is not None and info.unk_id is not None else 0
    out = {}
    for text, i in tok.get_vocab(with_added_tokens=False).items():
        if i >= n:
            out[i] = [ids.get(f"<0x{b:02X}>", unk) for b in text.replace(SPACE, " ").encode("utf-8")]
    return out
