import re
from pathlib import Path

import aprqa

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_public_name_resolves():
    for name in aprqa.__all__:
        assert getattr(aprqa, name) is not None, name


def test_readme_api_list_matches_all():
    text = README.read_text()
    section = text[text.index("`aprqa.__all__` is the public surface"):]
    section = section[: section.index("\n\n")]
    listed = set(re.findall(r"`([A-Za-z_]+)`", section)) - {"aprqa"}
    missing = listed - set(aprqa.__all__)
    assert not missing, f"README lists names not exported: {missing}"
    for name in ("open_model", "dequantize", "quantize", "diff_stats", "compare", "convert", "forward"):
        assert name in listed


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, aprqa; print('numba' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_compare_name_is_the_function_even_after_submodule_import():
    import aprqa.compare  # noqa: F401  (binds the submodule name on a fresh package)

    assert callable(aprqa.compare) and aprqa.compare.__module__ == "aprqa.compare"
