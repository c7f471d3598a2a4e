"""CPU backend of the forward pass: numpy BLAS matmuls, numba kernels for the rest.

Threading is ours, not the BLAS library's. While a block computes (``compute()``),
the BLAS pool is held at one thread and each matmul is cut into contiguous row
ranges, one per worker of a small thread pool (numpy releases the GIL in BLAS and
the numba kernels are ``nogil``). Why: a multi-threaded BLAS call costs a
spin-and-sync handshake per call; on a machine whose cores are shared with other
processes that handshake dominated (measured on 2 cores at load 6–9: one 896×896
prefill matmul 16 ms with two OpenBLAS threads, 2.3 ms with one). Workers that wait on
a queue instead lose nothing under load and still use every core when it is idle.
Independent matmuls on one input (q/k/v, gate/up) are one job over their stacked rows,
so one hand-off covers all of them and no weight is concatenated (no copy of a
zero-copy F32 view).

Quantized weights arrive as ``PackedWeight`` (their stored bytes) and go to the native
matmul (``kernels.matmul``), which threads across rows itself in a persistent pool.
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from threadpoolctl import ThreadpoolController

from . import kernels
from .packed import PackedWeight, unpermute_rope_cols

# Row ranges handed to workers start on multiples of this (whole SIMD panels for the GEMM).
_ROW_ALIGN = 16
# LM-head rows per matmul inside a worker: 1024 × 64 tokens × 4 B = 256 KiB of scratch (fits L2).
_HEAD_PANEL = 1024
# Attention runs its kv heads on the worker pool only above this many multiply-adds per head
# (g·T·S·head_dim): below it (a decode step over a short context) the hand-off to a Python worker
# costs more than the head's few small numpy calls, which mostly hold the GIL anyway.
_ATTN_PARALLEL_MACS = 1 << 20


class NumpyBackend:
    """CPU backend: numpy BLAS matmuls, numba kernels for the rest. Never imports torch.

    Args:
        threads: workers for matmuls and row-wise kernels (default: the CPUs this
            process may run on).
        int8_act: quantized weights multiply activations quantized to int8 blocks (ggml's
            scheme: what llama.cpp computes, and faster) instead of float32 activations
            (the default: the dequantized model's product within float32 rounding).
    """

    name = "cpu"
    packed = True  # takes PackedWeight matrices (ModelWeights.layer(i, packed=True))

    def __init__(self, threads: int | None = None, int8_act: bool = False) -> None:
        self.int8_act = bool(int8_act)
        if threads is None:
            threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.threads = max(1, int(threads))
        self._pool = ThreadPoolExecutor(self.threads - 1, "aprqa-cpu") if self.threads > 1 else None
        self._blas: Any = None

    # ------------------------------------------------------------ threading
    @contextlib.contextmanager
    def compute(self) -> Iterator[None]:
        """BLAS at one thread for the duration (our workers do the parallel part)."""
        if self._blas is None:  # built on first use: it scans the process's loaded libraries
            self._blas = ThreadpoolController()
        with self._blas.limit(limits=1, user_api="blas"):
            yield

    def _parallel(self, n: int, fn: Callable[[int, int], None], align: int = 1) -> None:
        """``fn(lo, hi)`` over contiguous slices of ``[0, n)``, one per worker; the caller runs the first."""
        k = min(self.threads, max(1, n // max(align, 1)))
        if k <= 1 or self._pool is None:
            fn(0, n)
            return
        cuts = [0] + [min(n, (n * j // k) // align * align) for j in range(1, k)] + [n]
        futures = [self._pool.submit(fn, cuts[j], cuts[j + 1]) for j in range(1, k) if cuts[j] < cuts[j + 1]]
        try:
            fn(cuts[0], cuts[1])
        finally:
            for f in futures:
                f.result()

    # ------------------------------------------------------------ interface
    def layer(self, lw: Any) -> Any:
        return lw

    def asarray(self, a: np.ndarray) -> np.ndarray:
        return np.asarray(a, dtype=np.float32)

    def to_numpy(self, a: np.ndarray) -> np.ndarray:
        return a

    def empty_cache(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape, np.float32)

    def heads_first(self, x: np.ndarray) -> np.ndarray:
        return x.transpose(1, 0, 2)

    def _rows_times(self, ws: Sequence[np.ndarray], x: np.ndarray, out: np.ndarray) -> None:
        """``out = vstack(ws) · xᵀ`` ([rows, T]) without stacking: workers take row ranges across ``ws``."""
        xt = np.ascontiguousarray(x.T)
        offs = np.cumsum([0] + [w.shape[0] for w in ws]).tolist()

        def work(lo: int, hi: int) -> None:
            for w, o0, o1 in zip(ws, offs, offs[1:]):
                a, b = max(lo, o0), min(hi, o1)
                if a < b:
                    # W·xᵀ with the weight as the row-major left operand: OpenBLAS is up to 3× faster
                    # this way than x·Wᵀ for short-and-wide prefill shapes (down_proj 896×4864, 64 tokens).
                    np.matmul(w[a - o0:b - o0], xt, out=out[a:b])

        self._parallel(offs[-1], work, _ROW_ALIGN)

    def packed_linear(self, x: np.ndarray, w: PackedWeight, b: np.ndarray | None = None,
                      out: np.ndarray | None = None) -> np.ndarray:
        """``x·Wᵀ + b`` for a packed weight (native matmul, rows threaded in the core's pool)."""
        y = kernels.matmul(w.raw, w.dtype, w.shape[0], w.shape[1], x, out, threads=self.threads,
                           int8_act=self.int8_act)
        if w.rope_heads is not None:
            y = unpermute_rope_cols(y, w.rope_heads)
        if b is not None:
            y += b
        return y

    def linears(self, x: np.ndarray, ws: Sequence[Any],
                bs: Sequence[np.ndarray | None] | None = None) -> list[np.ndarray]:
        """``[x·Wᵢᵀ + bᵢ]`` for every weight ``Wᵢ`` (``[out_i, in]``) in one parallel job; each ``[T, out_i]``."""
        if any(isinstance(w, PackedWeight) for w in ws):
            bs = bs if bs is not None else [None] * len(ws)
            x = np.ascontiguousarray(x, dtype=np.float32)
            return [self.packed_linear(x, w, b) if isinstance(w, PackedWeight) else self.linears(x, [w], [b])[0]
                    for w, b in zip(ws, bs)]
        out_t = np.empty((sum(w.shape[0] for w in ws), x.shape[0]), np.float32)
        self._rows_times(ws, x, out_t)
        ys, r0 = [], 0
        for i, w in enumerate(ws):
            y = np.ascontiguousarray(out_t[r0:r0 + w.shape[0]].T)
            b = bs[i] if bs is not None else None
            if b is not None:
                y += b
            ys.append(y)
            r0 += w.shape[0]
        return ys

    def linear(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        return self.linears(x, [w], [b])[0]

    def head_rows(self, x: np.ndarray, w: np.ndarray, dst: np.ndarray) -> None:
        """``dst[T, rows] = x·Wᵀ`` for one LM-head chunk (``dst``: a column block of the logits).

        Each worker multiplies ``_HEAD_PANEL`` rows at a time into a small scratch and writes its
        transpose while it is still in cache: no ``[vocab, T]`` temporary, no whole-logits transpose."""
        xt = np.ascontiguousarray(x.T)

        def work(lo: int, hi: int) -> None:
            tmp = np.empty((min(_HEAD_PANEL, hi - lo), xt.shape[1]), np.float32)
            for a in range(lo, hi, _HEAD_PANEL):
                b = min(hi, a + _HEAD_PANEL)
                np.matmul(w[a:b], xt, out=tmp[:b - a])
                dst[:, a:b] = tmp[:b - a].T

        self._parallel(w.shape[0], work, _ROW_ALIGN)

    def rmsnorm(self, x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
        return kernels.rmsnorm(x, w, eps)

    def rope(self, x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
        return kernels.rope_neox(np.ascontiguousarray(x), cos, sin)

    def silu_mul(self, g: np.ndarray, u: np.ndarray) -> np.ndarray:
        if g.shape != u.shape or g.ndim != 2:
            raise ValueError(f"silu_mul: gate {g.shape} and up {u.shape} differ")
        g, u = np.ascontiguousarray(g), np.ascontiguousarray(u)
        self._parallel(g.shape[0], lambda lo, hi: kernels.silu_mul(g[lo:hi], u[lo:hi]))
        return g

    def gelu_tanh_mul(self, g: np.ndarray, u: np.ndarray) -> np.ndarray:
        """GELU (tanh approximation, HF ``gelu_pytorch_tanh``) of ``g`` times ``u``, float32."""
        c = np.float32(np.sqrt(2.0 / np.pi))
        return (np.float32(0.5) * g * (np.float32(1.0) + np.tanh(c * (g + np.float32(0.044715) * g * g * g)))) * u

    def softcap(self, x: np.ndarray, cap: float) -> np.ndarray:
        return np.tanh(x / np.float32(cap)) * np.float32(cap)

    def attention(self, q: np.ndarray, k_all: np.ndarray, v_all: np.ndarray, pos0: int,
                  window: int | None = None, softcap: float | None = None) -> np.ndarray:
        """q ``[T, nh, hd]``; k_all/v_all ``[nkv, S, hd]`` (S = pos0 + T); returns ``[T, nh*hd]``.

        One job per kv head: its ``g = nh / nkv`` query heads as one ``[g·T, hd]`` matrix against
        that head's keys and values (GQA without repeating K/V). ``window``: a query sees only the
        last ``window`` positions (sliding-window layers); ``softcap``: scores become
        ``cap * tanh(scores / cap)`` before the mask (gemma2)."""
        t_len, nh, hd = q.shape
        nkv, s_len, _ = k_all.shape
        g = nh // nkv
        qh = np.ascontiguousarray(q.transpose(1, 0, 2)).reshape(nkv, g * t_len, hd)
        ctx = np.empty((nkv, g * t_len, hd), np.float32)
        scale = np.float32(1.0 / np.sqrt(hd))
        far = None
        if window is not None:
            qpos = pos0 + np.arange(t_len)
            far = np.arange(s_len)[None, :] <= (qpos[:, None] - window)  # [T, S]

        def head(lo: int, hi: int) -> None:
            for j in range(lo, hi):
                # contiguous K/V of one head: a strided view would leave numpy's non-BLAS loop to run it
                k, v = np.ascontiguousarray(k_all[j]), np.ascontiguousarray(v_all[j])
                scores = qh[j] @ k.T  # [g*T, S]
                scores *= scale
                if softcap:
                    scores = self.softcap(scores, softcap)
                s3 = scores.reshape(g, t_len, s_len)
                if far is not None:
                    s3[:, far] = -np.inf
                kernels.softmax_causal(s3, pos0)
                np.matmul(scores, v, out=ctx[j])

        if g * t_len * s_len * hd < _ATTN_PARALLEL_MACS:
            head(0, nkv)
        else:
            self._parallel(nkv, head)
        return np.ascontiguousarray(ctx.reshape(nh, t_len, hd).transpose(1, 0, 2)).reshape(t_len, nh * hd)
