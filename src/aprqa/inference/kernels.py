"""Kernels of the CPU forward pass: the native quantized matmul (``matmul``), and numba
kernels for RMSNorm, RoPE, SiLU·gate and the causal softmax.

``matmul`` multiplies weight rows straight from their stored bytes (``_core.matmul_q``:
quantized rows against int8-quantized activations as ggml does, float rows against f32);
the numba kernels are the element-wise and row-wise steps between the matmuls, fused so
that no full-size temporaries are made. Every kernel
accumulates in float64 where it reduces (RMSNorm, softmax sums) and writes float32.
Shapes are checked by the Python wrappers before the compiled code runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numba as nb
import numpy as np

from .. import _core
from ..core import matmul  # noqa: F401 (the forward's matmul lives with the other native wrappers)
from ..quant.dtypes import DType


def _cache_enabled() -> bool:
    """Whether compiled kernels can be cached: beside this file when its folder is writable, else in
    ``NUMBA_CACHE_DIR`` or ``~/.cache/aprqa/numba``; never (compiled per process) when none is, since
    numba's ``cache=True`` otherwise fails with "no locator available" on a read-only install."""
    if nb.config.CACHE_DIR:
        return True
    here = Path(__file__).resolve().parent
    pycache = here / "__pycache__"  # where numba's in-tree cache writes
    if os.access(pycache if pycache.exists() else here, os.W_OK):
        return True
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aprqa" / "numba"
    try:
        user.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    if not os.access(user, os.W_OK):
        return False
    nb.config.CACHE_DIR = str(user)
    return True


_JIT = dict(cache=_cache_enabled(), fastmath=False, nogil=True)


@nb.njit(**_JIT)
def _rmsnorm(x, w, eps, out):  # pragma: no cover - compiled
    rows, n = x.shape
    for r in range(rows):
        acc = 0.0
        for i in range(n):
            v = np.float64(x[r, i])
            acc += v * v
        # float32 like HF: variance in f32 precision is the reference's; f64 sum is within 1 ulp of it
        inv = np.float32(1.0) / np.sqrt(np.float32(acc / n) + np.float32(eps))
        for i in range(n):
            out[r, i] = w[i] * (x[r, i] * inv)


def rmsnorm(x: np.ndarray, w: np.ndarray, eps: float, out: np.ndarray | None = None) -> np.ndarray:
    """``w * x / sqrt(mean(x²) + eps)`` over the last axis (x is ``[..., n]`` float32)."""
    shape = x.shape
    x2 = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, shape[-1])
    if w.shape != (shape[-1],):
        raise ValueError(f"rmsnorm: weight shape {w.shape} does not match last axis {shape[-1]}")
    res = np.empty_like(x2) if out is None else out.reshape(x2.shape)
    _rmsnorm(x2, np.ascontiguousarray(w, dtype=np.float32), np.float32(eps), res)
    return res.reshape(shape)


@nb.njit(**_JIT)
def _rope_neox(x, cos, sin):  # pragma: no cover - compiled
    t_len, heads, hd = x.shape
    half = hd // 2
    for t in range(t_len):
        for h in range(heads):
            for i in range(half):
                a = x[t, h, i]
                b = x[t, h, i + half]
                c = cos[t, i]
                s = sin[t, i]
                x[t, h, i] = a * c - b * s
                x[t, h, i + half] = b * c + a * s


def rope_neox(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotate ``x [T, heads, head_dim]`` in place, pairing dims (i, i + head_dim/2) (HF ``rotate_half``)."""
    if x.ndim != 3 or cos.shape != (x.shape[0], x.shape[2] // 2) or sin.shape != cos.shape:
        raise ValueError(f"rope: x {x.shape}, cos {cos.shape}, sin {sin.shape} do not fit")
    if not x.flags.c_contiguous:
        raise ValueError("rope: x must be C-contiguous (rotated in place)")
    _rope_neox(x, cos, sin)
    return x


@nb.njit(**_JIT)
def _silu_mul(g, u, out):  # pragma: no cover - compiled
    rows, n = g.shape
    for r in range(rows):
        for i in range(n):
            v = g[r, i]
            out[r, i] = (v / (np.float32(1.0) + np.exp(-v))) * u[r, i]


def silu_mul(gate: np.ndarray, up: np.ndarray) -> np.ndarray:
    """``silu(gate) * up``, written into ``gate`` (both ``[T, n]`` float32)."""
    if gate.shape != up.shape or gate.ndim != 2:
        raise ValueError(f"silu_mul: gate {gate.shape} and up {up.shape} differ")
    g = np.ascontiguousarray(gate)
    _silu_mul(g, np.ascontiguousarray(up), g)
    return g


@nb.njit(**_JIT)
def _softmax_causal(s, first_pos):  # pragma: no cover - compiled
    # s: [heads, T, S]; query row t sits at absolute position first_pos + t and sees keys 0..first_pos+t
    heads, t_len, s_len = s.shape
    for h in range(heads):
        for t in range(t_len):
            last = first_pos + t
            if last > s_len - 1:
                last = s_len - 1
            m = -np.inf
            for j in range(last + 1):
                if s[h, t, j] > m:
                    m = s[h, t, j]
            acc = 0.0
            for j in range(last + 1):
                e = np.exp(np.float64(s[h, t, j] - m))
                s[h, t, j] = e
                acc += e
            inv = 1.0 / acc
            for j in range(last + 1):
                s[h, t, j] = np.float32(s[h, t, j] * inv)
            for j in range(last + 1, s_len):
                s[h, t, j] = 0.0


def softmax_causal(scores: np.ndarray, first_pos: int) -> np.ndarray:
    """In-place causal softmax over the last axis of ``scores [heads, T, S]``.

    Query row ``t`` is at absolute position ``first_pos + t`` and attends to keys
    ``0..first_pos + t``; later keys get probability 0.
    """
    if scores.ndim != 3 or not scores.flags.c_contiguous or scores.dtype != np.float32:
        raise ValueError(f"softmax_causal: need C-contiguous float32 [heads, T, S], got {scores.dtype} "
                         f"{scores.shape}")
    _softmax_causal(scores, int(first_pos))
    return scores


def matmul_supported(dtype: DType, n_in: int) -> bool:
    """Whether ``matmul`` takes rows of ``n_in`` elements of ``dtype`` from their stored bytes."""
    return bool(_core.vecdot_supported(int(dtype))) and n_in % int(_core.vecdot_row_multiple(int(dtype))) == 0


def matmul_levels() -> list[str]:
    """The ``matmul`` kernel levels this CPU runs (index = ``level``): "scalar", then "avx2", "avx512"."""
    return list(_core.vecdot_levels())


def warm_up() -> None:
    """Compile (or load from cache) every kernel on tiny inputs."""
    x = np.ones((1, 2, 4), np.float32)
    rmsnorm(x.reshape(2, 4), np.ones(4, np.float32), 1e-6)
    rope_neox(x, np.ones((1, 2), np.float32), np.zeros((1, 2), np.float32))
    silu_mul(np.ones((1, 2), np.float32), np.ones((1, 2), np.float32))
    softmax_causal(np.ones((1, 1, 2), np.float32), 0)
