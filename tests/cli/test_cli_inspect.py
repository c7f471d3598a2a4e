import json

from aprqa.cli import main


def test_inspect_json_is_stable_schema(qwen2_dir, capsys):
    assert main(["inspect", str(qwen2_dir), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "aprqa.report.inspect_view" and doc["schema_version"] == 1
    assert doc["format"] == "safetensors" and doc["config"]["hidden_size"] == 256
    names = {t["name"] for t in doc["tensors"]}
    assert "model.layers.1.mlp.down_proj.weight" in names
    assert doc["totals"]["tensors"] == len(doc["tensors"]) == 27
    assert doc["totals"]["bits_per_weight"] == 32.0
    assert doc["tokenizer"]["merges_count"] > 0


def test_inspect_glob_filters(qwen2_dir, capsys):
    assert main(["inspect", str(qwen2_dir), "--json", "--tensors", "*.q_proj.*"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert sorted(t["name"] for t in doc["tensors"]) == [
        f"model.layers.{i}.self_attn.q_proj.{k}" for i in (0, 1) for k in ("bias", "weight")]


def test_inspect_table(qwen2_dir, capsys):
    assert main(["inspect", str(qwen2_dir)]) == 0
    out = capsys.readouterr().out
    assert "safetensors · hf-dir" in out and "model.layers.0.self_attn.q_proj.weight" in out
    assert "27 tensors" in out and "32.00 bits/weight" in out


def test_bad_input_exit_2_one_line(tmp_path, capsys):
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"NOPE" + bytes(30))
    assert main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "unrecognised magic" in err and "Traceback" not in err


def test_usage_error_exit_2(capsys):
    assert main(["inspect"]) == 2
