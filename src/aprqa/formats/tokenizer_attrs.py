"""What llama.cpp's vocabulary loader does to a GGUF's token types before it tokenizes (pinned llama.cpp,
``llama_vocab::impl::load``), so that aprqa's rebuilt tokenizers match it on the same file.

* Tokens matched whole in the raw text (before any splitting): CONTROL, USER_DEFINED and UNKNOWN ones.
* Tokens spelled like an end-of-generation / end-of-turn marker (``<end_of_turn>``, ``<|end|>``, ``<|im_end|>``,
  ``</s>``...) are made CONTROL whatever the file says ("control-looking token ... was not control-type"), and so
  are the fill-in-the-middle spellings of a role whose id the file does not state. gpt-oss's channel markers
  become USER_DEFINED; with both ``<|return|>`` and ``<|call|>`` (or ``<|calls|>`` and ``<|flush|>``)
  ``<|end|>`` does too; with ``<|tool_response>`` or ``<|plamo:eos|>`` a ``</s>`` is NORMAL.
* Per-token strip flags the file cannot carry, by model name: when ``general.name`` (lowercased) contains
  ``phi-3`` or ``phi3`` every whole-matched token and ``</s>`` swallow the whitespace after them (rstrip), but
  ``<unk>``, ``<s>`` and ``<|endoftext|>``; the jina-v2 de/es/code vocabularies' (and the nomic-bert-moe /
  jina-bert-v3 architectures') ``<mask>`` and a modern-bert's ``[MASK]`` swallow the whitespace before them
  (lstrip).

llama.cpp scans its vocabulary map in an unspecified order and takes the first fill-in-the-middle spelling it
meets; a vocabulary with two spellings of one role gets both made CONTROL here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

UNKNOWN, NORMAL, CONTROL, UNUSED, USER_DEFINED = 2, 1, 3, 5, 4
WHOLE = frozenset({UNKNOWN, CONTROL, USER_DEFINED})  # matched whole in the raw text

_EOG = frozenset({
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
    "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
    "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>", "<｜end▁of▁sentence｜>", "[e~[",
})
# fill-in-the-middle roles: the key that states the id (a deprecated one too), and the spellings llama.cpp looks for
_FIM: tuple[tuple[tuple[str, ...], frozenset[str]], ...] = (
    (("fim_pre_token_id", "prefix_token_id"), frozenset({
        "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>",
        "<|prefix|>"})),
    (("fim_suf_token_id", "suffix_token_id"), frozenset({
        "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>",
        "<|suffix|>"})),
    (("fim_mid_token_id", "middle_token_id"), frozenset({
        "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>",
        "<|middle|>"})),
    (("fim_pad_token_id",), frozenset({"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"})),
    (("fim_rep_token_id",), frozenset({"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"})),
    (("fim_sep_token_id",), frozenset({"<|file_sep|>"})),
)
_USER_DEFINED_ALWAYS = frozenset({"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"})


@dataclass(frozen=True)
class LoadedTypes:
    """Token types as llama.cpp holds them after loading, and the strip flags it gives by model name."""

    types: tuple[int, ...]
    rstrip: frozenset[int]
    lstrip: frozenset[int]

    def whole(self) -> list[int]:
        """Ids llama.cpp matches whole in the raw text."""
        return [i for i, k in enumerate(self.types) if k in WHOLE]


def loaded_types(tokens: Sequence[str], types: Sequence[int], metadata: dict[str, Any]) -> LoadedTypes:
    """``types`` (GGUF tokenizer.ggml.token_type) as llama.cpp's loader leaves them, with its strip flags."""
    out = list(types)
    ids = {t: i for i, t in enumerate(tokens)}
    forced = {ids[t] for t in _EOG if t in ids}
    for keys, spellings in _FIM:
        if not any(isinstance(metadata.get(f"tokenizer.ggml.{k}"), int) for k in keys):
            forced |= {ids[t] for t in spellings if t in ids}
    for i in forced:
        out[i] = CONTROL
    for t in _USER_DEFINED_ALWAYS & ids.keys():
        out[ids[t]] = USER_DEFINED
    has = ids.keys()
    if "<|end|>" in has and (({"<|return|>", "<|call|>"} <= has) or ({"<|calls|>", "<|flush|>"} <= has)):
        out[ids["<|end|>"]] = USER_DEFINED
    if "</s>" in has and ("<|tool_response>" in has or "<|plamo:eos|>" in has):
        out[ids["</s>"]] = NORMAL
    rstrip: set[int] = set()
    lstrip: set[int] = set()
    name = metadata.get("general.name")
    name = name.lower() if isinstance(name, str) else ""
    pre = metadata.get("tokenizer.ggml.pre")
    pre = pre if isinstance(pre, str) else ""
    arch = metadata.get("general.architecture")
    arch = arch if isinstance(arch, str) else ""
    if any(s in pre for s in ("jina-v2-de", "jina-v2-es", "jina-v2-code")) or \
            any(s in arch for s in ("nomic-bert-moe", "jina-bert-v3")):
        lstrip |= {ids[t] for t in ("<mask>",) if t in has}
    elif "phi-3" in name or "phi3" in name:
        rstrip = {i for i, k in enumerate(out) if k in WHOLE}
        rstrip |= {ids[t] for t in ("</s>",) if t in has}
        rstrip -= {ids[t] for t in ("<unk>", "<s>", "<|endoftext|>") if t in has}
    elif "modern-bert" in name:
        lstrip |= {ids[t] for t in ("[MASK]",) if t in has}
    return LoadedTypes(tuple(out), frozenset(rstrip), frozenset(lstrip))
