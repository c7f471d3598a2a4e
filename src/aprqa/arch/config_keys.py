"""Architecture facts between the three spellings: GGUF KV, ``ArchConfig`` and config.json.

GGUF keys come from gguf-py's ``gguf.Keys`` (``{arch}.embedding_length`` ..., read through
``gguf_tables`` so gguf-py is not imported); config.json
keys are transformers' (4.x and 5.x spellings). Which facts an architecture has is the
registry's to say: an encoder (BERT) has no RoPE, its norm epsilon is a LayerNorm's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import FormatError, UsageError
from ..limits import check_config_value
from ..formats.model import ArchConfig, TokenizerInfo
from . import canonical_name  # the package's own names; arch/__init__ never imports this module
from .families import FAMILIES, ArchSpec, arch_name, family
from .gguf_tables import tables

_K = tables().key

# ArchConfig field -> GGUF key template (the eps key depends on the norm style).
GGUF_KEYS: dict[str, str] = {
    "context_length": _K("LLM.CONTEXT_LENGTH"),
    "hidden_size": _K("LLM.EMBEDDING_LENGTH"),
    "num_layers": _K("LLM.BLOCK_COUNT"),
    "intermediate_size": _K("LLM.FEED_FORWARD_LENGTH"),
    "num_heads": _K("Attention.HEAD_COUNT"),
    "num_kv_heads": _K("Attention.HEAD_COUNT_KV"),
    "rope_theta": _K("Rope.FREQ_BASE"),
    "vocab_size": _K("LLM.VOCAB_SIZE"),
    "head_dim": _K("Attention.KEY_LENGTH"),
    "sliding_window": _K("Attention.SLIDING_WINDOW"),
    "attn_softcap": _K("LLM.ATTN_LOGIT_SOFTCAPPING"),
    "final_softcap": _K("LLM.FINAL_LOGIT_SOFTCAPPING"),
}
FLOAT_FIELDS = frozenset({"rope_theta", "rms_eps", "attn_softcap", "final_softcap"})

# ArchConfig field -> config.json keys, first present wins.
HF_KEYS: dict[str, tuple[str, ...]] = {
    "hidden_size": ("hidden_size", "n_embd", "d_model"),
    "num_layers": ("num_hidden_layers", "n_layer"),
    "num_heads": ("num_attention_heads", "n_head"),
    "num_kv_heads": ("num_key_value_heads",),
    "head_dim": ("head_dim",),
    "intermediate_size": ("intermediate_size", "n_inner"),
    "vocab_size": ("vocab_size",),
    "rms_eps": ("rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon"),
    "context_length": ("max_position_embeddings", "n_positions"),
    "sliding_window": ("sliding_window",),
    "attn_softcap": ("attn_logit_softcapping",),
    "final_softcap": ("final_logit_softcapping",),
}


def eps_key(spec: ArchSpec | None) -> str:
    layer = spec is not None and spec.forward.norm == "layer"
    return _K("Attention.LAYERNORM_EPS") if layer else _K("Attention.LAYERNORM_RMS_EPS")


def has_rope(arch: str | None) -> bool:
    """False for families that have no rotary embedding (encoders with learned positions)."""
    spec = family(arch)
    return spec is None or bool(spec.forward.rope)


def rope_style(arch: str | None, fmt: str) -> str | None:
    """"norm" (adjacent pairs) where llama.cpp stores Q/K permuted (a GGUF), else "neox"; None without RoPE."""
    spec = family(arch)
    if spec is None:
        return "neox" if arch and fmt == "safetensors" else None
    if not spec.forward.rope:
        return None
    return "norm" if spec.rope_permuted and fmt == "gguf" else "neox"


def embedding_name(arch: str | None) -> str:
    """Canonical name of the token embedding (where a vocabulary size can be read)."""
    return canonical_name("token_embd.weight", arch)[0]


def output_name(arch: str | None) -> str:
    return canonical_name("output.weight", arch)[0]


def tied(arch: str | None, shapes: dict[str, Any]) -> bool | None:
    """No output tensor means tied embeddings; None without either tensor."""
    emb, out = embedding_name(arch), output_name(arch)
    if emb in shapes or out in shapes:
        return out not in shapes
    return None


def from_hf(cfg: dict[str, Any], shapes: dict[str, tuple[int, ...]], source: str | Path = "config.json") -> ArchConfig:
    """ArchConfig from a config.json dict; ``architecture`` is the GGUF arch name.

    Raises:
        FormatError: a size or float fact out of range (``limits.check_config_value``), or a
            model_type that is not a string.
    """
    def get(field: str) -> Any:
        for k in HF_KEYS[field]:
            if cfg.get(k) is not None:
                return check_config_value(source, k, cfg[k])
        return None

    if cfg.get("model_type") is not None and not isinstance(cfg.get("model_type"), str):
        raise FormatError(source, f"model_type {cfg['model_type']!r} is not a string", field="model_type")
    model_type = cfg.get("model_type")
    spec = family(model_type)
    arch = spec.arch if spec is not None else model_type
    vals = {f: get(f) for f in HF_KEYS}
    hidden, heads = vals["hidden_size"], vals["num_heads"]
    if vals["num_kv_heads"] is None:
        vals["num_kv_heads"] = heads
    if vals["head_dim"] is None and hidden and heads:
        vals["head_dim"] = hidden // heads
    theta = None
    if has_rope(arch):
        rope = cfg.get("rope_parameters") if isinstance(cfg.get("rope_parameters"), dict) else {}
        if isinstance(rope.get("full_attention"), dict):  # gemma3: per layer type
            rope = rope["full_attention"]
        theta = cfg.get("rope_theta") if cfg.get("rope_theta") is not None else rope.get("rope_theta")
        theta = check_config_value(source, "rope_theta", theta) if theta is not None else None
    emb = embedding_name(arch)
    if vals["vocab_size"] is None and emb in shapes:
        vals["vocab_size"] = shapes[emb][0]
    tie = cfg.get("tie_word_embeddings")
    if tie is None and shapes:
        tie = tied(arch, shapes)
    return ArchConfig(
        architecture=arch, rope_theta=float(theta) if theta is not None else None,
        rope_style=rope_style(arch, "safetensors") if model_type else None, tied_embeddings=tie,
        **{f: (float(v) if f in FLOAT_FIELDS and v is not None else v) for f, v in vals.items()},
    )


def to_hf(config: ArchConfig, tokenizer: TokenizerInfo | None,
          source: dict[str, Any] | None = None, rope_theta_swa: float | None = None) -> dict[str, Any]:
    """config.json for ``config``; only for families the registry maps completely.

    ``source``: the config.json the model was read with (an HF source); for a family the
    registry does not map completely it is carried over unchanged instead. ``rope_theta_swa``: the
    sliding-window layers' RoPE base a non-HF source states (GGUF ``rope.freq_base_swa``); unstated,
    config.json states none either, so transformers and llama.cpp's converter both take their default
    (10000) and an HF -> GGUF conversion writes no key the source did not have.

    Raises:
        UsageError: the family is not listed, or its config is not fully mapped, naming what is missing.
    """
    arch = config.architecture
    spec = family(arch)
    if (spec is None or not spec.config_complete) and source and family(source.get("model_type")) is spec \
            and arch_name(source.get("model_type")) == arch:
        return dict(source)
    if spec is None or not spec.config_complete:
        what = "no transformers class/config mapping" if spec is None else \
            "its config.json keys (e.g. type vocabulary size, pooling) are not mapped"
        raise UsageError(f"architecture {arch!r}: aprqa cannot write an HF config.json ({what}); "
                         "supported: " + ", ".join(s for s, f in _complete().items() if f)
                         + " (write .gguf/.apr, or a single .safetensors with --weights-only)")
    c = config
    cfg: dict[str, Any] = {
        "architectures": [spec.hf_class], "model_type": spec.model_type,
        "hidden_size": c.hidden_size, "num_hidden_layers": c.num_layers, "num_attention_heads": c.num_heads,
        "num_key_value_heads": c.num_kv_heads, "head_dim": c.head_dim, "intermediate_size": c.intermediate_size,
        "vocab_size": c.vocab_size, "rms_norm_eps": c.rms_eps, "max_position_embeddings": c.context_length,
        "tie_word_embeddings": bool(c.tied_embeddings), "hidden_act": spec.forward.activation,
        "rope_theta": c.rope_theta, "rope_parameters": {"rope_theta": c.rope_theta, "rope_type": "default"},
        "torch_dtype": "float32",
    }
    cfg.update(spec.hf_config)
    if spec.forward.sandwich_norms:  # gemma2/gemma3
        cfg["hidden_activation"] = spec.forward.activation
        cfg["query_pre_attn_scalar"] = c.head_dim
        cfg["sliding_window"] = c.sliding_window
        cfg["attn_logit_softcapping"] = c.attn_softcap
        cfg["final_logit_softcapping"] = c.final_softcap
    if spec.arch == "gemma3":
        # the family's window pattern (ForwardFacts.swa_period), written out per layer
        n = c.num_layers or 0
        windowed = set(spec.forward.windowed_layers(n))
        cfg["layer_types"] = ["sliding_attention" if i in windowed else "full_attention" for i in range(n)]
        cfg["rope_parameters"] = {"full_attention": {"rope_type": "default", "rope_theta": c.rope_theta}}
        local = _hf_local_theta(source) if source else rope_theta_swa
        if local is not None:
            cfg["rope_parameters"]["sliding_attention"] = {"rope_type": "default", "rope_theta": local}
        del cfg["rope_theta"]
    if tokenizer is not None:
        cfg["bos_token_id"] = tokenizer.bos_id
        cfg["eos_token_id"] = tokenizer.eos_id
        cfg["pad_token_id"] = tokenizer.pad_id
    return {k: v for k, v in cfg.items() if v is not None or k.endswith("softcapping")}


def _complete() -> dict[str, bool]:
    return {a: s.config_complete for a, s in FAMILIES.items()}


def from_gguf(kv: dict[str, Any], shapes: dict[str, tuple[int, ...]], vocab_from_tokenizer: int | None,
              as_int: Any, as_float: Any, warnings: list[str]) -> ArchConfig:
    """ArchConfig from GGUF KV (``as_int``/``as_float``: the reader's typed getters)."""
    arch = kv.get("general.architecture")
    if not isinstance(arch, str):
        return ArchConfig(tied_embeddings=tied(None, shapes))
    spec = family(arch)

    def key(field: str) -> str:
        return GGUF_KEYS[field].format(arch=arch)

    vals: dict[str, Any] = {f: (as_float(kv, key(f)) if f in FLOAT_FIELDS else as_int(kv, key(f)))
                            for f in GGUF_KEYS}
    vals["rms_eps"] = as_float(kv, eps_key(spec).format(arch=arch))
    hidden, heads = vals["hidden_size"], vals["num_heads"]
    if vals["head_dim"] is None and hidden and heads and hidden % heads == 0:
        vals["head_dim"] = hidden // heads
    if vals["num_kv_heads"] is None:
        vals["num_kv_heads"] = heads
    if not has_rope(arch):
        vals["rope_theta"] = None
    elif vals["rope_theta"] is None:
        vals["rope_theta"] = 10000.0
        warnings.append(f"{key('rope_theta')} is absent: llama.cpp's default 10000 assumed")
    if vals["vocab_size"] is None:
        vals["vocab_size"] = vocab_from_tokenizer
    emb = embedding_name(arch)
    if vals["vocab_size"] is None and emb in shapes:
        vals["vocab_size"] = shapes[emb][0]
    return ArchConfig(architecture=arch, rope_style=rope_style(arch, "gguf"), tied_embeddings=tied(arch, shapes),
                      **vals)


def to_gguf(config: ArchConfig) -> list[tuple[str, Any, str]]:
    """(key, value, kind) of the architecture KV pairs; kind is "u32" or "f32"."""
    arch = config.architecture
    spec = family(arch)
    out: list[tuple[str, Any, str]] = []
    for field, template in GGUF_KEYS.items():
        val = getattr(config, field)
        if field == "head_dim":
            c = config
            if val is None or (c.hidden_size and c.num_heads and c.hidden_size == val * c.num_heads):
                continue
            out.append((_K("Attention.VALUE_LENGTH").format(arch=arch), val, "u32"))
        if field == "rope_theta" and not has_rope(arch):
            continue
        if val is not None:
            out.append((template.format(arch=arch), val, "f32" if field in FLOAT_FIELDS else "u32"))
    if config.rms_eps is not None:
        out.append((eps_key(spec).format(arch=arch), config.rms_eps, "f32"))
    return out


def _hf_local_theta(cfg: dict[str, Any]) -> float | None:
    """The sliding-window layers' RoPE base of a config.json (gemma3's rope_parameters, or a local key)."""
    rope = cfg.get("rope_parameters") if isinstance(cfg.get("rope_parameters"), dict) else \
        cfg.get("rope_scaling") if isinstance(cfg.get("rope_scaling"), dict) else {}
    sliding = rope.get("sliding_attention") if isinstance(rope.get("sliding_attention"), dict) else None
    if sliding is not None and isinstance(sliding.get("rope_theta"), (int, float)):
        return float(sliding["rope_theta"])
    for k in ("local_rope_theta", "rope_local_theta", "rope_theta_local", "swa_rope_theta", "rope_local_base_freq"):
        if isinstance(cfg.get(k), (int, float)) and not isinstance(cfg.get(k), bool):
            return float(cfg[k])
    return None


def hf_gguf_hparams(config: ArchConfig, cfg: dict[str, Any]) -> tuple[list[tuple[str, Any, str]], set[str]]:
    """(keys to add, keys to drop) that make ``to_gguf`` of an HF source what llama.cpp's converter writes.

    Facts of the pinned converter: the head size is written (key and value length) when config.json
    states ``head_dim`` (gemma families: always); only llama/mistral write ``vocab_size`` and
    ``rope.dimension_count``; gemma and gemma2 write no RoPE base; a sliding-window RoPE base is
    written as ``rope.freq_base_swa``; encoders say ``attention.causal`` false; gemma3 writes its
    sliding window unless every layer is local.
    """
    arch = config.architecture or ""
    add: list[tuple[str, Any, str]] = []
    drop: set[str] = set()
    head_kl, head_vl = _K("Attention.KEY_LENGTH").format(arch=arch), _K("Attention.VALUE_LENGTH").format(arch=arch)
    head_dim = cfg.get("head_dim") if isinstance(cfg.get("head_dim"), int) else None
    if arch.startswith("gemma") and head_dim is None:
        head_dim = config.head_dim
    if not arch.startswith("gemma") and not any(k in cfg for k in ("num_key_value_heads", "n_kv_heads")):
        drop.add(_K("Attention.HEAD_COUNT_KV").format(arch=arch))
    if head_dim is not None:
        add += [(head_kl, head_dim, "u32"), (head_vl, head_dim, "u32")]
    else:
        drop |= {head_kl, head_vl}
    if arch not in ("llama", "mistral"):
        drop.add(_K("LLM.VOCAB_SIZE").format(arch=arch))
    elif config.num_heads:
        rope_dim = head_dim if head_dim is not None else (config.hidden_size or 0) // config.num_heads
        add.append((_K("Rope.DIMENSION_COUNT").format(arch=arch), rope_dim, "u32"))
    if arch in ("gemma", "gemma2"):
        drop.add(_K("Rope.FREQ_BASE").format(arch=arch))
    local = _hf_local_theta(cfg)
    if local is not None and has_rope(arch):
        add.append((_K("Rope.FREQ_BASE_SWA").format(arch=arch), local, "f32"))
    spec = family(arch)
    if spec is not None and not spec.forward.causal:
        add.append((_K("Attention.CAUSAL").format(arch=arch), False, "bool"))
    if arch == "phi3":  # its own parameter set: partial rotary dims, the original context, window 0 = none
        rope = cfg.get("rope_parameters") if isinstance(cfg.get("rope_parameters"), dict) else \
            cfg.get("rope_scaling") if isinstance(cfg.get("rope_scaling"), dict) else {}
        pct = rope.get("partial_rotary_factor", cfg.get("partial_rotary_factor", 1.0))
        if config.num_heads and config.hidden_size and isinstance(pct, (int, float)):
            add.append((_K("Rope.DIMENSION_COUNT").format(arch=arch), int(pct * config.hidden_size) // config.num_heads,
                        "u32"))
        orig = rope.get("original_max_position_embeddings", cfg.get("original_max_position_embeddings"))
        if isinstance(orig, int):
            add.append((_K("Rope.SCALING_ORIG_CTX_LEN").format(arch=arch), orig, "u32"))
        window = cfg.get("sliding_window")
        add.append((_K("Attention.SLIDING_WINDOW").format(arch=arch), window if isinstance(window, int) else 0, "u32"))
        drop.discard(_K("Attention.HEAD_COUNT_KV").format(arch=arch))
    if arch == "gemma3" and cfg.get("sliding_window_pattern") == 1:
        drop.add(_K("Attention.SLIDING_WINDOW").format(arch=arch))
    return add, drop
