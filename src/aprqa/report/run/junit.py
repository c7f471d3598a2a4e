"""junit.xml and summary.md of a playbook run (both written atomically), from its ``RunResult`` alone.

JUnit: one ``testsuite`` per gate family, one ``testcase`` per record; Falsified is a
``failure``, Crashed/Timeout an ``error``, Skipped ``skipped``. The reason is the message.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from ...fsio import write_text_atomic
from ...records import ERRORED, TABLE_COLUMNS, Outcome, Record, RunResult
from ..page import md_cell, md_code


def _case_name(r: Record) -> str:
    variant = r.scenario.model.variant
    return f"{r.gate_id} {r.scenario.format}" + (f" {variant}" if variant else "")


def junit_xml(res: RunResult) -> str:
    """One ``testsuite`` per gate family, one ``testcase`` per record (reason as the message)."""
    suites = ET.Element("testsuites", name=f"aprqa {res.name}", tests=str(len(res.gate_records)),
                        time=f"{res.seconds:.3f}")
    fams: dict[str, list[Record]] = {}
    for r in res.gate_records:
        fams.setdefault(r.family, []).append(r)
    for fam, recs in fams.items():
        n = {o: sum(1 for r in recs if r.outcome is o) for o in Outcome}
        suite = ET.SubElement(suites, "testsuite", name=fam, tests=str(len(recs)),
                              failures=str(n[Outcome.FALSIFIED]), errors=str(sum(n[o] for o in ERRORED)),
                              skipped=str(n[Outcome.SKIPPED]),
                              time=f"{sum(r.metrics.duration_ms for r in recs) / 1000:.3f}")
        for r in recs:
            case = ET.SubElement(suite, "testcase", classname=f"aprqa.{fam}", name=_case_name(r),
                                 time=f"{r.metrics.duration_ms / 1000:.3f}")
            o = r.outcome
            if o is Outcome.FALSIFIED:
                el = ET.SubElement(case, "failure", message=r.reason[:500], type=Outcome.FALSIFIED.value)
                el.text = r.reason
            elif o in ERRORED:
                el = ET.SubElement(case, "error", message=r.reason[:500], type=o.value)
                el.text = r.reason + (f"\n--- stderr ---\n{r.stderr}" if r.stderr else "")
            elif o is Outcome.SKIPPED:
                ET.SubElement(case, "skipped", message=r.reason[:500])
            props = ET.SubElement(case, "properties")
            ET.SubElement(props, "property", name="thresholds", value=r.metadata.get("thresholds", ""))
            ET.SubElement(props, "property", name="playbook_sha256", value=r.metadata.get("playbook_sha256", ""))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def write_junit(res: RunResult) -> None:
    write_text_atomic(res.junit, junit_xml(res))




def summary_md(res: RunResult) -> str:
    oc = res.outcome_counts()
    lines = [f"# aprqa playbook run: {md_cell(res.name)}", "",
             f"**{'PASS' if res.passed else 'FAIL'}** · {len(res.gate_records)} gates"
             + (f" of {res.planned} planned" if res.planned is not None else "") + " · "
             + " · ".join(f"{v} {k}" for k, v in oc.items()) + f" · {res.seconds:.1f} s", "",
             *([f"**{md_cell(res.cannot_pass)}**", ""] if res.cannot_pass else []),
             f"- playbook: {md_code(res.playbook)} (sha256 `{res.playbook_sha256}`)",
             f"- evidence: `{res.evidence.name}` (+ `{res.evidence_jsonl.name}`, `{res.junit.name}`)"]
    if res.missing:
        lines.insert(3, f"**{res.missing} planned gate(s) left no record: the run fails.**")
        lines.insert(4, "")
    if res.report:
        lines.append(f"- run report: `{res.report.name}` (+ `report.md`)")
    if res.compare_report:
        lines.append(f"- compare report of the worst conversion: `{res.compare_report.name}`")
    cols = tuple(o.value for o in TABLE_COLUMNS)
    lines += ["", "## Gate families", "", "| family | gates | " + " | ".join(cols) + " |",
              "|---|---:|" + "---:|" * len(cols)]
    for fam, c in res.counts.items():
        lines.append(f"| {md_cell(fam)} | {sum(c.values())} | " + " | ".join(str(c.get(o, 0)) for o in cols) + " |")
    lines += ["", "## Gates", "", "| gate | format | quant | outcome | reason |", "|---|---|---|---|---|"]
    for r in res.gate_records:
        lines.append(f"| {md_cell(r.gate_id)} | {md_cell(r.scenario.format)} | {md_cell(r.scenario.model.variant or '')} | "
                     f"{r.outcome} | {md_cell(r.reason[:400])} |")
    skipped = [r for r in res.gate_records if r.not_executed]
    if skipped:
        lines += ["", "## Not executed by aprqa", "", "Recorded as Skipped evidence records — neither passed nor "
                  "failed ([apr-qa-gates.md](../docs/apr-qa-gates.md) maps each id):", ""]
        lines += [f"- {md_cell(r.gate_id)} ({md_code(r.metadata.get('section', ''))}): {md_cell(r.reason[:300])}"
                  for r in skipped]
    if res.notes:
        lines += ["", "## Planning notes", ""] + [f"- {md_cell(n)}" for n in res.notes]
    thr = sorted({(r.gate_id, r.metadata["thresholds_key"], r.metadata["thresholds"]) for r in res.gate_records})
    lines += ["", "## Thresholds used", ""]
    for gid, key, t in thr[:60]:
        lines.append(f"- {md_cell(gid)} {md_code(key)}: {md_code(json.dumps(json.loads(t), sort_keys=True)[:600])}")
    return "\n".join(lines) + "\n"


def write_summary(res: RunResult) -> None:
    write_text_atomic(res.summary, summary_md(res))
