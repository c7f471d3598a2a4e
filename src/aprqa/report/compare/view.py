"""A compare ``Report`` arranged for its HTML and Markdown pages: diagnosis lines of failing
tensors, the layer x tensor-role grid of errors, the |d| histogram summed over tensors, the
per-position output check. Picks values out of the report; measures nothing.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

_LAYER = re.compile(r"^(?:model\.)?layers\.(\d+)\.(.+)$")

# what undoing a diagnosed fault means, for the "as stored → if ..." line
_UNDONE = {"TRANSPOSED": "if transposed back", "ROW-PERMUTED": "with the rows put back in order",
           "SWAPPED": "against {related}", "DTYPE-MISREAD": "read as the right dtype",
           "SHAPE-MISMATCH": "under the reference shape", "SCALED": "once rescaled", "OFFSET": "once the offset is removed"}


# roles in the order data flows through a block; others follow in report order
ROLE_ORDER = ("input_layernorm", "attn.q_norm", "attn.k_norm", "attn.q_proj", "attn.q_proj.bias", "attn.k_proj",
              "attn.k_proj.bias", "attn.v_proj", "attn.v_proj.bias", "attn.o_proj", "post_attention_layernorm",
              "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def role_of(name: str) -> tuple[int | None, str]:
    """(layer, short role) of a canonical tensor name: ``model.layers.3.self_attn.q_proj.weight``
    → (3, "attn.q_proj"); tensors outside the layers → (None, name)."""
    m = _LAYER.match(name)
    if not m:
        return None, name
    role = m.group(2).replace("self_attn.", "attn.")
    return int(m.group(1)), role[: -len(".weight")] if role.endswith(".weight") else role


def diagnosis(t: Any) -> str:
    """The evidence behind a failing verdict: "rel-L2 1.41 as stored → 0 if transposed back"."""
    s, e = t.stats, t.explained_stats
    v = t.verdict.value
    if e is not None:
        how = _UNDONE.get(v, "once {transform} is undone").format(related=t.related or "another tensor",
                                                                  transform=(t.transform or ("the fault",))[-1])
        before = f"rel-L2 {s.rel_l2:.3g} as stored" if s is not None else "not comparable as stored"
        return f"{before} → {e.rel_l2:.3g} {how}"
    if s is not None:
        extra = f", err/noise {t.noise.ratio:.3g}" if t.noise is not None else ""
        return f"rel-L2 {s.rel_l2:.3g}, cos {s.cosine:.6g}, max |d| {s.max_abs:.3g}{extra}"
    return ""


@dataclass(frozen=True)
class GridCell:
    value: float | None      # rel-L2 of the pair (inf when it could not be compared)
    passed: bool
    tip: str


def error_grid(report: Any) -> tuple[list[str], list[str], dict[tuple[str, str], GridCell], dict[str, GridCell]]:
    """(layer rows, role columns, cells, tensors outside the layers) of rel-L2 per tensor."""
    rows: list[int] = []
    cols: list[str] = []
    cells: dict[tuple[str, str], GridCell] = {}
    outside: dict[str, GridCell] = {}
    for t in report.tensors:
        layer, role = role_of(t.name)
        val = t.stats.rel_l2 if t.stats is not None else (math.inf if not t.passed else None)
        noise = f" · err/noise {t.noise.ratio:.3g}" if t.noise is not None else ""
        tip = f"{t.name}: {t.verdict.value} · rel-L2 {val if val is None else f'{val:.3g}'}{noise}"
        cell = GridCell(val, t.passed, tip)
        if layer is None:
            outside[role] = cell
            continue
        if layer not in rows:
            rows.append(layer)
        if role not in cols:
            cols.append(role)
        cells[(f"layer {layer}", role)] = cell
    seen = {c: i for i, c in enumerate(cols)}
    cols.sort(key=lambda c: (ROLE_ORDER.index(c) if c in ROLE_ORDER else len(ROLE_ORDER), seen[c]))
    return [f"layer {r}" for r in sorted(rows)], cols, cells, outside


def bucket_label(k: int) -> str:
    """The core's |d| histogram buckets: 0 = exactly 0, 1 = (0, 2^-40), k = [2^(k-42), 2^(k-41)),
    62 = ≥ 2^20, 63 = non-finite."""
    if k == 0:
        return "0"
    if k == 1:
        return "<2^-40"
    if k == 62:
        return "≥2^20"
    if k == 63:
        return "nan/inf"
    return f"2^{k - 42}"


def histograms(report: Any) -> dict[str, list[int]]:
    """The kernel's |d| histograms summed over all compared tensors, and over the failing ones."""
    out: dict[str, list[int]] = {}
    for key, ts in (("all tensors", report.tensors), ("failing tensors", [t for t in report.tensors if not t.passed])):
        acc = [0] * 64
        seen = False
        for t in ts:
            if t.stats is not None and t.stats.histogram:
                seen = True
                for i, c in enumerate(t.stats.histogram[:64]):
                    acc[i] += int(c)
        if seen:
            out[key] = acc
    return out


def used_range(hist: list[int]) -> range:
    nz = [i for i, c in enumerate(hist) if c]
    return range(nz[0], nz[-1] + 1) if nz else range(0)


@dataclass(frozen=True)
class Position:
    index: int
    token: int | None
    kl: float
    top1_same: bool | None


def positions(outputs: Any) -> list[Position]:
    """KL and top-1 agreement at every position of the output check (empty when it did not run)."""
    m = getattr(outputs, "metrics", None)
    if m is None:
        return []
    ids = list(getattr(outputs, "token_ids", ()) or ())
    top = list(m.top1_per_position)
    return [Position(i, ids[i] if i < len(ids) else None, kl, top[i] if i < len(top) else None)
            for i, kl in enumerate(m.kl_per_position)]
