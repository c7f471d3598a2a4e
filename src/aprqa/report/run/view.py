"""A playbook run (its evidence records, aprqa's or apr-qa's) arranged for a reviewer: the
format x quantization matrix, the size/fidelity points, the integrity and structure gates, the
environment and the failures. Only picks values out of the records; nothing is measured here.

``build_run_view(records)`` returns a ``RunView``; html.py / markdown.py render it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ...gate_ids import GateKind, Series, conversion_pair, kind_of, series_of
from ...quant.mixes import QUANT_CHOICES
from ...records import FAILING, Outcome
from ..provenance import Provenance, of_records
from .evidence import EvidenceSummary, sane_record, summarize

FORMAT_ORDER = ("safetensors", "apr", "gguf")
# matrix columns from most to fewest bits (the --quant names, in that order); others follow in record
# order, then keep / as stored
QUANT_ORDER = QUANT_CHOICES
AS_STORED = "as stored"


def _d(x: Any) -> dict[str, Any]:
    """``x`` when it is a dict, else {}: edited or foreign evidence may hold anything anywhere."""
    return x if isinstance(x, dict) else {}


def strings(x: Any) -> list[str]:
    return [str(v) for v in x] if isinstance(x, list) else []


def prompt_rows(g: "GateView") -> list[dict[str, Any]]:
    """The golden rule's per-prompt results of a record (empty when absent or malformed)."""
    p = _d(g.raw_metrics.get("aprqa")).get("prompts")
    return [x for x in p if isinstance(x, dict)] if isinstance(p, list) else []


def outcome_of(r: dict[str, Any]) -> str:
    o = r.get("outcome")
    if isinstance(o, dict) and o:  # apr-qa's schema allows {"Falsified": {...}}
        return str(next(iter(o)))
    return str(o)


def status_of(outcome: str) -> str:
    return "fail" if outcome in FAILING else ("pass" if outcome == Outcome.CORROBORATED else "skip")


def _anchor(*parts: str) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", p) for p in parts if p)


def _aprqa(r: dict[str, Any]) -> dict[str, Any]:
    m = _d(r.get("metrics")).get("aprqa")
    return m if isinstance(m, dict) else {}


@dataclass(frozen=True)
class Measure:
    """One measured value beside the limit it was held to (``limit`` "" when none applies)."""

    name: str
    value: Any
    limit: str = ""


@dataclass(frozen=True)
class GateView:
    """One evidence record, as shown."""

    anchor: str
    gate_id: str
    outcome: str
    format: str
    quant: str | None
    title: str                    # "S→G q4_k" for a conversion, the prompt/description otherwise
    reason: str
    output: str
    thresholds: dict[str, Any]
    measures: tuple[Measure, ...]
    tensor: dict[str, Any] | None  # the compare summary of a conversion (aprqa's records)
    output_check: dict[str, Any] | None
    raw_metrics: dict[str, Any]
    duration_ms: Any = None

    @property
    def status(self) -> str:
        return status_of(self.outcome)


@dataclass(frozen=True)
class Cell:
    """The conversion gates of one target format and quantization."""

    format: str
    quant: str
    gates: tuple[GateView, ...]

    @property
    def anchor(self) -> str:
        return _anchor("cell", self.format, self.quant)

    @property
    def status(self) -> str:
        st = [g.status for g in self.gates]
        return "fail" if "fail" in st else ("pass" if "pass" in st else "skip")

    def _first(self, *keys: str) -> float | None:
        """The first gate's number at ``keys`` (non-numbers, e.g. from edited evidence, are skipped)."""
        for g in self.gates:
            d: Any = {"tensor": g.tensor or {}, "output": g.output_check or {}}
            for k in keys:
                d = d.get(k) if isinstance(d, dict) else None
            if isinstance(d, (int, float)) and not isinstance(d, bool):
                return float(d)
        return None

    @property
    def kl_mean(self) -> float | None:
        return self._first("output", "metrics", "kl_mean")

    @property
    def top1(self) -> float | None:
        return self._first("output", "metrics", "top1_decisive")

    @property
    def bits_per_weight(self) -> float | None:
        return self._first("tensor", "bits_per_weight")

    @property
    def worst_rel_l2(self) -> float | None:
        return self._first("tensor", "worst_rel_l2")

    @property
    def err_noise(self) -> float | None:
        return self._first("tensor", "worst", "error_score")


@dataclass(frozen=True)
class TradePoint:
    format: str
    quant: str
    bits_per_weight: float
    kl_mean: float | None
    worst_rel_l2: float | None
    failed: bool


@dataclass(frozen=True)
class RunView:
    """Everything the run report shows, in the order it shows it."""

    title: str
    source: str
    producer: str
    model: str
    records: int
    passed: bool
    outcomes: dict[str, int]
    failures: tuple[GateView, ...]
    formats: tuple[str, ...]
    quants: tuple[str, ...]
    cells: dict[tuple[str, str], Cell]
    points: tuple[TradePoint, ...]
    integrity: tuple[GateView, ...]
    structure: tuple[GateView, ...]
    other: tuple[GateView, ...]
    not_executed: tuple[GateView, ...]
    environment: tuple[tuple[str, str], ...]
    summary: EvidenceSummary
    notes: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = ()   # (label, relative href): the run's other files
    seconds: float | None = None
    cell_of: dict[str, str] = field(default_factory=dict)  # gate anchor -> cell anchor
    cause_of: dict[str, str] = field(default_factory=dict)  # failing gate id -> its cause (evidence.py)
    provenance: Provenance | None = None    # the run's aprqa, date, host, command and input digests

    @property
    def default_cell(self) -> Cell | None:
        """The cell shown before any is picked: the first failing one, else the most quantized
        passing one (the last planned quantization), else any."""
        cells = [self.cells[k] for k in self._ordered()]
        return (next((c for c in cells if c.status == "fail"), None)
                or next((c for c in reversed(cells) if c.status == "pass" and c.quant != "keep"), None)
                or (cells[0] if cells else None))

    def _ordered(self) -> list[tuple[str, str]]:
        return [(f, q) for f in self.formats for q in self.quants if (f, q) in self.cells]

    def ordered_cells(self) -> list[Cell]:
        return [self.cells[k] for k in self._ordered()]


def _thresholds(r: dict[str, Any]) -> dict[str, Any]:
    t = _d(r.get("metadata")).get("thresholds")
    if not t:
        return {}
    try:
        d = json.loads(t)
    except (TypeError, ValueError, RecursionError):
        return {"recorded": str(t)}
    return d if isinstance(d, dict) else {"recorded": d}


_OUTPUT_LIMITS = (("mean KL", "kl_mean", "max_mean_kl", "≤"), ("p99 KL", "kl_p99", "max_p99_kl", "≤"),
                  ("max KL", "kl_max", "max_kl", "≤"), ("top-1 agreement (decisive)", "top1_decisive", "min_top1", "≥"),
                  ("top-5 overlap", "top5_overlap", "min_top5_overlap", "≥"),
                  ("max |Δlogit|", "max_abs_logit_diff", "max_abs_logit", "≤"), ("RMS Δp", "rms_dp", "max_rms_dp", "≤"))


def measures_of(t: dict[str, Any] | None, o: dict[str, Any] | None, thr: dict[str, Any]) -> tuple[Measure, ...]:
    out: list[Measure] = []
    if t:
        prof = _d(thr.get("tensor")).get("profile")
        v = _d(t.get("verdicts"))
        out.append(Measure("tensor verdicts", " · ".join(f"{k} {n}" for k, n in v.items()) or "none",
                           f"every tensor passes profile {prof}" if prof else ""))
        out.append(Measure("tensors compared", f"{t.get('pairs_compared')}/{t.get('tensors')}"))
        w = _d(t.get("worst"))
        if w:
            measure = "err/noise" if w.get("verdict") == "QUANT-FAITHFUL" else "rel-L2"
            out.append(Measure("worst passing tensor", f"{w.get('name')} {w.get('verdict')} "
                                                       f"({measure} {_short(w.get('error_score'))})"))
        if t.get("worst_rel_l2") is not None:
            out.append(Measure("worst rel-L2", t["worst_rel_l2"]))
        if t.get("bits_per_weight") is not None:
            out.append(Measure("bits per weight", t["bits_per_weight"]))
        if t.get("min_atol") is not None:
            out.append(Measure("minimum passing atol (rtol 0)", t["min_atol"]))
    if o:
        m = _d(o.get("metrics"))
        p = _d(o.get("profile"))
        for name, mk, pk, op in _OUTPUT_LIMITS:
            if m.get(mk) is None:
                continue
            lim = p.get(pk)
            out.append(Measure(name, m[mk], f"{op} {_short(lim)}" if lim is not None else ""))
        g = _d(o.get("greedy"))
        if g:
            fd = g.get("first_divergence")
            out.append(Measure("greedy continuation", f"{g.get('n_generated')}/{g.get('n_generated')} agree" if fd is None
                               else f"diverges at token {fd}" + (" (near-tie)" if g.get("near_tie") else ""),
                               "must match" if p.get("greedy_must_match") else "reported"))
    return tuple(out)


def _short(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def gate_view(r: dict[str, Any], index: int) -> GateView:
    """One record as a ``GateView`` (``index`` makes its anchor unique)."""
    gid = str(r.get("gate_id", "?"))
    sc = _d(r.get("scenario"))
    md = _d(r.get("metadata"))
    fmt = str(sc.get("format") or "?")
    quant = _d(sc.get("model")).get("variant") or md.get("quant") or None
    quant = None if quant is None else str(quant)
    a = _aprqa(r)
    tensor = a.get("tensor") if isinstance(a.get("tensor"), dict) else None
    output = a.get("output") if isinstance(a.get("output"), dict) else None
    pair = conversion_pair(gid)
    title = f"{pair[0]}→{pair[1]}" + (f" {quant}" if quant else "") if pair else str(sc.get("prompt") or "")
    thr = _thresholds(r)
    metrics = _d(r.get("metrics"))
    return GateView(anchor=_anchor("g", str(index), gid), gate_id=gid, outcome=outcome_of(r), format=fmt,
                    quant=quant, title=title, reason=str(r.get("reason") or ""), output=str(r.get("output") or ""),
                    thresholds=thr, measures=measures_of(tensor, output, thr), tensor=tensor, output_check=output,
                    raw_metrics={k: v for k, v in metrics.items() if v is not None},
                    duration_ms=metrics.get("duration_ms"))


def _is_not_executed(r: dict[str, Any]) -> bool:
    return _d(r.get("metadata")).get("not_executed") == "true"


def _environment(records: list[dict[str, Any]], summary: EvidenceSummary) -> tuple[tuple[str, str], ...]:
    env: list[tuple[str, str]] = []
    first = records[0] if records else {}
    md = _d(first.get("metadata"))
    host = _d(first.get("host"))
    if md.get("playbook_name"):
        env.append(("playbook", f"{md.get('playbook_name')} {md.get('playbook_version', '')} ({md.get('playbook', '')})"))
    shas = sorted({str(_d(r.get("metadata")).get("playbook_sha256")) for r in records} - {"None"})
    if shas:
        env.append(("playbook sha256", ", ".join(shas)))
    if md.get("converter"):
        env.append(("converter", str(md["converter"])))
    env.append(("evidence", f"{summary.producer} · {len(records)} records"))
    if host:
        env.append(("producer", str(host.get("apr_version", "unknown"))))
        env.append(("host", " · ".join(f"{k} {host[k]}" for k in ("hostname", "os", "cpu", "gpu") if host.get(k))))
    try:
        versions = json.loads(md.get("environment") or "{}")
    except (TypeError, ValueError, RecursionError):
        versions = {}
    if isinstance(versions, dict) and versions:
        env.append(("software", " · ".join(f"{k} {v}" for k, v in versions.items())))
    stamps = sorted(str(r.get("timestamp")) for r in records if r.get("timestamp"))
    if stamps:
        env.append(("recorded", stamps[0] if stamps[0] == stamps[-1] else f"{stamps[0]} … {stamps[-1]}"))
    return tuple(env)


# The matrix shows at most this many format rows and quantization columns (the page stays linear in
# the records); the rest are folded into one "other" row/column whose cells hold all their gates.
MAX_ROWS, MAX_COLUMNS = 12, 24


def bounded_matrix(fmts: list[str], quants: list[str], cells: dict[tuple[str, str], list[GateView]]
                   ) -> tuple[list[str], list[str], dict[tuple[str, str], list[GateView]]]:
    """``fmts`` × ``quants`` cut to ``MAX_ROWS`` × ``MAX_COLUMNS``, the rest folded into "other (N)"."""
    if len(fmts) <= MAX_ROWS and len(quants) <= MAX_COLUMNS:
        return fmts, quants, cells
    keep_f = fmts if len(fmts) <= MAX_ROWS else fmts[:MAX_ROWS - 1] + [f"other formats ({len(fmts) - MAX_ROWS + 1})"]
    keep_q = quants if len(quants) <= MAX_COLUMNS else \
        quants[:MAX_COLUMNS - 1] + [f"other ({len(quants) - MAX_COLUMNS + 1})"]
    row = {f: f if f in keep_f else keep_f[-1] for f in fmts}
    col = {q: q if q in keep_q else keep_q[-1] for q in quants}
    out: dict[tuple[str, str], list[GateView]] = {}
    for (f, q), gates in cells.items():
        out.setdefault((row[f], col[q]), []).extend(gates)
    return keep_f, keep_q, out


def build_run_view(records: list[dict[str, Any]], source: str = "", notes: tuple[str, ...] = (),
                   links: tuple[tuple[str, str], ...] = (), seconds: float | None = None,
                   title: str | None = None) -> RunView:
    """Arrange evidence records for the run report.

    Args:
        records: the records, in run order (``aprqa.playbook.load_evidence`` or ``RunResult.records``).
        source: where they came from (shown in the header).
        notes: planning notes of the run (``RunResult.notes``).
        links: (label, relative path) of files written beside the report.
        seconds: wall time of the run, when known.
        title: the page title (default: the playbook or model name).
    Example:
        >>> v = build_run_view([{"gate_id": "F-CONV-S-G", "outcome": "Corroborated", "reason": "ok",
        ...                      "scenario": {"format": "gguf", "model": {"variant": "q8_0"}}}])
        >>> v.cells[("gguf", "q8_0")].status
        'pass'
    """
    records = [sane_record(r) for r in records]
    summary = summarize(records, source)
    views = [gate_view(r, i) for i, r in enumerate(records)]
    cells: dict[tuple[str, str], list[GateView]] = {}
    integrity, structure, other, not_exec = [], [], [], []
    quants: list[str] = []
    for r, g in zip(records, views):
        if conversion_pair(g.gate_id) or kind_of(g.gate_id) is GateKind.GOLDEN:
            q = g.quant or AS_STORED
            cells.setdefault((g.format, q), []).append(g)
            if q not in quants:
                quants.append(q)
        elif _is_not_executed(r):
            not_exec.append(g)
        elif series_of(g.gate_id) is Series.INTEGRITY:
            integrity.append(g)
        elif series_of(g.gate_id) is Series.CONVERSION:
            structure.append(g)
        else:
            other.append(g)
    seen = {q: i for i, q in enumerate(quants)}
    quants.sort(key=lambda q: (q in ("keep", AS_STORED), QUANT_ORDER.index(q) if q in QUANT_ORDER else 99, seen[q]))
    fmts = sorted({f for f, _q in cells}, key=lambda f: (FORMAT_ORDER.index(f) if f in FORMAT_ORDER else 9, f))
    fmts, quants, cells = bounded_matrix(fmts, quants, cells)
    cell_objs = {k: Cell(k[0], k[1], tuple(v)) for k, v in cells.items()}
    points = []
    for c in cell_objs.values():
        if c.quant in ("keep", AS_STORED) or not c.bits_per_weight:
            continue
        points.append(TradePoint(c.format, c.quant, float(c.bits_per_weight), c.kl_mean, c.worst_rel_l2,
                                 c.status == "fail"))
    first_model = _d(_d(records[0].get("scenario")).get("model")) if records else {}
    model = summary.model or str(first_model.get("name") or "")
    md0 = _d(records[0].get("metadata")) if records else {}
    return RunView(
        title=title or f"{md0.get('playbook_name') or model or 'evidence'}", source=source,
        producer=summary.producer, model=model, records=len(records), passed=summary.passed,
        outcomes=summary.outcomes, failures=tuple(g for g in views if g.status == "fail"),
        formats=tuple(fmts), quants=tuple(quants), cells=cell_objs,
        points=tuple(sorted(points, key=lambda p: (p.format, p.bits_per_weight))),
        integrity=tuple(integrity), structure=tuple(structure), other=tuple(other),
        not_executed=tuple(not_exec), environment=_environment(records, summary), summary=summary,
        notes=tuple(notes), links=tuple(links), seconds=seconds,
        cell_of={g.anchor: c.anchor for c in cell_objs.values() for g in c.gates},
        cause_of={gid: c.cause for c in reversed(summary.causes) for gid in c.gates},
        provenance=of_records(records, model))

