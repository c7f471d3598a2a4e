"""What llama.cpp's converter deliberately drops or adds, per architecture: expected differences, never faults.

``convert_hf_to_gguf.py`` leaves out tensors llama.cpp never reads and generates tensors transformers computes on
the fly. Comparing an HF directory with a GGUF of it, such a tensor is only on one side by design; compare reports
it as EXPECTED with the reason below (a tensor of another name, or the same tensor in an HF-to-HF comparison,
is still MISSING/EXTRA). Facts from the pinned converter (vendor/llama.cpp/conversion/*.py of llama-cpp-python
0.3.36): ``BertModel.filter_tensors``, the base model's skip list, ``LlamaModel.generate_extra_tensors``,
``Gemma*Model.filter_tensors``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from .families import family


@dataclass(frozen=True)
class Convention:
    """One deliberate difference: tensors matching ``pattern`` (canonical/HF or GGUF name, a glob) are
    ``dropped`` (only in the HF dir) or ``added`` (only in the GGUF), for ``reason``."""

    pattern: str
    kind: str  # "dropped" | "added"
    reason: str


_ANY = "*"  # every architecture
_BERT_ONLY_EMBEDDINGS = "llama.cpp runs BERT as an embedding model and never reads the pooler or the MLM/NSP heads"

CONVENTIONS: dict[str, tuple[Convention, ...]] = {
    _ANY: (
        Convention("*.rotary_emb.inv_freq", "dropped", "a RoPE frequency buffer transformers recomputes; llama.cpp "
                   "computes the frequencies from rope.freq_base"),
        Convention("*.attention.masked_bias", "dropped", "a constant attention-mask buffer"),
    ),
    "bert": (
        Convention("embeddings.position_ids", "dropped", "a non-persistent int64 buffer (0..n-1) transformers "
                   "keeps in older checkpoints; llama.cpp makes the positions itself"),
        Convention("pooler.dense.*", "dropped", _BERT_ONLY_EMBEDDINGS),
        Convention("cls.predictions.*", "dropped", _BERT_ONLY_EMBEDDINGS),
        Convention("cls.seq_relationship.*", "dropped", _BERT_ONLY_EMBEDDINGS),
    ),
    "llama": (
        Convention("rope_freqs.weight", "added", "llama3-style RoPE scaling: the converter writes the per-dimension "
                   "frequency factors transformers computes from rope_scaling"),
    ),
    "phi3": (
        Convention("rope_factors_long.weight", "added", "LongRoPE: the converter writes rope_scaling.long_factor "
                   "as a tensor"),
        Convention("rope_factors_short.weight", "added", "LongRoPE: the converter writes rope_scaling.short_factor "
                   "as a tensor"),
    ),
}


def expected_difference(name: str, source_name: str, architecture: str | None, side: str) -> Convention | None:
    """The convention that explains a tensor found only on one side, or None.

    Args:
        name: the tensor's canonical name; ``source_name``: as stored.
        architecture: GGUF arch or model_type of the comparison.
        side: "hf" (only in the HF dir: was it dropped?) or "gguf" (only in the GGUF: was it added?).
    """
    want = "dropped" if side == "hf" else "added"
    spec = family(architecture)
    arch = spec.arch if spec is not None else architecture
    for c in CONVENTIONS[_ANY] + CONVENTIONS.get(arch or "", ()):
        if c.kind == want and (fnmatch.fnmatchcase(name, c.pattern) or fnmatch.fnmatchcase(source_name, c.pattern)):
            return c
    return None
