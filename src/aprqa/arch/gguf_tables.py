"""gguf-py's naming tables, read without importing gguf-py when a snapshot of them matches.

The registry's tensor names and GGUF KV keys come from gguf-py (``TensorNameMap``'s
mapping tables, ``MODEL_TENSORS``, ``TENSOR_NAMES``, ``Keys``), and so does what the GGUF
writer can lay out (``GGML_QUANT_SIZES``). Importing gguf-py costs
about as much CPU as numpy does, which `aprqa inspect` would pay on every start. So the
tables of one gguf-py version ship as ``gguf_tables.json`` (``scripts/gen_gguf_tables.py``
writes it from the installed gguf-py): they are used only when the installed gguf-py is
that version (read from its dist-info, without importing it); any other version is read
live. Either way the facts are gguf-py's, never written by hand here; a test checks the
snapshot against the live tables.

Tensor kinds are gguf-py's ``MODEL_TENSOR`` member names (``"ATTN_Q"``): GGUF templates are
not unique per kind (two kinds share one), so they cannot be the key.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).with_name("gguf_tables.json")


@dataclass(frozen=True)
class GGUFTables:
    """The parts of gguf-py the registry reads, as plain data (dicts keep gguf-py's order)."""

    version: str
    arch_names: tuple[str, ...]  # every architecture, in MODEL_ARCH order
    tensor_names: dict[str, str]  # kind -> GGUF name template ("blk.{bid}.attn_q")
    mappings: dict[str, tuple[str, ...]]  # kind -> HF spellings (TensorNameMap.mappings_cfg)
    block_mappings: dict[str, tuple[str, ...]]  # the same for per-block kinds (block_mappings_cfg)
    arch_block_mappings: dict[str, dict[str, tuple[str, ...]]]  # arch -> its overrides
    model_tensors: dict[str, tuple[str, ...]]  # arch -> the kinds it has
    keys: dict[str, str]  # "LLM.CONTEXT_LENGTH" -> "{arch}.context_length" (gguf.Keys)
    quant_sizes: dict[int, tuple[int, int]]  # GGML type id -> (block elements, block bytes) (GGML_QUANT_SIZES)

    def key(self, name: str) -> str:
        """A ``gguf.Keys`` template by its dotted attribute path (``"Attention.HEAD_COUNT"``)."""
        return self.keys[name]

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "arch_names": list(self.arch_names), "tensor_names": self.tensor_names,
                "mappings": _lists(self.mappings), "block_mappings": _lists(self.block_mappings),
                "arch_block_mappings": {a: _lists(m) for a, m in self.arch_block_mappings.items()},
                "model_tensors": _lists(self.model_tensors), "keys": self.keys,
                "quant_sizes": {str(k): list(v) for k, v in self.quant_sizes.items()}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "GGUFTables":
        return cls(version=d["version"], arch_names=tuple(d["arch_names"]), tensor_names=dict(d["tensor_names"]),
                   mappings=_tuples(d["mappings"]), block_mappings=_tuples(d["block_mappings"]),
                   arch_block_mappings={a: _tuples(m) for a, m in d["arch_block_mappings"].items()},
                   model_tensors=_tuples(d["model_tensors"]), keys=dict(d["keys"]),
                   quant_sizes={int(k): (int(v[0]), int(v[1])) for k, v in d["quant_sizes"].items()})


def _lists(m: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
    return {k: list(v) for k, v in m.items()}


def _tuples(m: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    return {k: tuple(v) for k, v in m.items()}


def installed_version() -> str | None:
    """The installed gguf-py's version from its dist-info directory name (gguf-py is not imported)."""
    spec = importlib.util.find_spec("gguf")
    if spec is None or spec.origin is None:
        return None
    site = Path(spec.origin).parent.parent
    found = sorted(site.glob("gguf-*.dist-info"))
    if len(found) != 1:  # none, or leftovers of several installs: cannot tell which is live
        return None
    return found[0].name[len("gguf-"):-len(".dist-info")]


def live() -> GGUFTables:
    """The tables read from the installed gguf-py."""
    import gguf  # deliberate: the slow path, only when the snapshot does not match

    names = gguf.MODEL_ARCH_NAMES
    m = gguf.TensorNameMap

    def kinds(cfg: Any) -> dict[str, tuple[str, ...]]:
        return {k.name: tuple(v) for k, v in cfg.items()}

    keys: dict[str, str] = {}
    for group in vars(gguf.Keys).values():
        if isinstance(group, type):
            for attr, value in vars(group).items():
                if isinstance(value, str) and not attr.startswith("_"):
                    keys[f"{group.__name__}.{attr}"] = value
    return GGUFTables(
        version=installed_version() or "unknown",
        arch_names=tuple(names[a] for a in gguf.MODEL_ARCH),
        tensor_names={k.name: v for k, v in gguf.TENSOR_NAMES.items()},
        mappings=kinds(m.mappings_cfg), block_mappings=kinds(m.block_mappings_cfg),
        arch_block_mappings={names[a]: kinds(c) for a, c in m.arch_block_mappings_cfg.items()},
        model_tensors={names[a]: tuple(k.name for k in v) for a, v in gguf.MODEL_TENSORS.items()},
        keys=keys,
        quant_sizes={int(q): (int(n), int(b)) for q, (n, b) in gguf.GGML_QUANT_SIZES.items()})


def snapshot() -> GGUFTables:
    """The shipped snapshot (whatever gguf-py is installed)."""
    return GGUFTables.from_json(json.loads(SNAPSHOT.read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def tables() -> GGUFTables:
    """gguf-py's tables: the snapshot when it was taken from the installed version, else live."""
    if SNAPSHOT.is_file():
        snap = snapshot()
        if snap.version == installed_version():
            return snap
    return live()
