# size: the one place that turns a model's tensors into the forward pass's blocks — names, RoPE rows, norms, packing and page release must agree
"""Layer-streamed float32 weights of a decoder model (its family's facts: ``family_facts``).

``ModelWeights`` wraps an opened ``Model`` and hands out one transformer block at a
time (``layer(i) -> LayerWeights``). With ``packed=True`` (the CPU backend) every
quantized matrix stays in the memory map as a ``PackedWeight`` that the native matmul
multiplies block by block, so no weight is ever expanded to float32; otherwise (the
torch backend) a block is dequantized through ``aprqa.core`` when asked for, and peak
memory is about one block of float32 weights. Embedding rows are dequantized only for
the token ids in use; the LM head is either packed or streamed in row chunks
(``head_chunks``), never materialised whole.

Two facts about formats live here and nowhere else in inference/:

* F32 payloads are used as zero-copy read-only views of the memory map (no
  dequantization needed; every other dtype goes through ``aprqa.core``).
* llama/mistral GGUF files store Q/K rows in llama.cpp's adjacent-pair RoPE order
  (``arch.rope_permuted``). Those rows are inverse-permuted on load, so the
  forward pass always uses split-halves ("neox") RoPE — the one convention it has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .. import arch as archreg
from .. import core
from ..arch import unpermute_rope_rows
from ..errors import UsageError
from ..formats import open_model
from ..formats.model import Model, TensorInfo
from ..quant.dtypes import DType
from .family_facts import (DECODER, FamilyError, check_block_tensors, check_runs, families, family_facts,
                           infer_family, runner_for)
from .packed import PackedWeight, packable

# LM-head chunk budget: rows per chunk = this many bytes of float32 / hidden size.
HEAD_CHUNK_BYTES = 64 << 20
# A model whose mapped weights exceed this gives each block's file pages back after the forward computed
# it (and the LM head's after the logits): its resident weights stay about one block plus the head,
# whatever its size. Below it the pages stay (a decode step then re-faults nothing): the 0.5B-class
# models of the speed benchmarks (≤ 0.6 GB as q8_0) keep their speed, and three such models in one
# compare (reference, candidate, faithful twin) hold at most 3 GiB.
RESIDENT_WEIGHT_BYTES = 1 << 30


def _f32_view(info: TensorInfo) -> np.ndarray | None:
    """Zero-copy float32 view of an F32 payload (None when the dtype is not F32)."""
    if info.dtype is not DType.F32:
        return None
    raw = info.raw()
    arr = raw.view(np.float32).reshape(info.shape)
    if not arr.flags.aligned:  # an odd payload offset: BLAS would copy anyway, so copy once here
        arr = arr.copy()
    return arr


def dequantize_full(info: TensorInfo, out: np.ndarray | None = None) -> np.ndarray:
    """The whole tensor as float32: a view for F32, else ``out`` filled (or a fresh array)."""
    arr = _f32_view(info)
    if arr is not None:
        return arr
    res = core.dequantize(info, out=out)
    return np.asarray(res, dtype=np.float32).reshape(info.shape)


def dequantize_rows(info: TensorInfo, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
    """Rows ``[start, stop)`` of a 2-D tensor as float32 ``[stop-start, cols]`` (into ``out`` if given)."""
    if len(info.shape) != 2 or not 0 <= start <= stop <= info.shape[0]:
        raise UsageError(f"tensor '{info.name}' {list(info.shape)}: rows [{start}, {stop}) out of range")
    arr = _f32_view(info)
    if arr is not None:
        return arr[start:stop]
    # the TensorInfo itself, not its bytes: a row-padded payload is read row by row
    res = core.dequantize_rows(info, info.dtype, info.shape, start, stop, out=out)
    return np.asarray(res, dtype=np.float32).reshape(stop - start, info.shape[1])


@dataclass(frozen=True)
class ForwardConfig:
    """Everything the forward pass needs, resolved and checked against the tensor shapes."""

    architecture: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    rope_theta: float
    rms_eps: float
    tied_embeddings: bool
    qkv_bias: bool
    qk_norm: bool  # per-head q/k RMSNorm before RoPE (qwen3, gemma3)
    rope_unpermute: bool  # q/k rows are stored in llama.cpp order and undone on load
    notes: tuple[str, ...] = ()
    # From the family's ForwardFacts (family_facts): phi3's fused qkv/gate_up, gemma's (1+w) norms, GELU-tanh,
    # scaled embeddings, sandwich norms, windowed layers with their own RoPE base; soft-caps: the config's.
    fused_qkv: bool = False
    norm_one_plus: bool = False
    activation: str = "silu"
    embed_scale: float | None = None
    sandwich_norms: bool = False
    sliding_window: int | None = None
    sliding_layers: tuple[int, ...] = ()
    rope_theta_local: float | None = None
    attn_softcap: float | None = None
    final_softcap: float | None = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class LayerWeights:
    """One transformer block as float32 arrays ([out, in] row-major; biases / norms 1-D)."""

    index: int
    attn_norm: np.ndarray
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    o: np.ndarray
    mlp_norm: np.ndarray
    gate: np.ndarray
    up: np.ndarray
    down: np.ndarray
    q_bias: np.ndarray | None = None
    k_bias: np.ndarray | None = None
    v_bias: np.ndarray | None = None
    o_bias: np.ndarray | None = None
    q_norm: np.ndarray | None = None
    k_norm: np.ndarray | None = None
    post_attn_norm: np.ndarray | None = None
    post_mlp_norm: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.__dict__.values() if isinstance(a, np.ndarray))


@dataclass
class ModelWeights:
    """Layer-at-a-time float32 access to a ``Model``'s weights.

    Args:
        model: an opened model (``aprqa.formats.open_model``).
        reuse_buffers: dequantize into buffers reused from one ``layer()`` / ``head_chunks()``
            call to the next (no fresh allocation and page faults per block). Arrays from the
            previous call are then overwritten: only for a consumer that drops a block before
            asking for the next (``LlamaRunner`` does).
        resident_budget: mapped weight bytes above which ``releases_pages`` is True (None:
            ``RESIDENT_WEIGHT_BYTES``): the runner then calls ``release_layer(i)`` after block ``i``
            and ``release_head()`` after the logits.
    Raises:
        FamilyError: a family the decoder does not run, or a block without a tensor its facts need.
        UsageError: missing config facts, or shapes that disagree with the config.
    """

    model: Model
    reuse_buffers: bool = False
    resident_budget: int | None = None
    config: ForwardConfig = field(init=False)
    releases_pages: bool = field(init=False)
    _pool: dict = field(init=False, default_factory=dict, repr=False)
    _packed: dict = field(init=False, default_factory=dict, repr=False)
    _blocks: dict = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.config = self._resolve()
        mapped = 0
        for name, t in self.model.tensors.items():
            mapped += t.nbytes
            m = _BLOCK.match(name)
            if m:
                self._blocks.setdefault(int(m.group(1)), []).append(t)
        budget = RESIDENT_WEIGHT_BYTES if self.resident_budget is None else self.resident_budget
        self.releases_pages = mapped > budget

    # ------------------------------------------------------------------ pages
    def release_layer(self, i: int) -> None:
        """Give back the resident file pages of block ``i``'s tensors (views of the map stay valid:
        the pages are re-read from the page cache or the file on the next touch)."""
        for t in self._blocks.get(i, ()):
            _release(t)

    def release_head(self) -> None:
        """Give back the LM head's resident file pages."""
        _release(self.head_info())

    def _buffer(self, key: str, shape: tuple[int, ...]) -> np.ndarray | None:
        if not self.reuse_buffers:
            return None
        buf = self._pool.get(key)
        if buf is None or buf.shape != shape:
            buf = self._pool[key] = np.empty(shape, np.float32)
        return buf

    # ------------------------------------------------------------------ config
    def _t(self, name: str) -> TensorInfo:
        try:
            return self.model.tensors[name]
        except KeyError:
            raise UsageError(f"{self.model.path}: tensor '{name}' is missing; the forward pass needs it") from None

    def _resolve(self) -> ForwardConfig:
        m = self.model
        c = m.config
        tensors = m.tensors
        notes: list[str] = []
        arch = c.architecture or infer_family(tensors)
        if c.architecture is None:
            notes.append(f"architecture not stated; inferred '{arch}' from tensor names")
        spec = archreg.family(arch)
        if spec is None:
            raise FamilyError(m.path, arch, "architecture", "not a registered family; the forward pass runs "
                              + ", ".join(families(DECODER)))
        if runner_for(spec) != DECODER:
            raise FamilyError(m.path, spec.arch, "ForwardFacts.causal", "an encoder: inference.encoder runs it")
        check_runs(spec, DECODER, m.path)
        arch = spec.arch
        emb = self._t("model.embed_tokens.weight")
        if len(emb.shape) != 2:
            raise UsageError(f"{m.path}: model.embed_tokens.weight has shape {list(emb.shape)}, expected 2-D")
        vocab, hidden = emb.shape
        if c.hidden_size is not None and c.hidden_size != hidden:
            raise UsageError(f"{m.path}: config hidden_size {c.hidden_size} but embedding width {hidden}")
        fused = spec.forward.fused_qkv  # phi3: qkv and gate_up in one
        marker = "self_attn.qkv_proj.weight" if fused else "self_attn.q_proj.weight"
        n_layers = archreg.layer_count(c.num_layers, tensors) or 0
        if c.num_layers is None:
            notes.append(f"num_layers not stated; counted {n_layers} blocks")
        if n_layers <= 0:
            raise UsageError(f"{m.path}: model has no transformer blocks")
        check_block_tensors(spec, tensors, range(1), m.path)  # block 0 first: the count below reads it
        # The stated count must be what the file holds, before anything is sized from it.
        if (f"model.layers.{n_layers - 1}.{marker}" not in tensors
                or f"model.layers.{n_layers}.{marker}" in tensors):
            held = sum(1 for n in tensors if n.endswith("." + marker))
            raise UsageError(f"{m.path}: config states {n_layers:,} layers but the file holds {held} blocks")
        check_block_tensors(spec, tensors, range(1, n_layers), m.path)
        if c.vocab_size is not None and c.vocab_size != vocab:
            notes.append(f"config vocab_size {c.vocab_size} differs from the embedding's {vocab} rows; "
                         "the embedding is used")
        heads = c.num_heads
        if heads is None:
            raise UsageError(f"{m.path}: config states no num_heads (attention head count)")
        kv_heads = c.num_kv_heads or heads
        if fused:
            qkv = self._t("model.layers.0.self_attn.qkv_proj.weight").shape
            head_dim = c.head_dim or qkv[0] // (heads + 2 * kv_heads)
            q_shape, k_shape = (heads * head_dim, qkv[1]), ((qkv[0] - heads * head_dim) // 2, qkv[1])
        else:
            q_shape = self._t("model.layers.0.self_attn.q_proj.weight").shape
            k_shape = self._t("model.layers.0.self_attn.k_proj.weight").shape
            head_dim = c.head_dim or q_shape[0] // heads
        if q_shape != (heads * head_dim, hidden) or k_shape != (kv_heads * head_dim, hidden):
            raise UsageError(f"{m.path}: q_proj {list(q_shape)} / k_proj {list(k_shape)} do not fit "
                             f"{heads} heads × {head_dim} (kv heads {kv_heads}), hidden {hidden}")
        if heads % kv_heads:
            raise UsageError(f"{m.path}: {heads} heads is not a multiple of {kv_heads} kv heads")
        if head_dim % 2:
            raise UsageError(f"{m.path}: head_dim {head_dim} is odd; RoPE needs pairs")
        ff = (self._t("model.layers.0.mlp.gate_up_proj.weight").shape[0] // 2 if fused
              else self._t("model.layers.0.mlp.gate_proj.weight").shape[0])
        theta = c.rope_theta
        if theta is None:
            theta = 10000.0
            notes.append("rope_theta not stated; 10000 assumed")
        if (eps := c.rms_eps) is None:
            raise UsageError(f"{m.path}: config states no RMSNorm epsilon")
        tied = "lm_head.weight" not in tensors
        if c.tied_embeddings is False and tied:
            raise UsageError(f"{m.path}: config says untied embeddings but lm_head.weight is missing")
        return ForwardConfig(
            architecture=arch, hidden_size=hidden, num_layers=n_layers, num_heads=heads, num_kv_heads=kv_heads,
            head_dim=head_dim, intermediate_size=ff, vocab_size=vocab, rope_theta=float(theta),
            rms_eps=float(eps), tied_embeddings=tied,
            qkv_bias="model.layers.0.self_attn.q_proj.bias" in tensors,
            rope_unpermute=archreg.rope_permuted("model.layers.0.self_attn.q_proj.weight", arch, m.format),
            notes=tuple(notes), **family_facts(spec, c, hidden, n_layers),
        )

    # ------------------------------------------------------------------ access
    def _get(self, name: str, optional: bool = False, packed: bool = False,
             fresh: bool = False) -> np.ndarray | PackedWeight | None:
        if optional and name not in self.model.tensors:
            return None
        info = self._t(name)
        permuted = archreg.rope_permuted(name, self.config.architecture, self.model.format)
        heads = archreg.rope_heads(name, self.config.num_heads, self.config.num_kv_heads) if permuted else None
        if packed and packable(info):
            return PackedWeight(name, info.raw(), info.dtype, (info.shape[0], info.shape[1]), heads)
        role = re.sub(r"^model\.layers\.\d+\.", "", name)
        w = dequantize_full(info, None if info.dtype is DType.F32 or fresh else self._buffer(role, info.shape))
        if heads is not None:
            w = unpermute_rope_rows(w, heads)
        if self.config.norm_one_plus and name.endswith("norm.weight"):
            # HF value (a gemma GGUF stores 1 + w), then the 1 + w the norm multiplies by, in float32
            # in the order transformers computes it.
            off = archreg.norm_offset(name, self.config.architecture, self.model.format)
            w = (w - np.float32(off) if off else w) + np.float32(1.0)
        return w

    def layer(self, i: int, packed: bool = False) -> LayerWeights:
        """Block ``i``: float32 arrays (zero-copy views for F32), or with ``packed`` its quantized
        matrices as ``PackedWeight`` (kept between calls: they are views of the memory map)."""
        if not 0 <= i < self.config.num_layers:
            raise UsageError(f"layer {i} out of range (model has {self.config.num_layers})")
        if not packed:
            return self._layer(i, False, False)
        lw = self._packed.get(i)
        if lw is None:
            # kept only when every matrix is packed: then the block holds views and small 1-D arrays
            p = f"model.layers.{i}."
            keep = all(packable(t) for n, t in self.model.tensors.items()
                       if n.startswith(p) and n.endswith("proj.weight"))
            lw = self._layer(i, True, keep)
            if keep:
                self._packed[i] = lw
        return lw

    def _layer(self, i: int, packed: bool, fresh: bool) -> LayerWeights:
        p = f"model.layers.{i}."
        sandwich = self.config.sandwich_norms

        def g(name: str, optional: bool = False) -> Any:
            return self._get(name, optional, packed=packed and name.endswith("proj.weight"), fresh=fresh)

        if self.config.fused_qkv:
            return self._fused_layer(i, g)
        return LayerWeights(
            index=i,
            attn_norm=g(p + "input_layernorm.weight"), q=g(p + "self_attn.q_proj.weight"),
            k=g(p + "self_attn.k_proj.weight"), v=g(p + "self_attn.v_proj.weight"),
            o=g(p + "self_attn.o_proj.weight"),
            mlp_norm=g(p + ("pre_feedforward_layernorm.weight" if sandwich else "post_attention_layernorm.weight")),
            post_attn_norm=g(p + "post_attention_layernorm.weight") if sandwich else None,
            post_mlp_norm=g(p + "post_feedforward_layernorm.weight") if sandwich else None,
            gate=g(p + "mlp.gate_proj.weight"), up=g(p + "mlp.up_proj.weight"), down=g(p + "mlp.down_proj.weight"),
            q_bias=g(p + "self_attn.q_proj.bias", True), k_bias=g(p + "self_attn.k_proj.bias", True),
            v_bias=g(p + "self_attn.v_proj.bias", True), o_bias=g(p + "self_attn.o_proj.bias", True),
            q_norm=g(p + "self_attn.q_norm.weight") if self.config.qk_norm else None,
            k_norm=g(p + "self_attn.k_norm.weight") if self.config.qk_norm else None,
        )

    def _fused_layer(self, i: int, g: Any) -> LayerWeights:
        """phi3: rows of qkv_proj are q, k, v; rows of gate_up_proj are gate, up (HF's split)."""
        p, c = f"model.layers.{i}.", self.config
        qkv = g(p + "self_attn.qkv_proj.weight")
        nq, nk = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
        gate_up = g(p + "mlp.gate_up_proj.weight")
        ff = gate_up.shape[0] // 2
        return LayerWeights(
            index=i, attn_norm=g(p + "input_layernorm.weight"),
            q=_rows(qkv, 0, nq), k=_rows(qkv, nq, nq + nk), v=_rows(qkv, nq + nk, qkv.shape[0]),
            o=g(p + "self_attn.o_proj.weight"), mlp_norm=g(p + "post_attention_layernorm.weight"),
            gate=_rows(gate_up, 0, ff), up=_rows(gate_up, ff, 2 * ff), down=g(p + "mlp.down_proj.weight"))

    def final_norm(self) -> np.ndarray:
        return self._get("model.norm.weight")

    def embed(self, token_ids: np.ndarray) -> np.ndarray:
        """Embedding rows of ``token_ids`` as float32 ``[n, hidden]``; only those rows are dequantized."""
        info = self._t("model.embed_tokens.weight")
        ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
        vocab = info.shape[0]
        bad = ids[(ids < 0) | (ids >= vocab)]
        if bad.size:
            raise UsageError(f"token id {int(bad[0])} is outside the vocabulary (0..{vocab - 1})")
        out = np.empty((ids.size, info.shape[1]), np.float32)
        uniq, inverse = np.unique(ids, return_inverse=True)
        for j, tok in enumerate(uniq):
            row = dequantize_rows(info, int(tok), int(tok) + 1)
            out[inverse == j] = row[0]
        return out

    def head(self) -> PackedWeight | None:
        """The LM head (tied: the embedding) as a ``PackedWeight``, or None when it is not packable."""
        info = self.head_info()
        return self._get(info.name, packed=True) if packable(info) else None

    def head_info(self) -> TensorInfo:
        name = "model.embed_tokens.weight" if self.config.tied_embeddings else "lm_head.weight"
        return self._t(name)

    def head_chunks(self, chunk_rows: int | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(row_start, row_stop, rows_f32)`` of the LM head (tied: the embedding)."""
        info = self.head_info()
        rows, cols = info.shape
        if chunk_rows is None:
            chunk_rows = max(1, HEAD_CHUNK_BYTES // (4 * cols))
        if info.dtype is DType.F32:  # zero-copy: one "chunk" costs nothing
            chunk_rows = rows
        for r0 in range(0, rows, chunk_rows):
            r1 = min(rows, r0 + chunk_rows)
            buf = None if info.dtype is DType.F32 else self._buffer("head", (chunk_rows, cols))
            if buf is not None and r1 - r0 < chunk_rows:
                buf = buf[: r1 - r0]
            yield r0, r1, dequantize_rows(info, r0, r1, out=buf)

    def head_bias(self) -> np.ndarray | None:
        return self._get("lm_head.bias", True)


_BLOCK = re.compile(r"^model\.layers\.(\d+)\.")


def _release(t: TensorInfo) -> None:
    if not t.past_eof and t._mapped is not None:
        core.release_pages(t.raw())  # a no-op for anything but a read-only file map


def _rows(w: Any, start: int, stop: int) -> Any:
    """Rows ``[start, stop)`` of a float32 array or a ``PackedWeight``."""
    return w.rows(start, stop) if isinstance(w, PackedWeight) else w[start:stop]


def open_weights(model: Model | str | Path) -> ModelWeights:
    """``ModelWeights`` of an opened model or a path (opened with ``open_model``)."""
    if not isinstance(model, Model):
        model = open_model(model)
    return ModelWeights(model)


def dominant_dtype(model: Model) -> DType:
    """The dtype most 2-D weights of ``model`` use (ties: the more quantized one)."""
    counts: dict[DType, int] = {}
    for t in model.tensors.values():
        if len(t.shape) == 2:
            counts[t.dtype] = counts.get(t.dtype, 0) + t.n_elements
    if not counts:
        raise UsageError(f"{model.path}: model has no 2-D weights")
    return max(counts, key=lambda d: (counts[d], d.is_quantized))
