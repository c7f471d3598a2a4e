"""Every architecture key llama.cpp reads, compared as llama.cpp will read it.

``compare_config`` compares the facts both formats spell (``ArchConfig``). llama.cpp reads more keys than
that for some architectures, each with a default when the key is absent (its ``load_arch_hparams``): the
SWA RoPE base, the sliding-window layer pattern, attention causality, RoPE scaling... A changed key
changes the logits while every tensor stays IDENTICAL, so:

* GGUF vs GGUF: every ``{arch}.*`` key either file stores is compared as stored (a key one side lacks is
  compared against llama.cpp's default where the table below has one).
* HF vs GGUF: each key of the table whose value config.json implies is compared with the GGUF's value,
  or with llama.cpp's default when the GGUF does not store it.

Key names are gguf-py's (``gguf_tables``); defaults are llama.cpp's (llama-hparams.h, models/*.cpp of
the pinned llama.cpp).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..arch.families import FAMILIES, family, windowed_layers
from ..arch.gguf_tables import tables
from ..formats.llamacpp_loader import loader_problems
from ..formats.model import Model
from .metadata import FieldDiff, FieldStatus, _close

_K = tables().key
HFValue = Callable[[dict[str, Any], int], Any]  # (config.json, layer count) -> the implied value (None: silent)


def _rope_params(cfg: dict[str, Any], layer_type: str) -> dict[str, Any]:
    rp = cfg.get("rope_parameters")
    if isinstance(rp, dict) and isinstance(rp.get(layer_type), dict):
        return rp[layer_type]
    return rp if isinstance(rp, dict) and layer_type == "full_attention" else {}


def _swa_base(cfg: dict[str, Any], _: int) -> Any:
    v = _rope_params(cfg, "sliding_attention").get("rope_theta")
    return cfg.get("rope_local_base_freq") if v is None else v


def _hf_swa_layers(cfg: dict[str, Any], n_layer: int) -> Any:
    types = cfg.get("layer_types")
    if isinstance(types, list) and len(types) == n_layer:
        return [t == "sliding_attention" for t in types]
    pattern = cfg.get("sliding_window_pattern")
    return _pattern_layers(pattern, n_layer) if isinstance(pattern, int) else None


def _pattern_layers(n_pattern: int, n_layer: int) -> list[bool]:
    """Per layer, whether it is windowed under llama.cpp's set_swa_pattern (``arch.windowed_layers``)."""
    windowed = set(windowed_layers(n_pattern, n_layer))
    return [il in windowed for il in range(n_layer)]


def _causal(cfg: dict[str, Any], _: int) -> Any:
    spec = family(cfg.get("model_type"))
    return None if spec is None else spec.forward.causal


@dataclass(frozen=True)
class KeyRule:
    """One key llama.cpp reads: its gguf-py name, the architectures it applies to, llama.cpp's value when
    the key is absent, and the value an HF config.json implies."""

    key: str  # gguf.Keys attribute path
    archs: tuple[str, ...]  # ("*",): every architecture
    default: Any  # a value, or a function of the GGUF's Model (a default llama.cpp derives from other keys)
    hf: HFValue | None = None
    layers: bool = False  # the value is a per-layer flag list (a scalar pattern is expanded)


def _final_softcap(cfg: dict[str, Any], _: int) -> Any:
    if "final_logit_softcapping" not in cfg:
        return None
    return cfg["final_logit_softcapping"] or 0.0  # null: no soft-capping, llama.cpp's 0


def _embd_per_head(m: Model) -> int | None:
    """llama.cpp's n_embd_head_k/v when the keys are absent: n_embd / n_head."""
    c = m.config
    return c.hidden_size // c.num_heads if c.hidden_size and c.num_heads else None


RULES: tuple[KeyRule, ...] = (
    KeyRule("Attention.KEY_LENGTH", ("*",), _embd_per_head),
    KeyRule("Attention.VALUE_LENGTH", ("*",), _embd_per_head),
    KeyRule("Rope.DIMENSION_COUNT", ("*",), _embd_per_head),  # n_rot defaults to n_embd_head_k
    KeyRule("LLM.FINAL_LOGIT_SOFTCAPPING", ("gemma3",), 0.0, _final_softcap),
    # llama.cpp's gemma3 defaults are the family's facts (arch.families)
    KeyRule("Rope.FREQ_BASE_SWA", ("gemma3",), FAMILIES["gemma3"].forward.rope_theta_local, _swa_base),
    KeyRule("Attention.SLIDING_WINDOW_PATTERN", ("gemma3",), FAMILIES["gemma3"].forward.swa_period, _hf_swa_layers,
            layers=True),
    KeyRule("Attention.CAUSAL", ("bert",), True, _causal),
)


def _gguf_value(m: Model, key: str) -> Any:
    v = m.metadata.get(key)
    return list(v) if isinstance(v, (list, tuple)) else v


def _n_layer(m: Model) -> int:
    return m.config.num_layers or 0


def _effective(rule: KeyRule, m: Model, key: str) -> tuple[Any, str]:
    """(value llama.cpp uses, how it got it) for a GGUF."""
    v = _gguf_value(m, key)
    how = "stored"
    if v is None:
        v = rule.default(m) if callable(rule.default) else rule.default
        how = "llama.cpp's default (key absent)"
    if rule.layers and isinstance(v, int) and not isinstance(v, bool):
        v = _pattern_layers(v, _n_layer(m))
    elif rule.layers and isinstance(v, list):
        v = [bool(x) for x in v]
    return v, how


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    return _close(a, b)


def _show(v: Any) -> Any:
    if isinstance(v, list) and v and all(isinstance(x, bool) for x in v):
        return "".join("S" if x else "D" for x in v)  # per layer: S = sliding window, D = dense
    return v


def _rules_for(arch: str | None) -> list[KeyRule]:
    return [r for r in RULES if arch in r.archs or "*" in r.archs]


def gguf_vs_gguf(ref: Model, cand: Model) -> list[FieldDiff]:
    """Every ``{arch}.*`` key either GGUF stores (absent keys at llama.cpp's default where known)."""
    arch = cand.config.architecture or ref.config.architecture
    if not arch:
        return []
    prefix = f"{arch}."
    rules = {_K(r.key).format(arch=arch): r for r in _rules_for(arch)}
    keys = sorted({k for m in (ref, cand) for k in m.metadata if k.startswith(prefix)} | set(rules))
    out = []
    for k in keys:
        rule = rules.get(k)
        if rule is not None:
            (a, ha), (b, hb) = _effective(rule, ref, k), _effective(rule, cand, k)
            note = "" if ha == hb else f"reference {ha}, candidate {hb}"
            out.append(FieldDiff(k, FieldStatus.MATCH if _same(a, b) else FieldStatus.DIFFERENT, _show(a), _show(b),
                                 note))
            continue
        a, b = _gguf_value(ref, k), _gguf_value(cand, k)
        if a is None:
            out.append(FieldDiff(k, FieldStatus.EXTRA, None, _show(b), "only the candidate stores it"))
        elif b is None:
            out.append(FieldDiff(k, FieldStatus.MISSING, _show(a), None,
                                 "the candidate does not store it: llama.cpp uses its default or refuses the file"))
        else:
            out.append(FieldDiff(k, FieldStatus.MATCH if _same(a, b) else FieldStatus.DIFFERENT, _show(a), _show(b)))
    return out


def hf_vs_gguf(ref: Model, cand: Model) -> list[FieldDiff]:
    """The table's keys for the architecture: config.json's implied value vs what llama.cpp reads."""
    hf, gg = (ref, cand) if cand.format == "gguf" else (cand, ref)
    cfg = hf.metadata.get("config")
    arch = gg.config.architecture
    if not isinstance(cfg, dict) or not arch:
        return []
    out = []
    for rule in _rules_for(arch):
        key = _K(rule.key).format(arch=arch)
        want = rule.hf(cfg, _n_layer(gg)) if rule.hf is not None else None
        if want is None:
            continue
        got, how = _effective(rule, gg, key)
        a, b = (want, got) if hf is ref else (got, want)
        out.append(FieldDiff(key, FieldStatus.MATCH if _same(want, got) else FieldStatus.DIFFERENT, _show(a), _show(b),
                             f"config.json implies {_show(want)}; the GGUF: {how}"))
    return out


def loader_fields(cand: Model) -> list[FieldDiff]:
    """A GGUF candidate's values llama.cpp's loader aborts on or refuses, each a DIFFERENT field: the file is
    no faithful conversion when its consumer cannot load it, however equal the tensors and keys."""
    if cand.format != "gguf":
        return []
    kv = {"general.architecture": cand.config.architecture, **cand.metadata}
    out = []
    for key, why in loader_problems(kv):
        v = cand.metadata.get(key)
        shown = v if isinstance(v, (int, float, str)) or v is None else f"{len(v):,} entries"
        out.append(FieldDiff(f"llama.cpp loads {key}", FieldStatus.DIFFERENT, "loadable", shown, why))
    return out


def llamacpp_key_fields(ref: Model, cand: Model) -> list[FieldDiff]:
    """The keys llama.cpp reads, compared (empty when neither side is a GGUF), then what its loader refuses."""
    fmts = (ref.format, cand.format)
    if fmts == ("gguf", "gguf"):
        return gguf_vs_gguf(ref, cand) + loader_fields(cand)
    if "gguf" in fmts and "safetensors" in fmts:
        return hf_vs_gguf(ref, cand) + loader_fields(cand)
    return loader_fields(cand)
