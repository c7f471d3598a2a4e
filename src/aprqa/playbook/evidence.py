"""Evidence records in apr-qa's shape, streamed and written atomically; verify-evidence.

A record (``aprqa.records.Record``) has apr-qa's fields and value types (docs/evidence.md)::

    id (32 hex) · gate_id · scenario {id, model {org, name, variant}, modality (run|chat|serve),
    backend (cpu|gpu), format (gguf|safetensors|apr), prompt, temperature, max_tokens (u32), seed (u64),
    trace_level (none|...), oracle_type} · outcome (Corroborated | Falsified | Skipped | Timeout |
    Crashed) · reason · output · stderr · exit_code (i32) · metrics {tokens_per_second,
    time_to_first_token_ms, total_tokens (u32), memory_peak_mb (u64), duration_ms (u64), aprqa
    {...measurements}} · timestamp (RFC 3339) · host {...} · metadata {str: str}

aprqa's measurements live under ``metrics.aprqa``; the thresholds that judged the gate are a
JSON string under ``metadata.thresholds`` and the playbook's sha256 under
``metadata.playbook_sha256`` (apr-qa's metadata values are strings).

Files: ``evidence.json`` is what apr-qa reads (``apr-qa score``/``report`` deserialize it as a JSON
array of its ``Evidence``); ``evidence.jsonl`` gets one line per finished gate, flushed and fsynced, so an
interrupted run keeps what finished; ``evidence.json`` (the array) is written once at the end
through a temporary file and ``os.replace`` — it is either absent or complete.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import platform
import resource  # Unix, as fsio's fcntl: the peak RSS of a record
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from .. import __version__
from ..comparison.tolerance import drop_legacy_fields
from ..errors import AprqaError, InputError
from ..fsio import CAP_EVIDENCE, LockedAppender, parse_json, read_bounded, read_json, write_text_atomic
from ..gate_ids import GateIdError
from ..records import OUTCOMES, Host, Metrics, Outcome, Record, RecordError, Scenario, parse_outcome
from ..report.run.evidence import EvidenceSummary, summarize
from .schema import PlaybookError, load_playbook
from .thresholds import record_kind, thresholds_for



def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def host_info() -> Host:
    cpu = platform.processor() or platform.machine() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return Host(hostname=socket.gethostname(), os=platform.system().lower() or "unknown", cpu=cpu, gpu=None,
                apr_version=f"aprqa {__version__}")


def _peak_rss_mb() -> int | None:
    """This process's peak RSS in whole MiB, rounded up (apr-qa declares ``memory_peak_mb: Option<u64>``)."""
    try:
        return -(-int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) // 1024)  # KiB on Linux
    except OSError:
        return None


def make_record(*, gate_id: str, outcome: Outcome | str, reason: str, output: str, scenario: Scenario,
                metrics: Mapping[str, Any], metadata: Mapping[str, Any], host: Host, duration_ms: int,
                stderr: str | None = None, exit_code: int | None = None,
                total_tokens: int | None = None) -> Record:
    """A new record (fresh id, timestamp now, this process's peak RSS); ``metrics`` go under
    ``metrics.aprqa`` made JSON-safe, ``metadata`` values become strings.

    Raises:
        ValueError: ``outcome`` is not one of apr-qa's outcomes.
    """
    member = parse_outcome(outcome)
    if member is None:
        raise ValueError(f"outcome {outcome!r} not in {tuple(o.value for o in OUTCOMES)}")
    return Record(id=uuid.uuid4().hex, gate_id=gate_id, scenario=scenario, outcome=member, reason=reason,
                  output=output, stderr=stderr, exit_code=exit_code,
                  metrics=Metrics(tokens_per_second=None, time_to_first_token_ms=None, total_tokens=total_tokens,
                                  memory_peak_mb=_peak_rss_mb(), duration_ms=int(max(0, duration_ms)),
                                  aprqa=_clean(dict(metrics))),
                  timestamp=now_iso(), host=host, metadata={k: str(v) for k, v in metadata.items()})


def _clean(x: Any) -> Any:
    """JSON-safe: non-finite floats become strings, tuples lists, numpy scalars Python numbers."""
    if hasattr(x, "item") and not isinstance(x, (list, tuple, dict, str)):
        try:
            x = x.item()
        except (TypeError, ValueError):
            pass
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


class EvidenceStream:
    """Appends records to ``evidence.jsonl`` as gates finish (one ``write`` + fsync per record).

    The file is locked for the whole run (``fsio.LockedAppender``): a second run into the same
    output fails at once with ``OutputLockedError`` instead of tearing this run's lines.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._out = LockedAppender(path)

    def write(self, record: Record) -> None:
        self._out.append(json.dumps(record.to_json(), ensure_ascii=False, allow_nan=False) + "\n")

    def close(self) -> None:
        self._out.close()


MAX_RECORDS = 200_000  # records one evidence file may hold (a real run has hundreds to a few thousand)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Records of an ``evidence.jsonl``; a torn last line (killed mid-write: no newline after it) is ignored."""
    out = []
    text = read_bounded(path, CAP_EVIDENCE, "evidence").decode("utf-8", errors="replace")
    torn = not text.endswith("\n")  # each record is written with its newline in one write(2)
    lines = text.splitlines()
    if len(lines) > MAX_RECORDS:
        raise PlaybookError(Path(path), f"evidence has {len(lines):,} lines; aprqa reads at most {MAX_RECORDS:,} records")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(parse_json(line, path, f"evidence line {i + 1}"))
        except InputError as err:
            if i == len(lines) - 1 and torn:  # a complete line that is not a record is an error, not a tear
                break
            raise PlaybookError(Path(path), str(err.message)) from None
    return out


def write_evidence_json(path: Path, records: Iterable[Record]) -> None:
    """evidence.json: the records as one JSON array, written all-or-nothing."""
    write_text_atomic(path, json.dumps([r.to_json() for r in records], indent=2, ensure_ascii=False,
                                       allow_nan=False) + "\n")


# ---------------------------------------------------------------------------------------------
# verify-evidence


@dataclass(frozen=True)
class Verification:
    """Result of ``verify_evidence``: truthy when the evidence matches the playbook.

    Attributes:
        records: records checked.
        playbook_sha256: hash of the playbook file now.
        problems: one line per mismatch (hash, thresholds, missing fields).
    """

    evidence: str
    playbook: str
    records: int
    playbook_sha256: str
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return self.records > 0 and not self.problems

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        return {"evidence": self.evidence, "playbook": self.playbook, "records": self.records,
                "playbook_sha256": self.playbook_sha256, "passed": self.passed, "problems": list(self.problems)}


def load_evidence(path: str | Path) -> list[dict[str, Any]]:
    """Records of an ``evidence.json`` (array, or apr-qa's ``{"evidence": [...]}``) or ``.jsonl``, as
    JSON objects (evidence of any producer, checked only where readers walk into it; ``Record.from_json``
    types one)."""
    p = Path(path)
    if p.suffix == ".jsonl":
        data: Any = read_jsonl(p)
    else:
        try:
            data = read_json(p, CAP_EVIDENCE, "evidence")
        except InputError as err:
            raise PlaybookError(p, f"cannot read evidence: {err.message}") from None
    if isinstance(data, dict) and isinstance(data.get("evidence"), list):
        data = data["evidence"]
    if not isinstance(data, list):
        raise PlaybookError(p, f"evidence must be a JSON array of records, got {type(data).__name__}")
    if len(data) > MAX_RECORDS:
        raise PlaybookError(p, f"evidence has {len(data):,} records; aprqa reads at most {MAX_RECORDS:,}")
    for i, r in enumerate(data):  # edited evidence: name the record instead of crashing on it later
        _check_shape(p, i, r)
    return data


def load_records(path: str | Path) -> list[Record]:
    """Typed records of an evidence file (any producer's, in apr-qa's shape).

    Raises:
        PlaybookError: unreadable evidence (``load_evidence``).
        RecordError: a record not in apr-qa's shape; names the file and the field (``[3].metrics``).
    """
    out = []
    for i, d in enumerate(load_evidence(path)):
        try:
            out.append(Record.from_json(d, f"[{i}]"))
        except RecordError as err:
            raise RecordError(path, err.message, field=err.field) from err
    return out


def load_summary(path: str | Path) -> EvidenceSummary:
    """Read an evidence file (.json array, apr-qa's {"evidence": [...]}, or .jsonl) and summarize it.

    Raises:
        PlaybookError: unreadable or malformed evidence.
    """
    return summarize(load_evidence(path), str(path))


# Fields that readers of a record walk into: each must be an object when present.
_OBJECT_FIELDS = (("scenario",), ("scenario", "model"), ("metrics",), ("metrics", "aprqa"),
                  ("metrics", "aprqa", "tensor"), ("host",), ("metadata",))


def _check_shape(p: Path, i: int, r: Any) -> None:
    if not isinstance(r, dict):
        raise PlaybookError(p, f"evidence record {i} is a JSON {type(r).__name__}, not an object")
    for fields in _OBJECT_FIELDS:
        x: Any = r
        for depth, key in enumerate(fields):
            x = x.get(key)
            if x is None:
                break
            if not isinstance(x, dict):
                raise PlaybookError(p, f"evidence record {i}: {'.'.join(fields[:depth + 1])} is a JSON "
                                       f"{type(x).__name__}, expected an object")
    failures = ((r.get("metrics") or {}).get("aprqa") or {}).get("tensor", {}) or {}
    failures = failures.get("failures") or []
    if not isinstance(failures, list) or not all(isinstance(f, dict) and isinstance(f.get("verdict"), str)
                                                 for f in failures):
        raise PlaybookError(p, f"evidence record {i}: metrics.aprqa.tensor.failures must be a list of objects "
                               "with a string verdict")


def verify_evidence(evidence: str | Path, playbook: str | Path) -> Verification:
    """Check that ``evidence`` was produced by ``playbook`` as it is now.

    Every record must carry the playbook's current sha256, and its recorded thresholds must
    equal the thresholds the playbook gives for that gate now (so a weakened playbook, or an
    edited record, is named). Zero records is a failure.

    Raises:
        PlaybookError: unreadable evidence or playbook.
    """
    def current(x: Any) -> Any:  # recorded thresholds as written now: legacy tolerance fields dropped
        if isinstance(x, dict):
            return {k: current(v) for k, v in drop_legacy_fields(x).items()}
        return [current(v) for v in x] if isinstance(x, list) else x

    pb, digest = load_playbook(playbook)
    records = load_evidence(evidence)
    problems: list[str] = []
    if not records:
        problems.append("no records: nothing to verify")
    hashes = {str(_dict(r.get("metadata")).get("playbook_sha256")) for r in records}
    if records and hashes != {digest}:
        found = ", ".join(sorted(str(h)[:12] for h in hashes))
        problems.append(f"playbook sha256 mismatch: the playbook is now {digest[:12]}…, the evidence records "
                        f"{found}… — the playbook was edited after the run (or this evidence is from another one)")
    problems += planned_gaps(records)
    for i, r in enumerate(records):
        md = _dict(r.get("metadata"))
        if "thresholds" not in md:
            problems.append(f"{r.get('gate_id')} ({r.get('id')}): no recorded thresholds")
            continue
        key = md.get("thresholds_key", "")
        if not isinstance(key, str):
            problems.append(f"{r.get('gate_id')} ({r.get('id')}): thresholds_key is not a string: {key!r:.60}")
            continue
        try:  # the record's id, typed here at the edge: an id aprqa does not define names file and field
            kind = record_kind(r.get("gate_id"), key, md.get("not_executed") == "true", evidence,
                               f"record {i}: gate_id")
        except GateIdError as err:
            problems.append(str(err))
            continue
        try:
            now = thresholds_for(pb, kind, key)
        except (AprqaError, ValueError) as err:  # an unknown key in an edited record is a mismatch, not a crash
            problems.append(f"{r.get('gate_id')} ({r.get('id')}): cannot recompute thresholds for {key!r}: {err}")
            continue
        try:  # duplicate keys refused here too: {"max_kl": 9, "max_kl": 0.1} would read as the last one
            recorded = parse_json(md["thresholds"], evidence, f"record {i}: metadata.thresholds") \
                if isinstance(md["thresholds"], str) else None
        except InputError as err:
            problems.append(f"{r.get('gate_id')} ({r.get('id')}): {err.message}")
            continue
        if not isinstance(recorded, dict):
            problems.append(f"{r.get('gate_id')} ({r.get('id')}): recorded thresholds are not a JSON object")
            continue
        try:
            recorded = current(recorded)
        except RecursionError:
            problems.append(f"{r.get('gate_id')} ({r.get('id')}): recorded thresholds nested too deeply")
            continue
        if recorded != now:
            diffs = _dict_diff(recorded, now)
            problems.append(f"{r.get('gate_id')} [{key}]: recorded thresholds differ from the playbook's: "
                            + "; ".join(diffs[:6]))
    return Verification(str(evidence), str(playbook), len(records), digest, tuple(problems))


def planned_gaps(records: list[dict[str, Any]]) -> list[str]:
    """Problems when the records are not one per planned gate: every record states how many gates its
    run planned (``metadata.planned_gates``); fewer distinct scenarios than that is a gap (a gate that
    left no record), and a record without the count cannot show there is none."""
    if not records:
        return []
    counts = {_dict(r.get("metadata")).get("planned_gates") for r in records}
    if None in counts:
        return ["some records state no metadata.planned_gates: cannot show that every planned gate has a record"]
    if len(counts) != 1:
        return [f"records disagree on how many gates were planned: {', '.join(sorted(map(str, counts)))[:200]}"]
    raw = counts.pop()
    if not (isinstance(raw, str) and raw.isdigit()):
        return [f"metadata.planned_gates is not a count: {raw!r:.60}"]
    ids = [_dict(r.get("scenario")).get("id") for r in records]
    distinct = len({str(i) for i in ids})
    out = []
    if distinct != len(ids):
        out.append(f"{len(ids) - distinct} record(s) repeat a scenario id")
    if distinct != int(raw):
        out.append(f"{int(raw)} gates planned, {distinct} recorded: "
                   + ("a planned gate has no record" if distinct < int(raw) else "records no plan made"))
    return out


def _dict(x: Any) -> dict[str, Any]:
    """``x`` when it is a dict, else empty (fields of hand-edited evidence may have any type)."""
    return x if isinstance(x, dict) else {}


def _dict_diff(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            out += _dict_diff(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
        return out
    if a != b:
        return [f"{path}: recorded {a!r}, playbook now {b!r}"]
    return []


def render_line(record: dict[str, Any], width: int = 150) -> str:
    """One console line for a finished record: gate, format/quant, outcome, reason (shortened)."""
    sc = record.get("scenario") or {}
    variant = (sc.get("model") or {}).get("variant") or ""
    head = f"{record['gate_id']:<26} {sc.get('format', ''):<11} {variant:<7} {record['outcome']:<12}"
    reason = record.get("reason", "").replace("\n", " ")
    room = max(20, width - len(head) - 1)
    return f"{head} {reason if len(reason) <= room else reason[:room - 1] + '…'}"
