"""The thresholds each gate is judged by: derived from the playbook, recorded in every record
(``metadata.thresholds``) and derived again by ``aprqa verify-evidence`` (evidence.py).

Also the small playbook-to-measurement translations both the plan and the gates need: the
converter's quant name, the output profile of a target type, a conversion record's thresholds key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..comparison.tolerance import TolerancePolicy
from ..inference.calibrate import KL_FACTOR
from ..inference.metrics import OutputProfile, profile_for
from ..quant.dtypes import dtype_from_name
from ..gate_ids import GateIdError, GateKind, read_gate_id
from .notrun import not_run_key, not_run_section
from .schema import EXPECTED_FACTS, QUANT_ALIASES, Playbook

# The rules of the structural gates, recorded as their thresholds.
RULES = {
    GateKind.VALIDATE: "source opens, has > 0 tensors, no payload past EOF, family matches model.family",
    GateKind.CONFIG: "config facts equal the tensor shapes (hidden, layers, heads, kv heads, vocab, intermediate)",
    GateKind.CARDINALITY: "converted tensor count == source tensor count, source count > 0",
    GateKind.NAMES: "converted canonical names == source canonical names (bijection), > 0 names",
    GateKind.TOKENIZER: "tokenizer model type, vocabulary, merges, special ids, pre-tokenizer, chat template equal",
    GateKind.IDEMPOTENT: "converting the same source twice gives identical bytes, else bit-identical tensors",
    GateKind.COVERAGE: "at least one conversion planned",
}


def converter_quant(quant: str) -> str | None:
    """Playbook quant label -> the converter's --quant (None = keep source types). Mixes such as
    q4_k_m pass through: the built-in converter writes llama.cpp's per-tensor types."""
    if quant == "keep":
        return None
    return quant


def output_base(quant: str, source_dtype: str | None = None) -> str:
    """Name of the default output profile of a target quant ("keep": the source's dtype; a mix:
    its default type, q4_k_m -> q4_k)."""
    if quant == "keep":
        return profile_for(source_dtype or "f32").name
    return profile_for(QUANT_ALIASES.get(quant, quant)).name


def tensor_policy(pb: Playbook, profile: str) -> TolerancePolicy:
    tols = {g: (s if isinstance(s, str) else s.model_dump()) for g, s in pb.thresholds.tolerances.items()}
    return TolerancePolicy.build(pb.thresholds.profile or profile, tols or None)


def output_profile(pb: Playbook, base: str) -> OutputProfile:
    prof = profile_for(base)
    over = pb.thresholds.output.get(prof.name)
    changes = {k: v for k, v in (over.model_dump().items() if over else ()) if v is not None}
    eps = pb.differential_tests.inference_compare.tolerance
    if eps is not None and prof.name == "f32":
        changes["max_abs_logit"] = eps
    return prof.with_(**changes) if changes else prof


def output_calibrated(pb: Playbook, base: str) -> bool:
    """Whether output gates on ``base`` use the band calibrated on the model (inference/calibrate.py), with
    the profile as its base and named fallback: yes unless the playbook sets that profile's limits itself
    (``thresholds.output``, or ``inference_compare.tolerance`` for f32), which are then used as given."""
    name = profile_for(base).name
    if name in pb.thresholds.output:
        return False
    return not (name == "f32" and pb.differential_tests.inference_compare.tolerance is not None)


def _output_thresholds(pb: Playbook, base: str) -> dict[str, Any]:
    """The output profile, and ``band``: how the gate's limits are set from it (the measured band is in
    the record's metrics, ``output.calibration``)."""
    prof = output_profile(pb, base)
    d = prof.to_dict()
    if not output_calibrated(pb, base):
        d["band"] = "fixed: the playbook's limits"
    elif not dtype_from_name(prof.name).is_quantized:  # every profile is named by its dtype
        d["band"] = "this profile (a float candidate" + (
            "; a GGUF run in llama.cpp: widened by the engine's own noise on an f32 GGUF of the reference)"
            if pb.differential_tests.inference_compare.engine == "llama.cpp" else ")")
    else:
        d["band"] = (f"calibrated on the model: {KL_FACTOR:g}x a faithful twin's KL (this profile: its base and "
                     "fallback)")
    return d


def conversion_key(quant: str, base: str) -> str:
    """``thresholds_key`` of a conversion record: ``QUANT/OUTPUT-PROFILE`` (``q8_0/q8_0``, ``keep/f32``)."""
    return f"{quant}/{base}"


def thresholds_for(pb: Playbook, kind: GateKind, key: str) -> dict[str, Any]:
    """The thresholds a gate of ``kind`` uses under playbook ``pb`` (``key``: its record's
    ``thresholds_key``). ``kind`` is the planned gate's, or a record's as read at the edge
    (``record_kind``): SKIPPED for a check aprqa did not execute, whatever its id.

    Raises:
        UsageError / ValueError: unknown profile or key, a key of the wrong shape for ``kind``.
    """
    dt = pb.differential_tests
    if kind is GateKind.SKIPPED:
        section = not_run_section(key)
        if section is None:
            raise ValueError(f"thresholds key {key!r} of a Skipped check is not {not_run_key('SECTION')!r}")
        return {"rule": "not executed by aprqa: recorded Skipped, never counted as passed", "section": section}
    if kind is GateKind.EXPECTED:
        return {"rule": "expected fact == config value == tensor-shape value",
                "expected": {key: pb.model.expected_facts().get(key)}}
    if kind in RULES:
        d: dict[str, Any] = {"rule": RULES[kind]}
        if kind is GateKind.IDEMPOTENT:
            d["tensor"] = TolerancePolicy.build("exact").to_dict()
        if kind is GateKind.VALIDATE:
            d["family"] = pb.model.family
        return d
    if kind is GateKind.ROUND_TRIP:
        return {"rule": "lossless round trip: every tensor bit-identical to the chain's start",
                "tensor": TolerancePolicy.build("exact").to_dict()}
    if kind is GateKind.COMMUTE:
        return {"rule": "commutativity: GGUF→APR and GGUF→SafeTensors→APR (lossless) give bit-identical tensors",
                "tensor": TolerancePolicy.build("exact").to_dict()}
    quant, _, base = key.partition("/")
    if not base:
        raise ValueError(f"thresholds key {key!r} is not QUANT/OUTPUT-PROFILE")
    tprofile = "auto" if quant == "keep" else quant
    if kind is GateKind.GOLDEN:
        return {"output": _output_thresholds(pb, base), "prompts": list(pb.test_matrix.prompts),
                "max_tokens": pb.test_matrix.max_tokens}
    if kind is GateKind.CONVERSION:
        return {
            "tensor": tensor_policy(pb, tprofile).to_dict() if dt.tensor_diff.enabled else None,
            "tensor_filter": dt.tensor_diff.filter,
            "output": _output_thresholds(pb, base) if dt.inference_compare.enabled else None,
            "prompt": inference_prompt(pb) if dt.inference_compare.enabled else None,
            "max_tokens": inference_tokens(pb) if dt.inference_compare.enabled else None,
        }
    raise ValueError(f"no thresholds known for gates of kind {kind.name}")


def record_kind(gate_id: object, key: object, not_executed: bool, file: str | Path | None, field: str) -> GateKind:
    """The kind a record read from ``file`` is judged as: SKIPPED for a check aprqa did not execute
    (any id: apr-qa's, the playbook's), else the kind of its typed gate id.

    Raises:
        GateIdError: an id aprqa does not define, or an integrity id (``G0-INTEGRITY-<FACT>``) whose
            fact is not the one its thresholds key names (``field`` says where).
    """
    if not_executed:
        return GateKind.SKIPPED
    gate = read_gate_id(gate_id, file, field)
    if gate.kind is GateKind.EXPECTED:
        fact = EXPECTED_FACTS[key][0] if isinstance(key, str) and key in EXPECTED_FACTS else None
        if fact != gate.instance:
            raise GateIdError(file, f"{gate_id!r} names fact {gate.instance}, its thresholds key {key!r} "
                                    f"names {fact or 'no expected_* fact'}", field=field)
    return gate.kind


def inference_prompt(pb: Playbook) -> str:
    return pb.differential_tests.inference_compare.prompt or pb.test_matrix.prompts[0]


def inference_tokens(pb: Playbook) -> int:
    n = pb.differential_tests.inference_compare.max_tokens
    return pb.test_matrix.max_tokens if n is None else n


def thresholds_json(d: dict[str, Any]) -> str:
    return json.dumps(d, sort_keys=True, ensure_ascii=False)
