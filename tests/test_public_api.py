import re

import pytest
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

    # the CPU path never needs torch
    code = "import sys, aprqa; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False"]


@pytest.mark.parametrize(("name", "package"), [("compare", "comparison"), ("convert", "conversion"),
                                               ("forward", "inference")])
def test_public_functions_and_their_packages_have_different_names(name, package):
    import importlib

    importlib.import_module(f"aprqa.{package}")  # importing the package must not touch the function's name
    fn = getattr(aprqa, name)
    assert callable(fn) and not isinstance(fn, type(aprqa)), fn
    assert fn.__module__.startswith(f"aprqa.{package}"), fn.__module__


def test_every_module_imports_by_its_dotted_name():
    """``import aprqa.<package>.<module>`` works for every module: no name is both a function and a package."""
    import importlib
    import pkgutil

    failed = {}
    for info in pkgutil.walk_packages(aprqa.__path__, "aprqa."):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except ImportError as err:
            failed[info.name] = repr(err)
    assert not failed, failed
    assert not hasattr(aprqa, "_Package") and type(aprqa) is type(importlib)
