"""Start-up stays light: ``import aprqa`` and the inspect/compare paths load neither the forward
pass (numba) nor torch/transformers; the public functions still resolve on first use.
``aprqa inspect --json`` loads neither numpy nor rich, the console view no numpy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aprqa.conversion import convert

HEAVY = ("numba", "torch", "transformers", "aprqa.inference", "llama_cpp", "gguf")  # gguf-py: writers only


def _loaded(code: str) -> dict[str, bool]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY + ('numpy',)!r}}}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_import_aprqa_loads_only_the_package():
    loaded = _loaded("import aprqa")
    assert not any(loaded.values()), loaded  # not even numpy: `aprqa --version` needs none of it


@pytest.mark.parametrize("code", [
    "import aprqa.comparison",
    "from aprqa import open_model, compare, diff_stats",
    "from aprqa.cli import build_parser; from aprqa.formats import open_model; from aprqa.report.inspect_view import describe",
    "from aprqa.report.compare.console import render_compare; from aprqa.report.inspect_console import render_inspect",
])
def test_inspect_and_compare_paths_skip_the_forward_pass(code):
    loaded = _loaded(code)
    loaded.pop("numpy")  # needed by the readers and compare, not the point here
    assert not any(loaded.values()), loaded


def test_package_imports_keep_the_function_names():
    code = ("import aprqa.comparison, aprqa.conversion, aprqa.inference, aprqa\n"
            "assert callable(aprqa.compare) and callable(aprqa.convert) and callable(aprqa.forward)\n"
            "from aprqa.comparison import Report, compare\n"
            "assert aprqa.compare is compare\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


@pytest.fixture(scope="module")
def model_files(qwen2_dir, tmp_path_factory) -> dict[str, Path]:
    """qwen2-tiny as an HF directory, its bare .safetensors file, a GGUF and an APR file."""
    root = tmp_path_factory.mktemp("startup")
    return {"hf-dir": qwen2_dir, "safetensors": qwen2_dir / "model.safetensors",
            "gguf": convert(qwen2_dir, root / "m.q8_0.gguf", quant="q8_0").dst,
            "apr": convert(qwen2_dir, root / "m.apr").dst}


def _inspect_loads(path: Path, *flags: str) -> dict[str, bool]:
    """Which of numpy and rich an `aprqa inspect` run imports, in a fresh interpreter."""
    code = ("import io, json, sys\nfrom aprqa.cli import main\nout, sys.stdout = sys.stdout, io.StringIO()\n"
            f"rc = main(['inspect', {str(path)!r}, *{list(flags)!r}])\ntext, sys.stdout = sys.stdout.getvalue(), out\n"
            "assert rc == 0 and 'model.layers.1.mlp.down_proj.weight' in text, (rc, text[-2000:])\n"
            "print(json.dumps({m: m in sys.modules for m in ('numpy', 'rich', 'aprqa.formats.safetensors', "
            "'aprqa.formats.gguf', 'aprqa.formats.apr')}))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["hf-dir", "safetensors", "gguf", "apr"])
def test_inspect_json_imports_neither_numpy_nor_rich(model_files, kind):
    # headers are parsed from a memoryview, numbers with struct/array: numpy loads only when a
    # tensor's bytes are touched; rich only when a console prints; of the readers only the one
    # that opens the file (formats.magic sniffs without them) (issue 14: start-up)
    loaded = _inspect_loads(model_files[kind], "--json")
    reader = "safetensors" if kind == "hf-dir" else kind
    assert loaded == {"numpy": False, "rich": False, **{f"aprqa.formats.{f}": f == reader
                                                        for f in ("safetensors", "gguf", "apr")}}


def test_inspect_console_view_imports_rich_but_not_numpy(model_files):
    loaded = _inspect_loads(model_files["gguf"])
    assert (loaded["numpy"], loaded["rich"]) == (False, True)


def test_version_imports_neither_numpy_nor_rich():
    loaded = _loaded("from aprqa.cli import main\nassert main(['--version']) == 0")
    assert not loaded["numpy"], loaded
    code = "import sys\nfrom aprqa.cli import main\nmain(['--version'])\nprint('rich' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split()[-1] == "False"
