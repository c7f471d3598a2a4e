from rich.console import Console

from aprqa.synth.demo import DEMO_TARGETS, run_demo


def test_demo_runs_and_every_conversion_is_faithful(tmp_path):
    console = Console(record=True, width=160, color_system=None)
    assert run_demo(tmp_path, console) == 0
    text = console.export_text()
    assert f"{len(DEMO_TARGETS)}/{len(DEMO_TARGETS)} conversions faithful" in text
    assert "FAIL" not in text
    assert "EXACT-CAST 16" in text and "QUANT-FAITHFUL 16" in text
