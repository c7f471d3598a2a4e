"""Tokenizers judged by behaviour: both sides tokenize a fixed corpus of hard strings and the ids are compared.

Each side is tokenized as its consumer would: an HF directory with the ``tokenizers`` library (what
transformers runs), a GGUF with aprqa's llama.cpp-equivalent tokenizer (``forward.tokenizer.load_tokenizer``).
The corpus covers spaces, digits, code, CJK, emoji, accents, the reference's control and user-defined tokens
and its chat template rendered the way transformers renders it.

Arrays are compared only where both representations have them, per vocabulary type:

* GGUF vs GGUF: every ``tokenizer.ggml.*`` key and ``tokenizer.chat_template``, as stored.
* HF vs GGUF: the vocabulary in llama.cpp's spelling (SentencePiece ``' '`` = ``'▁'``; WordPiece: ``##``
  stripped, ``▁`` before a word start, ``[...]`` kept), merges for byte-level BPE only (a SentencePiece
  GGUF has scores, not merges; a WordPiece one has neither), special ids, the chat template and the
  pre-tokenizer's split rules; llama.cpp's own reading checks (``consumer.py``) come after.

A difference in behaviour names the first string and position that differ and the array fields that
explain it; a side that cannot be tokenized makes the behaviour field NOT-JUDGED with the reason.
"""

from __future__ import annotations

import copy

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from ..errors import AprqaError, UsageError
from ..formats.model import Model, TokenizerInfo
from .consumer import consumer_fields, reconcile_padding, reconcile_pre, tokenizer_types
from .metadata import FieldDiff, FieldStatus, SectionDiff, _field, _seq_field, carries_config

SPACE = "\u2581"
CONTROL, USER_DEFINED = 3, 4
BEHAVIOUR = "token ids"
MAX_SPECIALS = 8  # control/added tokens put into the corpus (the first ones, plus BOS/EOS)

# (label, text): the fixed hard strings. Each exercises a part of a tokenizer that converters get wrong.
CORPUS: tuple[tuple[str, str], ...] = (
    ("plain", "Hello world"),
    ("spaces", " leading space,  two   three    four spaces and trailing  "),
    ("whitespace only", "    "),
    ("tabs and newlines", "line one\n\tline two\r\n\n  indented\n\n\n"),
    ("digits", "1234567890 3.14159 -42 1,000,000 2024-12-07 0x1F 10e-3"),
    ("code", "def add(a, b):\n    return a + b  # sum\n\nprint(add(1, 2))\nif x != y: {k: v}[k] += 1;\n"),
    ("markup", '<html><body class="x">&amp; <b>bold</b></body></html>'),
    ("case and apostrophes", "ALL CAPS, MiXeD cAsE, don't won't y'all I'm we'll"),
    ("accents", "naïve café Zürich façade Ωμέγα Привет мир"),
    ("CJK", "日本語のテキストです。中文文本，한국어 텍스트"),
    ("emoji", "emoji 😀👍🏽 🇫🇷 👨\u200d👩\u200d👧 ✓ ★"),
    ("rare bytes", "\u00a0nbsp \u200bzwsp \u2028ls \ufeffbom"),
)
CHAT = ({"role": "user", "content": "Hi there, 2+2?"}, {"role": "assistant", "content": "4."},
        {"role": "user", "content": "Thanks!"})


@dataclass(frozen=True)
class Probe:
    label: str
    text: str
    specials: bool = True  # add the tokenizer's own BOS/EOS (a rendered chat template carries them: no)

    def encode(self, tok: Any) -> list[int]:
        return tok.encode(self.text) if self.specials else list(tok._tok.encode(self.text, add_special_tokens=False).ids)


# The formats whose consumer's tokenizer aprqa models: transformers (tokenizers) for an HF dir, llama.cpp for a GGUF.
_CONSUMERS = ("safetensors", "gguf")
_LOADED: OrderedDict[tuple, Any] = OrderedDict()  # a few loaded tokenizers (or their load errors), by content
_LOADED_MAX = 4


def _content_key(model: Model) -> tuple:
    """What a loaded tokenizer depends on: an HF dir's tokenizer.json file version, a GGUF's tokenizer keys."""
    if not _is_gguf(model):
        root = model.path if model.path.is_dir() else model.path.parent
        st = (root / "tokenizer.json").stat() if (root / "tokenizer.json").is_file() else None
        return ("hf", str(root.resolve()), st.st_mtime_ns if st else None, st.st_size if st else None)
    info = model.tokenizer
    assert info is not None
    h = hashlib.sha256()
    for k, v in sorted(_gguf_tok_keys(model).items()):
        if k in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges"):
            continue  # hashed below from the packed strings
        h.update(k.encode() + b"=" + (np.asarray(v).tobytes() if isinstance(v, (list, tuple)) and v and
                                      not isinstance(v[0], str) else repr(v).encode()) + b";")
    return ("gguf", info.vocab_hash, info.merges_hash, h.hexdigest())


def _load(model: Model) -> Any:
    """The model's tokenizer as its consumer builds it (cached by content: many candidates share one)."""
    # Declared lazy import (tests/test_architecture_imports.py): the tokenizer rebuild lives in the forward
    # package; the config and tensor sections never need it.
    from ..inference.tokenizer import load_tokenizer

    key = _content_key(model)
    hit = _LOADED.get(key)
    if hit is None:
        try:
            hit = load_tokenizer(model)
        except AprqaError as err:
            hit = err
        except Exception as err:  # the tokenizers library refuses a vocabulary with plain Exceptions
            hit = UsageError(f"the tokenizers library refuses the rebuilt vocabulary: {err}")
        _LOADED[key] = hit
        while len(_LOADED) > _LOADED_MAX:
            _LOADED.popitem(last=False)
    if isinstance(hit, AprqaError):
        raise hit
    return hit


def _specials(tok: Any, info: TokenizerInfo | None) -> list[str]:
    """Control and user-defined tokens of a loaded tokenizer (BOS/EOS first), as text."""
    out: list[str] = []
    if info is not None:
        for i in (info.bos_id, info.eos_id):
            if i is not None and 0 <= i < len(info.tokens):
                out.append(info.tokens[i])
    try:
        added = sorted(tok._tok.get_added_tokens_decoder().items())
    except AttributeError:
        added = []
    for _, t in added:
        if t.content not in out and t.content.strip():
            out.append(t.content)
        if len(out) >= MAX_SPECIALS:
            break
    return out


def render_chat(template: str, info: TokenizerInfo | None) -> str | None:
    """The reference's chat template rendered as transformers renders it (sandboxed jinja2), or None."""
    try:
        from jinja2 import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:  # jinja2 comes with transformers; without it the chat string is left out
        return None

    def raise_exception(msg: str) -> None:
        raise TemplateError(msg)

    def tok(i: int | None) -> str:
        return info.tokens[i] if info is not None and i is not None and 0 <= i < len(info.tokens) else ""

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(template).render(
            messages=list(CHAT), add_generation_prompt=True, bos_token=tok(info.bos_id if info else None),
            eos_token=tok(info.eos_id if info else None))
    except Exception:  # a template that does not render with plain messages is left out, not guessed
        return None


def corpus(ref_tok: Any, ref: Model) -> list[Probe]:
    """The fixed strings, the reference's special tokens in text, and its rendered chat template."""
    probes = [Probe(label, text) for label, text in CORPUS]
    specials = _specials(ref_tok, ref.tokenizer)
    if specials:
        # text first: what a tokenizer does with a prompt that itself starts with BOS is the engine's choice
        probes.append(Probe("control tokens", "".join(f"x {s}Hi {s}" for s in specials)))
    template = ref.tokenizer.chat_template if ref.tokenizer is not None else None
    if template:
        chat = render_chat(template, ref.tokenizer)
        if chat:
            probes.append(Probe("chat template", chat, specials=False))  # as apply_chat_template tokenizes
    return probes


@dataclass(frozen=True)
class Mismatch:
    label: str
    text: str
    position: int
    reference: list[int]
    candidate: list[int]


def _first_mismatch(a: Sequence[int], b: Sequence[int]) -> int | None:
    for i in range(max(len(a), len(b))):
        if (a[i] if i < len(a) else None) != (b[i] if i < len(b) else None):
            return i
    return None


def _piece(tok: Any, i: int | None) -> str:
    if i is None:
        return "(end)"
    try:
        return repr(tok.token(i))
    except Exception:  # an id past the vocabulary of that side
        return "(no such id)"


def behaviour(ref: Model, cand: Model, explain: Sequence[FieldDiff] = ()) -> FieldDiff:
    """The ``token ids`` field: MATCH, DIFFERENT (first string, position, explaining arrays) or NOT-JUDGED."""
    toks = []
    for side, m in (("reference", ref), ("candidate", cand)):
        try:
            toks.append(_load(m))
        except AprqaError as err:
            return FieldDiff(BEHAVIOUR, FieldStatus.NOT_JUDGED, None, None,
                             f"the {side} cannot be tokenized as its consumer would: {err}")
    ra, cb = toks
    probes = corpus(ra, ref)
    consumer_rule: list[str] = []
    for p in probes:
        try:
            a, b = p.encode(ra), p.encode(cb)
        except Exception as err:  # the tokenizers library raises plain Exceptions
            return FieldDiff(BEHAVIOUR, FieldStatus.NOT_JUDGED, None, None,
                             f"tokenizing the {p.label!r} string failed: {err}")
        i = _first_mismatch(a, b)
        if i is None:
            continue
        if not any(not f.passed for f in explain) and _same_without_text_maps(p, ra, cb):
            # the same vocabulary, tokenized the same once llama.cpp's one-for-one WordPiece "NFD" is left
            # out: a rule of the consumer (llama.cpp tokenizes any such file this way), not of this file
            consumer_rule.append(p.label)
            continue
        ai, bi = (a[i] if i < len(a) else None), (b[i] if i < len(b) else None)
        why = [f.field for f in explain if not f.passed]
        cause = ("explained by: " + ", ".join(why)) if why else \
            "no array differs: the two tokenizers apply different rules (normalization, pre-tokenizer, merge order)"
        shown = p.text if len(p.text) <= 60 else p.text[:57] + "..."
        return FieldDiff(BEHAVIOUR, FieldStatus.DIFFERENT, a[max(0, i - 2):i + 3], b[max(0, i - 2):i + 3],
                         f"string {p.label!r} ({shown!r}): first difference at token {i}: reference id {ai} "
                         f"{_piece(ra, ai)}, candidate id {bi} {_piece(cb, bi)}; {cause}")
    n = len(probes)
    note = ""
    if consumer_rule:
        note = (f"; on {', '.join(repr(x) for x in consumer_rule)} only llama.cpp's loader rule differs "
                "(its WordPiece accent stripping keeps the first character of each decomposition, e.g. a Hangul "
                "syllable's leading jamo): every llama.cpp file of this vocabulary tokenizes so")
    return FieldDiff(BEHAVIOUR, FieldStatus.MATCH, n, n, f"same ids on all {n} strings of the corpus "
                     f"({', '.join(p.label for p in probes)}){note}")


def _same_without_text_maps(p: Probe, *toks: Any) -> bool:
    """Whether ``p`` tokenizes the same on both sides once each side's per-character text map (llama.cpp's
    one-for-one WordPiece NFD, ``inference.tokenizer.Tokenizer.text_map``) is left out; False when neither has one."""
    if not any(getattr(t, "text_map", None) for t in toks):
        return False
    plain = []
    for t in toks:
        if getattr(t, "text_map", None):
            t = copy.copy(t)
            t.text_map = None
        plain.append(p.encode(t))
    return plain[0] == plain[1]


# ----------------------------------------------------------------------------- arrays


def _is_gguf(m: Model) -> bool:
    return m.format == "gguf"


def _gguf_tok_keys(m: Model) -> dict[str, Any]:
    return {k: v for k, v in m.metadata.items() if k.startswith("tokenizer.")}


def _is_array(v: Any) -> bool:
    return v is not None and not isinstance(v, (str, bytes)) and hasattr(v, "__len__") and hasattr(v, "__getitem__")


def _value_field(key: str, a: Any, b: Any) -> FieldDiff:
    if _is_array(a) or _is_array(b):
        if a is None:
            return FieldDiff(key, FieldStatus.EXTRA, None, len(b))
        if b is None:
            return FieldDiff(key, FieldStatus.MISSING, len(a), None, "the candidate has no such array")
        xs, ys = list(a), list(b)
        if xs == ys:
            return FieldDiff(key, FieldStatus.MATCH, len(xs), len(ys))
        i = next((k for k, (x, y) in enumerate(zip(xs, ys)) if x != y), min(len(xs), len(ys)))
        n = sum(1 for x, y in zip(xs, ys) if x != y) + abs(len(xs) - len(ys))
        return FieldDiff(key, FieldStatus.DIFFERENT, len(xs), len(ys),
                         f"first difference at index {i}: reference {xs[i] if i < len(xs) else None!r}, "
                         f"candidate {ys[i] if i < len(ys) else None!r} ({n:,} differ)")
    return _field(key, a, b)


# Flags llama.cpp reads with a default that does not depend on the vocabulary type (llama-vocab.cpp): a key one
# side omits is compared at that default.
_FLAG_DEFAULTS = {"tokenizer.ggml.add_eos_token": False, "tokenizer.ggml.add_sep_token": False}


def gguf_arrays(ref: Model, cand: Model) -> list[FieldDiff]:
    """GGUF vs GGUF: every tokenizer key either side stores, compared as stored (an omitted flag at llama.cpp's
    default)."""
    ka, kb = _gguf_tok_keys(ref), _gguf_tok_keys(cand)
    out = []
    for k in sorted(set(ka) | set(kb)):
        a, b = ka.get(k), kb.get(k)
        if k in _FLAG_DEFAULTS and (a is None) != (b is None):
            d = _FLAG_DEFAULTS[k]
            f = _field(k, d if a is None else a, d if b is None else b)
            out.append(replace(f, reference=a, candidate=b, note=f"absent: llama.cpp's default {d}"))
            continue
        out.append(_value_field(k, a, b))
    return out


def wordpiece_spelling(token: str, token_type: int) -> str:
    """A WordPiece token as llama.cpp's converter writes it: a control token kept, ``##x`` → ``x``,
    anything else → ``▁x`` (its phantom space)."""
    if token_type == CONTROL:
        return token
    if token.startswith("##"):
        return token[2:]
    return SPACE + token


def _spelled(m: Model, kind: str | None) -> tuple[str, ...]:
    info = m.tokenizer
    assert info is not None
    if kind == "llama":  # GGUF keeps user-defined whitespace pieces as spaces, tokenizer.json spells ▁
        return tuple(t.replace(" ", SPACE) for t in info.tokens)
    if kind == "bert" and not _is_gguf(m):
        types = tokenizer_types(m)
        return tuple(wordpiece_spelling(t, types[i] if i < len(types) else 1) for i, t in enumerate(info.tokens))
    return tuple(info.tokens)


def hf_gguf_arrays(ref: Model, cand: Model) -> list[FieldDiff]:
    """HF vs GGUF (either way round): the arrays both representations have, per vocabulary type."""
    a, b = ref.tokenizer, cand.tokenizer
    assert a is not None and b is not None
    kind = b.model_type if _is_gguf(cand) else a.model_type
    # tokenizer.json names no GGUF vocabulary type (aprqa's reader guesses one): the behaviour decides
    mt = _field("model_type", a.model_type, b.model_type)
    if mt.status == FieldStatus.DIFFERENT:
        mt = replace(mt, status=FieldStatus.NOT_STATED,
                     note="tokenizer.json states no GGUF vocabulary type (the HF side's is inferred); llama.cpp's "
                          "converter chose the GGUF's; not compared, the token ids are")
    out = [mt]
    vocab = _seq_field("vocabulary", _spelled(ref, kind), _spelled(cand, kind), "token id")
    if kind == "bert" and vocab.status == FieldStatus.MATCH:
        vocab = replace(vocab, note="WordPiece in llama.cpp's spelling ('##' stripped, '\u2581' before a word start, control tokens kept)")
    elif kind == "llama" and vocab.status == FieldStatus.MATCH and a.tokens != b.tokens:
        vocab = replace(vocab, note="SentencePiece: ' ' and '\u2581' compared as the same character")
    out.append(vocab)
    if kind == "gpt2":
        out.append(_seq_field("merges", a.merges, b.merges, "merge"))
        out.append(_field("pre", a.pre, b.pre))
    else:
        out.append(FieldDiff("merges", FieldStatus.NOT_STATED, len(a.merges), len(b.merges),
                             f"a {kind} GGUF vocabulary has no merges by design (not compared; the token ids "
                             "are)"))
    for name in ("bos_id", "eos_id", "unk_id"):
        out.append(_field(name, getattr(a, name), getattr(b, name)))
    pad = _field("pad_id", a.pad_id, b.pad_id)
    if pad.status == FieldStatus.MISSING and not _is_gguf(cand) or pad.status == FieldStatus.EXTRA and _is_gguf(cand):
        pad = replace(pad, status=FieldStatus.NOT_STATED, note="only the GGUF names a padding id (not compared)")
    out.append(pad)
    out.append(_field("chat_template", a.chat_template, b.chat_template))
    return out


def compare_tokenizers(ref: Model, cand: Model) -> SectionDiff:
    """The tokenizer section: arrays where both representations have them, then behaviour on the corpus,
    then llama.cpp's reading checks of a GGUF candidate."""
    a, b = ref.tokenizer, cand.tokenizer
    if not (carries_config(ref) and carries_config(cand)) and (a is None or b is None):
        return SectionDiff("tokenizer", (), note="not compared (a weights-only file carries no tokenizer)")
    if a is None and b is None:
        return SectionDiff("tokenizer", (), note="neither model carries a tokenizer (not compared)")
    if b is None:
        return SectionDiff("tokenizer", (), note="the candidate carries no tokenizer (the reference does)",
                           failed_outright=True)
    if a is None:
        return SectionDiff("tokenizer", (), note="only the candidate carries a tokenizer (nothing to compare "
                                                 "it against)")
    arrays = gguf_arrays(ref, cand) if _is_gguf(ref) and _is_gguf(cand) else hf_gguf_arrays(ref, cand)
    section = SectionDiff("tokenizer", tuple(arrays))
    if not (_is_gguf(ref) and _is_gguf(cand)):
        section = reconcile_pre(reconcile_padding(section, ref, cand), ref, cand)
    section = replace(section, fields=section.fields + consumer_fields(ref, cand))
    if _is_gguf(ref) and _is_gguf(cand) and arrays and all(f.status == FieldStatus.MATCH for f in arrays):
        # llama.cpp builds its tokenizer from these keys alone: equal keys, equal token ids
        ids = FieldDiff(BEHAVIOUR, FieldStatus.MATCH, len(arrays), len(arrays),
                        f"every tokenizer key is equal ({len(arrays)} keys): llama.cpp builds the same tokenizer")
    elif unmodelled := [m.format for m in (ref, cand) if m.format not in _CONSUMERS]:
        ids = FieldDiff(BEHAVIOUR, FieldStatus.NOT_STATED, None, None,
                        f"not compared: the token ids of a {unmodelled[0]} file are its runtime's (aprender), which "
                        "aprqa does not model; the arrays are compared")
    else:
        ids = behaviour(ref, cand, section.fields)
    note = f"token ids NOT-JUDGED: {ids.note}" if ids.status == FieldStatus.NOT_JUDGED else ""
    return replace(section, fields=(ids,) + section.fields, note=note)
