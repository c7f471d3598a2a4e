"""`--engine llama.cpp` where llama-cpp-python is not installed (the base set-up, scripts/setup without
--llamacpp): one typed line that says how to get it, exit 2, before any work. Runs whether or not the package is
installed (the import is blocked)."""

from __future__ import annotations

import sys

import pytest

from aprqa.cli import main
from aprqa.conversion import convert
from aprqa.engines import EngineUnavailableError
from aprqa.engines.llamacpp import load_llama_cpp
from aprqa.errors import UsageError


def test_missing_package_is_a_typed_usage_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp now raises ImportError
    with pytest.raises(EngineUnavailableError) as ei:
        load_llama_cpp()
    assert isinstance(ei.value, UsageError) and "scripts/setup --llamacpp" in str(ei.value)


def test_cli_compare_engine_without_the_package_exits_2_with_one_line(qwen2_dir, tmp_path, monkeypatch, capsys):
    gguf = convert(qwen2_dir, tmp_path / "m.f16.gguf", quant="f16").dst
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    assert main(["compare", str(qwen2_dir), str(gguf), "--engine", "llama.cpp", "--no-progress"]) == 2
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: llama-cpp-python is not installed"), cap.err
    assert "scripts/setup --llamacpp" in lines[0] and "aprqa[llamacpp]" in lines[0]
    assert cap.out == ""  # no report of a comparison that never ran
