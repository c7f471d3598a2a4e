"""aprqa: is this converted model the same model, within what its dtype allows?

The public surface is ``__all__``; everything else lives in subpackages
(formats, core, comparison, inference, conversion, playbook, report). Only ``DType`` and
the errors are imported with the package; every other public name is imported on
first use (PEP 562), so the CLI's inspect/compare paths never load the forward pass.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import AprqaError, DTypeError, FormatError, TruncatedError, UnsupportedFormatError, UsageError
from .quant.dtypes import DType

__version__ = "0.1.0"

# name -> (module, attribute); resolved lazily by __getattr__, so ``import aprqa`` pays for numpy,
# the readers, compare/convert and the forward pass (numba) only when they are used.
_LAZY: dict[str, tuple[str, str | None]] = {
    "open_model": (".formats", "open_model"),
    "compare": (".comparison", "compare"),
    "convert": (".conversion", "convert"),
    "forward": (".inference", "forward"),
    "generate": (".inference", "generate"),
    "tokenize": (".inference", "tokenize"),
    "compare_outputs": (".inference", "compare_outputs"),
    "locate": (".inference", "locate"),
    "dequantize": (".core", "dequantize"),
    "dequantize_rows": (".core", "dequantize_rows"),
    "quantize": (".core", "quantize"),
    "diff_stats": (".core", "diff_stats"),
    "dequantize_all": (".bulk", "dequantize_all"),
    "run_playbook": (".playbook", "run_playbook"),
    "testing": (".testing", None),
}
__all__ = [
    "DType", "AprqaError", "FormatError", "TruncatedError", "UnsupportedFormatError",
    "DTypeError", "UsageError", "__version__", *_LAZY,
]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'aprqa' has no attribute {name!r}") from None
    mod = importlib.import_module(module, __name__)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
