"""The llama-family forward pass (llama, mistral GQA, qwen2 q/k/v biases, qwen3 q/k norms).

One implementation of the model maths, written against a small backend interface
(``NumpyBackend`` here: numpy BLAS + numba kernels; ``torch_backend.TorchBackend``
for CUDA). Weights stream one block at a time from ``ModelWeights``; a
``KVCache`` keeps keys/values for prefill-then-decode generation.

Per block (HF semantics, float32 throughout)::

    x = h + o(attn(rope(qn(q(norm1(h)))), rope(kn(k(norm1(h)))), v(norm1(h))))   # qn/kn: qwen3 only
    h = x + down(silu(gate(norm2(x))) * up(norm2(x)))

RoPE pairs dims (i, i + head_dim/2) ("neox"); llama.cpp-ordered Q/K rows were
already inverse-permuted by ``ModelWeights``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from ..errors import UsageError
from . import kernels
from .weights import ForwardConfig, LayerWeights, ModelWeights


def rope_tables(cfg: ForwardConfig, pos0: int, n: int, theta: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin ``[n, head_dim/2]`` float32 for positions ``pos0..pos0+n-1`` (HF's float32 recipe)."""
    hd = cfg.head_dim
    inv_freq = (np.float32(1.0) / (np.float32(theta if theta is not None else cfg.rope_theta)
                                   ** (np.arange(0, hd, 2, dtype=np.float32) / np.float32(hd)))).astype(np.float32)
    pos = np.arange(pos0, pos0 + n, dtype=np.float32)
    ang = pos[:, None] * inv_freq[None, :]
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


class NumpyBackend:
    """CPU backend: numpy BLAS matmuls, numba kernels for the rest. Never imports torch."""

    name = "cpu"

    def layer(self, lw: LayerWeights) -> LayerWeights:
        return lw

    def asarray(self, a: np.ndarray) -> np.ndarray:
        return np.asarray(a, dtype=np.float32)

    def to_numpy(self, a: np.ndarray) -> np.ndarray:
        return a

    def empty_cache(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape, np.float32)

    def heads_first(self, x: np.ndarray) -> np.ndarray:
        return x.transpose(1, 0, 2)

    def linear(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        # (W·xᵀ)ᵀ: OpenBLAS is up to 3× faster with the weight as the row-major left operand than
        # with x·Wᵀ for the short-and-wide prefill shapes (measured: down_proj 896×4864, 64 tokens).
        y = np.ascontiguousarray((w @ x.T).T)
        if b is not None:
            y += b
        return y

    def head_rows(self, x: np.ndarray, w: np.ndarray, dst: np.ndarray) -> None:
        """``dst[rows, T] = W·xᵀ`` for one LM-head chunk, written in place (no temporaries)."""
        np.matmul(w, x.T, out=dst)

    def rmsnorm(self, x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
        return kernels.rmsnorm(x, w, eps)

    def rope(self, x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
        return kernels.rope_neox(np.ascontiguousarray(x), cos, sin)

    def silu_mul(self, g: np.ndarray, u: np.ndarray) -> np.ndarray:
        return kernels.silu_mul(g, u)

    def gelu_tanh_mul(self, g: np.ndarray, u: np.ndarray) -> np.ndarray:
        """GELU (tanh approximation, HF ``gelu_pytorch_tanh``) of ``g`` times ``u``, float32."""
        c = np.float32(np.sqrt(2.0 / np.pi))
        return (np.float32(0.5) * g * (np.float32(1.0) + np.tanh(c * (g + np.float32(0.044715) * g * g * g)))) * u

    def softcap(self, x: np.ndarray, cap: float) -> np.ndarray:
        return np.tanh(x / np.float32(cap)) * np.float32(cap)

    def attention(self, q: np.ndarray, k_all: np.ndarray, v_all: np.ndarray, pos0: int,
                  window: int | None = None, softcap: float | None = None) -> np.ndarray:
        """q ``[T, nh, hd]``; k_all/v_all ``[nkv, S, hd]`` (S = pos0 + T); returns ``[T, nh*hd]``.

        ``window``: a query sees only the last ``window`` positions (sliding-window layers);
        ``softcap``: scores become ``cap * tanh(scores / cap)`` before the mask (gemma2)."""
        t_len, nh, hd = q.shape
        nkv, s_len, _ = k_all.shape
        g = nh // nkv
        qh = np.ascontiguousarray(q.transpose(1, 0, 2)).reshape(nkv, g * t_len, hd)
        scores = np.matmul(qh, k_all.transpose(0, 2, 1))  # [nkv, g*T, S]
        scores *= np.float32(1.0 / np.sqrt(hd))
        if softcap:
            scores = self.softcap(scores, softcap)
        if window is not None:
            qpos = pos0 + np.arange(t_len)
            far = np.arange(s_len)[None, :] <= (qpos[:, None] - window)  # [T, S]
            scores.reshape(nh, t_len, s_len)[:, far] = -np.inf
        kernels.softmax_causal(scores.reshape(nh, t_len, s_len), pos0)
        ctx = np.matmul(scores, v_all)  # [nkv, g*T, hd]
        return np.ascontiguousarray(ctx.reshape(nh, t_len, hd).transpose(1, 0, 2)).reshape(t_len, nh * hd)


@dataclass
class KVCache:
    """Keys/values of every block, ``[nkv, capacity, head_dim]`` each; ``length`` positions filled."""

    keys: list[Any]
    values: list[Any]
    capacity: int
    length: int = 0

    @classmethod
    def create(cls, cfg: ForwardConfig, capacity: int, backend: Any) -> "KVCache":
        shape = (cfg.num_kv_heads, capacity, cfg.head_dim)
        return cls([backend.empty_cache(shape) for _ in range(cfg.num_layers)],
                   [backend.empty_cache(shape) for _ in range(cfg.num_layers)], capacity)


class LlamaRunner:
    """Runs one model on one backend.

    Args:
        weights: layer-streamed weights of the model.
        backend: ``NumpyBackend()`` (default) or a ``TorchBackend``.
    """

    def __init__(self, weights: ModelWeights, backend: Any = None) -> None:
        self.weights = weights
        self.cfg = weights.config
        self.backend = backend if backend is not None else NumpyBackend()

    # ----------------------------------------------------------------- blocks
    def _attn(self, h: Any, lw: LayerWeights, cache: KVCache | None, pos0: int, cos: Any, sin: Any) -> Any:
        c, be = self.cfg, self.backend
        t_len = h.shape[0]
        x = be.rmsnorm(h, lw.attn_norm, c.rms_eps)
        q = be.linear(x, lw.q, lw.q_bias).reshape(t_len, c.num_heads, c.head_dim)
        k = be.linear(x, lw.k, lw.k_bias).reshape(t_len, c.num_kv_heads, c.head_dim)
        v = be.linear(x, lw.v, lw.v_bias).reshape(t_len, c.num_kv_heads, c.head_dim)
        if lw.q_norm is not None:
            q = be.rmsnorm(q, lw.q_norm, c.rms_eps)
        if lw.k_norm is not None:
            k = be.rmsnorm(k, lw.k_norm, c.rms_eps)
        if lw.index in c.sliding_layers:
            cos, sin = self._local_rope
        q = be.rope(q, cos, sin)
        k = be.rope(k, cos, sin)
        if cache is not None:
            ck, cv = cache.keys[lw.index], cache.values[lw.index]
            ck[:, pos0:pos0 + t_len] = be.heads_first(k)
            cv[:, pos0:pos0 + t_len] = be.heads_first(v)
            k_all, v_all = ck[:, :pos0 + t_len], cv[:, :pos0 + t_len]
        else:
            if pos0:
                raise UsageError("a forward at position > 0 needs a KV cache")
            k_all, v_all = be.heads_first(k), be.heads_first(v)
        if c.sliding_layers or c.attn_softcap:
            window = c.sliding_window if lw.index in c.sliding_layers else None
            ctx = be.attention(q, k_all, v_all, pos0, window=window, softcap=c.attn_softcap)
        else:
            ctx = be.attention(q, k_all, v_all, pos0)
        out = be.linear(ctx, lw.o, lw.o_bias)
        if lw.post_attn_norm is not None:
            out = be.rmsnorm(out, lw.post_attn_norm, c.rms_eps)
        return h + out

    def _mlp(self, h: Any, lw: LayerWeights) -> Any:
        be = self.backend
        x = be.rmsnorm(h, lw.mlp_norm, self.cfg.rms_eps)
        if self.cfg.activation == "silu":
            g = be.silu_mul(be.linear(x, lw.gate), be.linear(x, lw.up))
        else:
            g = be.gelu_tanh_mul(be.linear(x, lw.gate), be.linear(x, lw.up))
        out = be.linear(g, lw.down)
        if lw.post_mlp_norm is not None:
            out = be.rmsnorm(out, lw.post_mlp_norm, self.cfg.rms_eps)
        return h + out

    def stream(self, token_ids: Any, cache: KVCache | None = None, pos0: int = 0) -> Iterator[tuple[int, str, Any]]:
        """Yield ``(layer, sub_block, hidden)`` after the embedding (layer -1, "embed") and after
        each attention ("attn") and MLP ("mlp") sub-block; ``hidden`` is ``[T, hidden]`` on the backend.

        Only one block of weights is alive at a time.
        """
        ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
        if ids.size == 0:
            raise UsageError("no token ids to run (empty prompt)")
        if cache is not None and pos0 + ids.size > cache.capacity:
            raise UsageError(f"KV cache holds {cache.capacity} positions, {pos0 + ids.size} needed")
        be = self.backend
        cos_np, sin_np = rope_tables(self.cfg, pos0, ids.size)
        cos, sin = be.asarray(cos_np), be.asarray(sin_np)
        if self.cfg.rope_theta_local is not None:
            cl, sl = rope_tables(self.cfg, pos0, ids.size, self.cfg.rope_theta_local)
            self._local_rope = (be.asarray(cl), be.asarray(sl))
        else:
            self._local_rope = (cos, sin)
        h = be.asarray(self.weights.embed(ids))
        if self.cfg.embed_scale is not None:
            h = h * np.float32(self.cfg.embed_scale)
        yield -1, "embed", h
        for i in range(self.cfg.num_layers):
            lw = be.layer(self.weights.layer(i))
            h = self._attn(h, lw, cache, pos0, cos, sin)
            yield i, "attn", h
            h = self._mlp(h, lw)
            del lw
            yield i, "mlp", h
        if cache is not None:
            cache.length = pos0 + ids.size

    def logits(self, h: Any) -> np.ndarray:
        """Final norm + LM head (streamed in row chunks) -> float32 numpy ``[T, vocab]``."""
        be = self.backend
        x = be.rmsnorm(h, be.asarray(self.weights.final_norm()), self.cfg.rms_eps)
        out_t = np.empty((self.weights.head_info().shape[0], x.shape[0]), np.float32)  # [vocab, T]
        for r0, r1, w in self.weights.head_chunks():
            be.head_rows(x, be.asarray(w), out_t[r0:r1])
            del w
        out = np.ascontiguousarray(out_t.T)
        del out_t
        bias = self.weights.head_bias()
        if bias is not None:
            out += bias
        if self.cfg.final_softcap:
            out = np.tanh(out / np.float32(self.cfg.final_softcap)) * np.float32(self.cfg.final_softcap)
        return out

    def run(self, token_ids: Any, cache: KVCache | None = None, pos0: int = 0, last_only: bool = False) -> np.ndarray:
        """Logits ``[T, vocab]`` (``[1, vocab]`` with ``last_only``) for ``token_ids`` at ``pos0``."""
        h = None
        for _, _, h in self.stream(token_ids, cache, pos0):
            pass
        if last_only:
            h = h[-1:]
        return self.logits(h)

    def generate(self, token_ids: Any, n: int, *, keep_logits: bool = False) -> tuple[list[int], np.ndarray | None]:
        """Greedy decoding of ``n`` tokens after a prefill of ``token_ids`` (KV cache).

        Returns:
            ``(new_ids, logits)`` where ``logits`` (with ``keep_logits``) is
            ``[len(token_ids) + n - 1, vocab]``: the prompt's positions, then each decode step
            (the logits that chose new token ``j`` sit at row ``len(token_ids) - 1 + j``).
        """
        ids = [int(t) for t in np.asarray(token_ids, dtype=np.int64).reshape(-1)]
        if n < 0:
            raise UsageError(f"cannot generate {n} tokens")
        if not ids:
            raise UsageError("no token ids to continue (empty prompt)")
        cache = KVCache.create(self.cfg, len(ids) + max(n, 1), self.backend)
        rows: list[np.ndarray] = []
        logits = self.run(ids, cache, 0, last_only=not keep_logits)
        if keep_logits:
            rows.append(logits)
        new: list[int] = []
        for j in range(n):
            tok = int(np.argmax(logits[-1]))
            new.append(tok)
            if j == n - 1:
                break
            logits = self.run([tok], cache, cache.length, last_only=True)
            if keep_logits:
                rows.append(logits)
        return new, (np.concatenate(rows, axis=0) if keep_logits else None)
