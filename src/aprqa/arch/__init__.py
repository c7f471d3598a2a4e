"""The architecture registry: the one place that knows model families.

* ``families``: per family, GGUF arch name, transformers model_type and class, the
  transforms llama.cpp's converter applies, and the facts a forward pass needs;
* ``tensor_names``: HF <-> GGUF tensor names for every architecture gguf-py knows;
* ``config_keys``: GGUF KV <-> ArchConfig <-> config.json.

Canonical tensor names are Hugging Face names (``model.layers.0.self_attn.q_proj.weight``);
readers map stored names to them with ``canonical_name``, writers back with ``gguf_name``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .families import (FAMILIES, NORM_OFFSET, ROPE_PERMUTE, ArchSpec, ForwardFacts, arch_name, family,
                       windowed_layers)
from .rope import inverse_permutation, permute_rope_rows, rope_heads, rope_row_permutation, unpermute_rope_rows
from .tensor_names import TensorNames, known_archs, tensor_names

__all__ = ["ArchSpec", "FAMILIES", "ForwardFacts", "NORM_OFFSET", "ROPE_PERMUTE", "TensorNames",
           "arch_name", "canonical_name", "family", "gguf_name", "inverse_permutation", "known_archs",
           "layer_count", "layer_index", "names_for", "norm_offset", "permute_rope_rows", "rope_heads",
           "rope_permuted", "rope_row_permutation", "stored_transforms", "unpermute_rope_rows", "windowed_layers"]

_DEFAULT_ARCH = "llama"  # names of a model that states no architecture
_HF_BLOCK_RE = re.compile(r"^(?:model\.layers|encoder\.layer|model\.language_model\.layers)\.(\d+)\.")
_GGUF_BLOCK_RE = re.compile(r"^blk\.(\d+)\.")
_QK_RE = re.compile(r"\.self_attn\.(q|k)_proj\.(weight|bias)$")


def names_for(arch: str | None) -> TensorNames:
    """The tensor-name tables for an architecture (GGUF arch or model_type); llama's when unknown."""
    spec = family(arch or _DEFAULT_ARCH)
    if spec is not None:
        found = tensor_names(spec.tensor_arch, spec.hf_prefixes, spec.hf_names)
    else:
        found = tensor_names(arch or _DEFAULT_ARCH)
    if found is None:
        llama = FAMILIES[_DEFAULT_ARCH]
        found = tensor_names(_DEFAULT_ARCH, llama.hf_prefixes, llama.hf_names)
    assert found is not None  # gguf-py always knows llama
    return found


def canonical_name(source_name: str, arch: str | None = None) -> tuple[str, bool]:
    """Map a stored tensor name (GGUF or HF scheme) to ``(canonical, known)``.

    An unknown name is returned unchanged with ``known=False``: it is flagged, never dropped.
    Without an architecture (a bare weights file) HF names are kept as spelled: other
    families' spellings would otherwise be renamed into llama's.
    """
    names = names_for(arch)
    if arch is None and not source_name.startswith("blk.") and names.is_hf(source_name):
        return source_name, True
    hf = names.to_hf(source_name)
    return (hf, True) if hf is not None else (source_name, False)


def gguf_name(canonical: str, arch: str | None = None) -> str:
    """GGUF name of a canonical tensor name (unknown names pass through unchanged)."""
    return names_for(arch).to_gguf(canonical) or canonical


def layer_index(canonical: str) -> int | None:
    """Block index of a canonical (or GGUF) name, or None for global tensors."""
    m = _HF_BLOCK_RE.match(canonical) or _GGUF_BLOCK_RE.match(canonical)
    return int(m.group(1)) if m else None


def layer_count(stated: int | None, names: Iterable[str]) -> int | None:
    """A model's transformer block count: the config's when stated, else the highest block index
    among the tensor names + 1 (None: the config states none and no tensor is in a block)."""
    if stated is not None:
        return stated
    blocks = [i for i in map(layer_index, names) if i is not None]
    return max(blocks) + 1 if blocks else None


def rope_permuted(canonical: str, architecture: str | None, fmt: str) -> bool:
    """Whether llama.cpp stores this tensor with the Q/K RoPE row permutation (in a GGUF)."""
    spec = family(architecture)
    if fmt != "gguf" or spec is None or not spec.rope_permuted:
        return False
    return bool(_QK_RE.search(canonical))


def norm_offset(canonical: str, architecture: str | None, fmt: str) -> float:
    """What llama.cpp added to this tensor's values in a GGUF (gemma norms: 1.0), else 0.0."""
    spec = family(architecture)
    if fmt != "gguf" or spec is None or not spec.norm_offset:
        return 0.0
    return spec.norm_offset if canonical.endswith("norm.weight") else 0.0


def stored_transforms(canonical: str, architecture: str | None, fmt: str) -> tuple[str, ...]:
    """Names of the transforms a file of format ``fmt`` stores this tensor with."""
    out = []
    if rope_permuted(canonical, architecture, fmt):
        out.append(ROPE_PERMUTE)
    if norm_offset(canonical, architecture, fmt):
        out.append(NORM_OFFSET)
    return tuple(out)
