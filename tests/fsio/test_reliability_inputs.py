"""Every bad input is a typed error, fast (docs/reliability.md): special files, size caps,
config values, malformed JSON/YAML, edited evidence, terminal injection, typed C++ errors."""

from __future__ import annotations

from _paths import ROOT, TESTS
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aprqa.errors import AprqaError, DTypeError, FormatError, InputError, UsageError
from aprqa.formats import open_model
from aprqa.fsio import CAP_CONFIG, read_bounded
from aprqa.playbook.schema import PlaybookError, load_playbook

CLI = [sys.executable, "-m", "aprqa.cli"]


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The CLI in a child process (for inputs that could block: the timeout catches a hang)."""
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def run_cli(capsys):
    """The CLI in this process: (exit code, stdout, stderr)."""
    from aprqa.cli import main

    def run(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        rc = main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, rc, out, err)

    return run


def _st_file(path: Path, header: bytes | dict, data: bytes = b"") -> Path:
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)
    return path


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ---- special files never block ---------------------------------------------------------------


@pytest.mark.parametrize("where", ["model", "config", "playbook", "evidence"])
def test_fifo_inputs_are_refused_not_waited_on(tiny_models, tmp_path, where):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    if where == "model":
        args = ["inspect", str(fifo)]
    elif where == "config":
        d = _copy(tiny_models["llama-tiny"], tmp_path / "m")
        (d / "config.json").unlink()
        os.mkfifo(d / "config.json")
        args = ["inspect", str(d)]
    elif where == "playbook":
        args = ["run", str(fifo)]
    else:
        args = ["report", str(fifo)]
    p = _cli(*args, timeout=60)  # a blocking open would hit the timeout
    assert p.returncode == 2, p.stderr
    assert "FIFO" in p.stderr and "Traceback" not in p.stderr


def test_devices_and_directories_are_refused(tmp_path):
    with pytest.raises(InputError, match="character device"):
        open_model("/dev/zero")
    with pytest.raises(InputError, match="directory"):
        read_bounded(tmp_path, 10, "config.json")


def test_side_file_size_cap_is_stated(tiny_models, tmp_path):
    d = _copy(tiny_models["llama-tiny"], tmp_path / "m")
    with open(d / "config.json", "r+b") as fh:  # sparse: no 17 MB written
        fh.truncate(CAP_CONFIG + 1)
    with pytest.raises(InputError, match=r"aprqa reads at most 16,777,216 bytes \(16 MiB\)"):
        open_model(d)
    (d / "config.json").unlink()
    (d / "config.json").symlink_to("/dev/zero")
    with pytest.raises(InputError, match="character device"):
        open_model(d)


def test_billion_laughs_playbook_is_refused_fast(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9) + "]")
    pb = tmp_path / "laughs.yaml"
    pb.write_text("\n".join(lines) + "\n")
    assert pb.stat().st_size < 2000
    with pytest.raises(PlaybookError, match="alias .* refused"):
        load_playbook(pb)


def test_deep_and_huge_yaml_is_typed(tmp_path):
    pb = tmp_path / "deep.yaml"
    pb.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(PlaybookError, match="nested deeper than 64"):
        load_playbook(pb)
    pb.write_text("name: x\nversion: " + "9" * 5000 + "\n")
    with pytest.raises(PlaybookError):
        load_playbook(pb)
    pb.write_bytes(b"x" * (4 * 1024 * 1024 + 1))
    with pytest.raises(PlaybookError, match="at most"):
        load_playbook(pb)


# ---- config and tokenizer values ------------------------------------------------------------


def _edit_config(src: Path, dst: Path, **changes) -> Path:
    d = _copy(src, dst)
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(changes)
    (d / "config.json").write_text(json.dumps(cfg))
    return d


@pytest.mark.parametrize("key,value,match", [
    ("num_hidden_layers", 1e9, "num_hidden_layers = 1000000000.0 is not an integer"),
    ("rope_theta", "abc", "rope_theta = 'abc' is not a positive finite number"),
    ("hidden_size", -1, "hidden_size = -1 is not an integer"),
    ("vocab_size", True, "vocab_size = True is not an integer"),
])
def test_config_values_of_wrong_type_are_typed(tiny_models, tmp_path, key, value, match):
    d = _edit_config(tiny_models["llama-tiny"], tmp_path / "m", **{key: value})
    with pytest.raises(FormatError, match=match):
        open_model(d)


def test_layer_count_must_match_the_tensors_before_allocation(tiny_models, tmp_path, run_cli):
    from aprqa.inference import generate

    d = _edit_config(tiny_models["llama-tiny"], tmp_path / "m", num_hidden_layers=1_000_000_000)
    p = run_cli("generate", str(d), "--ids", "1 2 3", "-n", "2")
    assert p.returncode == 2 and "states 1,000,000,000 layers but the file holds 2 blocks" in p.stderr, p.stderr
    with pytest.raises(UsageError, match="limit is 0..65,536"):
        generate(tiny_models["llama-tiny"], [1, 2], 10**9)  # -n 1e9: refused before the KV cache is sized
    with pytest.raises(UsageError, match="prompt has 65,537 tokens; the limit is 65,536"):
        generate(tiny_models["llama-tiny"], [1] * 65_537, 1)
    p = run_cli("generate", str(tiny_models["llama-tiny"]), "--ids", "1 x 3")
    assert p.returncode == 2 and "--ids" in p.stderr and "Traceback" not in p.stderr


def test_tokenizer_values_are_checked(tiny_models, tmp_path):
    d = _copy(tiny_models["llama-tiny"], tmp_path / "m")
    tj = json.loads((d / "tokenizer.json").read_text())
    tj["added_tokens"].append({"id": 9_999_999, "content": "<far>", "special": True})
    (d / "tokenizer.json").write_text(json.dumps(tj))
    with pytest.raises(FormatError, match="token id 9,999,999 is beyond"):
        open_model(d)
    tj["added_tokens"].pop()
    tj["model"]["merges"] = 5
    (d / "tokenizer.json").write_text(json.dumps(tj))
    with pytest.raises(FormatError, match="merges is a JSON int"):
        open_model(d)


@pytest.mark.parametrize("case,match", [("unigram_int_pieces", "invalid type: integer"),
                                        ("merge_of_unknown_token", "out of vocabulary")])
def test_tokenizer_models_the_library_refuses_are_one_typed_line(tiny_models, tmp_path, run_cli, case, match):
    d = _copy(tiny_models["qwen2-tiny"], tmp_path / "m")
    tj = json.loads((d / "tokenizer.json").read_text())
    if case == "unigram_int_pieces":
        tj["model"] = {"type": "Unigram", "unk_id": 0, "vocab": [[1, -1.0], [2, -2.0], ["a", -3.0]]}
    else:
        m = tj["model"]["merges"]
        tj["model"]["merges"] = (["zzq qqz"] if isinstance(m[0], str) else [["zzq", "qqz"]]) + m
    (d / "tokenizer.json").write_text(json.dumps(tj))
    for args in (("inspect", str(d)), ("convert", str(d), str(tmp_path / "x.gguf")),
                 ("compare", str(tiny_models["qwen2-tiny"]), str(d), "--no-progress")):
        p = run_cli(*args)
        assert p.returncode in (0, 1, 2) and "Traceback" not in p.stderr and "crashed" not in p.stderr, \
            (args, p.stderr[-800:])
        if args[0] == "convert":
            assert p.returncode == 2 and match in p.stderr and "tokenizer.json" in p.stderr, p.stderr


# ---- malformed JSON beyond syntax -----------------------------------------------------------


@pytest.mark.parametrize("header,match", [
    (b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    (b'{"a": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 4]}}', "digits"),
    (json.dumps({"a": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}}).encode(), "unknown dtype"),
    (b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
     b'"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', "duplicate key 'a'"),
    # zero elements, yet a dimension numpy cannot hold / more dimensions than numpy allows
    (json.dumps({"a": {"dtype": "F32", "shape": [0, 2 ** 64], "data_offsets": [0, 0]}}).encode(), "2\\*\\*60-1"),
    (json.dumps({"a": {"dtype": "F32", "shape": [1] * 70, "data_offsets": [0, 4]}}).encode(), "at most 8"),
])
def test_safetensors_header_beyond_syntax(tmp_path, header, match):
    f = _st_file(tmp_path / "x.safetensors", header, b"\0" * 4)
    with pytest.raises(FormatError, match=match):
        open_model(f)


def test_apr_zero_dim_cannot_hide_a_huge_one():
    # found by the atheris fuzzer: dims [0, 9.4e18] have 0 elements but no numpy array can take the shape
    f = TESTS / "fuzz" / "regressions" / "apr-zero-dim-hides-huge-dim"
    with pytest.raises(FormatError, match="over 2\\*\\*60-1"):
        open_model(f)


def test_a_zero_dim_cannot_hide_dims_whose_product_overflows(tmp_path):
    # found by the atheris fuzzer (APR): (10696049115004936, 32768, 0) has 0 elements and every dim fits in
    # 2**63-1, but numpy refuses the shape (the non-zero product overflows): the readers refuse it with a field
    from aprqa.limits import shape_fits

    assert not shape_fits((10696049115004936, 32768, 0)) and shape_fits((2**60 - 1, 1, 0)) and shape_fits((0,))
    f = _st_file(tmp_path / "z.safetensors",
                 {"a": {"dtype": "F32", "shape": [10696049115004936, 32768, 0], "data_offsets": [0, 0]}}, b"")
    with pytest.raises(FormatError, match="non-zero product is at most 2\\*\\*60-1"):
        open_model(f)


@pytest.mark.parametrize("dims,fits", [
    ((0, 0x3900FFFFFFFFFFFF), False),  # found by the atheris fuzzer in CI (APR): fits 2**63-1, not as float32
    ((0, 2**60), False),
    ((0, 2**60 - 1), True),
])
def test_a_zero_dim_cannot_hide_a_dim_too_big_for_a_float_array(tmp_path, dims, fits):
    # numpy checks a shape's non-zero product times the item size against 2**63-1 bytes: (0, 4.1e18) has
    # 0 elements, yet dequantizing it to float32 raised numpy's "array is too big" ValueError
    from aprqa import core

    f = _st_file(tmp_path / "z.safetensors",
                 {"a": {"dtype": "F32", "shape": list(dims), "data_offsets": [0, 0]}}, b"")
    if not fits:
        with pytest.raises(FormatError, match="non-zero product is at most 2\\*\\*60-1"):
            open_model(f)
        return
    with open_model(f) as m:  # the largest accepted shape makes real float32 and float64 arrays
        out = core.dequantize(m.tensors["a"])
        assert out.shape == dims and out.astype(np.float64).shape == dims


def test_safetensors_duplicate_keys_with_two_payloads_are_refused_like_the_library(tmp_path):
    from safetensors import SafetensorError, safe_open

    header = (b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
              b'"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}')
    f = _st_file(tmp_path / "dup.safetensors", header, b"\0" * 8)
    with pytest.raises(SafetensorError):  # the reference implementation refuses this file too
        safe_open(str(f), "np")
    with pytest.raises(FormatError, match="duplicate key 'a'"):
        open_model(f)


def test_safetensors_trailing_bytes_are_reported(tmp_path):
    f = _st_file(tmp_path / "t.safetensors", {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                 b"\0" * 4 + b"junk")
    with open_model(f) as m:
        assert any("4 byte(s) of the data section belong to no tensor" in w for w in m.warnings)


def test_edited_evidence_does_not_crash_verify_or_report(tmp_path, run_cli):
    from aprqa.playbook.evidence import verify_evidence

    pb = ROOT / "playbooks" / "demo.playbook.yaml"
    ev = tmp_path / "evidence.json"
    for records in ([{"gate_id": "G1", "metadata": {"thresholds": 5, "thresholds_key": "x"}}],
                    [{"gate_id": "G1", "metadata": {"thresholds": "{not json"}}]):
        ev.write_text(json.dumps(records))
        v = verify_evidence(ev, pb)  # a named problem per record
        assert not v.passed and v.problems
        p = run_cli("report", str(ev))
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    for records, field in (([{"gate_id": "G1", "metadata": "not a dict"}], "metadata is a JSON str"),
                           ([{"scenario": {"model": "m"}}], "scenario.model is a JSON str"),
                           ([{"metrics": {"aprqa": {"tensor": {"failures": [1]}}}}], "failures must be")):
        ev.write_text(json.dumps(records))
        for args in (("verify-evidence", str(ev), str(pb)), ("report", str(ev))):
            p = run_cli(*args)
            assert p.returncode == 2 and field in p.stderr and "Traceback" not in p.stderr, p.stderr
    ev.write_text(json.dumps([1, 2]))
    p = run_cli("verify-evidence", str(ev), str(pb))
    assert p.returncode == 2 and "record 0 is a JSON int" in p.stderr
    ev.write_text("[" * 100_000)
    p = run_cli("verify-evidence", str(ev), str(pb))
    assert p.returncode == 2 and "nested too deeply" in p.stderr and "Traceback" not in p.stderr


# ---- names from files never drive the terminal ----------------------------------------------


def test_hostile_tensor_names_are_escaped(tmp_path, run_cli):
    name = "[/]evil\x1b[31mRED\x1b]0;title\x07[link=x]"
    f = _st_file(tmp_path / "n.safetensors", {name: {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                 b"\0" * 4)
    p = run_cli("inspect", str(f))
    assert p.returncode == 0, p.stderr
    assert "\x1b" not in p.stdout and "\x07" not in p.stdout
    assert "[/]evil\\x1b[31mRED\\x1b]0;title\\x07[link=x]" in p.stdout


# ---- native core: typed exceptions, threads ---------------------------------------------------


def test_core_errors_are_registered_types():
    from aprqa import _core, core

    assert issubclass(_core.DTypeError, ValueError)
    with pytest.raises(_core.DTypeError):
        _core.payload_bytes(77, 1)  # unknown dtype id, straight from C++
    with pytest.raises(DTypeError, match="unsupported dtype iq2_xxs"):  # decoded, never produced
        core.quantize(np.zeros(256, np.float32), "iq2_xxs")
    with pytest.raises(AprqaError):
        core.dequantize(np.zeros(3, np.uint8), "q8_0", 32)  # too short: a usage error, not a crash


def test_threads_that_cannot_start_do_not_kill_the_process():
    # Under a tight address-space limit most of 64 kernel threads cannot get a stack; the kernel
    # must run their slices on the caller and return the same numbers as one thread.
    code = """
import resource, sys
import numpy as np
from aprqa import core
x = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32)
want = core.quantize(x, "q8_0", threads=1)
with open("/proc/self/status") as fh:
    vm = next(int(l.split()[1]) for l in fh if l.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (48 << 20), resource.RLIM_INFINITY))
import threading, time
started = []
try:  # the limit bites: threads cannot all get a stack
    for _ in range(64):
        t = threading.Thread(target=time.sleep, args=(0.2,)); t.start(); started.append(t)
except RuntimeError:
    pass
for t in started:
    t.join()
assert len(started) < 64, "the address-space limit did not stop thread creation"
got = core.quantize(x, "q8_0", threads=64)
print("same" if np.array_equal(got, want) else "different")
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "same"
