"""The decoder forward pass: every registered family whose facts it computes (``family_facts.RUNS``:
llama, mistral GQA, qwen2 q/k/v biases, qwen3 q/k norms, gemma/gemma2/gemma3, phi3).

One implementation of the model maths, written against a small backend interface
(``cpu_backend.NumpyBackend``: numpy BLAS + numba kernels; ``torch_backend.TorchBackend``
for CUDA). Weights stream one block at a time from ``ModelWeights``; a
``KVCache`` keeps keys/values for prefill-then-decode generation.

Per block (HF semantics, float32 throughout)::

    x = h + o(attn(rope(qn(q(norm1(h)))), rope(kn(k(norm1(h)))), v(norm1(h))))   # qn/kn: qk_norm families
    h = x + down(act(gate(norm2(x))) * up(norm2(x)))                             # act: the family's

RoPE pairs dims (i, i + head_dim/2) ("neox"); llama.cpp-ordered Q/K rows were
already inverse-permuted by ``ModelWeights``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from ..errors import UsageError
from .cpu_backend import NumpyBackend
from .weights import ForwardConfig, LayerWeights, ModelWeights


_ACTIVATIONS = {"silu": "silu_mul", "gelu_pytorch_tanh": "gelu_tanh_mul"}  # HF hidden_act -> backend method


def rope_tables(cfg: ForwardConfig, pos0: int, n: int, theta: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin ``[n, head_dim/2]`` float32 for positions ``pos0..pos0+n-1`` (HF's float32 recipe)."""
    hd = cfg.head_dim
    inv_freq = (np.float32(1.0) / (np.float32(theta if theta is not None else cfg.rope_theta)
                                   ** (np.arange(0, hd, 2, dtype=np.float32) / np.float32(hd)))).astype(np.float32)
    pos = np.arange(pos0, pos0 + n, dtype=np.float32)
    ang = pos[:, None] * inv_freq[None, :]
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


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
        self._packed = bool(getattr(self.backend, "packed", False))
        # the backend's fused act(gate)·up for each activation the decoder computes (family_facts.RUNS)
        act = _ACTIVATIONS.get(self.cfg.activation)
        if act is None or not hasattr(self.backend, act):
            raise UsageError(f"activation {self.cfg.activation!r} is not computed by the "
                             f"{type(self.backend).__name__} backend")
        self._act = getattr(self.backend, act)

    # ----------------------------------------------------------------- blocks
    def _attn(self, h: Any, lw: LayerWeights, cache: KVCache | None, pos0: int, cos: Any, sin: Any) -> Any:
        c, be = self.cfg, self.backend
        t_len = h.shape[0]
        x = be.rmsnorm(h, lw.attn_norm, c.rms_eps)
        q, k, v = be.linears(x, (lw.q, lw.k, lw.v), (lw.q_bias, lw.k_bias, lw.v_bias))
        q = q.reshape(t_len, c.num_heads, c.head_dim)
        k = k.reshape(t_len, c.num_kv_heads, c.head_dim)
        v = v.reshape(t_len, c.num_kv_heads, c.head_dim)
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
        gate, up = be.linears(x, (lw.gate, lw.up))
        g = self._act(gate, up)
        out = be.linear(g, lw.down)
        if lw.post_mlp_norm is not None:
            out = be.rmsnorm(out, lw.post_mlp_norm, self.cfg.rms_eps)
        return h + out

    def stream(self, token_ids: Any, cache: KVCache | None = None, pos0: int = 0) -> Iterator[tuple[int, str, Any]]:
        """Yield ``(layer, sub_block, hidden)`` after the embedding (layer -1, "embed") and after
        each attention ("attn") and MLP ("mlp") sub-block; ``hidden`` is ``[T, hidden]`` on the backend.

        Only one block of weights is alive at a time; with a model above its resident budget
        (``ModelWeights.releases_pages``) a block's file pages are given back once it is computed, in
        a prefill and in each decode step alike (docs/forward.md, "Resident weights").
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
            lw = be.layer(self.weights.layer(i, packed=self._packed))
            with be.compute():
                h = self._attn(h, lw, cache, pos0, cos, sin)
            yield i, "attn", h
            with be.compute():
                h = self._mlp(h, lw)
            del lw
            if self.weights.releases_pages:  # a model above the resident budget: this block's pages go back
                self.weights.release_layer(i)
            yield i, "mlp", h
        if cache is not None:
            cache.length = pos0 + ids.size

    def logits(self, h: Any) -> np.ndarray:
        """Final norm + LM head (streamed in row chunks) -> float32 numpy ``[T, vocab]``."""
        be = self.backend
        x = be.rmsnorm(h, be.asarray(self.weights.final_norm()), self.cfg.rms_eps)
        out = np.empty((x.shape[0], self.weights.head_info().shape[0]), np.float32)  # [T, vocab]
        head = self.weights.head() if self._packed else None
        if head is not None:
            be.packed_linear(x, head, out=out)
        else:
            for r0, r1, w in self.weights.head_chunks():
                with be.compute():
                    be.head_rows(x, be.asarray(w), out[:, r0:r1])
                del w
        if self.weights.releases_pages:
            self.weights.release_head()
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
