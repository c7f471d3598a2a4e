"""Deterministic tiny models in real Hugging Face layouts (no network, no torch).

``make_hf_model(dir, "qwen2-tiny")`` writes config.json, model.safetensors,
tokenizer.json (a byte-level BPE trained on an embedded corpus) and
tokenizer_config.json that transformers loads as-is. Weights are seeded
numpy draws, so the same preset and seed give byte-identical files.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from ..errors import UsageError
from ..formats import safetensors as st
from ..formats.hf import write_hf_config
from ..formats.model import ArchConfig, TensorData, TokenizerInfo
from ..fsio import atomic_output
from ..quant.dtypes import DType
from .presets import PRESETS, Preset, preset_names


_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "def add(a, b):\n    return a + b\n",
    "Converted models must produce the same output as the original.",
    "2 + 2 equals 4. What is the capital of France? Paris.",
    "import numpy as np\nx = np.arange(10)\nprint(x.sum())\n",
    "Once upon a time there was a small model that was converted to GGUF and APR.",
    "for i in range(3):\n    print(i * i)\n",
]
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                 "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def train_tokenizer_json(vocab_size: int) -> str:
    """A byte-level BPE tokenizer.json trained deterministically on the embedded corpus."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=1,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    tok.train_from_iterator(_CORPUS * 8, trainer)
    return tok.to_str()


def _weights(preset: Preset, seed: int) -> list[tuple[str, np.ndarray]]:
    c = preset.config
    rng = np.random.default_rng(seed)
    h, hd, nh, nkv, ff, v = (c.hidden_size, c.head_dim, c.num_heads, c.num_kv_heads,
                             c.intermediate_size, c.vocab_size)

    def lin(out: int, inp: int) -> np.ndarray:
        return (rng.standard_normal((out, inp)) / np.sqrt(inp)).astype(np.float32)

    def norm(n: int) -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    out: list[tuple[str, np.ndarray]] = [
        ("model.embed_tokens.weight", (0.5 * rng.standard_normal((v, h))).astype(np.float32))]
    for i in range(c.num_layers):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", norm(h)),
                (p + "self_attn.q_proj.weight", lin(nh * hd, h)),
                (p + "self_attn.k_proj.weight", lin(nkv * hd, h)),
                (p + "self_attn.v_proj.weight", lin(nkv * hd, h))]
        if preset.qkv_bias:
            out += [(p + f"self_attn.{x}_proj.bias", (0.1 * rng.standard_normal(n)).astype(np.float32))
                    for x, n in (("q", nh * hd), ("k", nkv * hd), ("v", nkv * hd))]
        if preset.qk_norm:
            out += [(p + "self_attn.q_norm.weight", norm(hd)), (p + "self_attn.k_norm.weight", norm(hd))]
        out += [(p + "self_attn.o_proj.weight", lin(h, nh * hd)),
                (p + "post_attention_layernorm.weight", norm(h)),
                (p + "mlp.gate_proj.weight", lin(ff, h)),
                (p + "mlp.up_proj.weight", lin(ff, h)),
                (p + "mlp.down_proj.weight", lin(h, ff))]
    out.append(("model.norm.weight", norm(h)))
    if not c.tied_embeddings:
        out.append(("lm_head.weight", lin(v, h)))
    return out


def make_hf_model(path: str | Path, preset: str = "qwen2-tiny", *, seed: int = 0,
                  dtype: str = "f32", **overrides: object) -> Path:
    """Write a deterministic tiny model as an HF directory and return its path.

    Args:
        path: directory to create (or reuse).
        preset: one of ``preset_names()``.
        seed: weight seed.
        dtype: "f32" or "f16" storage for 2-D weights (norms and biases stay f32, as converters do).
        overrides: ArchConfig fields to change (e.g. ``num_layers=4``).
    Raises:
        UsageError: unknown preset, dtype or override.
    """
    if preset not in PRESETS:
        raise UsageError(f"unknown synthetic preset {preset!r} (known: {', '.join(preset_names())})")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise UsageError(f"synthetic seed must be an integer in 0..2**63-1, got {seed!r}")
    if dtype not in ("f32", "f16"):
        raise UsageError(f"synthetic dtype must be f32 or f16, not {dtype!r}")
    p = PRESETS[preset]
    bad = set(overrides) - set(ArchConfig.__dataclass_fields__)
    if bad:
        raise UsageError(f"unknown ArchConfig field(s) {sorted(bad)}")
    if overrides:
        p = replace(p, config=replace(p.config, **overrides))  # type: ignore[arg-type]
    path = Path(path)
    with atomic_output(path, directory=True, make_parents=True) as tmp:  # all files or none
        tensors = []
        for name, w in _weights(p, seed):
            if dtype == "f16" and w.ndim == 2:
                tensors.append(TensorData(name, DType.F16, w.shape, w.astype(np.float16)))
            else:
                tensors.append(TensorData(name, DType.F32, w.shape, w))
        st.write(tmp / "model.safetensors", tensors, p.config, None)
        tj = json.loads(train_tokenizer_json(p.config.vocab_size))
        (tmp / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
        tok_to_id = {t["content"]: t["id"] for t in tj["added_tokens"]}
        eos = "<|im_end|>" if p.config.architecture in ("qwen2", "qwen3") else "<|endoftext|>"
        tcfg = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None, "eos_token": eos,
                "pad_token": "<|endoftext|>", "chat_template": CHAT_TEMPLATE, "model_max_length": 2048}
        (tmp / "tokenizer_config.json").write_text(json.dumps(tcfg, indent=2) + "\n", encoding="utf-8")
        write_hf_config(tmp, p.config, TokenizerInfo("gpt2", (), eos_id=tok_to_id[eos],
                                                      pad_id=tok_to_id["<|endoftext|>"]))
    return path
