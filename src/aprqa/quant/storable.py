"""What aprqa can write: the types each format stores and the types the native core quantizes.

One home for both facts, derived from where they are true rather than restated:

* ``STORABLE[fmt]``: each writer's ``WRITABLE`` (``formats/<fmt>.py``), so the converter, the
  playbook planner and the writers cannot disagree;
* ``storable_quant_names(fmt)``: the quantization names (``quant.mixes.QUANT_CHOICES``) whose nominal
  type (a mix's default type) the format stores — what the planner assumes an external converter
  can produce (the built-in converter is asked per tensor instead);
* ``quantizable`` / ``unquantizable_types``: whether ``aprqa.core.quantize`` has a quantizer for a
  type (the native core's answer; compare's diagnosis asks the same function).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .. import core
from .dtypes import DType
from ..formats import FORMATS, apr, gguf, safetensors
from .mixes import QUANT_CHOICES, mix_base

__all__ = ["STORABLE", "quantizable", "storable_types", "storable_quant_names", "unquantizable_types"]

_WRITERS = {"safetensors": safetensors, "gguf": gguf, "apr": apr}
STORABLE: Mapping[str, frozenset[DType]] = {fmt: _WRITERS[fmt].WRITABLE for fmt in FORMATS}


def storable_types(fmt: str) -> frozenset[DType]:
    """The dtypes format ``fmt`` can store (what its writer accepts)."""
    return STORABLE[fmt]


def storable_quant_names(fmt: str) -> frozenset[str]:
    """Quantization names whose nominal type (a mix: its default type) format ``fmt`` stores."""
    return frozenset(q for q in QUANT_CHOICES if mix_base(q) in STORABLE[fmt])


def quantizable(dt: DType) -> bool:
    """Whether ``aprqa.core.quantize`` has a quantizer for ``dt`` (the core's own answer)."""
    return bool(core._core.quant_supported(int(dt)))


def unquantizable_types(types: Iterable[DType]) -> list[DType]:
    """The quantized types among ``types`` that ``aprqa.core.quantize`` cannot produce (e.g. the IQ types)."""
    return sorted({t for t in types if t.is_quantized and not quantizable(t)}, key=lambda t: t.lname)
