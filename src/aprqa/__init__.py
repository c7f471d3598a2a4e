"""aprqa: is this converted model the same model, within what its dtype allows?

The public surface is ``__all__``; everything else lives in subpackages
(formats, core, compare, forward, convert, playbook, report). The playbook
layer and the pytest helpers are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .dtypes import DType
from .errors import AprqaError, DTypeError, FormatError, TruncatedError, UnsupportedFormatError, UsageError
from .formats import open_model
# compare, convert and forward are both submodules and public functions. Importing a submodule
# binds its name on this package, so they are imported eagerly here, once, and the names are then
# rebound to the functions: ``aprqa.compare(...)``, ``aprqa.convert(...)``, ``aprqa.forward(...)``.
from .compare import compare
from .convert import convert
from .forward import compare_outputs, forward, generate, locate, tokenize

__version__ = "0.1.0"

# name -> (module, attribute); resolved lazily by __getattr__.
_LAZY: dict[str, tuple[str, str | None]] = {
    "dequantize": (".core", "dequantize"),
    "dequantize_rows": (".core", "dequantize_rows"),
    "quantize": (".core", "quantize"),
    "diff_stats": (".core", "diff_stats"),
    "run_playbook": (".playbook", "run_playbook"),
    "testing": (".testing", None),
}

__all__ = [
    "open_model", "DType", "AprqaError", "FormatError", "TruncatedError", "UnsupportedFormatError",
    "DTypeError", "UsageError", "__version__", "compare", "convert", "forward", "generate", "tokenize",
    "compare_outputs", "locate", *_LAZY,
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
