"""Gate measurements: each function measures one gate and returns a ``GateOutcome`` (data).

Gates never pass vacuously: zero tensors, zero conversions, a filter that matches nothing, a
conversion or inference that could not run — each is Falsified or Crashed, never Corroborated.
The thresholds a gate used come from ``thresholds_for`` (recorded in every record, re-derived
by ``aprqa verify-evidence``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AprqaError
from .records import Outcome
from .schema import EXPECTED_FACTS, QUANT_ALIASES, Playbook

# The rules of the structural gates, recorded as their thresholds.
RULES = {
    "G0-VALIDATE-001": "source opens, has > 0 tensors, no payload past EOF, family matches model.family",
    "G0-INTEGRITY-CONFIG": "config facts equal the tensor shapes (hidden, layers, heads, kv heads, vocab, "
                           "intermediate)",
    "F-CONV-CARD-001": "converted tensor count == source tensor count, source count > 0",
    "F-CONV-NAME-001": "converted canonical names == source canonical names (bijection), > 0 names",
    "F-CONV-TOK-001": "tokenizer model type, vocabulary, merges, special ids, pre-tokenizer, chat template equal",
    "F-CONV-IDEM-001": "converting the same source twice gives identical bytes, else bit-identical tensors",
    "F-CONV-COVERAGE-001": "at least one conversion planned",
}


@dataclass
class GateOutcome:
    outcome: Outcome
    reason: str
    output: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    stderr: str | None = None
    exit_code: int | None = None
    total_tokens: int | None = None

    @property
    def passed(self) -> bool:
        return self.outcome == Outcome.CORROBORATED


def ok(reason: str, **kw: Any) -> GateOutcome:
    return GateOutcome(Outcome.CORROBORATED, reason, **kw)


def falsified(reason: str, **kw: Any) -> GateOutcome:
    return GateOutcome(Outcome.FALSIFIED, reason, **kw)


# ---------------------------------------------------------------------------------------------
# Thresholds


def converter_quant(quant: str) -> str | None:
    """Playbook quant label -> the converter's --quant (None = keep source types). Mixes such as
    q4_k_m pass through: the built-in converter writes llama.cpp's per-tensor types."""
    if quant == "keep":
        return None
    return quant


def output_base(quant: str, source_dtype: str | None = None) -> str:
    """Name of the default output profile of a target quant ("keep": the source's dtype; a mix:
    its default type, q4_k_m -> q4_k)."""
    from ..forward.metrics import profile_for

    if quant == "keep":
        return profile_for(source_dtype or "f32").name
    return profile_for(QUANT_ALIASES.get(quant, quant)).name


def tensor_policy(pb: Playbook, profile: str) -> Any:
    from ..compare.tolerance import TolerancePolicy

    tols = {g: (s if isinstance(s, str) else s.model_dump()) for g, s in pb.thresholds.tolerances.items()}
    return TolerancePolicy.build(pb.thresholds.profile or profile, tols or None)


def output_profile(pb: Playbook, base: str) -> Any:
    from ..forward.metrics import profile_for

    prof = profile_for(base)
    over = pb.thresholds.output.get(prof.name)
    changes = {k: v for k, v in (over.model_dump().items() if over else ()) if v is not None}
    eps = pb.differential_tests.inference_compare.tolerance
    if eps is not None and prof.name == "f32":
        changes["max_abs_logit"] = eps
    return prof.with_(**changes) if changes else prof


def conversion_key(quant: str, base: str) -> str:
    """``thresholds_key`` of a conversion record: ``QUANT/OUTPUT-PROFILE`` (``q8_0/q8_0``, ``keep/f32``)."""
    return f"{quant}/{base}"


def thresholds_for(pb: Playbook, gate_id: str, key: str) -> dict[str, Any]:
    """The thresholds gate ``gate_id`` uses under playbook ``pb`` (``key`` from the record).

    Raises:
        UsageError / ValueError: unknown profile or key.
    """
    from ..compare.tolerance import TolerancePolicy

    dt = pb.differential_tests
    if key.startswith("not-run:"):
        return {"rule": "not executed by aprqa: recorded Skipped, never counted as passed", "section": key[8:]}
    if gate_id.startswith("G0-INTEGRITY-") and gate_id != "G0-INTEGRITY-CONFIG":
        return {"rule": "expected fact == config value == tensor-shape value", "expected": {key: pb.model.expected_facts().get(key)}}
    if gate_id in RULES:
        d: dict[str, Any] = {"rule": RULES[gate_id]}
        if gate_id == "F-CONV-IDEM-001":
            d["tensor"] = TolerancePolicy.build("exact").to_dict()
        if gate_id == "G0-VALIDATE-001":
            d["family"] = pb.model.family
        return d
    if gate_id.startswith("F-CONV-RT-"):
        return {"rule": "lossless round trip: every tensor bit-identical to the chain's start",
                "tensor": TolerancePolicy.build("exact").to_dict()}
    quant, _, base = key.partition("/")
    if not base:
        raise ValueError(f"thresholds key {key!r} is not QUANT/OUTPUT-PROFILE")
    tprofile = "auto" if quant == "keep" else quant
    if gate_id == "F-GOLDEN-RULE-001":
        return {"output": output_profile(pb, base).to_dict(), "prompts": list(pb.test_matrix.prompts),
                "max_tokens": pb.test_matrix.max_tokens}
    if gate_id.startswith("F-CONV-"):
        return {
            "tensor": tensor_policy(pb, tprofile).to_dict() if dt.tensor_diff.enabled else None,
            "tensor_filter": dt.tensor_diff.filter,
            "output": output_profile(pb, base).to_dict() if dt.inference_compare.enabled else None,
            "prompt": inference_prompt(pb) if dt.inference_compare.enabled else None,
            "max_tokens": inference_tokens(pb) if dt.inference_compare.enabled else None,
        }
    raise ValueError(f"no thresholds known for gate {gate_id!r}")


def inference_prompt(pb: Playbook) -> str:
    return pb.differential_tests.inference_compare.prompt or pb.test_matrix.prompts[0]


def inference_tokens(pb: Playbook) -> int:
    n = pb.differential_tests.inference_compare.max_tokens
    return pb.test_matrix.max_tokens if n is None else n


def thresholds_json(d: dict[str, Any]) -> str:
    return json.dumps(d, sort_keys=True, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# G0


def _layer_count(names: list[str]) -> int | None:
    layers = set()
    for n in names:
        if n.startswith("model.layers."):
            part = n.split(".")[2]
            if part.isdigit():
                layers.add(int(part))
    return (max(layers) + 1) if layers else None


def shape_facts(model: Any) -> dict[str, int | None]:
    """What the tensor shapes say about the architecture (None where no tensor tells)."""
    t = model.tensors
    cfg = model.config
    out: dict[str, int | None] = {k: None for k in ("hidden_size", "num_layers", "num_heads", "num_kv_heads",
                                                     "vocab_size", "intermediate_size")}
    emb = t.get("model.embed_tokens.weight") or t.get("lm_head.weight")
    if emb is not None and len(emb.shape) == 2:
        out["vocab_size"], out["hidden_size"] = emb.shape[0], emb.shape[1]
    out["num_layers"] = _layer_count(list(t))
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


def g0_validate(model: Any, pb: Playbook) -> GateOutcome:
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


def g0_config(model: Any) -> GateOutcome:
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


def g0_expected(model: Any, key: str, expected: int) -> GateOutcome:
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


# ---------------------------------------------------------------------------------------------
# Conversions


def _fmt_num(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def _policy_text(report: Any) -> str:
    tols: dict[str, str] = {}
    for t in report.tensors:
        if t.tolerance is not None:
            tols.setdefault(t.tolerance_source, t.tolerance.describe())
    profile = report.policy.profile
    parts = [d if src == f"profile {profile}" else f"{src}: {d}" for src, d in tols.items()]
    return f"profile {profile}" + (f" ({'; '.join(parts)})" if parts else "")


def judge_tensors(report: Any, tensor_filter: str | None) -> tuple[bool, str, dict[str, Any]]:
    """(passed, reason text, metrics) of a compare ``Report`` for a gate."""
    subs = [s.strip() for s in (tensor_filter or "").split(",") if s.strip()]
    tensors = [t for t in report.tensors if not subs or any(s in t.name for s in subs)]
    counts: dict[str, int] = {}
    for t in tensors:
        counts[t.verdict.value] = counts.get(t.verdict.value, 0) + 1
    compared = sum(1 for t in tensors if t.stats is not None)
    fails = sorted((t for t in tensors if not t.passed), key=lambda t: (-t.severity, -t.error_score))
    problems: list[str] = list(report.errors)
    for sec in (report.metadata, report.tokenizer):
        for f in sec.problems():
            problems.append(f"{sec.name}.{f.field} {f.status}: reference {f.reference!r}, candidate {f.candidate!r}")
        if sec.failed_outright:
            problems.append(f"{sec.name}: {sec.note}")
    if subs and not tensors:
        problems.append(f"tensor_diff.filter {tensor_filter!r} matches no tensor")
    if compared == 0:
        problems.append("0 tensor pairs compared")
    passed = not fails and not problems and compared > 0
    vtext = " · ".join(f"{k} {v}" for k, v in counts.items())
    worst = max((t for t in tensors if t.passed and t.stats is not None), key=lambda t: t.error_score, default=None)
    parts = [f"{compared}/{len(tensors)} tensors {vtext}"]
    for t in fails[:5]:
        parts.append(f"{t.name} {t.verdict.value}: {t.detail}")
    if len(fails) > 5:
        parts.append(f"… and {len(fails) - 5} more failing tensors")
    parts += problems[:5]
    if worst is not None and worst.noise is not None:
        parts.append(f"worst {worst.name} err/noise {worst.noise.ratio:.3g}")
    parts.append(_policy_text(report))
    m = {"verdicts": counts, "pairs_compared": compared, "tensors": len(tensors), "failed": [t.name for t in fails],
         "failures": [{"name": t.name, "verdict": t.verdict.value, "detail": t.detail} for t in fails[:20]],
         "problems": problems, "min_atol": report.min_atol(), "seconds": report.seconds,
         "bytes_read": report.bytes_read, "filter": tensor_filter,
         "worst": None if worst is None else {"name": worst.name, "verdict": worst.verdict.value,
                                              "error_score": worst.error_score},
         # the size/fidelity trade-off of the run report plots these two
         "bits_per_weight": report.candidate.bits_per_weight,
         "worst_rel_l2": max((t.stats.rel_l2 for t in tensors if t.stats is not None
                              and math.isfinite(t.stats.rel_l2)), default=None)}
    return passed, " · ".join(parts), m


def judge_outputs(oc: Any) -> tuple[bool, str, dict[str, Any]]:
    """(passed, reason text, metrics) of an ``OutputComparison``."""
    p = oc.profile
    m = oc.metrics
    d = oc.to_dict()
    d["metrics"] = None if m is None else {k: v for k, v in m.to_dict().items() if k not in ("kl_per_position", "top1_per_position")}
    if m is None:
        return False, "outputs: no metrics (nothing compared)", d
    engine = getattr(oc, "engine", "aprqa")
    head = f"outputs ({m.n_positions} positions, profile {p.name}" + ("" if engine == "aprqa" else f", {engine}") + ")"
    kl = f"mean KL {m.kl_mean:.3g}" + (f" (≤ {p.max_mean_kl:g})" if p.max_mean_kl is not None else "")
    top1 = f"top-1 {m.top1_decisive:.1%} (≥ {p.min_top1:.0%})"
    g = oc.greedy
    greedy = ""
    if g is not None:
        greedy = (f"greedy {g.n_generated}/{g.n_generated} agree" if g.first_divergence is None
                  else f"greedy diverges at {g.first_divergence}{' (near-tie)' if g.near_tie else ''}")
    if oc.passed and m.n_positions > 0:
        return True, f"{head}: {kl} · {top1}" + (f" · {greedy}" if greedy else ""), d
    return False, f"{head} FAIL: " + "; ".join(oc.failures or ("0 positions compared",)) + \
        (f" · {greedy}" if greedy else ""), d


def error_text(err: BaseException) -> str:
    s = str(err).strip() or type(err).__name__
    return s if isinstance(err, AprqaError) else f"{type(err).__name__}: {s}"


def files_digest(path: Path) -> str:
    """sha256 over a file, or over a directory's files (sorted, name-prefixed)."""
    import hashlib

    from .evidence import sha256_file

    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        h.update(bytes.fromhex(sha256_file(f)))
    return h.hexdigest()
