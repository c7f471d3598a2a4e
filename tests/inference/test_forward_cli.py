"""`aprqa generate`."""

from __future__ import annotations

import json

from aprqa.cli import main
from aprqa.inference import generate, tokenize


def test_generate_prompt_prints_ids_and_text(tiny_models, capsys):
    d = tiny_models["qwen2-tiny"]
    assert main(["generate", str(d), "--prompt", "The quick brown", "-n", "3"]) == 0
    out = capsys.readouterr().out
    ids = tokenize(d, "The quick brown")
    assert f"prompt ids ({len(ids)}): {ids}" in out
    assert f"generated ids (3): {generate(d, ids, 3)}" in out and "text: " in out


def test_generate_ids_json(tiny_models, capsys):
    d = tiny_models["llama-tiny"]
    assert main(["generate", str(d), "--ids", "1,2,3", "-n", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["prompt_ids"] == [1, 2, 3] and doc["generated_ids"] == generate(d, [1, 2, 3], 2)


def test_generate_bad_input_exit_2(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "missing"), "--prompt", "x"]) == 2
    assert "error:" in capsys.readouterr().err
