"""The embedded demo: a deterministic tiny model, converted and checked, no network."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from ..comparison import compare
from ..conversion import convert
from .models import make_hf_model

# (output file, quant) pairs the demo converts the reference into.
DEMO_TARGETS = (
    ("qwen2-tiny.f16.gguf", "f16"),
    ("qwen2-tiny.q8_0.gguf", "q8_0"),
    ("qwen2-tiny.q4_k.gguf", "q4_k"),
    ("qwen2-tiny.apr", None),
    ("qwen2-tiny.apr-q8.apr", "apr-q8"),
)


def run_demo(output: Path, console: Console) -> int:
    """Generate the qwen2-tiny model, convert it to GGUF/APR and compare each. Returns an exit code."""
    output.mkdir(parents=True, exist_ok=True)
    src = make_hf_model(output / "qwen2-tiny", "qwen2-tiny", seed=0)
    console.print(f"reference  {src}  (synthetic qwen2-tiny, seed 0, f32)")
    failed = 0
    for name, quant in DEMO_TARGETS:
        dst = output / name
        convert(src, dst, quant=quant)
        report = compare(src, dst, fast=False)
        counts = " · ".join(f"{k} {v}" for k, v in report.verdict_counts().items())
        status = "[green]PASS[/]" if report.passed else "[red]FAIL[/]"
        console.print(f"{status}  {name:<24} {quant or 'keep':<7} {counts}")
        failed += not report.passed
    console.print(f"{len(DEMO_TARGETS) - failed}/{len(DEMO_TARGETS)} conversions faithful · models in {output}")
    return 1 if failed else 0
