# size: one record schema — apr-qa's declared field types, their checks and the run result that carries the records
"""Evidence records as data: the outcome vocabulary, a gate's outcome, a record, a run's result.

The playbook executor (aprqa.playbook) produces these and the renderers (aprqa.report) read them;
this module imports neither, so neither package needs the other to load (a leaf both depend on).

``Outcome`` values are exactly the strings apr-qa's evidence uses, and ``Outcome`` is a ``str`` so a
record written with a member serializes to the same JSON bytes as one written with the string.
Evidence read back from files holds plain strings; ``parse_outcome`` maps them to members and gives
``None`` for a value apr-qa does not define (the caller lists it as a problem).

``Record`` is one evidence record in apr-qa's shape (docs/evidence.md): ``Record.from_json(d)``
checks every field against the type apr-qa declares for it (presence, JSON type, integer range, enum
spelling; an ``Option`` field may be null or absent) and ``to_json()`` gives back the same keys in the
same order, so apr-qa's own evidence files round-trip byte for byte. Records flow through aprqa as
``Record``; dicts exist only at the JSON boundary (files, ``RunResult.records``, callbacks).
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

from .errors import AprqaError, LocatedError
from .gate_ids import GateId, family_of


class Outcome(str, Enum):
    CORROBORATED = "Corroborated"
    FALSIFIED = "Falsified"
    SKIPPED = "Skipped"
    TIMEOUT = "Timeout"
    CRASHED = "Crashed"

    def __str__(self) -> str:  # f-strings and format() show the evidence string, not "Outcome.X"
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __hash__(self) -> int:  # Enum hashes the member name; hash as the string so "Skipped" finds SKIPPED in sets
        return hash(self.value)


# Evidence order (apr-qa's schema): the order of OUTCOMES in summaries and of columns in tables.
OUTCOMES: tuple[Outcome, ...] = (Outcome.CORROBORATED, Outcome.FALSIFIED, Outcome.SKIPPED, Outcome.TIMEOUT,
                                 Outcome.CRASHED)
# Column order of the rendered tables (failures first, skips last).
TABLE_COLUMNS: tuple[Outcome, ...] = (Outcome.CORROBORATED, Outcome.FALSIFIED, Outcome.CRASHED, Outcome.TIMEOUT,
                                      Outcome.SKIPPED)
# A gate that did not hold: it measured a failure, or could not measure at all.
FAILING: frozenset[Outcome] = frozenset({Outcome.FALSIFIED, Outcome.CRASHED, Outcome.TIMEOUT})
# A gate that could not measure (JUnit "error", not "failure").
ERRORED: frozenset[Outcome] = frozenset({Outcome.CRASHED, Outcome.TIMEOUT})


def parse_outcome(value: Any) -> Outcome | None:
    """The member for an evidence string, None for anything else (unknown string, non-string)."""
    if isinstance(value, Outcome):
        return value
    if not isinstance(value, str):
        return None
    try:
        return Outcome(value)
    except ValueError:
        return None


def error_text(err: BaseException) -> str:
    """An exception as reason text: an aprqa error's message as it is, any other prefixed with its type."""
    s = str(err).strip() or type(err).__name__
    return s if isinstance(err, AprqaError) else f"{type(err).__name__}: {s}"


@dataclass(frozen=True)
class GateOutcome:
    """What measuring one gate found (becomes a ``Record`` with the run's identity around it)."""

    outcome: Outcome
    reason: str
    output: str = ""
    metrics: Mapping[str, Any] = field(default_factory=dict)
    stderr: str | None = None
    exit_code: int | None = None
    total_tokens: int | None = None

    @property
    def passed(self) -> bool:
        return self.outcome == Outcome.CORROBORATED


# ---------------------------------------------------------------------------------------------
# Records (apr-qa's shape). Each part lists its JSON fields in apr-qa's order with the value type apr-qa
# declares for it (crates/apr-qa-runner/src/evidence.rs, apr-qa-gen's scenario.rs and models.rs), checked
# as serde_json checks it: integers in their Rust type's range (a float is no integer), enums spelled as
# serde spells them, an ``Option`` field null or absent. from_json refuses a missing required key, an
# unknown key (aprqa's reader is stricter than serde here: it keeps what it reads) and any other value.


class RecordError(LocatedError):
    """An evidence record that does not have apr-qa's shape (``field`` names the offending key)."""


_STR, _INT, _NUM, _NULL = (str,), (int,), (int, float), (type(None),)
_JSON_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", list: "array",
               type(None): "null"}
# Rust integer types apr-qa declares -> inclusive range (serde_json refuses a value outside it).
_INT_RANGES = {"u32": (0, 2**32 - 1), "u64": (0, 2**64 - 1), "i32": (-2**31, 2**31 - 1)}
# apr-qa's enums (``#[serde(rename_all = "lowercase")]``): the only spellings serde accepts.
MODALITIES = ("run", "chat", "serve")
BACKENDS = ("cpu", "gpu")
SCENARIO_FORMATS = ("gguf", "safetensors", "apr")
TRACE_LEVELS = ("none", "basic", "layer", "payload")
# chrono's DateTime<Utc> reads RFC 3339: date, 'T', time, optional fraction, 'Z' or an offset.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _check(cls: type, d: Any, where: str) -> dict[str, Any]:
    """Field values of ``cls`` from JSON object ``d``, types checked (nested parts not converted)."""
    if not isinstance(d, dict):
        raise RecordError(None, f"expected object, got {_JSON_NAMES.get(type(d), type(d).__name__)}",
                          field=where or "record")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in d if k not in names]
    if unknown:
        raise RecordError(None, f"unknown key(s) {', '.join(map(repr, unknown))}; apr-qa's record has "
                                f"{', '.join(names)}", field=where or "record")
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        path = f"{where}.{f.name}" if where else f.name
        allowed = f.metadata.get("json", ())
        if f.name not in d:
            if type(None) in allowed:  # serde: a missing Option field is None
                out[f.name] = None
                continue
            raise RecordError(None, "missing", field=path)
        out[f.name] = _checked(d[f.name], allowed, path, f.metadata.get("rust"))
    return out


def _checked(v: Any, allowed: tuple[type, ...], path: str, rust: Any = None) -> Any:
    """``v`` when it has one of the JSON types ``allowed`` (any when empty; a bool is no number) and,
    when ``rust`` names apr-qa's declared type, a value that type holds."""
    if allowed and (not isinstance(v, allowed) or (isinstance(v, bool) and bool not in allowed)):
        want = " or ".join(_JSON_NAMES[t] for t in allowed)
        got = _JSON_NAMES.get(type(v), type(v).__name__)
        raise RecordError(None, f"expected {want}, got {got} {v!r:.60}", field=path)
    if v is None or rust is None:
        return v
    if isinstance(rust, tuple):
        if v not in rust:
            raise RecordError(None, f"{v!r:.60} is not one of apr-qa's spellings {', '.join(rust)}", field=path)
    elif rust in _INT_RANGES:
        lo, hi = _INT_RANGES[rust]
        if not lo <= v <= hi:
            raise RecordError(None, f"{v} is out of range of apr-qa's {rust}", field=path)
    elif rust == "datetime" and not _RFC3339.match(v):
        raise RecordError(None, f"{v!r:.60} is not an RFC 3339 date-time (apr-qa's DateTime<Utc>)", field=path)
    return v


def _json(types: tuple[type, ...], rust: Any = None) -> Any:
    return field(metadata={"json": types, "rust": rust})


@dataclass(frozen=True)
class ModelRef:
    org: str = _json(_STR)
    name: str = _json(_STR)
    variant: str | None = _json(_STR + _NULL)  # aprqa: the target quantization

    def to_json(self) -> dict[str, Any]:
        return {"org": self.org, "name": self.name, "variant": self.variant}


@dataclass(frozen=True)
class Scenario:
    id: str = _json(_STR)
    model: ModelRef = _json((dict,))
    modality: str = _json(_STR, MODALITIES)
    backend: str = _json(_STR, BACKENDS)
    format: str = _json(_STR, SCENARIO_FORMATS)
    prompt: str = _json(_STR)
    temperature: float = _json(_NUM)  # f32
    max_tokens: int = _json(_INT, "u32")
    seed: int = _json(_INT, "u64")
    trace_level: str = _json(_STR, TRACE_LEVELS)
    oracle_type: str = _json(_STR)

    @classmethod
    def from_json(cls, d: Any, where: str = "scenario") -> "Scenario":
        v = _check(cls, d, where)
        return cls(**{**v, "model": ModelRef(**_check(ModelRef, v["model"], f"{where}.model"))})

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model.to_json(), "modality": self.modality, "backend": self.backend,
                "format": self.format, "prompt": self.prompt, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "seed": self.seed, "trace_level": self.trace_level,
                "oracle_type": self.oracle_type}


@dataclass(frozen=True)
class Metrics:
    """apr-qa's performance fields (aprqa measures none but the duration and peak RSS) and, under
    ``aprqa``, the gate's own measurements (absent from apr-qa's records)."""

    tokens_per_second: float | None = _json(_NUM + _NULL)  # f64
    time_to_first_token_ms: float | None = _json(_NUM + _NULL)  # f64
    total_tokens: int | None = _json(_INT + _NULL, "u32")
    memory_peak_mb: int | None = _json(_INT + _NULL, "u64")
    duration_ms: int = _json(_INT, "u64")
    aprqa: Mapping[str, Any] | None = _json((dict,) + _NULL)

    @classmethod
    def from_json(cls, d: Any, where: str = "metrics") -> "Metrics":
        return cls(**_check(cls, d, where))

    def to_json(self) -> dict[str, Any]:
        out = {"tokens_per_second": self.tokens_per_second, "time_to_first_token_ms": self.time_to_first_token_ms,
               "total_tokens": self.total_tokens, "memory_peak_mb": self.memory_peak_mb,
               "duration_ms": self.duration_ms}
        if self.aprqa is not None:
            out["aprqa"] = self.aprqa
        return out


@dataclass(frozen=True)
class Host:
    hostname: str = _json(_STR)
    os: str = _json(_STR)
    cpu: str = _json(_STR)
    gpu: str | None = _json(_STR + _NULL)
    apr_version: str = _json(_STR)

    @classmethod
    def from_json(cls, d: Any, where: str = "host") -> "Host":
        return cls(**_check(cls, d, where))

    def to_json(self) -> dict[str, Any]:
        return {"hostname": self.hostname, "os": self.os, "cpu": self.cpu, "gpu": self.gpu,
                "apr_version": self.apr_version}


@dataclass(frozen=True)
class Record:
    """One evidence record (apr-qa's fields; aprqa's measurements under ``metrics.aprqa``, its
    thresholds and provenance as strings under ``metadata``)."""

    id: str = _json(_STR)
    gate_id: str = _json(_STR)
    scenario: Scenario = _json((dict,))
    outcome: Outcome = _json(_STR)
    reason: str = _json(_STR)
    output: str = _json(_STR)
    stderr: str | None = _json(_STR + _NULL)
    exit_code: int | None = _json(_INT + _NULL, "i32")
    metrics: Metrics = _json((dict,))
    timestamp: str = _json(_STR, "datetime")
    host: Host = _json((dict,))
    metadata: Mapping[str, str] = _json((dict,))

    @classmethod
    def from_json(cls, d: Any, where: str = "") -> "Record":
        """A record from its JSON object (as read from evidence.json / .jsonl).

        Raises:
            RecordError: a missing or unknown key, a value of the wrong JSON type, an outcome apr-qa
                does not define, a metadata value that is not a string (``field`` names it).
        """
        v = _check(cls, d, where)
        at = f"{where}." if where else ""
        outcome = parse_outcome(v["outcome"])
        if outcome is None:
            raise RecordError(None, f"{v['outcome']!r} is not one of {', '.join(o.value for o in OUTCOMES)}",
                              field=f"{at}outcome")
        bad = [k for k, x in v["metadata"].items() if not isinstance(x, str)]
        if bad:
            raise RecordError(None, "metadata values are strings in apr-qa's records", field=f"{at}metadata.{bad[0]}")
        return cls(**{**v, "outcome": outcome, "scenario": Scenario.from_json(v["scenario"], f"{at}scenario"),
                      "metrics": Metrics.from_json(v["metrics"], f"{at}metrics"),
                      "host": Host.from_json(v["host"], f"{at}host")})

    def to_json(self) -> dict[str, Any]:
        """The record's JSON object: apr-qa's keys in apr-qa's order; the outcome a plain string."""
        return {"id": self.id, "gate_id": self.gate_id, "scenario": self.scenario.to_json(),
                "outcome": self.outcome.value, "reason": self.reason, "output": self.output, "stderr": self.stderr,
                "exit_code": self.exit_code, "metrics": self.metrics.to_json(), "timestamp": self.timestamp,
                "host": self.host.to_json(), "metadata": dict(self.metadata)}

    @property
    def passed(self) -> bool:
        return self.outcome == Outcome.CORROBORATED

    @property
    def not_executed(self) -> bool:
        """A Skipped record of a check aprqa does not execute or a conversion it cannot produce."""
        return self.metadata.get("not_executed") == "true"

    @property
    def family(self) -> str:
        return family_of(self.gate_id)

    @property
    def gate(self) -> GateId | None:
        """The typed gate id; None for another producer's id or a check aprqa does not execute."""
        return GateId.parse(self.gate_id)


# ---------------------------------------------------------------------------------------------
# A run's result


# Starts the planning note (and F-CONV-COVERAGE-001's reason) of a playbook that has nothing to convert.
CANNOT_PASS = "cannot pass under aprqa"


@dataclass(frozen=True)
class RunResult:
    """The outcome of ``run_playbook``: truthy when every executed gate was Corroborated (and there was one).

    Attributes:
        gate_records: the records (``Record``), in plan order; ``records`` is the same as JSON
            objects (dicts in apr-qa's shape, as in evidence.json).
        counts: per gate family, ``{outcome: count}``.
        output: the output directory; evidence/jsonl/junit/summary/report: written files
            (report = the run report page; compare_report = the worst conversion's compare page).
        not_run: top-level playbook sections with checks aprqa does not execute (each check is
            also a Skipped record: ``not_executed``).
        notes: planning notes (quantizations a format cannot store, policy notes).
    """

    playbook: str
    playbook_sha256: str
    name: str
    gate_records: tuple[Record, ...]
    output: Path
    evidence: Path
    evidence_jsonl: Path
    junit: Path
    summary: Path
    report: Path | None
    seconds: float
    not_run: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    compare_report: Path | None = None

    @cached_property
    def records(self) -> tuple[dict[str, Any], ...]:
        """The records as JSON objects (what evidence.json holds), in plan order."""
        return tuple(r.to_json() for r in self.gate_records)

    def _json_where(self, keep: Any) -> tuple[dict[str, Any], ...]:
        return tuple(j for r, j in zip(self.gate_records, self.records) if keep(r))

    @property
    def executed(self) -> tuple[dict[str, Any], ...]:
        """Records of the gates aprqa executed (not the Skipped "not executed by aprqa" ones)."""
        return self._json_where(lambda r: not r.not_executed)

    @property
    def not_executed(self) -> tuple[dict[str, Any], ...]:
        """The Skipped records of checks aprqa does not execute or conversions it cannot produce."""
        return self._json_where(lambda r: r.not_executed)

    @property
    def planned(self) -> int | None:
        """How many gates the run planned (``metadata.planned_gates``; None when no record says)."""
        return next((int(n) for r in self.gate_records if (n := r.metadata.get("planned_gates", "")).isdigit()), None)

    @property
    def missing(self) -> int:  # planned gates without a record: a gap fails the run
        return max(0, (self.planned or 0) - len({r.scenario.id for r in self.gate_records}))

    @property
    def passed(self) -> bool:
        """Every executed gate Corroborated, at least one executed and every planned gate recorded;
        not-executed Skipped records neither pass nor fail a run."""
        ex = [r for r in self.gate_records if not r.not_executed]
        return bool(ex) and all(r.passed for r in ex) and self.missing == 0

    def __bool__(self) -> bool:
        return self.passed

    @property
    def cannot_pass(self) -> str | None:
        """Why the playbook cannot pass under aprqa whatever the model (a planning note), else None."""
        return next((n for n in self.notes if n.startswith(CANNOT_PASS)), None)

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in self.gate_records:
            fam = out.setdefault(r.family, {})
            fam[r.outcome.value] = fam.get(r.outcome.value, 0) + 1
        return out

    def outcome_counts(self) -> dict[str, int]:
        return dict(Counter(r.outcome.value for r in self.gate_records))  # in order of first appearance

    def failures(self) -> list[dict[str, Any]]:
        return list(self._json_where(lambda r: not r.passed))

    def to_json(self) -> dict[str, Any]:
        """Every field as JSON (records in apr-qa's shape): what a zoo's model task sends back as text."""
        paths = {k: None if (p := getattr(self, k)) is None else str(p) for k in _RUN_PATHS}
        return {"playbook": self.playbook, "playbook_sha256": self.playbook_sha256, "name": self.name,
                "records": list(self.records), **paths, "seconds": self.seconds, "not_run": list(self.not_run),
                "notes": list(self.notes)}

    @classmethod
    def from_json(cls, d: Any, where: str = "result") -> "RunResult":
        """The result ``to_json`` gave, every value and record checked (``RecordError`` names the field)."""
        if not isinstance(d, dict) or set(d) != set(_RUN_JSON):
            got = sorted(d) if isinstance(d, dict) else _JSON_NAMES.get(type(d), type(d).__name__)
            raise RecordError(None, f"expected an object with keys {', '.join(_RUN_JSON)}, got {got}", field=where)
        v = {k: _checked(d[k], t, f"{where}.{k}") for k, t in _RUN_JSON.items()}
        lines = {k: tuple(_checked(x, _STR, f"{where}.{k}[{i}]") for i, x in enumerate(v[k]))
                 for k in ("not_run", "notes")}
        return cls(playbook=v["playbook"], playbook_sha256=v["playbook_sha256"], name=v["name"],
                   gate_records=tuple(Record.from_json(r, f"{where}.records[{i}]") for i, r in enumerate(v["records"])),
                   **{k: None if v[k] is None else Path(v[k]) for k in _RUN_PATHS}, seconds=float(v["seconds"]),
                   **lines)

    def to_dict(self) -> dict[str, Any]:
        return {"playbook": self.playbook, "playbook_sha256": self.playbook_sha256, "name": self.name,
                "passed": self.passed, "counts": self.counts, "outcomes": self.outcome_counts(),
                "output": str(self.output), "evidence": str(self.evidence), "junit": str(self.junit),
                "summary": str(self.summary), "report": str(self.report) if self.report else None,
                "seconds": self.seconds, "not_run": list(self.not_run), "notes": list(self.notes)}


# RunResult.to_json's keys and their JSON types; the paths among them.
_RUN_PATHS = ("output", "evidence", "evidence_jsonl", "junit", "summary", "report", "compare_report")
_RUN_JSON: dict[str, tuple[type, ...]] = {
    "playbook": _STR, "playbook_sha256": _STR, "name": _STR, "records": (list,),
    **{k: _STR + _NULL if k in ("report", "compare_report") else _STR for k in _RUN_PATHS},
    "seconds": _NUM, "not_run": (list,), "notes": (list,)}
