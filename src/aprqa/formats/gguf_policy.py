"""Which source tensors llama.cpp's converter leaves out of a GGUF, and which it always keeps in F32.

Facts of the pinned converter (``conversion/``): BERT drops ``embeddings.position_ids`` (an int64
buffer), the pooler and the masked-LM / next-sentence heads (llama.cpp embeds without them); every
converter keeps in F32 the 1-D tensors, ``*_norm.weight``, anything not named ``.weight``, and the
position and token-type embeddings (``position_embd``, ``token_types``), whatever the output type.
The writer-side copy of these facts; the compare side reads them from the same names.
"""

from __future__ import annotations

_SKIPPED = {
    "bert": (("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"),
             ("cls.predictions", "cls.seq_relationship")),
}
_F32_STEMS = ("position_embd.", "token_types.")


def skipped(canonical: str, arch: str | None) -> bool:
    """Whether llama.cpp's converter writes no tensor for this source tensor."""
    names, prefixes = _SKIPPED.get(arch or "", ((), ()))
    name = canonical[5:] if canonical.startswith("bert.") else canonical
    return name in names or name.startswith(prefixes)


def keeps_f32(gguf_name: str, n_dims: int) -> bool:
    """Whether the converter stores this GGUF tensor as F32 whatever the requested type."""
    return (n_dims <= 1 or gguf_name.endswith("_norm.weight") or not gguf_name.endswith(".weight")
            or gguf_name.startswith(_F32_STEMS))
