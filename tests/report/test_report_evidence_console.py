"""report/run/console.render_console, tested directly on evidence in apr-qa's schema: our own fixtures
(tests/fixtures/apr-qa-schema) and, where the upstream files are present (tests/_paths.py), apr-qa's own runs."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from _paths import APR_QA_FIXTURES, OWN_FAILING, OWN_PASSING, upstream
from aprqa.playbook.evidence import load_evidence
from aprqa.report.run.console import render_console
from aprqa.report.run.evidence import summarize

UP_FAILING = APR_QA_FIXTURES / "evidence" / "qwen2.5-coder-0.5b-mvp.failing-run.evidence.json"
UP_PASSING = APR_QA_FIXTURES / "evidence" / "qwen2.5-coder-0.5b.passing-run.evidence.json"
# file, header counts, failing count, cause group sizes largest first, the gates of the text-diff group
FAILING_RUNS = [
    pytest.param(OWN_FAILING, "12 records", "6 Corroborated · 6 Falsified", "6 failing", ("3×", "2×", "1×"),
                 "gates: F-CONV-S-G, F-CONV-S-A, F-CONV-A-S", id="own"),
    pytest.param(UP_FAILING, "45 records", "31 Corroborated · 14 Falsified", "14 failing", ("5×", "4×", "3×"),
                 "gates: F-CONV-A-G, F-CONV-S-G, F-CONV-A-S, F-CONV-S-A", marks=upstream, id="apr-qa"),
]


def _render(path) -> str:
    console = Console(file=io.StringIO(), record=True, width=200, color_system=None)
    render_console(summarize(load_evidence(path), str(path)), console)
    return console.export_text()


def _header(text: str) -> str:
    """The header paragraph with rich's line wrapping undone: it starts with the file's path, so where it wraps
    depends on where the checkout lives (CI's path is longer than a developer's)."""
    return " ".join(text.split("gate families")[0].split())


@pytest.mark.parametrize("path, n_records, counts, n_failing, sizes, text_diff_gates", FAILING_RUNS)
def test_failing_run_header_families_causes_and_notes(path, n_records, counts, n_failing, sizes, text_diff_gates):
    text = _render(path)
    head = _header(text)
    assert "apr-qa evidence" in head and n_records in head and counts in head
    assert n_failing in head
    assert "gate families" in text and "F-CONV-RT" in text and "G0-VALIDATE" in text
    # failures grouped by cause, largest group first, each with its gates and an example reason
    causes = text.split("failures by cause")[1]
    assert causes.index(sizes[0]) < causes.index(sizes[1]) < causes.index(sizes[2])
    assert text_diff_gates in causes
    # what the upstream F-CONV gates really measured (text positions, not tensors)
    assert "what apr-qa's F-CONV gates measured" in text and "not a tensor or logit difference" in text


@pytest.mark.parametrize("path", [pytest.param(OWN_PASSING, id="own"),
                                  pytest.param(UP_PASSING, marks=upstream, id="apr-qa")])
def test_passing_run_says_no_failures(path):
    text = _render(path)
    assert "no failures" in _header(text) and "failures by cause" not in text
