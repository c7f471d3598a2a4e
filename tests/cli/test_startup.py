"""Start-up stays light: ``import aprqa`` and the inspect/compare paths load neither the forward
pass (numba) nor torch/transformers; the public functions still resolve on first use."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("numba", "torch", "transformers", "aprqa.forward", "llama_cpp", "gguf")  # gguf-py: writers only


def _loaded(code: str) -> dict[str, bool]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY + ('numpy',)!r}}}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_import_aprqa_loads_only_the_package():
    loaded = _loaded("import aprqa")
    assert not any(loaded.values()), loaded  # not even numpy: `aprqa --version` needs none of it


@pytest.mark.parametrize("code", [
    "import aprqa.compare",
    "from aprqa import open_model, compare, diff_stats",
    "from aprqa.cli import build_parser; from aprqa.formats import open_model; from aprqa.inspect import describe",
    "from aprqa.report.compare_console import render_compare; from aprqa.report.console import render_inspect",
])
def test_inspect_and_compare_paths_skip_the_forward_pass(code):
    loaded = _loaded(code)
    loaded.pop("numpy")  # needed by the readers and compare, not the point here
    assert not any(loaded.values()), loaded


def test_submodule_import_keeps_the_function_names():
    code = ("import aprqa.compare, aprqa.convert, aprqa.forward, aprqa\n"
            "assert callable(aprqa.compare) and callable(aprqa.convert) and callable(aprqa.forward)\n"
            "from aprqa.compare import Report, compare\n"
            "assert aprqa.compare is compare\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
