"""The embedded demo: a deterministic tiny model, converted and checked, no network."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from .formats import open_model
from .inspect import describe
from .report.console import render_inspect
from .synthetic import make_hf_model


def run_demo(output: Path, console: Console) -> int:
    """Generate the qwen2-tiny demo model under ``output`` and inspect it. Returns an exit code."""
    src = make_hf_model(output / "qwen2-tiny", "qwen2-tiny", seed=0)
    with open_model(src) as model:
        render_inspect(describe(model), console)
    console.print(f"demo model → {src}")
    return 0
