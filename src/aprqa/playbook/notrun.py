"""What a playbook asks for that aprqa does not execute — each item becomes a Skipped record.

apr-qa playbooks carry sections that test a model *runtime* (``apr run/chat/serve``, GPU
backends, throughput profiles, output oracles, property and contract tests, ollama parity). aprqa
checks conversions, not runtimes, so it executes none of them; it must not drop them silently
either. ``not_executed(pb)`` lists them in a fixed order, one ``NotRun`` per apr-qa gate id
(the ids the playbook declares, else the id apr-qa's evidence uses for that check, else an
id named after the section). docs/apr-qa-gates.md maps every id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .schema import Playbook

# apr-qa's evidence numbers its modality × backend inference gates this way (fixture scenarios).
MODALITY_GATES = {("run", "cpu"): "F-A1-001", ("run", "gpu"): "F-A2-001", ("chat", "cpu"): "F-A3-001",
                  ("chat", "gpu"): "F-A4-001", ("serve", "cpu"): "F-A5-001", ("serve", "gpu"): "F-A6-001"}
G_FLAGS = {"g1_model_loads": ("G1-MODEL-LOADS", "G1: the model loads in apr's runtime"),
           "g2_basic_inference": ("G2-BASIC-INFERENCE", "G2: apr's runtime generates text"),
           "g3_no_crashes": ("G3-NO-CRASHES", "G3: no panics or crashes in apr's runtime"),
           "g4_output_quality": ("G4-OUTPUT-QUALITY", "G4: generated text is not garbage")}
NOT_A_RUNTIME = "aprqa checks conversions (tensors, config, tokenizer, logits), not a model runtime"
_NOT_RUN_KEY = "not-run:"


def not_run_key(section: str) -> str:
    """``thresholds_key`` of the Skipped record of a check in playbook ``section`` (``not-run:SECTION``)."""
    return _NOT_RUN_KEY + section


def not_run_section(key: str) -> str | None:
    """The section of a ``not_run_key``; None for any other key."""
    return key[len(_NOT_RUN_KEY):] if key.startswith(_NOT_RUN_KEY) else None


@dataclass(frozen=True)
class NotRun:
    """One apr-qa check aprqa does not execute.

    Attributes:
        gate_id: the id its Skipped record carries.
        section: the playbook path that asked for it (``test_matrix.modalities``, ``oracles[0]``...).
        reason: why aprqa does not execute it (goes into the record's reason).
        modality / backend / format: scenario fields of the record.
        covered_by: aprqa gates that measure something close, if any (said in the reason).
    """

    gate_id: str
    section: str
    reason: str
    modality: str = "run"
    backend: str = "cpu"
    format: str | None = None
    covered_by: str | None = None

    @property
    def top(self) -> str:
        """The top-level playbook section (``oracles``, ``differential_tests``...)."""
        return re.split(r"[.\[ ]", self.section, maxsplit=1)[0]

    @property
    def key(self) -> str:
        """``thresholds_key`` of its record."""
        return not_run_key(self.section)

    def text(self) -> str:
        s = f"not executed by aprqa: {self.section} — {self.reason}"
        if self.covered_by:
            s += f"; aprqa's closest measurement: {self.covered_by}"
        return s


def _ids(section: Any) -> list[str]:
    if isinstance(section, dict):
        g = section.get("gates")
        if isinstance(g, list):
            return [str(x) for x in g]
    return []


def _enabled(section: Any) -> str:
    if isinstance(section, dict) and "enabled" in section:
        return f" (enabled: {section['enabled']})"
    return ""


def not_executed(pb: Playbook) -> list[NotRun]:
    """Every check in ``pb`` that aprqa does not execute, in playbook order."""
    out: list[NotRun] = []
    tm = pb.test_matrix
    # only when the playbook asks (the defaults, run × cpu, are aprqa's own CPU checks)
    asked = {"modalities", "backends"} & tm.model_fields_set
    for mod in (tm.modalities if asked else ()):
        for be in tm.backends:
            gid = MODALITY_GATES.get((mod, be), f"F-{mod.upper()}-{be.upper()}")
            out.append(NotRun(gid, f"test_matrix.modalities/backends ({mod} × {be}, scenario_count "
                                   f"{tm.scenario_count})",
                              f"apr's `{mod}` modality on the {be} backend with output oracles — {NOT_A_RUNTIME}",
                              modality=mod, backend=be,
                              covered_by="F-GOLDEN-RULE-001 and F-CONV-* output checks (aprqa's own CPU forward "
                                         "pass, logits vs the source)" if be == "cpu" else None))
    if pb.gates:
        for k, v in pb.gates.items():
            gid, what = G_FLAGS.get(k, (k.upper().replace("_", "-"), k))
            out.append(NotRun(gid, f"gates.{k}", f"{what} (flag {v!r}) — {NOT_A_RUNTIME}",
                              covered_by="G0-VALIDATE-001 (the model opens)" if k == "g1_model_loads" else None))
    if pb.oracles:
        for i, o in enumerate(pb.oracles):
            typ = str(o.get("type")) if isinstance(o, dict) else str(o)
            out.append(NotRun(f"ORACLE-{typ.upper().replace('_', '-')}", f"oracles[{i}] ({typ})",
                              f"the {typ} oracle judges generated text — {NOT_A_RUNTIME}"))
    pt = pb.property_tests
    if isinstance(pt, list):
        for i, t in enumerate(pt):
            name = str(t.get("name", i)) if isinstance(t, dict) else str(i)
            out.append(NotRun(f"PROPERTY-{name.upper().replace('_', '-')}", f"property_tests[{i}] ({name})",
                              f"property-based prompts judged by an oracle — {NOT_A_RUNTIME}"))
    elif pt is not None:
        out.append(NotRun("PROPERTY-TESTS", "property_tests", f"property-based prompts{_enabled(pt)} — "
                                                              f"{NOT_A_RUNTIME}"))
    if pb.state_machine is not None:
        out.append(NotRun("STATE-MACHINE", "state_machine",
                          f"runtime state-machine tests{_enabled(pb.state_machine)} — {NOT_A_RUNTIME}"))
    dt = pb.differential_tests
    for sec, covered in (("tensor_diff", "F-CONV-* tensor half (compare, per-tensor tolerance by dtype)"),
                         ("inference_compare", "F-CONV-* output half and F-GOLDEN-RULE-001 (KL, top-1, greedy)")):
        for gid in getattr(dt, sec).gates:
            out.append(NotRun(gid, f"differential_tests.{sec}.gates",
                              f"apr-qa's own gate {gid} (apr rosetta) is not run; the section's settings are",
                              covered_by=covered))
    for sec, why, covered in (
            ("format_validation", "apr's format validator", "G0-VALIDATE-001 and the readers' header checks"),
            ("fingerprint", "per-tensor statistics fingerprints (mean/std/min/max/checksum)",
             "F-CONV-* tensor comparisons (every element, not statistics)"),
            ("validate_stats", "tensor statistics against a stored reference JSON", None)):
        val = getattr(dt, sec)
        if val is None:
            continue
        ids = _ids(val) or [f"F-ROSETTA-{sec.upper().replace('_', '-')}"]
        for gid in ids:
            out.append(NotRun(gid, f"differential_tests.{sec}", f"{why}{_enabled(val)}", covered_by=covered))
    for sec, default, why in (
            ("profile_ci", "F-PROFILE-CI", "throughput/latency assertions of apr's runtime"),
            ("trace_payload", "F-TRACE-PAYLOAD", "NaN/garbage checks on apr's runtime trace"),
            ("ollama_parity", "F-OLLAMA-PARITY", "output/performance parity with ollama (needs ollama)")):
        val = getattr(pb, sec)
        if val is None:
            continue
        for gid in _ids(val) or [default]:
            out.append(NotRun(gid, sec, f"{why}{_enabled(val)} — {NOT_A_RUNTIME}"))
    if pb.contract_tests is not None:
        inv = pb.contract_tests.get("invariants") if isinstance(pb.contract_tests, dict) else None
        for i in inv or ["?"]:
            gid = f"F-CONTRACT-{str(i).replace('-', '')}-001"
            out.append(NotRun(gid, f"contract_tests.invariants ({i})", "apr's format-contract invariant checks",
                              covered_by={"I-2": "F-CONV-NAME-001 (name bijection, never '0 of 0')",
                                          "I-3": "convert's per-tensor dtype log + F-CONV-* (no silent F32)",
                                          "I-4": "F-CONV-* tensor comparisons",
                                          "I-5": "F-CONV-TOK-001 (tokenizer preserved)"}.get(str(i))))
    if pb.kernel_profile is not None:
        out.append(NotRun("KERNEL-PROFILE", "kernel_profile", "documents which runtime kernels a family exercises "
                                                              f"— {NOT_A_RUNTIME}"))
    if pb.mvp_matrix:
        fmts = sorted({str(e.get("format")) for e in pb.mvp_matrix if isinstance(e, dict)})
        out.append(NotRun("MVP-MATRIX", f"mvp_matrix ({len(pb.mvp_matrix)} entries, formats {', '.join(fmts)})",
                          f"format × backend × modality runs of apr — {NOT_A_RUNTIME}",
                          covered_by="F-CONV-* per format (tensors + logits)"))
    if pb.falsification_gates:
        items = pb.falsification_gates if isinstance(pb.falsification_gates, list) else [pb.falsification_gates]
        for i, g in enumerate(items):
            gid = str(g.get("id")) if isinstance(g, dict) and g.get("id") else f"FALSIFICATION-GATE-{i + 1}"
            out.append(NotRun(gid, f"falsification_gates[{i}]", "free-text falsification gate: no executable check"))
    return out
