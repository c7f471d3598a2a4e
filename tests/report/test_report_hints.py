"""Hints for common mistakes (report/compare/hints.py and the CLI around them): swapped arguments, a file compared
with itself, a reference without config.json, a conversion of weights without config.json."""

from __future__ import annotations

import shutil

import pytest

from aprqa import convert
from aprqa.cli import main
from aprqa.errors import UsageError
from aprqa.synth.models import make_hf_model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("hints")
    hf = make_hf_model(d / "hf", "qwen2-tiny", seed=0)
    q8 = d / "q8.gguf"
    convert(hf, q8, quant="q8_0")
    bare = d / "bare"
    bare.mkdir()
    shutil.copy(hf / "model.safetensors", bare / "model.safetensors")
    return hf, q8, bare


def test_swapped_arguments_get_a_hint_naming_the_right_order(models, capsys):
    hf, q8, _bare = models
    assert main(["compare", str(q8), str(hf), "--fast", "-q"]) == 1
    out = capsys.readouterr().out.replace("\n", " ")
    assert "hint" in out and "are the arguments swapped?" in out and f"aprqa compare {hf} {q8}" in out
    assert main(["compare", str(hf), str(q8), "--fast", "-q"]) == 0  # the right order: no hint
    assert "swapped" not in capsys.readouterr().out


def test_a_file_compared_with_itself_gets_a_same_file_notice(models, capsys):
    _hf, q8, _bare = models
    assert main(["compare", str(q8), str(q8), "--fast", "-q"]) == 0
    assert "the reference and the candidate are the same file" in capsys.readouterr().out.replace("\n", " ")


def test_reference_without_config_json_says_metadata_not_compared(models, capsys):
    _hf, q8, bare = models
    main(["compare", str(bare), str(q8), "--fast", "-q"])
    out = capsys.readouterr().out
    assert "metadata   NOT COMPARED reference has no config.json: metadata not compared" in out
    assert "MATCH 0/0" not in out


@pytest.mark.parametrize("target", ["x.gguf", "x.apr"])
def test_convert_of_weights_without_config_json_names_the_input_and_the_file(models, tmp_path, target):
    _hf, _q8, bare = models
    with pytest.raises(UsageError, match=rf"^{bare}: no config.json beside the weights"):
        convert(bare, tmp_path / target)
    assert not (tmp_path / target).exists()
