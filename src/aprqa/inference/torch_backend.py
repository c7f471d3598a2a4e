"""Torch backend of the forward pass (``device="cuda"``, or ``"torch-cpu"`` for tests).

Same interface and the same maths as ``cpu_backend.NumpyBackend``, in float32 torch ops;
results agree with the numpy path within float32 rounding. torch itself (an optional
dependency) is imported only when a ``TorchBackend`` is built: the CPU path never imports it.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import fields
from typing import Any

import numpy as np

from ..errors import UsageError
from .weights import LayerWeights


class TorchBackend:
    """float32 torch kernels on ``device`` ("cuda", "cuda:1", "cpu")."""

    def __init__(self, device: str = "cuda") -> None:
        try:
            import torch
        except ImportError as err:
            raise UsageError(f"device {device!r} needs torch (pip install 'aprqa[torch]')") from err
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise UsageError(f"device {device!r} requested but torch sees no CUDA device")
        self.torch = torch
        self.device = torch.device(device)
        self.name = f"torch-{self.device.type}"

    def asarray(self, a: np.ndarray) -> Any:
        a = np.asarray(a, dtype=np.float32)
        if not a.flags.writeable:  # zero-copy mmap views: torch wants writable memory
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                t = self.torch.from_numpy(a)
            return t.to(self.device, copy=self.device.type == "cpu")
        return self.torch.from_numpy(a).to(self.device)

    def layer(self, lw: LayerWeights) -> LayerWeights:
        vals = {}
        for f in fields(lw):
            v = getattr(lw, f.name)
            vals[f.name] = self.asarray(v) if isinstance(v, np.ndarray) else v
        return LayerWeights(**vals)

    def to_numpy(self, a: Any) -> np.ndarray:
        return a.detach().to("cpu").numpy()

    def empty_cache(self, shape: tuple[int, ...]) -> Any:
        return self.torch.zeros(shape, dtype=self.torch.float32, device=self.device)

    def heads_first(self, x: Any) -> Any:
        return x.permute(1, 0, 2)

    def compute(self) -> contextlib.AbstractContextManager:
        """No thread policy of ours: torch schedules its own kernels."""
        return contextlib.nullcontext()

    def linear(self, x: Any, w: Any, b: Any = None) -> Any:
        y = x @ w.T
        return y + b if b is not None else y

    def linears(self, x: Any, ws: Any, bs: Any = None) -> list:
        return [self.linear(x, w, bs[i] if bs is not None else None) for i, w in enumerate(ws)]

    def head_rows(self, x: Any, w: Any, dst: np.ndarray) -> None:
        dst[...] = self.to_numpy(x @ w.T)

    def rmsnorm(self, x: Any, w: Any, eps: float) -> Any:
        var = x.pow(2).mean(-1, keepdim=True)
        return w * (x * self.torch.rsqrt(var + eps))

    def rope(self, x: Any, cos: Any, sin: Any) -> Any:
        half = x.shape[-1] // 2
        a, b = x[..., :half], x[..., half:]
        c, s = cos[:, None, :], sin[:, None, :]
        return self.torch.cat((a * c - b * s, b * c + a * s), dim=-1)

    def silu_mul(self, g: Any, u: Any) -> Any:
        return self.torch.nn.functional.silu(g) * u

    def gelu_tanh_mul(self, g: Any, u: Any) -> Any:
        """GELU (tanh approximation, HF ``gelu_pytorch_tanh``) of ``g`` times ``u``."""
        return self.torch.nn.functional.gelu(g, approximate="tanh") * u

    def softcap(self, x: Any, cap: float) -> Any:
        return self.torch.tanh(x / cap) * cap

    def attention(self, q: Any, k_all: Any, v_all: Any, pos0: int,
                  window: int | None = None, softcap: float | None = None) -> Any:
        """As ``NumpyBackend.attention``: causal GQA; ``window`` hides keys ``window`` or more
        positions back (sliding-window layers), ``softcap`` caps the scores before the mask."""
        torch = self.torch
        t_len, nh, hd = q.shape
        nkv, s_len, _ = k_all.shape
        g = nh // nkv
        qh = q.permute(1, 0, 2).reshape(nkv, g * t_len, hd)
        scores = (qh @ k_all.transpose(1, 2)) * (1.0 / float(np.sqrt(hd)))
        if softcap:
            scores = self.softcap(scores, softcap)
        qpos = torch.arange(t_len, device=self.device).repeat(g) + pos0
        kpos = torch.arange(s_len, device=self.device)[None, :]
        mask = kpos > qpos[:, None]
        if window is not None:
            mask |= kpos <= qpos[:, None] - window
        scores = scores.masked_fill(mask[None], float("-inf"))
        p = torch.softmax(scores, dim=-1)
        ctx = p @ v_all
        return ctx.reshape(nh, t_len, hd).permute(1, 0, 2).reshape(t_len, nh * hd)
