"""The forward-pass facts a family adds to llama's (gemma: (1+w) norms, GELU-tanh, scaled
embeddings, sandwich norms, windowed layers with their own RoPE base, soft-capping), from the
registry's ``ForwardFacts`` and the model's config."""

from __future__ import annotations

import numpy as np

from .. import arch as archreg
from ..formats.model import ArchConfig


def family_facts(arch: str, c: ArchConfig, hidden: int, n_layers: int) -> dict:
    """The ForwardConfig fields the registry's ForwardFacts set for this family."""
    spec = archreg.family(arch)
    if spec is None or spec.forward.norm != "rms1p":
        return {}
    f = spec.forward
    # Which layers attend in a window: gemma2 every other one (from the first), gemma3 all but
    # every sixth (llama.cpp's and transformers' defaults for these families).
    period = 6 if arch == "gemma3" else 2 if arch == "gemma2" else 0
    sliding = tuple(i for i in range(n_layers) if period and (i + 1) % period)
    return dict(norm_one_plus=True, activation=f.activation, embed_scale=float(np.float32(hidden ** 0.5))
                if f.embed_scale else None, sandwich_norms=f.sandwich_norms,
                sliding_window=c.sliding_window if sliding else None, sliding_layers=sliding if c.sliding_window
                else (), rope_theta_local=10000.0 if arch == "gemma3" else None,
                attn_softcap=c.attn_softcap, final_softcap=c.final_softcap)
