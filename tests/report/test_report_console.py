import io

from rich.console import Console

from aprqa.report.console import human_bytes, progress_bar


def test_progress_bar_draws_bytes_and_name_on_a_terminal():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, color_system=None)
    with progress_bar(console, enabled=True) as progress:
        assert progress is not None
        progress(3_000_000, 6_000_000, "model.layers.0.mlp.up_proj.weight")
        progress(6_000_000, 6_000_000, "model.norm.weight")
    out = buf.getvalue()
    assert "tensors" in out and "MB" in out and "model.norm.weight" in out


def test_progress_bar_disabled_yields_none():
    with progress_bar(Console(file=io.StringIO()), enabled=False) as progress:
        assert progress is None


def test_human_bytes():
    assert human_bytes(999) == "999 B" and human_bytes(1_500_000) == "1.5 MB" and human_bytes(2.1e9) == "2.1 GB"
