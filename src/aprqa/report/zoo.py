"""The zoo certification table: model × format × quantization with pass / fail / skipped counts.

Built from evidence records (``Record``) only (``zoo_rows``); rendered as Markdown, HTML and CSV, plus the rows
as JSON. A row's quantization is the record's target (``metadata.quant``); gates about the whole
model (G0, idempotency, structure, Skipped runtime checks) have none and are counted under "—".
Status: FAIL when any gate failed (Falsified, Timeout, Crashed), PASS when at least one passed and
none failed, SKIPPED when every gate was Skipped.
"""

from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..fsio import write_text_atomic
from ..records import Outcome, Record
from .page import esc, md_cell

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

    @property
    def status(self) -> str:
        if self.failed:
            return "FAIL"
        return "PASS" if self.passed else "SKIPPED"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


def zoo_rows(models: Iterable[tuple[str, Sequence[Record]]]) -> list[ZooRow]:
    """One row per (model, format, quantization) present in each model's records, in model order."""
    out: list[ZooRow] = []
    for name, records in models:
        counts: dict[tuple[str, str], list[int]] = {}
        for r in records:
            # a failed model task's record names a format only because apr-qa's record needs one
            fmt = NO_QUANT if r.metadata.get("scenario_format", "").startswith("none") else r.scenario.format
            q = r.metadata.get("quant") or r.scenario.model.variant or NO_QUANT
            c = counts.setdefault((fmt, q), [0, 0, 0])
            c[{Outcome.CORROBORATED: 0, Outcome.SKIPPED: 2}.get(r.outcome, 1)] += 1
        for (fmt, q), (p, f, s) in sorted(counts.items(), key=lambda kv: (FORMAT_ORDER.get(kv[0][0], 9),
                                                                          kv[0][1] == NO_QUANT, kv[0][1])):
            out.append(ZooRow(name, fmt, q, p, f, s))
    return out


def _totals(rows: Sequence[ZooRow], models: Sequence[str]) -> list[tuple[str, int, int, int, str]]:
    out = []
    for m in models:
        rs = [r for r in rows if r.model == m]
        p, f, s = (sum(getattr(r, k) for r in rs) for k in ("passed", "failed", "skipped"))
        out.append((m, p, f, s, "FAIL" if f else ("PASS" if p else "SKIPPED")))
    return out


def render_markdown(rows: Sequence[ZooRow], models: Sequence[str]) -> str:
    lines = ["# Zoo certification", "", "| model | gates passed | failed | skipped | status |", "|---|--:|--:|--:|---|"]
    lines += [f"| {md_cell(m)} | {p} | {f} | {s} | {st} |" for m, p, f, s, st in _totals(rows, models)]
    lines += ["", "| model | format | quant | passed | failed | skipped | status |", "|---|---|---|--:|--:|--:|---|"]
    lines += [f"| {md_cell(r.model)} | {md_cell(r.format)} | {md_cell(r.quant)} | {r.passed} | {r.failed} | "
              f"{r.skipped} | {r.status} |" for r in rows]
    return "\n".join(lines) + "\n"


def render_csv(rows: Sequence[ZooRow]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["model", "format", "quant", "passed", "failed", "skipped", "status"])
    for r in rows:
        w.writerow([r.model, r.format, r.quant, r.passed, r.failed, r.skipped, r.status])
    return buf.getvalue()


_CSS = ("body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
        "td,th{border:1px solid #ccc;padding:4px 10px}td.n{text-align:right}.PASS{background:#dfd}"
        ".FAIL{background:#fdd}.SKIPPED{background:#eee}")


def render_html(rows: Sequence[ZooRow], models: Sequence[str]) -> str:
    e = esc
    head = "<tr>" + "".join(f"<th>{h}</th>" for h in ("model", "passed", "failed", "skipped", "status")) + "</tr>"
    tot = "".join(f"<tr><td>{e(m)}</td><td class=n>{p}</td><td class=n>{f}</td><td class=n>{s}</td>"
                  f"<td class={st}>{st}</td></tr>" for m, p, f, s, st in _totals(rows, models))
    head2 = "<tr>" + "".join(f"<th>{h}</th>" for h in ("model", "format", "quant", "passed", "failed", "skipped",
                                                       "status")) + "</tr>"
    body = "".join(f"<tr><td>{e(r.model)}</td><td>{e(r.format)}</td><td>{e(r.quant)}</td><td class=n>{r.passed}</td>"
                   f"<td class=n>{r.failed}</td><td class=n>{r.skipped}</td><td class={r.status}>{r.status}</td></tr>"
                   for r in rows)
    return (f"<!doctype html><html><head><meta charset=utf-8><title>Zoo certification</title><style>{_CSS}</style>"
            f"</head><body><h1>Zoo certification</h1><table>{head}{tot}</table><table>{head2}{body}</table>"
            "</body></html>\n")


def write_zoo_summary(output: Path, rows: Sequence[ZooRow], models: Sequence[str]) -> dict[str, Path]:
    """``zoo-summary.md``, ``.html``, ``.csv`` and ``.json`` in ``output`` (each written atomically)."""
    output.mkdir(parents=True, exist_ok=True)
    files = {"markdown": output / "zoo-summary.md", "html": output / "zoo-summary.html",
             "csv": output / "zoo-summary.csv", "json": output / "zoo-summary.json"}
    write_text_atomic(files["markdown"], render_markdown(rows, models))
    write_text_atomic(files["html"], render_html(rows, models))
    write_text_atomic(files["csv"], render_csv(rows))
    write_text_atomic(files["json"], json.dumps([r.to_dict() for r in rows], indent=2, ensure_ascii=False) + "\n")
    return files
