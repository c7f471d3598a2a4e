"""The synthetic model presets (architecture facts only): what ``aprqa synth`` offers.

Apart from ``aprqa.synth.models`` (which trains a tokenizer and writes SafeTensors) so that the CLI's
argument parser can list the preset names without loading the writers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..formats.model import ArchConfig

__all__ = ["PRESETS", "Preset", "preset_names"]


@dataclass(frozen=True)
class Preset:
    config: ArchConfig
    qkv_bias: bool = False
    qk_norm: bool = False


_BASE = ArchConfig(hidden_size=256, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=64,
                   intermediate_size=512, vocab_size=512, rope_style="neox", context_length=2048)

PRESETS: dict[str, Preset] = {
    # Qwen2.5-style: q/k/v biases, rope theta 1e6, untied head.
    "qwen2-tiny": Preset(replace(_BASE, architecture="qwen2", rope_theta=1_000_000.0, rms_eps=1e-6,
                                 tied_embeddings=False), qkv_bias=True),
    # Llama/Mistral-style GQA, no biases.
    "llama-tiny": Preset(replace(_BASE, architecture="llama", rope_theta=10_000.0, rms_eps=1e-5,
                                 tied_embeddings=False)),
    # Qwen3-style: per-head q/k RMSNorm, tied embeddings.
    "qwen3-tiny": Preset(replace(_BASE, architecture="qwen3", rope_theta=1_000_000.0, rms_eps=1e-6,
                                 tied_embeddings=True), qk_norm=True),
}


def preset_names() -> list[str]:
    return sorted(PRESETS)
