"""``aprqa report EVIDENCE``: a summary of any evidence file, aprqa's or apr-qa's.

``summarize(records)`` turns records into data (``EvidenceSummary``): outcome counts per gate
family, failures grouped by cause, and for apr-qa's F-CONV records a note on what the gate
actually measured. ``console.render_console`` prints it; the HTML and Markdown pages are the run
report's (view.py), which shows these sections too.

Why the notes: apr-qa's conversion gates (F-CONV-*) reported e.g. ``produced different output
(diff: 8.00e-1, ε: 1.00e-6)``. The reason says *output*: apr-qa ran the source and the converted
model on one prompt and compared their printed text output character by character (the fraction
of positions that differ, over the whole printed stdout, which includes the model's file path and
timing) — so 0.8 means "80 % of the characters were at different positions", not a tensor or
logit difference, and ε = 1e-6 could never be met. docs/apr-qa-gates.md has the whole mapping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ...gate_ids import GateKind, Series, family_of, kind_of, series_of
from ...records import ERRORED, FAILING, OUTCOMES, Outcome

_TEXT_DIFF = re.compile(r"produced different output \(diff: ([0-9.eE+-]+), ε: ([0-9.eE+-]+)\)")
_MAX_DIFF = re.compile(r"max_diff: ([0-9.eE+-]+)")
_HEX = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class Cause:
    """Failures sharing one cause."""

    cause: str
    gates: tuple[str, ...]
    example: str

    def to_dict(self) -> dict[str, Any]:
        return {"cause": self.cause, "gates": list(self.gates), "example": self.example}


@dataclass(frozen=True)
class GateNote:
    """What a gate measured, where its record alone would mislead (records with the same note grouped:
    ``gate_id`` and ``outcome`` are comma-joined)."""

    gate_id: str
    outcome: str
    reason: str
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {"gate_id": self.gate_id, "outcome": self.outcome, "reason": self.reason, "note": self.note}


@dataclass(frozen=True)
class EvidenceSummary:
    """An evidence file summarized; truthy when no executed gate failed.

    Attributes:
        producer: "aprqa" or "apr-qa" (from the records' metadata/host).
        families: family -> {outcome: count}, in first-seen order.
        causes: failures (Falsified/Crashed/Timeout) grouped by cause, largest group first.
        notes: per-record notes on what apr-qa's F-CONV gates measured.
        not_executed: Skipped records of checks not executed (aprqa's) — gate id -> section.
    """

    path: str
    producer: str
    records: int
    outcomes: dict[str, int]
    families: dict[str, dict[str, int]]
    causes: tuple[Cause, ...]
    notes: tuple[GateNote, ...]
    not_executed: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    model: str = ""

    @property
    def failed(self) -> int:
        return sum(self.outcomes.get(o, 0) for o in FAILING)

    @property
    def passed(self) -> bool:
        return self.records > 0 and self.failed == 0

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "producer": self.producer, "model": self.model, "records": self.records,
                "outcomes": self.outcomes, "families": self.families, "passed": self.passed,
                "causes": [c.to_dict() for c in self.causes], "notes": [n.to_dict() for n in self.notes],
                "not_executed": [{"gate_id": g, "section": s} for g, s in self.not_executed]}


def sane_record(r: Any) -> dict[str, Any]:
    """A record whose containers have the types the readers expect (edited or foreign evidence may
    hold anything anywhere): a wrong-typed scenario/model/metadata/metrics/host becomes {}."""
    if not isinstance(r, dict):
        return {"gate_id": "?", "outcome": "?", "reason": f"not a record: {r!r}"[:200]}
    out = dict(r)
    for k in ("scenario", "metadata", "metrics", "host"):
        if not isinstance(out.get(k), dict):
            out[k] = {}
    if not isinstance(out["scenario"].get("model"), dict):
        out["scenario"] = {**out["scenario"], "model": {}}
    if not isinstance(out["metrics"].get("aprqa", {}), dict):
        out["metrics"] = {**out["metrics"], "aprqa": {}}
    return out


def _outcome(r: dict[str, Any]) -> str:
    o = r.get("outcome")
    if isinstance(o, dict) and o:  # apr-qa's schema allows {"Falsified": {...}}
        return next(iter(o))
    return str(o)


def _is_aprqa(r: dict[str, Any]) -> bool:
    md = r.get("metadata") or {}
    return "playbook_sha256" in md or str((r.get("host") or {}).get("apr_version", "")).startswith("aprqa")


def _normalize(reason: str) -> str:
    s = reason.strip().splitlines()[0] if reason.strip() else "(no reason given)"
    s = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", s)
    s = re.sub(r"(/[\w.\-]+)+", "<path>", s)
    s = re.sub(r"\d+(\.\d+)?([eE][+-]?\d+)?", "#", s)
    return s[:140]


def cause_of(r: dict[str, Any]) -> str:
    """A short cause label for a failing record."""
    reason = str(r.get("reason") or "")
    out = _outcome(r)
    if _TEXT_DIFF.search(reason):
        return "apr-qa: printed text output differed (character-position score vs ε 1e-6; not a tensor diff)"
    if "no embedded tokenizer vocabulary" in reason:
        return "apr-qa: converter refused a GGUF without an embedded tokenizer (conversion never ran)"
    if reason.startswith("Round-trip conversion produced different output"):
        return "apr-qa: round-trip printed output differed (no measurement in the record; output is a digest)"
    if reason.startswith("I-4 Statistical Preservation"):
        return "apr-qa: tensor statistics diverged (I-4)"
    if reason.startswith("I-5 Tokenizer Roundtrip"):
        return "apr-qa: inference output mismatch in the tokenizer round trip (I-5)"
    if _is_aprqa(r):
        m = (r.get("metrics") or {}).get("aprqa") or {}
        gid = str(r.get("gate_id", ""))
        if out in ERRORED:
            return f"{out.lower()}: " + ("conversion failed" if "conversion" in reason else "measurement failed")
        if kind_of(gid) is GateKind.EXPECTED:
            return "architecture fact differs from the playbook's expected_* value"
        t = m.get("tensor") or {}
        fails = t.get("failures") if isinstance(t, dict) and isinstance(t.get("failures"), list) else []
        verdicts = sorted({str(f.get("verdict")) for f in fails if isinstance(f, dict)})
        if verdicts:
            return "tensor verdict " + "/".join(verdicts)
        if "outputs" in reason and "FAIL" in reason:
            return "output metrics outside the profile (KL / top-1 / greedy)"
        if "round trip" in reason.lower() or kind_of(gid) is GateKind.ROUND_TRIP:
            return "round trip not bit-identical"
    return _normalize(reason)


def note_for(r: dict[str, Any], golden_text: str | None) -> str | None:
    """What an apr-qa F-CONV record measured (None for aprqa's records: their reason says it)."""
    gid = str(r.get("gate_id", ""))
    if _is_aprqa(r) or series_of(gid) is not Series.CONVERSION:
        return None
    reason = str(r.get("reason") or "")
    output = str(r.get("output") or "")
    m = _TEXT_DIFF.search(reason)
    same_run = (f" In the same run F-GOLDEN-RULE-001 compared the generated text exactly and passed "
                f"({golden_text!r}).") if golden_text else ""
    if m:
        return (f"diff {m.group(1)} is not a tensor or logit difference. The reason says the *output* differed: "
                f"apr-qa ran the source and the converted model on one prompt and compared their printed text "
                f"output character by character (fraction of positions that differ, over the whole printed "
                f"stdout, which includes the model's file path and timing) against ε = {m.group(2)}. About "
                f"{float(m.group(1)):.0%} of the characters were at different positions; a perfect conversion "
                f"cannot reach ε = {m.group(2)} on text that contains a different path.{same_run}"
                + (f" The record's output is only a digest ({output})." if _HEX.match(output) else ""))
    if "no embedded tokenizer vocabulary" in reason:
        return ("Nothing was compared: apr's converter refused the input (a GGUF written without its tokenizer), "
                "so this is a conversion failure upstream, not a measured difference.")
    if reason.startswith("Round-trip conversion produced different output"):
        return ("The record carries no measurement: the output field is a 16-hex digest of the printed output, "
                "so the round trip was judged on text, not on tensors.")
    md = _MAX_DIFF.search(output)
    if md and _outcome(r) == Outcome.CORROBORATED:
        v = float(md.group(1))
        if v > 0:
            return (f"Corroborated with max_diff {md.group(1)}: the reason ('{reason}') does not say what was "
                    f"measured; a value of this size is the same text-position score as in failing runs, now "
                    f"accepted — not evidence that the tensors match.")
        return (f"max_diff {md.group(1)}: the record does not say what was measured (under the text-position "
                f"score of the other F-CONV gates, 0 means identical printed output); no tensor comparison is "
                f"recorded.")
    return None


def summarize(records: list[dict[str, Any]], path: str = "") -> EvidenceSummary:
    """Summarize evidence records (aprqa's or apr-qa's).

    Args:
        records: the records as JSON objects (``aprqa.playbook.load_evidence``; any producer's, so
            nothing about their shape is assumed).
        path: the file they came from (shown in the header).
    Returns:
        EvidenceSummary.
    Example:
        >>> s = summarize([{"gate_id": "F-CONV-S-G", "outcome": "Falsified",
        ...                 "reason": "Conversion SafeTensors → Gguf produced different output (diff: 8.00e-1, ε: 1.00e-6)"}])
        >>> s.failed, s.causes[0].gates
        (1, ('F-CONV-S-G',))
    """
    records = [sane_record(r) for r in records]
    outcomes: dict[str, int] = {o.value: 0 for o in OUTCOMES}
    families: dict[str, dict[str, int]] = {}
    groups: dict[str, list[dict[str, Any]]] = {}
    golden = None
    for r in records:
        if kind_of(r.get("gate_id")) is GateKind.GOLDEN and _outcome(r) == Outcome.CORROBORATED and not _is_aprqa(r):
            out = str(r.get("output") or "")
            golden = out.split("identical output:", 1)[1].strip() if "identical output:" in out else golden
    notes: dict[str, list[tuple[str, str, str]]] = {}
    not_exec: list[tuple[str, str]] = []
    for r in records:
        o = _outcome(r)
        gid = str(r.get("gate_id", "?"))
        outcomes[o] = outcomes.get(o, 0) + 1
        fam = families.setdefault(family_of(gid), {})
        fam[o] = fam.get(o, 0) + 1
        if o in FAILING:
            groups.setdefault(cause_of(r), []).append(r)
        md = r.get("metadata") or {}
        if o == Outcome.SKIPPED and md.get("not_executed") == "true":
            not_exec.append((gid, str(md.get("section", ""))))
        n = note_for(r, golden)
        if n:
            notes.setdefault(n, []).append((gid, o, str(r.get("reason") or "")))
    causes = tuple(Cause(c, tuple(str(r.get("gate_id")) for r in rs), str(rs[0].get("reason") or "")[:300])
                   for c, rs in sorted(groups.items(), key=lambda kv: -len(kv[1])))
    producer = "aprqa" if any(_is_aprqa(r) for r in records) else "apr-qa"
    model = ""
    for r in records:
        m = ((r.get("scenario") or {}).get("model") or {})
        if m.get("name") and m.get("org") not in ("conversion",):
            model = f"{m.get('org')}/{m.get('name')}"
            break
    return EvidenceSummary(path, producer, len(records), {k: v for k, v in outcomes.items() if v},
                           families, causes,
                           tuple(GateNote(", ".join(dict.fromkeys(g for g, _o, _r in v)),
                                          ", ".join(dict.fromkeys(o for _g, o, _r in v)), v[0][2], n)
                                 for n, v in notes.items()),
                           tuple(not_exec), model)
