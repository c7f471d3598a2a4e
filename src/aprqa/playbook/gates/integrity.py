"""G0 gates: the source model opens and validates (G0-VALIDATE-001), config.json agrees with the tensor
shapes (G0-INTEGRITY-CONFIG), and each ``expected_*`` fact of the playbook holds (G0-INTEGRITY-*).
Header-only: measured before any conversion is submitted."""

from __future__ import annotations

from ...arch import layer_count
from ...formats.model import Model
from ...records import GateOutcome
from ..schema import EXPECTED_FACTS, Playbook
from .common import falsified, ok


def shape_facts(model: Model) -> dict[str, int | None]:
    """What the tensor shapes say about the architecture (None where no tensor tells)."""
    t = model.tensors
    cfg = model.config
    out: dict[str, int | None] = {k: None for k in ("hidden_size", "num_layers", "num_heads", "num_kv_heads",
                                                     "vocab_size", "intermediate_size")}
    emb = t.get("model.embed_tokens.weight") or t.get("lm_head.weight")
    if emb is not None and len(emb.shape) == 2:
        out["vocab_size"], out["hidden_size"] = emb.shape[0], emb.shape[1]
    out["num_layers"] = layer_count(None, t)  # what the tensors say, not the config (this checks the config)
    hd = cfg.head_dim or ((cfg.hidden_size // cfg.num_heads) if cfg.hidden_size and cfg.num_heads else None)
    q = t.get("model.layers.0.self_attn.q_proj.weight")
    k = t.get("model.layers.0.self_attn.k_proj.weight")
    if hd and q is not None and q.shape and q.shape[0] % hd == 0:
        out["num_heads"] = q.shape[0] // hd
    if hd and k is not None and k.shape and k.shape[0] % hd == 0:
        out["num_kv_heads"] = k.shape[0] // hd
    g = t.get("model.layers.0.mlp.gate_proj.weight") or t.get("model.layers.0.mlp.up_proj.weight")
    if g is not None and len(g.shape) == 2:
        out["intermediate_size"] = g.shape[0]
    return out


def g0_validate(model: Model, pb: Playbook) -> GateOutcome:
    n = len(model.tensors)
    m = {"tensors": n, "format": model.format, "dialect": model.dialect,
         "architecture": model.config.architecture, "past_eof": model.truncated_tensors}
    if n == 0:
        return falsified(f"{model.path}: 0 tensors — nothing to convert or compare", metrics=m)
    if model.truncated_tensors:
        return falsified(f"{model.path}: {len(model.truncated_tensors)} of {n} tensors run past the end of the file "
                         f"(first: {model.truncated_tensors[0]})", metrics=m)
    fam = pb.model.family
    arch = model.config.architecture
    if fam is not None and arch != fam:
        return falsified(f"model.family is {fam!r} but the model's config says architecture {arch!r}", metrics=m)
    return ok(f"{model.format} ({model.dialect}) · {n} tensors · architecture {arch}"
              + (f" == family {fam}" if fam else ""), metrics=m,
              output=f"G0 PASS: {model.path} opens: {n} tensors, {model.total_bytes:,} bytes")


def g0_config(model: Model) -> GateOutcome:
    cfg = model.config.to_dict()
    shapes = shape_facts(model)
    checked, bad = [], []
    for k, v in shapes.items():
        if v is None or cfg.get(k) is None:
            continue
        checked.append(k)
        if cfg[k] != v:
            bad.append(f"{k}: config {cfg[k]}, tensors {v}")
    m = {"config": {k: cfg.get(k) for k in shapes}, "tensor_shapes": shapes, "checked": checked}
    if not checked:
        return falsified("no config fact could be checked against tensor shapes (config or tensors lack them)",
                         metrics=m)
    if bad:
        return falsified("config.json disagrees with the tensor shapes: " + "; ".join(bad), metrics=m)
    return ok(f"config matches tensor shapes ({len(checked)} facts: {', '.join(checked)})", metrics=m,
              output="G0 PASS: config.json matches tensor metadata")


def g0_expected(model: Model, key: str, expected: int) -> GateOutcome:
    _suffix, cfg_field = EXPECTED_FACTS[key]
    from_cfg = getattr(model.config, cfg_field)
    from_shapes = shape_facts(model)[cfg_field]
    m = {"expected": expected, "config": from_cfg, "tensor_shapes": from_shapes, "field": cfg_field}
    seen = {"config": from_cfg, "tensor shapes": from_shapes}
    if from_cfg is None and from_shapes is None:
        return falsified(f"{key} = {expected}: neither the config nor the tensor shapes state {cfg_field}",
                         metrics=m)
    wrong = [src for src, v in seen.items() if v is not None and v != expected]
    said = ", ".join(f"{src} {v if v is not None else '—'}" for src, v in seen.items())
    if wrong:
        return falsified(f"{cfg_field}: playbook {key} = {expected}, but the model's config says "
                         f"{from_cfg if from_cfg is not None else '—'} and its tensor shapes say "
                         f"{from_shapes if from_shapes is not None else '—'} ({' and '.join(wrong)} disagree)",
                         metrics=m)
    return ok(f"{cfg_field} {expected} == {key} ({said})", metrics=m)
