"""The quantization registry: the one place that knows tensor element types, as arch/ knows families.

* ``dtypes``: ``DType`` (ids = ggml's) and one ``TypeTraits`` row per type — names, block geometry,
  kind, step model, band, block bound, output profile, llama.cpp file type, row fallback;
* ``mixes``: llama.cpp's quantization recipes (``q4_k_m``...), the ``--quant`` names and their file types;
* ``step_bands``: the step model's arithmetic (numpy) over the rows' step geometry;
* ``storable``: which types each format's writer stores and which the native core quantizes.

Importing this package loads neither numpy nor the native core (``step_bands`` and ``storable`` do).
"""

from __future__ import annotations

from .dtypes import TRAITS, DType, Kind, StepBand, StepGeometry, TypeTraits, dtype_from_name, ggml_type, \
    payload_nbytes, traits

__all__ = ["DType", "Kind", "StepBand", "StepGeometry", "TRAITS", "TypeTraits", "dtype_from_name", "ggml_type",
           "payload_nbytes", "traits"]
