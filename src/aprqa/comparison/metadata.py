"""Architecture-config and tokenizer diff of two models (reference vs candidate).

Each field is MATCH, DIFFERENT, MISSING (stated by the reference, absent from the
candidate), EXTRA (stated only by the candidate) or NOT-STATED (neither side): both
values are kept; NOT-JUDGED (a check that could not run, with the reason). DIFFERENT, MISSING
and NOT-JUDGED fail; EXTRA and NOT-STATED are shown, never counted as matches. A tokenizer
missing from the candidate is a failure.

Known equivalence: a GGUF of a llama-family architecture that llama.cpp stores with
Q/K rows permuted (the registry's ``rope_permuted``) says RoPE "norm"; with the permuted
weights this is the same model as HF's "neox" (rotate_half). That pair is a MATCH
with a note, not DIFFERENT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..formats.model import ArchConfig, Model
from .. import arch as archreg


class FieldStatus:
    MATCH = "MATCH"
    DIFFERENT = "DIFFERENT"
    MISSING = "MISSING"
    EXTRA = "EXTRA"
    NOT_STATED = "NOT-STATED"
    NOT_JUDGED = "NOT-JUDGED"  # the check could not run (reason in the note): neither a pass nor a fault


# NOT-JUDGED fails too: a check that could not run is never a pass (the note says why)
_FAILING = {FieldStatus.DIFFERENT, FieldStatus.MISSING, FieldStatus.NOT_JUDGED}


@dataclass(frozen=True)
class FieldDiff:
    """One compared field. ``reference``/``candidate`` are the two values (None = absent)."""

    field: str
    status: str
    reference: Any
    candidate: Any
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.status not in _FAILING

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "status": self.status, "reference": self.reference,
                "candidate": self.candidate, "note": self.note, "passed": self.passed}


@dataclass(frozen=True)
class SectionDiff:
    """A list of field diffs (the config section or the tokenizer section)."""

    name: str
    fields: tuple[FieldDiff, ...]
    note: str = ""
    failed_outright: bool = False  # e.g. the candidate has no tokenizer at all

    @property
    def passed(self) -> bool:
        return not self.failed_outright and all(f.passed for f in self.fields)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def compared(self) -> int:
        return sum(1 for f in self.fields if f.status in (FieldStatus.MATCH, FieldStatus.DIFFERENT,
                                                          FieldStatus.MISSING))

    @property
    def matched(self) -> int:
        return sum(1 for f in self.fields if f.status == FieldStatus.MATCH)

    def problems(self) -> list[FieldDiff]:
        return [f for f in self.fields if not f.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "matched": self.matched, "compared": self.compared,
                "note": self.note, "fields": [f.to_dict() for f in self.fields]}


_CONFIG_FIELDS = ("architecture", "hidden_size", "num_layers", "num_heads", "num_kv_heads", "head_dim",
                  "intermediate_size", "vocab_size", "rope_theta", "rope_style", "rms_eps", "context_length",
                  "sliding_window", "attn_softcap", "final_softcap")


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            fa, fb = float(a), float(b)
        except (TypeError, ValueError):
            return False
        # GGUF stores theta/eps as f32: equal when they agree to f32 precision.
        return math.isclose(fa, fb, rel_tol=2 ** -23, abs_tol=0.0) or fa == fb
    return a == b


def _field(name: str, a: Any, b: Any, note: str = "") -> FieldDiff:
    if a is None and b is None:
        return FieldDiff(name, FieldStatus.NOT_STATED, None, None, note)
    if b is None:
        return FieldDiff(name, FieldStatus.MISSING, a, None, note)
    if a is None:
        return FieldDiff(name, FieldStatus.EXTRA, None, b, note)
    return FieldDiff(name, FieldStatus.MATCH if _close(a, b) else FieldStatus.DIFFERENT, a, b, note)


def _permuted_qk(model: Model) -> bool:
    return archreg.rope_permuted("model.layers.0.self_attn.q_proj.weight", model.config.architecture, model.format)


def carries_config(model: Model) -> bool:
    """False for a side that states no architecture at all (a bare .safetensors, a GGUF without
    general.architecture): there is nothing to compare, which is not a difference."""
    if model.format == "safetensors":
        return bool(model.metadata.get("config"))
    return model.config.architecture is not None


def _no_config(ref: Model, cand: Model) -> str | None:
    """"reference has no config.json: metadata not compared" (an HF side names its file), or None."""
    sides = [f"{side} has no config.json" if m.format == "safetensors" else f"{side} states no architecture"
             for side, m in (("reference", ref), ("candidate", cand)) if not carries_config(m)]
    return f"{' and '.join(sides)}: metadata not compared" if sides else None


def compare_config(ref: Model, cand: Model) -> SectionDiff:
    """Field-by-field diff of the two ArchConfigs ("not compared" when a side has no config)."""
    note = _no_config(ref, cand)
    if note is not None:
        return SectionDiff("metadata", (), note=note)
    a, b = ref.config, cand.config
    out: list[FieldDiff] = []
    for name in _CONFIG_FIELDS:
        va, vb = getattr(a, name), getattr(b, name)
        if name == "rope_style" and va is not None and vb is not None and va != vb \
                and {va, vb} == {"norm", "neox"}:
            norm_side = ref if va == "norm" else cand
            if _permuted_qk(norm_side) and not _permuted_qk(ref if norm_side is cand else cand):
                out.append(FieldDiff(name, FieldStatus.MATCH, va, vb,
                                     note=f"{norm_side.format} {norm_side.config.architecture} says 'norm' because "
                                          "llama.cpp stores Q/K rows permuted; equivalent to HF 'neox'"))
                continue
        if name == "architecture" and va != vb and _gguf_arch_of(va, vb):
            out.append(FieldDiff(name, FieldStatus.MATCH, va, vb,
                                 note="llama.cpp's converter writes this family under the architecture whose "
                                      "graph runs it (mistral as llama); a file converted back from such a GGUF "
                                      "says the same"))
            continue
        out.append(_field(name, va, vb))
    return SectionDiff("metadata", tuple(out))


def _gguf_arch_of(va: str | None, vb: str | None) -> bool:
    """Whether one side's architecture is the GGUF architecture llama.cpp writes the other side's family
    under (a GGUF of it, or a file converted back from one)."""
    for fam, arch in ((va, vb), (vb, va)):
        spec = archreg.family(fam)
        if spec is not None and spec.gguf_tensor_arch and spec.gguf_tensor_arch == arch:
            return True
    return False


def _first_diff(xs: tuple[str, ...], ys: tuple[str, ...]) -> int | None:
    if xs == ys:  # one comparison (packed vocabularies compare their bytes)
        return None
    for i, (x, y) in enumerate(zip(xs, ys)):
        if x != y:
            return i
    return None if len(xs) == len(ys) else min(len(xs), len(ys))


def _seq_field(name: str, xs: tuple[str, ...], ys: tuple[str, ...], what: str) -> FieldDiff:
    if not xs and not ys:
        return FieldDiff(name, FieldStatus.NOT_STATED, 0, 0)
    if not ys:
        return FieldDiff(name, FieldStatus.MISSING, len(xs), 0, note=f"candidate has no {what}")
    if not xs:
        return FieldDiff(name, FieldStatus.EXTRA, 0, len(ys))
    i = _first_diff(xs, ys)
    if i is None:
        return FieldDiff(name, FieldStatus.MATCH, len(xs), len(ys))
    ta = xs[i] if i < len(xs) else None
    tb = ys[i] if i < len(ys) else None
    n_diff = sum(1 for x, y in zip(xs, ys) if x != y) + abs(len(xs) - len(ys))
    return FieldDiff(name, FieldStatus.DIFFERENT, len(xs), len(ys),
                     note=f"first difference at {what} {i}: reference {ta!r}, candidate {tb!r} "
                          f"({n_diff:,} differ)")


def config_summary(cfg: ArchConfig) -> str:
    """Short one-line summary: ``hidden 896, layers 24, heads 14/2, rope 1e+06 neox, eps 1e-06, vocab 151936``."""
    parts = []
    if cfg.hidden_size is not None:
        parts.append(f"hidden {cfg.hidden_size}")
    if cfg.num_layers is not None:
        parts.append(f"layers {cfg.num_layers}")
    if cfg.num_heads is not None:
        parts.append(f"heads {cfg.num_heads}/{cfg.num_kv_heads}")
    if cfg.rope_theta is not None:
        parts.append(f"rope {cfg.rope_theta:g} {cfg.rope_style or ''}".rstrip())
    if cfg.rms_eps is not None:
        parts.append(f"eps {cfg.rms_eps:g}")
    if cfg.vocab_size is not None:
        parts.append(f"vocab {cfg.vocab_size}")
    return ", ".join(parts)
