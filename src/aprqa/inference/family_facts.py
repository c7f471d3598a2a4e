"""The one bridge from the family registry (``arch.ArchSpec``) to the forward passes.

The registry's ``ForwardFacts`` say how a family's blocks compute; this module says which runner
computes them (the causal decoder in ``llama.py`` or the encoder in ``encoder.py``), refuses a
family whose facts that runner does not compute (by family and field, never a silent SiLU), gives
the ``ForwardConfig`` fields the facts set, and the tensors every block must hold for them.
There is no family list here: a family is run when its registered facts are ones a runner computes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import arch as archreg
from ..arch import ArchSpec, ForwardFacts
from ..errors import UsageError
from ..formats.model import ArchConfig

DECODER, ENCODER = "decoder", "encoder"
# What each runner computes, per ForwardFacts field; a fact not listed is computed in every value.
RUNS: dict[str, dict[str, tuple[Any, ...]]] = {
    DECODER: {"norm": ("rms", "rms1p"), "activation": ("silu", "gelu_pytorch_tanh"), "gated_mlp": (True,),
              "rope": ("neox",), "causal": (True,)},
    ENCODER: {"norm": ("layer",), "activation": ("gelu",), "gated_mlp": (False,), "rope": ("",),
              "causal": (False,), "qk_norm": (False,), "sandwich_norms": (False,), "fused_qkv": (False,),
              "embed_scale": (False,), "swa_period": (0,), "rope_theta_local": (None,)},
}


class FamilyError(UsageError):
    """A model the forward pass refuses because of its family: a registered fact no runner computes,
    or a tensor the family's facts require (or exclude) that the file lacks (or holds).

    Attributes:
        path: the model file; ``family``: its GGUF architecture name; ``field``: the registry field
            (``ForwardFacts.qk_norm``) or, for a tensor, the tensor name.
    """

    def __init__(self, path: str | Path | None, family: str, field: str, message: str) -> None:
        self.path, self.family, self.field = (str(path) if path is not None else None), family, field
        super().__init__(f"{path}: {family}: {field}: {message}" if path is not None else
                         f"{family}: {field}: {message}")


def runner_for(spec: ArchSpec) -> str:
    """Which forward pass a family needs: the causal decoder or the (bidirectional) encoder."""
    return DECODER if spec.forward.causal else ENCODER


def check_runs(spec: ArchSpec, runner: str, path: str | Path | None = None) -> None:
    """Refuse (``FamilyError``) a family whose registered facts ``runner`` does not compute."""
    for name, computed in RUNS[runner].items():
        value = getattr(spec.forward, name)
        if value not in computed:
            raise FamilyError(path, spec.arch, f"ForwardFacts.{name}",
                              f"registered as {value!r}; the {runner} forward pass computes only "
                              f"{', '.join(repr(v) for v in computed)}")


def runs(spec: ArchSpec, runner: str) -> bool:
    """Whether ``runner`` computes every fact of ``spec``."""
    return runner_for(spec) == runner and all(getattr(spec.forward, k) in v for k, v in RUNS[runner].items())


def families(runner: str) -> tuple[str, ...]:
    """The registered families ``runner`` runs (GGUF architecture names, registry order)."""
    return tuple(a for a, s in archreg.FAMILIES.items() if runs(s, runner))


def block_tensors(f: ForwardFacts, i: int) -> dict[str, str | None]:
    """The tensors decoder block ``i`` must hold, each with the registry field that asks for it
    (None: every decoder block has it)."""
    p = f"model.layers.{i}."
    need: dict[str, str | None] = {p + "input_layernorm.weight": None, p + "post_attention_layernorm.weight": None}
    if f.fused_qkv:
        need[p + "self_attn.qkv_proj.weight"] = "ForwardFacts.fused_qkv"
    else:
        need.update({f"{p}self_attn.{n}_proj.weight": None for n in "qkv"})
    need[p + "self_attn.o_proj.weight"] = None
    if f.qk_norm:
        need.update({p + "self_attn.q_norm.weight": "ForwardFacts.qk_norm",
                     p + "self_attn.k_norm.weight": "ForwardFacts.qk_norm"})
    if f.sandwich_norms:
        need.update({p + "pre_feedforward_layernorm.weight": "ForwardFacts.sandwich_norms",
                     p + "post_feedforward_layernorm.weight": "ForwardFacts.sandwich_norms"})
    if f.fused_qkv:
        need[p + "mlp.gate_up_proj.weight"] = "ForwardFacts.fused_qkv"
    else:
        need.update({p + "mlp.gate_proj.weight": "ForwardFacts.gated_mlp", p + "mlp.up_proj.weight": None})
    need[p + "mlp.down_proj.weight"] = None
    return need


# Tensors a fact adds (block role -> the fact): a file holding one its family's facts exclude is another
# family's (a qwen3 file labelled qwen2 would otherwise run without its q/k norms).
_FACT_TENSORS = {"self_attn.q_norm.weight": "qk_norm", "self_attn.k_norm.weight": "qk_norm",
                 "pre_feedforward_layernorm.weight": "sandwich_norms",
                 "post_feedforward_layernorm.weight": "sandwich_norms",
                 "self_attn.qkv_proj.weight": "fused_qkv", "mlp.gate_up_proj.weight": "fused_qkv"}


def _foreign(i: int, need: dict[str, str | None], tensors: Any) -> tuple[str, str] | None:
    """The first tensor of block ``i`` that a fact the family lacks would add, with that fact, or None."""
    for role, fact in _FACT_TENSORS.items():
        name = f"model.layers.{i}.{role}"
        if name not in need and name in tensors:
            return name, fact
    return None


def check_block_tensors(spec: ArchSpec, tensors: Any, layers: range, path: str | Path | None) -> None:
    """Every block of ``layers`` holds the tensors the family's facts require and none that a fact it lacks adds.

    Raises:
        FamilyError: naming the first missing (or foreign) tensor and the registry field behind it.
    """
    f = spec.forward
    for i in layers:
        need = block_tensors(f, i)
        for name, why in need.items():
            if name not in tensors:
                reason = (f"the family registers {why}={getattr(f, why.split('.')[1])!r}" if why
                          else "every decoder block has it")
                raise FamilyError(path, spec.arch, name, f"missing ({reason})")
        foreign = _foreign(i, need, tensors)
        if foreign is not None:
            name, fact = foreign
            raise FamilyError(path, spec.arch, name, f"present, but the family registers ForwardFacts.{fact}="
                              f"{getattr(f, fact)!r}: the file is another family's (or mislabelled)")


def infer_family(tensors: Any) -> str:
    """For a file that states no architecture: the first registered decoder family whose block-0 tensors
    the file holds exactly; with a q_proj bias, the first of those whose config states attention biases."""
    def fits_exactly(arch: str) -> bool:
        need = block_tensors(archreg.FAMILIES[arch].forward, 0)
        return all(n in tensors for n in need) and _foreign(0, need, tensors) is None

    fits = [a for a in families(DECODER) if fits_exactly(a)]
    if "model.layers.0.self_attn.q_proj.bias" in tensors:
        fits = [a for a in fits if archreg.FAMILIES[a].hf_config.get("attention_bias")] or fits
    return fits[0] if fits else "llama"  # none fits: llama's names, and check_block_tensors names what is missing


def family_facts(spec: ArchSpec, c: ArchConfig, hidden: int, n_layers: int) -> dict[str, Any]:
    """The ``ForwardConfig`` fields the family's ``ForwardFacts`` (and the config's window and soft-caps) set."""
    f = spec.forward
    sliding = f.windowed_layers(n_layers) if c.sliding_window else ()
    return dict(norm_one_plus=f.norm == "rms1p", activation=f.activation, qk_norm=f.qk_norm, fused_qkv=f.fused_qkv,
                embed_scale=float(np.float32(hidden ** 0.5)) if f.embed_scale else None,
                sandwich_norms=f.sandwich_norms, sliding_window=c.sliding_window if sliding else None,
                sliding_layers=sliding, rope_theta_local=f.rope_theta_local,
                attn_softcap=c.attn_softcap, final_softcap=c.final_softcap)
