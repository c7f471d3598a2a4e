"""The zoo certification table: model × format × quantization with pass / fail / skipped counts, the mean KL
and bits per weight of each target, and per model its verdict, first failure and a link to its run report.

Built from evidence records (``Record``) only (``zoo_rows``); rendered as Markdown, HTML and CSV, plus the rows
as JSON. A row's quantization is the record's target (``metadata.quant``); gates about the whole
model (G0, idempotency, structure, Skipped runtime checks) have none: "—" on the pages ("whole model"),
empty in the CSV and null in the JSON.
Status: FAIL when any gate failed (Falsified, Timeout, Crashed), PASS when at least one passed and
none failed, SKIPPED when every gate was Skipped.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote
from typing import Any, Iterable, Sequence

from ...fsio import write_text_atomic
from ...records import Outcome, Record
from ..page import esc, md_cell, page, status_html, table
from ..provenance import Input, Provenance
from ..run.view import gate_view

NO_QUANT = "—"
FORMAT_ORDER = {"safetensors": 0, "apr": 1, "gguf": 2}


@dataclass(frozen=True)
class ZooRow:
    model: str
    format: str
    quant: str
    passed: int
    failed: int
    skipped: int
    kl_mean: float | None = None            # the output check's mean KL (the first gate stating one)
    bits_per_weight: float | None = None    # of the converted file

    @property
    def status(self) -> str:
        if self.failed:
            return "FAIL"
        return "PASS" if self.passed else "SKIPPED"

    def to_dict(self) -> dict[str, Any]:
        d = {**asdict(self), "status": self.status}
        if self.quant == NO_QUANT:
            d["quant"] = None  # a whole-model row: no target type
        return d


def zoo_rows(models: Iterable[tuple[str, Sequence[Record]]]) -> list[ZooRow]:
    """One row per (model, format, quantization) present in each model's records, in model order."""
    out: list[ZooRow] = []
    for name, records in models:
        counts: dict[tuple[str, str], list[int]] = {}
        numbers: dict[tuple[str, str], dict[str, float]] = {}
        for r in records:
            # a failed model task's record names a format only because apr-qa's record needs one
            fmt = NO_QUANT if r.metadata.get("scenario_format", "").startswith("none") else r.scenario.format
            q = r.metadata.get("quant") or r.scenario.model.variant or NO_QUANT
            c = counts.setdefault((fmt, q), [0, 0, 0])
            c[{Outcome.CORROBORATED: 0, Outcome.SKIPPED: 2}.get(r.outcome, 1)] += 1
            g = gate_view(r.to_json(), 0)
            seen = numbers.setdefault((fmt, q), {})
            for key, value in (("kl", _d(_d(g.output_check).get("metrics")).get("kl_mean")),
                               ("bpw", _d(g.tensor).get("bits_per_weight"))):
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in seen:
                    seen[key] = float(value)
        for (fmt, q), (p, f, s) in sorted(counts.items(), key=lambda kv: (FORMAT_ORDER.get(kv[0][0], 9),
                                                                          kv[0][1] == NO_QUANT, kv[0][1])):
            n = numbers.get((fmt, q), {})
            out.append(ZooRow(name, fmt, q, p, f, s, n.get("kl"), n.get("bpw")))
    return out


def _totals(rows: Sequence[ZooRow], models: Sequence[str]) -> list[tuple[str, int, int, int, str]]:
    out = []
    for m in models:
        rs = [r for r in rows if r.model == m]
        p, f, s = (sum(getattr(r, k) for r in rs) for k in ("passed", "failed", "skipped"))
        out.append((m, p, f, s, "FAIL" if f else ("PASS" if p else "SKIPPED")))
    return out


def _d(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _num(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}g}"


@dataclass(frozen=True)
class ModelLine:
    """One model of the zoo: its verdict, why (its first failure), and its run report (relative link)."""

    name: str
    passed: bool
    reason: str
    report: str | None

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"


def model_lines(models: Iterable[tuple[str, Sequence[Record], str | None]], output: Path) -> list[ModelLine]:
    """(name, records, task error) of each model -> its line; the link only where its report exists."""
    out = []
    for name, records, error in models:
        bad = next((r for r in records if r.outcome not in (Outcome.CORROBORATED, Outcome.SKIPPED)), None)
        passed = error is None and bad is None and any(r.outcome is Outcome.CORROBORATED for r in records)
        reason = error or (f"{bad.gate_id} {bad.outcome.value}: {bad.reason.strip().splitlines()[0] if bad.reason.strip() else ''}"
                           if bad is not None else "every executed gate Corroborated")
        report = output / name / "report.html"
        out.append(ModelLine(name, passed, reason[:300], f"{quote(name)}/report.html" if report.exists() else None))
    return out


def render_markdown(rows: Sequence[ZooRow], models: Sequence[str], lines_: Sequence[ModelLine] = (),
                    provenance: Provenance | None = None) -> str:
    ok = bool(rows) and all(m.passed for m in lines_) if lines_ else all(st != "FAIL" for *_x, st in _totals(rows, models))
    lines = [f"# Zoo certification: {'PASS' if ok else 'FAIL'}", ""]
    if provenance is not None:
        lines += [*provenance.markdown(), ""]
    why = {m.name: m for m in lines_}
    lines += ["| model | verdict | gates passed | failed | skipped | why |", "|---|---|--:|--:|--:|---|"]
    for m, p, f, s, st in _totals(rows, models):
        line = why.get(m)
        name = f"[{md_cell(m)}](<{line.report}>)" if line is not None and line.report else md_cell(m)
        lines.append(f"| {name} | {line.verdict if line else st} | {p} | {f} | {s} | "
                     f"{md_cell(line.reason) if line else ''} |")
    lines += ["", "| model | format | quant | passed | failed | skipped | status | mean KL | bits/weight |",
              "|---|---|---|--:|--:|--:|---|--:|--:|"]
    lines += [f"| {md_cell(r.model)} | {md_cell(r.format)} | {md_cell(r.quant)} | {r.passed} | {r.failed} | "
              f"{r.skipped} | {r.status} | {_num(r.kl_mean)} | {_num(r.bits_per_weight)} |" for r in rows]
    return "\n".join(lines) + "\n"


def render_csv(rows: Sequence[ZooRow]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["model", "format", "quant", "passed", "failed", "skipped", "status", "kl_mean", "bits_per_weight"])
    for r in rows:
        w.writerow([r.model, r.format, "" if r.quant == NO_QUANT else r.quant, r.passed, r.failed, r.skipped,
                    r.status, "" if r.kl_mean is None else repr(r.kl_mean),
                    "" if r.bits_per_weight is None else repr(r.bits_per_weight)])
    return buf.getvalue()


def render_html(rows: Sequence[ZooRow], models: Sequence[str], lines_: Sequence[ModelLine] = (),
                provenance: Provenance | None = None) -> str:
    """The certification page: a verdict banner, who made it, one row per model (linked to its run report,
    with why it failed), then one row per target with its mean KL and bits per weight."""
    totals = _totals(rows, models)
    ok = all(m.passed for m in lines_) if lines_ else bool(totals) and all(st != "FAIL" for *_x, st in totals)
    why = {m.name: m for m in lines_}
    model_rows = []
    for m, p, f, s, st in totals:
        line = why.get(m)
        verdict = line.verdict if line else st
        name = f'<a href="{esc(line.report)}">{esc(m)}</a>' if line is not None and line.report else esc(m)
        model_rows.append((name, status_html("pass" if verdict == "PASS" else "fail" if verdict == "FAIL" else "skip",
                                             verdict), str(p), str(f), str(s), esc(line.reason) if line else ""))
    target_rows = ((esc(r.model), esc(r.format), esc(r.quant), str(r.passed), str(r.failed), str(r.skipped),
                    status_html({"PASS": "pass", "FAIL": "fail"}.get(r.status, "skip"), r.status),
                    esc(_num(r.kl_mean)), esc(_num(r.bits_per_weight))) for r in rows)
    body = [f"<h1>aprqa zoo certification: {len(totals)} models</h1>",
            f'<div class="banner {"pass" if ok else "fail"}"><span class="verdict">{"✓ PASS" if ok else "✗ FAIL"}'
            f"</span>{sum(1 for m in lines_ if m.passed) if lines_ else ''}"
            f"{' of ' + str(len(lines_)) + ' models pass' if lines_ else ''}</div>",
            provenance.html() if provenance is not None else "",
            "<h2>Models</h2>", table(("model", "verdict", "passed", "failed", "skipped", "why"), model_rows,
                                     num_cols=(2, 3, 4)),
            "<h2>Targets: format × quantization</h2>",
            table(("model", "format", "quant", "passed", "failed", "skipped", "status", "mean KL", "bits/weight"),
                  target_rows, num_cols=(3, 4, 5, 7, 8)),
            '<p class="small muted">quant "—": gates about the whole model (integrity, idempotency, structure). '
            "Mean KL: the output check of the first gate stating one; bits/weight: of the converted file.</p>"]
    return page(f"aprqa zoo: {'PASS' if ok else 'FAIL'}", "\n".join(b for b in body if b))


def write_zoo_summary(output: Path, rows: Sequence[ZooRow], models: Sequence[str],
                      details: Sequence[tuple[str, Sequence[Record], str | None]] = ()) -> dict[str, Path]:
    """``zoo-summary.md``, ``.html``, ``.csv`` and ``.json`` in ``output`` (each written atomically).

    ``details``: (name, records, task error) per model, for the verdicts, reasons, links and provenance."""
    output.mkdir(parents=True, exist_ok=True)
    files = {"markdown": output / "zoo-summary.md", "html": output / "zoo-summary.html",
             "csv": output / "zoo-summary.csv", "json": output / "zoo-summary.json"}
    lines_ = model_lines(details, output)
    prov = Provenance(tuple(Input(f"model {name}", _model_name(records),
                                  str(records[0].metadata.get("model_sha256") or "not recorded") if records else
                                  "no record") for name, records, _e in details))
    write_text_atomic(files["markdown"], render_markdown(rows, models, lines_, prov))
    write_text_atomic(files["html"], render_html(rows, models, lines_, prov))
    write_text_atomic(files["csv"], render_csv(rows))
    doc = {"provenance": prov.to_dict(),
           "models": [{"name": m.name, "verdict": m.verdict, "reason": m.reason, "report": m.report} for m in lines_],
           "rows": [r.to_dict() for r in rows]}
    write_text_atomic(files["json"], json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return files


def _model_name(records: Sequence[Record]) -> str:
    if not records:
        return "—"
    m = records[0].scenario.model
    return f"{m.org}/{m.name}" if m.org else m.name
