"""llama.cpp's own quantizer as an independent oracle (llama-cpp-python built from its sdist).

Two entry points:
  * ``quantize_file``: ``llama_model_quantize`` on a whole GGUF (what users run);
  * ``quantize_array``: ggml's ``ggml_quantize_chunk`` on one float32 matrix, optionally with an
    importance matrix — the very function ``llama_model_quantize`` calls per tensor — through
    ctypes on the ggml library that ships inside llama-cpp-python.

Used by the tests (tests/comparison/test_compare_foreign_quant.py) and scripts/measure_quant_bands.py.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

# llama.cpp file types (llama.h: enum llama_ftype)
FTYPES = {"q4_0": 2, "q8_0": 7, "q2_k": 10, "q3_k_m": 12, "q4_k_m": 15, "q5_k_m": 17, "q6_k": 18,
          "iq4_nl": 25, "iq4_xs": 30, "nvfp4": 39, "q1_0": 40, "q2_0": 41}


def _ggml() -> ctypes.CDLL:
    import llama_cpp  # optional dependency: only tests and the measuring script need it

    libdir = Path(llama_cpp.__file__).parent / "lib"
    for name in ("libggml-base.so", "libggml.so", "libggml-base.dylib", "libggml.dylib"):
        p = libdir / name
        if p.exists():
            lib = ctypes.CDLL(str(p))
            if hasattr(lib, "ggml_quantize_chunk"):
                break
    else:
        raise RuntimeError(f"no ggml library with ggml_quantize_chunk under {libdir}")
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    lib.ggml_quantize_init.argtypes = [ctypes.c_int]
    lib.ggml_row_size.restype = ctypes.c_size_t
    lib.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
    return lib


_LIB: ctypes.CDLL | None = None


def quantize_array(x: np.ndarray, ggml_type: int, imatrix: np.ndarray | None = None) -> np.ndarray:
    """``x`` ([rows, cols] float32) quantized by ggml to ``ggml_type``; raw block bytes.

    ``imatrix``: per-column importance weights (length cols), as llama-imatrix would supply."""
    global _LIB
    if _LIB is None:
        _LIB = _ggml()
    x = np.ascontiguousarray(x, dtype=np.float32)
    rows, cols = x.shape
    _LIB.ggml_quantize_init(ggml_type)
    out = np.zeros(rows * _LIB.ggml_row_size(ggml_type, cols), np.uint8)
    w = None
    if imatrix is not None:
        w = np.ascontiguousarray(imatrix, dtype=np.float32)
        assert w.shape == (cols,)
    n = _LIB.ggml_quantize_chunk(ggml_type, x.ctypes.data, out.ctypes.data, 0, rows, cols,
                                 w.ctypes.data if w is not None else None)
    assert n == out.nbytes, (n, out.nbytes)
    return out


def quantize_file(src: str | Path, dst: str | Path, ftype: str, threads: int = 2) -> Path:
    """``llama_model_quantize(src, dst)`` to the llama.cpp file type ``ftype`` (a FTYPES key)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[ftype]
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize({src}, {ftype}) returned {rc}")
    return Path(dst)


class _TypeTraits(ctypes.Structure):
    # ggml.h struct ggml_type_traits of the pinned version (field order is the ABI)
    _fields_ = [("type_name", ctypes.c_char_p), ("blck_size", ctypes.c_int64),
                ("blck_size_interleave", ctypes.c_int64), ("type_size", ctypes.c_size_t),
                ("is_quantized", ctypes.c_bool), ("to_float", ctypes.c_void_p), ("from_float_ref", ctypes.c_void_p)]


_TO_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)


def _traits(ggml_type: int) -> "_TypeTraits":
    """ggml's own type-table row for ``ggml_type``."""
    global _LIB
    if _LIB is None:
        _LIB = _ggml()
    _LIB.ggml_get_type_traits.restype = ctypes.POINTER(_TypeTraits)
    _LIB.ggml_get_type_traits.argtypes = [ctypes.c_int]
    return _LIB.ggml_get_type_traits(ggml_type).contents


def ggml_type_traits(ggml_type: int) -> tuple[str, int, int, bool]:
    """``(name, block elements, block bytes, has to_float)`` as ggml's own type table states them."""
    t = _traits(ggml_type)
    return (t.type_name or b"").decode(), int(t.blck_size), int(t.type_size), bool(t.to_float)


def requires_imatrix(ggml_type: int) -> bool:
    global _LIB
    if _LIB is None:
        _LIB = _ggml()
    _LIB.ggml_quantize_requires_imatrix.restype = ctypes.c_bool
    _LIB.ggml_quantize_requires_imatrix.argtypes = [ctypes.c_int]
    return bool(_LIB.ggml_quantize_requires_imatrix(ggml_type))


def to_float(raw: np.ndarray, ggml_type: int, n: int, out: np.ndarray | None = None) -> np.ndarray:
    """ggml's own ``to_float`` (its type traits' dequantizer) on ``n`` elements of raw block bytes, into
    ``out`` (a contiguous float32 array of ``n`` elements) when given."""
    t = _traits(ggml_type)
    if not t.to_float:
        raise RuntimeError(f"ggml type {ggml_type} has no to_float")
    raw = np.ascontiguousarray(raw, dtype=np.uint8)
    assert raw.nbytes == n // t.blck_size * t.type_size
    if out is None:
        out = np.empty(n, np.float32)
    assert out.dtype == np.float32 and out.size == n and out.flags.c_contiguous
    _TO_FLOAT(t.to_float)(raw.ctypes.data, out.ctypes.data, n)
    return out
