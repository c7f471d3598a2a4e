"""report/evidence_report.render_console, tested directly on apr-qa's own failing-run evidence."""

from __future__ import annotations

import io

from rich.console import Console

from _paths import APR_QA_FIXTURES
from aprqa.playbook.evidence import load_evidence
from aprqa.report.evidence_report import render_console, summarize

FAILING = APR_QA_FIXTURES / "evidence" / "qwen2.5-coder-0.5b-mvp.failing-run.evidence.json"
PASSING = APR_QA_FIXTURES / "evidence" / "qwen2.5-coder-0.5b.passing-run.evidence.json"


def _render(path) -> str:
    console = Console(file=io.StringIO(), record=True, width=200, color_system=None)
    render_console(summarize(load_evidence(path), str(path)), console)
    return console.export_text()


def _header(text: str) -> str:
    """The header paragraph with rich's line wrapping undone: it starts with the file's path, so where it wraps
    depends on where the checkout lives (CI's path is longer than a developer's)."""
    return " ".join(text.split("gate families")[0].split())


def test_failing_run_header_families_causes_and_notes():
    text = _render(FAILING)
    head = _header(text)
    assert "apr-qa evidence" in head and "45 records" in head and "31 Corroborated · 14 Falsified" in head
    assert "14 failing" in head
    assert "gate families" in text and "F-CONV-RT" in text and "G0-VALIDATE" in text
    # failures grouped by cause, largest group first, each with its gates and an example reason
    causes = text.split("failures by cause")[1]
    assert causes.index("5×") < causes.index("4×") < causes.index("3×")
    assert "gates: F-CONV-A-G, F-CONV-S-G, F-CONV-A-S, F-CONV-S-A" in causes
    # what the upstream F-CONV gates really measured (text positions, not tensors)
    assert "what apr-qa's F-CONV gates measured" in text and "not a tensor or logit difference" in text


def test_passing_run_says_no_failures():
    text = _render(PASSING)
    assert "no failures" in _header(text) and "failures by cause" not in text
