"""Tokenizers for the forward pass, and a tokenizer comparison.

* HF directories: ``tokenizers.Tokenizer.from_file(tokenizer.json)`` — the reference.
* GGUF / APR: an equivalent byte-level BPE is rebuilt from ``TokenizerInfo`` (tokens +
  merges, GGUF type "gpt2"), split the way llama.cpp splits for its ``tokenizer.ggml.pre``
  (``aprqa.pretokenize.splits``: every name llama.cpp knows; none means llama.cpp's "default").
  SentencePiece ("llama") vocabularies are rebuilt from tokens, scores and types
  (``formats.tokenizer_spm``), WordPiece ("bert") from llama.cpp's phantom-space spelling
  (``formats.tokenizer_wpm``), each with llama.cpp's BOS/SEP defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


from ..errors import UsageError
from ..formats.model import Model
from ..formats.tokenizer_bpe import rebuild_bpe
from ..formats.tokenizer_spm import byte_spelling, rebuild_spm
from ..formats.tokenizer_wpm import rebuild_wpm
from ..formats.tokenizer_wpm import text_map as wpm_text_map
from ..fsio import CAP_TOKENIZER, parse_json, read_bounded
from ..pretokenize.guard import load_tokenizer_json
from ..formats.apr_tokenizer import gguf_tokenizer_kv



@dataclass(frozen=True)
class TokenizerMismatch:
    """Where two tokenizers first disagree on one text (reference vs candidate)."""

    position: int
    reference_id: int | None
    candidate_id: int | None
    reference_token: str | None
    candidate_token: str | None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class TokenizerComparison:
    """Result of tokenizing one text with both models' tokenizers. Truthy when the ids agree."""

    text: str
    reference_ids: tuple[int, ...]
    candidate_ids: tuple[int, ...]
    mismatch: TokenizerMismatch | None

    @property
    def passed(self) -> bool:
        return self.mismatch is None and len(self.reference_ids) > 0

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "text": self.text, "reference_ids": list(self.reference_ids),
                "candidate_ids": list(self.candidate_ids),
                "mismatch": self.mismatch.to_dict() if self.mismatch else None}


class Tokenizer:
    """A loaded tokenizer: ``encode(text) -> list[int]``, ``decode(ids) -> str``, ``token(id)``."""

    def __init__(self, backend: Any, add_bos_id: int | None = None, source: str = "",
                 add_end_id: int | None = None, always_bos: bool = False,
                 respell: dict[int, list[int]] | None = None, post_process: bool = False,
                 text_map: dict[int, int] | None = None) -> None:
        self._tok = backend
        self.text_map = text_map  # per-character mapping applied first (llama.cpp's one-for-one WordPiece NFD)
        self.post_process = post_process  # run the backend's own post-processor (an HF tokenizer.json's BOS/CLS)
        self.respell = respell or {}  # backend-only ids -> the model's ids (SPM lone characters as bytes)
        self.add_bos_id = add_bos_id
        self.always_bos = always_bos  # llama.cpp adds BOS even before a text's own BOS / [CLS]
        self.add_end_id = add_end_id  # appended after the text (a WordPiece [SEP])
        self.source = source

    def encode(self, text: str) -> list[int]:
        if self.text_map:
            text = text.translate(self.text_map)
        ids = list(self._tok.encode(text, add_special_tokens=self.post_process).ids)
        if self.respell:
            ids = [j for i in ids for j in self.respell.get(i, (i,))]
        if self.add_bos_id is not None and (self.always_bos or not ids or ids[0] != self.add_bos_id):
            ids.insert(0, self.add_bos_id)
        if self.add_end_id is not None:
            ids.append(self.add_end_id)
        return ids

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def token(self, i: int) -> str | None:
        return self._tok.id_to_token(int(i))


def _hf_tokenizer_file(model: Model) -> Path | None:
    if model.format != "safetensors":
        return None
    root = model.path if model.path.is_dir() else model.path.parent
    p = root / "tokenizer.json"
    return p if p.is_file() else None


# tokenizer.ggml.pre names of llama.cpp's gemma4 type: it adds BOS whatever tokenizer.ggml.add_bos_token says.
_BOS_ALWAYS = frozenset({"gemma4", "granite-embed-multi-311m"})


def load_tokenizer(model: Model) -> Tokenizer:
    """The model's tokenizer: its tokenizer.json (HF) or a rebuild from ``model.tokenizer``.

    Raises:
        UsageError: the model carries no tokenizer, or one that cannot be rebuilt.
    """
    path = _hf_tokenizer_file(model)
    if path is not None:
        text = read_bounded(path, CAP_TOKENIZER, path.name).decode("utf-8", errors="replace")  # bounded, no FIFO
        # regexes refused or run under a time budget per text
        backend = load_tokenizer_json(text, parse_json(text, path, path.name), path)
        # transformers encodes one text with the file's post-processor (Gemma's <bos>, BERT's [CLS] ... [SEP])
        # and without the padding/truncation a tokenizer.json may store (it sets those per call)
        backend.no_padding()
        backend.no_truncation()
        return Tokenizer(backend, source=str(path), post_process=True)
    info = model.tokenizer
    if info is None or not info.tokens:
        raise UsageError(f"{model.path}: the model carries no tokenizer; give token ids instead of text")
    # llama.cpp adds BOS when the file asks, even before a text that starts with it (two BOS ids)
    bos = info.bos_id if info.add_bos else None
    if info.model_type == "llama":  # SentencePiece: its own module; llama.cpp adds BOS unless the file says not
        bos = info.bos_id if info.add_bos is not False else None
        backend = rebuild_spm(model, lone=True)
        return Tokenizer(backend, add_bos_id=bos, source=f"{model.path} (SentencePiece rebuilt)",
                         respell=byte_spelling(model, backend), always_bos=True)
    if info.model_type == "bert":  # WordPiece: llama.cpp wraps the text in its BOS ([CLS]) and SEP ids
        sep = gguf_tokenizer_kv(model).get("tokenizer.ggml.seperator_token_id")
        return Tokenizer(rebuild_wpm(model), add_bos_id=info.bos_id, source=f"{model.path} (WordPiece rebuilt)",
                         add_end_id=sep if isinstance(sep, int) and not isinstance(sep, bool) else None,
                         always_bos=True, text_map=wpm_text_map(model))
    if info.pre in _BOS_ALWAYS:  # llama.cpp overrides add_bos=false for these vocabularies
        bos = info.bos_id
    return Tokenizer(rebuild_bpe(info, gguf_tokenizer_kv(model)), add_bos_id=bos, always_bos=True,
                     source=f"{model.path} ({info.model_type} rebuilt)")


def compare_tokenizers(reference: Tokenizer, candidate: Tokenizer, text: str) -> TokenizerComparison:
    """Tokenize ``text`` with both; report the first differing position (or length difference)."""
    a, b = reference.encode(text), candidate.encode(text)
    mismatch = None
    for i in range(max(len(a), len(b))):
        ra = a[i] if i < len(a) else None
        cb = b[i] if i < len(b) else None
        if ra != cb:
            mismatch = TokenizerMismatch(i, ra, cb, reference.token(ra) if ra is not None else None,
                                         candidate.token(cb) if cb is not None else None)
            break
    return TokenizerComparison(text, tuple(a), tuple(b), mismatch)
