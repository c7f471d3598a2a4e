"""What aprender writes into an APR file for each quantization asked of it: the APR producer's rules.

An APR target follows the APR producer (paiml/aprender), not llama.cpp's recipes: llama.cpp's
``q4_k_m`` falls back to Q5_0/Q8_0 on rows that are not whole 256-element super-blocks, types APR
cannot store, while aprender pads such rows. Its quantizations (``apr convert/import --quantize``;
docs/format-facts.md §1) and the tensors each one touches:

* ``q4k`` (asked as ``q4_k`` or ``q4_k_m``): Q4_K for tensors of >= 2 dims and >= 256 elements whose
  name contains none of ``bias``, ``norm``, ``scale``, ``embed`` (case-sensitive, as aprender tests
  them); every row zero-padded to a multiple of 256 (``apr_layout.padded_row``); everything else F32
  (the token embedding too; a separate ``lm_head`` is quantized);
* ``int8`` (asked as ``q8_0`` or ``apr-q8``) / ``int4`` (``q4_0``, ``apr-q4``): APR q8 (one f32 scale
  per tensor) / APR q4 (blocks of 32) for every tensor but those named ``bias``, ``layernorm``,
  ``layer_norm``, ``norm.weight`` or under 1,024 elements, which stay F32 (embeddings are quantized);
* ``fp16`` (asked as ``f16``): every tensor F16, norms included.

``f32``, ``bf16`` and keeping the source's types are not aprender quantizations: the converter's
general rule applies. Any other name (``q6_k``, ``q5_k_m``, ``q5_0``...) has no aprender producer and
is refused: no substitute type is written under its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..quant.dtypes import DType
from ..errors import UsageError

__all__ = ["APRENDER_QUANTS", "GENERIC", "AprenderQuant", "rule", "unproducible"]

# aprqa / playbook quantization name -> aprender's QuantizationType (its CLI spelling)
APRENDER_QUANTS: dict[str, str] = {"q4_k": "q4k", "q4_k_m": "q4k", "q8_0": "int8", "apr-q8": "int8",
                                   "q4_0": "int4", "apr-q4": "int4", "f16": "fp16"}
# names that are no aprender quantization but plain float types the general rule writes
GENERIC = frozenset({"f32", "bf16"})

_Q4K_KEPT = ("bias", "norm", "scale", "embed")
_INT_KEPT = ("bias", "layernorm", "layer_norm", "norm.weight")
_Q4K_MIN = 256     # one super-block
_INT_MIN = 1024    # aprender: smaller tensors gain nothing from quantization
_TYPES = {"q4k": DType.Q4_K, "int8": DType.APR_Q8, "int4": DType.APR_Q4, "fp16": DType.F16}


def unproducible(quant: str) -> str | None:
    """Why aprender writes no APR file for ``quant`` (None when it does, or when it is a plain float type)."""
    q = quant.lower()
    if q in APRENDER_QUANTS or q in GENERIC:
        return None
    asked = ", ".join(f"{k} ({v})" for k, v in APRENDER_QUANTS.items())
    return (f"aprender writes no {quant} APR file (its quantizations, as asked here: {asked}; f32/bf16 and "
            "the source's types are kept as floats); no substitute type is written")


@dataclass(frozen=True)
class AprenderQuant:
    """One aprender quantization (``kind``: q4k, int8, int4, fp16) asked as ``name``."""

    name: str
    kind: str

    @property
    def lname(self) -> str:
        return self.name

    def type_for(self, name: str, shape: Sequence[int]) -> DType:
        """The dtype aprender gives tensor ``name`` (canonical HF name) of ``shape``."""
        n = 1
        for d in shape:
            n *= int(d)
        if self.kind == "fp16":
            return DType.F16
        if self.kind == "q4k":
            keep = len(shape) < 2 or n < _Q4K_MIN or any(s in name for s in _Q4K_KEPT)
        else:
            keep = n < _INT_MIN or any(s in name for s in _INT_KEPT)
        return DType.F32 if keep else _TYPES[self.kind]


def rule(quant: str) -> AprenderQuant | None:
    """The aprender quantization ``quant`` names; None for f32/bf16 (the general rule).

    Raises:
        UsageError: a name aprender has no quantization for (``unproducible`` says why).
    """
    q = quant.lower()
    if q in GENERIC:
        return None
    why = unproducible(q)
    if why is not None:
        raise UsageError(f"apr: {why}")
    return AprenderQuant(q, APRENDER_QUANTS[q])
