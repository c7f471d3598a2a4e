"""``aprqa report EVIDENCE`` in the terminal: an ``EvidenceSummary`` (evidence.py) as a header line, the
table of gate families, failures by cause, notes on apr-qa's F-CONV gates and what was not executed."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ...records import FAILING, TABLE_COLUMNS
from ...textsafe import markup_safe as escape  # file-derived text: no markup, no terminal control
from .evidence import EvidenceSummary

_COLS = tuple(o.value for o in TABLE_COLUMNS)


def render_console(s: EvidenceSummary, console: Console) -> None:
    verdict = "[green]no failures[/]" if s.passed else f"[red]{s.failed} failing[/]"
    console.print(f"[bold]{escape(s.path)}[/] · {escape(s.producer)} evidence · {escape(s.model)} · {s.records} "
                  "records · " + " · ".join(f"{v} {escape(k)}" for k, v in s.outcomes.items()) + f" · {verdict}")
    t = Table(title="gate families", show_lines=False)
    t.add_column("family")
    for c in _COLS:
        t.add_column(c, justify="right")
    for fam, c in s.families.items():
        bad = sum(c.get(o, 0) for o in FAILING)
        t.add_row(f"[red]{escape(fam)}[/]" if bad else escape(fam), *(str(c.get(o, 0) or "") for o in _COLS))
    console.print(t)
    if s.causes:
        console.print("[bold]failures by cause[/]")
        for c in s.causes:
            console.print(f"  [red]{len(c.gates)}×[/] {escape(c.cause)}")
            console.print(f"     gates: {escape(', '.join(c.gates))}")
            console.print(f"     e.g. {escape(c.example[:200])}")
    if s.notes:
        console.print("[bold]what apr-qa's F-CONV gates measured[/]")
        for n in s.notes:
            console.print(f"  {escape(n.gate_id)} ({escape(n.outcome)}): {escape(n.note)}")
    if s.not_executed:
        console.print(f"[bold]not executed by aprqa[/] ({len(s.not_executed)} Skipped records): "
                      + escape(", ".join(g for g, _ in s.not_executed)))
