"""Tokenizer checks of a GGUF candidate as llama.cpp, its consumer, will read it.

``compare_tokenizer`` judges whether two tokenizers hold the same data. A GGUF can hold the same
tokens and merges and still be read wrongly by llama.cpp. These checks say what llama.cpp will do
(facts from llama-vocab.cpp / llama-model.cpp), each failure with its consequence:

* ``tokenizer.ggml.pre`` missing: llama.cpp falls back to its default pre-tokenizer and warns
  that generation quality will be degraded; unknown: it refuses to load the file; a name whose
  split rules differ from the reference tokenizer's: it splits text differently.
* token count different from the embedding's rows: llama.cpp refuses to load the file.
* ``token_type`` missing, of the wrong length, or different from the reference's: control and
  user-defined tokens are no longer matched whole (or the file is refused).
* no EOS id in a BPE vocabulary: llama.cpp uses id 11; a special id past the vocabulary is ignored.
* add_bos / add_eos that make llama.cpp add (or not add) a token the reference tokenizer does not.

Padding the token list with ``[PAD{id}]`` up to the embedding's rows is what llama.cpp's converter
does; ``reconcile_padding`` turns that vocabulary difference into a MATCH with a note.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import AprqaError
from ..formats.gguf_vocab import HFFacts, TokenType, hf_facts, hf_pre, hf_token_types, pad_token, padded
from ..fsio import CAP_TOKENIZER, read_json
from ..formats.model import Model, TokenizerInfo
from ..pretokenize.splits import Identification, PreTokenizerError, lookup, same_splits
from .metadata import FieldDiff, FieldStatus, SectionDiff

EMBED = "model.embed_tokens.weight"
LM_HEAD = "lm_head.weight"
# Pre-tokenizer types for which llama.cpp adds BOS when the file does not say (llama-vocab.cpp).
_ADD_BOS_KINDS = {"llama3", "tekken", "chameleon"}
_DEFAULT_BPE_EOS = 11


def _rows(model: Model) -> int | None:
    t = model.tensors.get(EMBED)
    return t.shape[0] if t is not None and len(t.shape) == 2 else None


def _fail(name: str, status: str, ref: object, cand: object, note: str) -> FieldDiff:
    return FieldDiff(f"llama.cpp {name}", status, ref, cand, note)


def _ok(name: str, ref: object, cand: object, note: str = "") -> FieldDiff:
    return FieldDiff(f"llama.cpp {name}", FieldStatus.MATCH, ref, cand, note)


def _facts(ref: Model) -> HFFacts | None:
    try:
        return hf_facts(ref)
    except AprqaError:
        return None


def _hf_pre(model: Model) -> Identification | None:
    """The pre-tokenizer an HF side's tokenizer.json names, also when aprqa's reader infers a SentencePiece
    type for it (llama.cpp's converter takes the BPE path whenever tokenizer.model is absent)."""
    try:
        return hf_pre(model)
    except AprqaError:
        return None


def _pre_field(ref: Model, cand: TokenizerInfo, facts: HFFacts | None) -> FieldDiff:
    want = facts.pre.name if facts is not None and facts.pre is not None else None
    if want is None and ref.format == "gguf" and ref.tokenizer is not None and ref.tokenizer.pre:
        want = ref.tokenizer.pre
    if not cand.pre:
        return _fail("pre-tokenizer", FieldStatus.MISSING, want, None,
                     "no tokenizer.ggml.pre: llama.cpp will fall back to the default pre-tokenizer "
                     "('GENERATION QUALITY WILL BE DEGRADED')")
    try:
        lookup(cand.pre)
    except PreTokenizerError:
        return _fail("pre-tokenizer", FieldStatus.DIFFERENT, want, cand.pre,
                     f"{cand.pre!r} is not a pre-tokenizer llama.cpp knows: llama.cpp will refuse to load it")
    if want is None:
        return FieldDiff("llama.cpp pre-tokenizer", FieldStatus.EXTRA, None, cand.pre,
                         "the reference's pre-tokenizer could not be identified; not compared")
    try:
        same = same_splits(want, cand.pre)
    except PreTokenizerError:
        same = want == cand.pre
    if not same:
        return _fail("pre-tokenizer", FieldStatus.DIFFERENT, want, cand.pre,
                     f"llama.cpp will split text with {cand.pre!r}'s rules, the reference tokenizer splits as "
                     f"{want!r}: token ids will differ")
    return _ok("pre-tokenizer", want, cand.pre, "" if want == cand.pre else "same split rules")


def _rows_field(cand: Model, tok: TokenizerInfo) -> FieldDiff | None:
    rows = _rows(cand)
    if rows is None:
        return None
    n = len(tok.tokens)
    if n != rows:
        return _fail("token count", FieldStatus.DIFFERENT, rows, n,
                     f"{n:,} tokens but token_embd.weight has {rows:,} rows: llama.cpp will refuse to load it "
                     "(check_tensor_dims: wrong shape)")
    head = cand.tensors.get(LM_HEAD)
    if head is not None and len(head.shape) == 2 and head.shape[0] != n:
        return _fail("token count", FieldStatus.DIFFERENT, n, head.shape[0],
                     f"output.weight has {head.shape[0]:,} rows for {n:,} tokens: llama.cpp will refuse to load it")
    return _ok("token count", rows, n, "one token per embedding row")


def tokenizer_types(m: Model) -> tuple[int, ...]:
    """The GGUF token types a side states (GGUF) or implies (an HF dir's tokenizer.json: its added tokens)."""
    info = m.tokenizer
    assert info is not None
    if m.format == "gguf" or info.token_types:
        return tuple(info.token_types)
    root = m.path if m.path.is_dir() else m.path.parent
    if m.format != "safetensors" or not (root / "tokenizer.json").is_file():
        return ()
    return hf_token_types(read_json(root / "tokenizer.json", CAP_TOKENIZER, "tokenizer.json"), len(info.tokens))


def _control_field(ref: Model, tok: TokenizerInfo) -> FieldDiff:
    """Against an HF tokenizer that is not byte-level BPE, only CONTROL is comparable: tokenizer.json marks its
    special added tokens, llama.cpp matches CONTROL tokens whole (its BYTE/UNUSED types have no HF spelling)."""
    want = {i for i, t in enumerate(tokenizer_types(ref)) if t == TokenType.CONTROL}
    got = {i for i, t in enumerate(tok.token_types) if t == TokenType.CONTROL}
    if not want:
        return _ok("token types", None, len(tok.token_types), "no reference types to compare with")
    if want == got:
        return _ok("token types", len(want), len(got), f"the same {len(want):,} control tokens")
    lost, extra = sorted(want - got), sorted(got - want)
    i = (lost or extra)[0]
    return _fail("token types", FieldStatus.DIFFERENT, len(want), len(got),
                 f"{len(lost):,} of the reference's control tokens are not CONTROL in the GGUF, {len(extra):,} other "
                 f"tokens are (first: id {i} {tok.tokens[i] if i < len(tok.tokens) else None!r}): llama.cpp will "
                 "not match those tokens whole as the reference does")


def _types_field(ref: Model, tok: TokenizerInfo, facts: HFFacts | None) -> FieldDiff:
    got = tok.token_types
    n = len(tok.tokens)
    if not got:
        return _fail("token types", FieldStatus.MISSING, None, 0,
                     "no tokenizer.ggml.token_type: llama.cpp will treat every token as normal, so control "
                     "tokens in text (e.g. chat markers) are split into pieces instead of matched whole")
    if len(got) != n:
        return _fail("token types", FieldStatus.DIFFERENT, n, len(got),
                     f"{len(got):,} token types for {n:,} tokens: llama.cpp will refuse to load it")
    if facts is not None:
        expected = padded(replace(ref.tokenizer, token_types=facts.token_types), n).token_types \
            if ref.tokenizer is not None and len(facts.token_types) <= n else facts.token_types
    elif ref.format == "gguf" and ref.tokenizer is not None and ref.tokenizer.token_types:
        expected = ref.tokenizer.token_types
    elif ref.format == "safetensors" and ref.tokenizer is not None:
        return _control_field(ref, tok)
    else:
        return _ok("token types", None, len(got), "no reference types to compare with")
    diff = [i for i in range(max(len(expected), n)) if (expected[i] if i < len(expected) else None)
            != (got[i] if i < n else None)]
    if diff:
        i = diff[0]
        want = TokenType(expected[i]).name if i < len(expected) and expected[i] in TokenType._value2member_map_ \
            else None
        have = TokenType(got[i]).name if got[i] in TokenType._value2member_map_ else got[i]
        return _fail("token types", FieldStatus.DIFFERENT, len(expected), n,
                     f"{len(diff):,} token types differ from the reference's (first: id {i} {tok.tokens[i]!r} "
                     f"is {have}, expected {want}): llama.cpp will not treat those tokens as the reference does")
    return _ok("token types", len(expected), n)


def _special_fields(tok: TokenizerInfo, facts: HFFacts | None) -> list[FieldDiff]:
    out: list[FieldDiff] = []
    n = len(tok.tokens)
    for name, i in (("bos", tok.bos_id), ("eos", tok.eos_id), ("pad", tok.pad_id), ("unk", tok.unk_id)):
        if i is not None and not 0 <= i < n:
            out.append(_fail(f"{name} id", FieldStatus.DIFFERENT, None, i,
                             f"{name} id {i} is outside the {n:,} tokens: llama.cpp will ignore it "
                             "('bad special token')"))
    if tok.model_type == "gpt2" and tok.eos_id is None:
        out.append(_fail("eos id", FieldStatus.MISSING, None, None,
                         f"no tokenizer.ggml.eos_token_id: llama.cpp will use id {_DEFAULT_BPE_EOS} "
                         f"({tok.tokens[_DEFAULT_BPE_EOS] if _DEFAULT_BPE_EOS < n else 'out of range'!r}) as EOS"))
    if facts is not None and tok.model_type == "gpt2":
        try:
            default_bos = lookup(tok.pre).kind in _ADD_BOS_KINDS if tok.pre else False
        except PreTokenizerError:
            default_bos = False
        for name, want, have, default in (("add_bos", facts.add_bos, tok.add_bos, default_bos),
                                          ("add_eos", facts.add_eos, tok.add_eos, False)):
            effective = default if have is None else have
            if effective != want:
                what = "prepend BOS" if name == "add_bos" else "append EOS"
                out.append(_fail(name, FieldStatus.DIFFERENT, want, have,
                                 f"llama.cpp will {'' if effective else 'not '}{what} when tokenizing, the "
                                 f"reference tokenizer does {'' if want else 'not'}".rstrip()))
    return out


def _scores_field(cand: Model, tok: TokenizerInfo) -> FieldDiff:
    """A SentencePiece vocabulary is merged by piece score: without scores llama.cpp scores every piece 0."""
    scores = cand.metadata.get("tokenizer.ggml.scores")
    n = len(tok.tokens)
    if scores is None:
        return _fail("scores", FieldStatus.MISSING, n, None,
                     "no tokenizer.ggml.scores: llama.cpp gives every piece score 0, so it merges pieces in another "
                     "order and the token ids change")
    if len(scores) != n:
        return _fail("scores", FieldStatus.DIFFERENT, n, len(scores),
                     f"{len(scores):,} scores for {n:,} tokens: llama.cpp will refuse to load it")
    return _ok("scores", n, len(scores), "one score per piece")


def consumer_fields(ref: Model, cand: Model) -> tuple[FieldDiff, ...]:
    """The llama.cpp reading checks of a GGUF candidate (empty for other formats or no tokenizer)."""
    tok = cand.tokenizer
    if cand.format != "gguf" or tok is None:
        return ()
    facts = _facts(ref)
    out: list[FieldDiff] = []
    if tok.model_type == "gpt2":
        out.append(_pre_field(ref, tok, facts))
    if tok.model_type == "llama":
        out.append(_scores_field(cand, tok))
    rows = _rows_field(cand, tok)
    if rows is not None:
        out.append(rows)
    out.append(_types_field(ref, tok, facts))
    out += _special_fields(tok, facts)
    return tuple(out)


def reconcile_padding(section: SectionDiff, ref: Model, cand: Model) -> SectionDiff:
    """Accept vocabularies that differ only by ``[PAD{id}]`` tokens up to one side's embedding rows."""
    a, b = ref.tokenizer, cand.tokenizer
    if a is None or b is None or len(a.tokens) == len(b.tokens):
        return section
    short, (long_model, long) = (a, (cand, b)) if len(a.tokens) < len(b.tokens) else (b, (ref, a))
    n = len(short.tokens)
    if _rows(long_model) != len(long.tokens) or tuple(long.tokens[:n]) != tuple(short.tokens) \
            or any(t != pad_token(i) for i, t in enumerate(long.tokens[n:], start=n)):
        return section
    side = "candidate" if long is b else "reference"
    fields = tuple(
        FieldDiff(f.field, FieldStatus.MATCH, f.reference, f.candidate,
                  f"the {side} adds {len(long.tokens) - n:,} [PAD{{id}}] tokens up to the embedding's "
                  f"{len(long.tokens):,} rows, as llama.cpp's converter does")
        if f.field == "vocabulary" else f for f in section.fields)
    return replace(section, fields=fields)


def reconcile_pre(section: SectionDiff, ref: Model, cand: Model) -> SectionDiff:
    """An HF tokenizer states no ``pre`` name, its tokenizer.json split rules are one: compare those."""
    out = []
    for f in section.fields:
        if f.field == "pre" and f.status in (FieldStatus.MISSING, FieldStatus.EXTRA):
            hf_side, named = (cand, f.reference) if f.status == FieldStatus.MISSING else (ref, f.candidate)
            pre = _hf_pre(hf_side)
            if pre is not None:
                try:
                    same = same_splits(pre.name, named)
                except PreTokenizerError:
                    same = False
                note = f"the {hf_side.format} tokenizer.json splits as {pre.name!r} ({pre.how})"
                f = FieldDiff("pre", FieldStatus.MATCH if same else FieldStatus.DIFFERENT,
                              f.reference or pre.name, f.candidate or pre.name, note)
        out.append(f)
    return replace(section, fields=tuple(out))
