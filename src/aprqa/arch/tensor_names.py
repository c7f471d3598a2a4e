"""Tensor names per architecture, derived from gguf-py's tables (never written by hand here).

The tables come through ``gguf_tables`` (a snapshot of gguf-py's, or gguf-py itself when
the installed version differs), so reading a model's names does not import gguf-py.

gguf-py's ``TensorNameMap`` lists, for every GGUF tensor kind (``blk.{bid}.attn_q``), the
Hugging Face names that converters know for it, across all architectures, and
``MODEL_TENSORS[arch]`` says which kinds an architecture has. From those two tables this
module builds, per architecture:

* HF name -> GGUF name (exactly what ``gguf.get_tensor_name_map(arch, n).get_name`` answers;
  a test checks the two agree for every architecture gguf-py knows), and
* GGUF name -> one canonical HF name. gguf-py lists several HF spellings for most kinds
  (``model.embed_tokens``, ``transformer.wte``, ...); for a listed family (``arch.families``)
  the canonical one is its chosen spelling, else the first listed that starts with one of its
  HF prefixes, else the GGUF name itself (a GGUF-only tensor such as ``rope_freqs``); for any
  other architecture, the first spelling gguf-py lists.

Names are templates with ``{bid}`` for the block; concrete names are matched by trying each
run of digits as the block number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .gguf_tables import tables

# Parameter suffixes llama.cpp keeps on tensor names (gguf-py maps the stem).
_SUFFIXES = ("weight", "bias", "scale")
_INT_RUN = re.compile(r"\d+")


@dataclass(frozen=True)
class TensorNames:
    """The HF <-> GGUF tensor-name tables of one GGUF architecture."""

    arch: str
    hf_to_kind: dict[str, str]  # HF template -> tensor kind (gguf-py's MODEL_TENSOR name)
    kind_to_gguf: dict[str, str]  # tensor kind -> GGUF template
    gguf_to_kind: dict[str, str]
    kind_to_hf: dict[str, str]  # tensor kind -> canonical HF template

    def to_gguf(self, name: str) -> str | None:
        """GGUF name of an HF (or GGUF) tensor name, None when no table knows it."""
        found = _lookup(name, self.hf_to_kind) or _lookup(name, self.gguf_to_kind)
        if found is None:
            return None
        kind, bid, suffix = found
        return _fill(self.kind_to_gguf[kind], bid) + suffix

    def is_hf(self, name: str) -> bool:
        """Whether ``name`` is one of the HF spellings gguf-py knows for this architecture."""
        return _lookup(name, self.hf_to_kind) is not None

    def to_hf(self, name: str) -> str | None:
        """Canonical HF name of a GGUF (or HF) tensor name, None when no table knows it."""
        found = _lookup(name, self.gguf_to_kind) or _lookup(name, self.hf_to_kind)
        if found is None:
            return None
        kind, bid, suffix = found
        hf = self.kind_to_hf.get(kind)
        if hf is None:  # a GGUF-only tensor (e.g. rope_freqs): its GGUF name is its name
            hf = self.kind_to_gguf[kind]
        return _fill(hf, bid) + suffix


def _fill(template: str, bid: str | None) -> str:
    return template.replace("{bid}", bid) if bid is not None else template


def _lookup(name: str, table: dict[str, str]) -> tuple[str, str | None, str] | None:
    """(kind, block number, suffix) of a concrete name in a template table."""
    stems = [(name, "")]
    head, dot, tail = name.rpartition(".")
    if dot and tail in _SUFFIXES:
        stems.append((head, "." + tail))
    for stem, suffix in stems:
        kind = table.get(stem)
        if kind is not None and "{bid}" not in stem:
            return kind, None, suffix
        for m in _INT_RUN.finditer(stem):
            template = stem[:m.start()] + "{bid}" + stem[m.end():]
            kind = table.get(template)
            if kind is not None:
                return kind, m.group(0), suffix
    return None


def known_archs() -> tuple[str, ...]:
    """Every architecture name gguf-py knows."""
    return tables().arch_names


@lru_cache(maxsize=None)
def tensor_names(arch: str, hf_prefixes: tuple[str, ...] = (),
                 hf_names: tuple[tuple[str, str], ...] = ()) -> TensorNames | None:
    """The tables of GGUF architecture ``arch`` (None when gguf-py does not know it)."""
    t = tables()
    if arch not in t.model_tensors:
        return None
    kinds = set(t.model_tensors[arch])
    # Same order and overriding as TensorNameMap.__init__: global keys, then block keys
    # (with the architecture's own overrides); a key listed for two kinds keeps the last.
    block_cfg = dict(t.block_mappings)
    block_cfg.update(t.arch_block_mappings.get(arch, {}))
    hf_to_kind: dict[str, str] = {}
    for cfg in (t.mappings, block_cfg):
        for kind, keys in cfg.items():
            if kind in kinds:
                for key in keys:
                    hf_to_kind[key] = kind
    kind_to_gguf = {k: t.tensor_names[k] for k in t.model_tensors[arch]}
    gguf_to_kind: dict[str, str] = {}
    for kind, template in kind_to_gguf.items():  # two kinds can share a template: the first listed wins
        gguf_to_kind.setdefault(template, kind)
    candidates: dict[str, list[str]] = {}  # in gguf-py's listing order per kind
    for cfg in (t.mappings, block_cfg):
        for kind, keys in cfg.items():
            for key in keys:
                if hf_to_kind.get(key) == kind:
                    candidates.setdefault(kind, []).append(key)
    chosen = dict(hf_names)
    kind_to_hf: dict[str, str] = {}
    for kind, keys in candidates.items():
        pick = chosen.get(kind_to_gguf[kind])
        if pick not in keys:
            pick = next((k for p in hf_prefixes for k in keys if k.startswith(p)), None)
        if pick is None and not hf_prefixes:
            pick = keys[0]
        if pick is not None:
            kind_to_hf[kind] = pick
    return TensorNames(arch, hf_to_kind, kind_to_gguf, gguf_to_kind, kind_to_hf)
