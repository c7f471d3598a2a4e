"""BERT-style encoders: last hidden states, to compare two files of one encoder by cosine.

Post-norm blocks (transformers' ``BertModel``), float32, no attention mask (one sequence)::

    h = LN(word[ids] + position[0..T) + token_type[0])
    x = LN(h + o(softmax(q(h) k(h)ᵀ / √d) v(h)))
    h = LN(x + down(gelu(up(x))))        # gelu: the exact (erf) one

Weights come through ``weights.dequantize_full`` (any dtype aprqa decodes); names are the
registry's canonical BERT names, so GGUF, APR and HF files run alike.
"""

from __future__ import annotations

import math

import numpy as np

from ..arch import family, layer_count
from ..errors import UsageError
from ..formats.model import Model
from .family_facts import ENCODER, check_runs, families, runner_for
from .weights import dequantize_full

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return ((x - mean) / np.sqrt(var + np.float32(eps))) * w + b


def encoder_hidden_states(model: Model, token_ids: np.ndarray | list[int]) -> np.ndarray:
    """Last hidden states ``[T, hidden]`` (float32) of a BERT-style encoder.

    Raises:
        FamilyError: a registered encoder family with a fact this pass does not compute.
        UsageError: not an encoder family, a missing tensor or config fact, or ids out of range.
    """
    c = model.config
    spec = family(c.architecture)
    if spec is None or runner_for(spec) != ENCODER:
        raise UsageError(f"{model.path}: the encoder forward pass runs {', '.join(families(ENCODER))} models, "
                         f"not {c.architecture!r}")
    check_runs(spec, ENCODER, model.path)
    if not c.num_heads or c.rms_eps is None:
        raise UsageError(f"{model.path}: config states no head count or layer-norm epsilon")

    def t(name: str) -> np.ndarray:
        if name not in model.tensors:
            raise UsageError(f"{model.path}: tensor '{name}' is missing; the encoder needs it")
        return np.asarray(dequantize_full(model.tensors[name]), dtype=np.float32)

    ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
    word = t("embeddings.word_embeddings.weight")
    if ids.size == 0 or ids.min() < 0 or ids.max() >= word.shape[0]:
        raise UsageError(f"token ids must be in 0..{word.shape[0] - 1} (got {ids.size} ids)")
    pos = t("embeddings.position_embeddings.weight")
    if ids.size > pos.shape[0]:
        raise UsageError(f"{ids.size} tokens; the model has {pos.shape[0]} positions")
    eps = float(c.rms_eps)
    h = word[ids] + pos[: ids.size] + t("embeddings.token_type_embeddings.weight")[0]
    h = _layer_norm(h, t("embeddings.LayerNorm.weight"), t("embeddings.LayerNorm.bias"), eps)
    n_layers = layer_count(c.num_layers, model.tensors) or 0
    nh = c.num_heads
    for i in range(n_layers):
        p = f"encoder.layer.{i}."

        def lin(x: np.ndarray, name: str) -> np.ndarray:
            return x @ t(p + name + ".weight").T + t(p + name + ".bias")

        q, k, v = (lin(h, f"attention.self.{n}") for n in ("query", "key", "value"))
        hd = q.shape[1] // nh
        qh, kh, vh = (a.reshape(-1, nh, hd).transpose(1, 0, 2) for a in (q, k, v))
        s = qh @ kh.transpose(0, 2, 1) / np.float32(math.sqrt(hd))
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ vh).transpose(1, 0, 2).reshape(ids.size, nh * hd)
        x = _layer_norm(h + lin(ctx, "attention.output.dense"), t(p + "attention.output.LayerNorm.weight"),
                        t(p + "attention.output.LayerNorm.bias"), eps)
        u = lin(x, "intermediate.dense")
        u = (0.5 * u * (1.0 + _erf(u / math.sqrt(2.0)))).astype(np.float32)
        h = _layer_norm(x + lin(u, "output.dense"), t(p + "output.LayerNorm.weight"),
                        t(p + "output.LayerNorm.bias"), eps)
    return h.astype(np.float32)
