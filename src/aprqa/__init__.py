"""aprqa: is this converted model the same model, within what its dtype allows?

The public surface is ``__all__``; everything else lives in subpackages
(formats, core, compare, forward, convert, playbook, report). Heavy parts
(numba kernels, the compare engine) are imported on first use so that
``import aprqa`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from .dtypes import DType
from .errors import AprqaError, DTypeError, FormatError, TruncatedError, UnsupportedFormatError, UsageError
from .formats import open_model
# Imported eagerly so that the name ``aprqa.compare`` is the function, not the subpackage
# (importing a submodule binds its name on the parent package).
from .compare import compare

__version__ = "0.1.0"

# name -> (module, attribute); resolved lazily by __getattr__.
_LAZY: dict[str, tuple[str, str | None]] = {
    "dequantize": (".core", "dequantize"),
    "dequantize_rows": (".core", "dequantize_rows"),
    "quantize": (".core", "quantize"),
    "diff_stats": (".core", "diff_stats"),
    "convert": (".convert", "convert"),
    "forward": (".forward", "forward"),
    "generate": (".forward", "generate"),
    "tokenize": (".forward", "tokenize"),
    "compare_outputs": (".forward", "compare_outputs"),
    "locate": (".forward", "locate"),
    "run_playbook": (".playbook", "run_playbook"),
    "testing": (".testing", None),
}

__all__ = [
    "open_model", "DType", "AprqaError", "FormatError", "TruncatedError", "UnsupportedFormatError",
    "DTypeError", "UsageError", "__version__", "compare", *_LAZY,
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
