"""Shared fixtures: tiny deterministic models built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aprqa.synthetic import make_hf_model


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
