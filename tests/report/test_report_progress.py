"""The one progress display (report/progress.py): what each kind of row shows, that it never wraps at
80 columns, and that it draws nothing when disabled."""

from __future__ import annotations

import io
import time

from rich.console import Console

from aprqa.report.progress import Progress, wanted


def _terminal(width: int = 80) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, width=width, color_system=None), buf


def _frames(buf: io.StringIO) -> list[str]:
    """Every drawn line (rich redraws with cursor moves; split on them)."""
    text = buf.getvalue().replace("\r", "\n")
    for code in ("\x1b[2K", "\x1b[1A", "\x1b[?25l", "\x1b[?25h"):
        text = text.replace(code, "\n")
    return [line for line in text.split("\n") if line.strip()]


def test_byte_bar_shows_total_and_eta_and_fits_80_columns():
    console, buf = _terminal(80)
    with Progress(console, True) as p:
        bar = p.bytes_bar("convert", 490_200_000)
        bar(10_000_000, None, "model.layers.23.self_attn.q_proj.weight")
        time.sleep(0.15)
        bar(167_800_000, None, "model.layers.23.mlp.down_proj.weight")
        p._bar.refresh()
    lines = _frames(buf)
    assert any("167.8 MB/490.2 MB" in line and "eta" in line for line in lines), lines
    assert any("down_proj.weight" in line for line in lines), lines
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]


def test_phase_replaces_the_finished_byte_bar_with_its_own_clock():
    console, buf = _terminal(100)
    with Progress(console, True) as p:
        bar = p.bytes_bar("tensors", 100)
        bar(100, 100, "lm_head.weight")
        bar.phase("outputs: prompt", 1, 1, "reference and candidate forward passes")
        p._bar.refresh()
        shown = [t.description for t in p._bar.tasks]
    assert shown == ["outputs"]
    last = _frames(buf)[-1]
    assert "outputs" in last and "prompt 1/1" in last and "…" in last and "eta" not in last, last


def test_step_bar_counts_gates_and_names_the_running_one():
    console, buf = _terminal(120)
    with Progress(console, True) as p:
        steps = p.steps("gates", 4)
        steps.start("F-CONV-S-G q8_0")
        steps.done("F-CONV-S-G q8_0")
        steps.start("F-CONV-S-A q4_k")
        p._bar.refresh()
    last = _frames(buf)[-1]
    assert "1/4 gates" in last and "F-CONV-S-A q4_k" in last, last


def test_rows_update_in_place_and_disappear_when_finished():
    console, _buf = _terminal(100)
    with Progress(console, True) as p:
        a, b = p.row("qwen2"), p.row("llama")
        a.set("3/10 gates")
        b.finish()
        assert [(t.description, t.fields["name"]) for t in p._bar.tasks] == [("qwen2", "3/10 gates")]


def test_disabled_draws_nothing_and_every_call_is_harmless():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=80)
    with Progress(console, False) as p:
        bar = p.bytes_bar("x", 10)
        bar(5, 10, "a")
        bar.phase("outputs: prompt", 1, 1)
        s = p.steps("gates", 2)
        s.start("g")
        s.done("g")
        p.row("m").set("t")
    assert buf.getvalue() == ""


def test_wanted_only_on_a_terminal_without_quiet_or_json():
    term, _ = _terminal()
    assert wanted(term) and not wanted(term, quiet=True) and not wanted(term, json=True)
    assert not wanted(Console(file=io.StringIO()))
