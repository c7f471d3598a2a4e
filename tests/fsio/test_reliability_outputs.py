"""Outputs are all-or-nothing and locked (docs/reliability.md): kill, disk full, concurrency.

The source model is 320 MB of SafeTensors written by the safetensors library (independent of
aprqa); converting it to GGUF takes long enough to be killed part-way. The written GGUF is
checked with gguf-py's reader, not aprqa's.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from aprqa.conversion import convert
from aprqa.errors import OutputError, OutputLockedError
from aprqa.fsio import DestinationLock, LockedAppender, atomic_output

LAYERS, ROWS, COLS = 10, 2048, 4096  # 10 x 32 MiB of F32 = 320 MiB (the issue asks for >= 300 MB)
CLI = [sys.executable, "-m", "aprqa.cli"]


@pytest.fixture(scope="module")
def big_model(tmp_path_factory) -> Path:
    from safetensors.numpy import save_file

    root = tmp_path_factory.mktemp("big") / "hf"
    root.mkdir()
    tensors = {f"model.layers.{i}.mlp.gate_proj.weight": np.full((ROWS, COLS), i + 0.5, np.float32)
               for i in range(LAYERS)}
    save_file(tensors, str(root / "model.safetensors"))
    (root / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    assert (root / "model.safetensors").stat().st_size >= 300_000_000
    return root


def _complete_gguf(path: Path) -> bool:
    """gguf-py (independent reader) parses it and every tensor's bytes lie inside the file."""
    from gguf import GGUFReader

    r = GGUFReader(str(path))
    end = max(int(t.data_offset) + int(t.n_bytes) for t in r.tensors)
    return len(r.tensors) == LAYERS and end <= path.stat().st_size


def _temps(dst: Path) -> list[str]:
    return sorted(p.name for p in dst.parent.iterdir() if p.name.startswith(f".{dst.name}."))


def _convert_proc(src: Path, dst: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "convert", str(src), str(dst), "-q"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_killed_convert_leaves_old_file_or_none(big_model, tmp_path):
    dst = tmp_path / "out.gguf"
    t0 = time.perf_counter()
    p = _convert_proc(big_model, dst)
    assert p.wait(timeout=300) == 0, p.stderr.read()
    full = time.perf_counter() - t0
    assert _complete_gguf(dst)
    os.chmod(dst, 0o640)  # a replaced file keeps the mode the user gave it
    old = dst.stat()
    outcomes, left = [], []
    # SIGKILL at several points of a second conversion over the good file: startup, header,
    # mid-payload, near the end. Under the final name: the old file (same inode) or a complete new one.
    for frac in (0.15, 0.4, 0.6, 0.8, 0.95):
        p = _convert_proc(big_model, dst)
        time.sleep(full * frac)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
        left += _temps(dst)
        st = dst.stat()
        if st.st_ino == old.st_ino:
            assert st.st_size == old.st_size and st.st_mtime_ns == old.st_mtime_ns
            outcomes.append("old")
        else:
            assert _complete_gguf(dst), f"partial file under the final name after a kill at {frac:.0%}"
            assert stat.S_IMODE(st.st_mode) == 0o640
            outcomes.append("new")
            old = st
    print("kill outcomes", outcomes, f"full convert {full:.2f} s")
    assert "old" in outcomes, outcomes  # at least one kill landed mid-write
    # A fresh destination killed part-way: no file under the final name.
    fresh = tmp_path / "fresh.gguf"
    p = _convert_proc(big_model, fresh)
    time.sleep(full * 0.5)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    assert not fresh.exists() or _complete_gguf(fresh)
    # The killed writers' hidden temporaries are removed by the next writer of that name.
    assert any(".aprqa-tmp-" in n for n in left), left  # killed mid-write: its temporary was left...
    convert(big_model, dst)
    assert _temps(dst) == [] and _complete_gguf(dst)  # ...and the next writer of that name removed it


def test_disk_full_keeps_old_file_and_is_typed(big_model, tmp_path):
    dst = tmp_path / "out.gguf"
    convert(big_model, dst)
    before = dst.stat()

    def limit() -> None:  # ulimit -f: writes past 64 MiB fail with EFBIG (Python ignores SIGXFSZ)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 20, 64 << 20))

    p = subprocess.run([*CLI, "convert", str(big_model), str(dst), "-q"], capture_output=True, text=True,
                       preexec_fn=limit, timeout=300)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "disk full or file size limit" in lines[0] and "Traceback" not in p.stderr
    after = dst.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert _temps(dst) == []


def test_two_concurrent_converts_one_fails_fast(big_model, tmp_path):
    dst = tmp_path / "out.gguf"
    first = _convert_proc(big_model, dst)
    lock = tmp_path / ".out.gguf.aprqa-lock"
    deadline = time.monotonic() + 120
    while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    t0 = time.perf_counter()
    with pytest.raises(OutputLockedError, match="another aprqa writer holds this output"):
        convert(big_model, dst)  # the second writer, while the first writes 320 MB
    waited = time.perf_counter() - t0
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert waited < 2.0  # it failed at once instead of waiting for the first
    assert _complete_gguf(dst)  # the first one's file, whole


def test_locked_output_is_one_typed_line_on_the_cli(tiny_models, tmp_path):
    dst = tmp_path / "m.gguf"
    with DestinationLock(dst):  # another writer (this process) holds it
        p = subprocess.run([*CLI, "convert", str(tiny_models["llama-tiny"]), str(dst)], capture_output=True,
                           text=True, timeout=120)
    assert p.returncode == 2 and "another aprqa writer holds this output" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and not dst.exists()


def test_lock_is_exclusive_within_a_process_too(tmp_path):
    dst = tmp_path / "x.bin"
    with DestinationLock(dst):
        with pytest.raises(OutputLockedError):
            DestinationLock(dst).acquire()
        with pytest.raises(OutputLockedError):
            with atomic_output(dst):
                pass
    with atomic_output(dst) as tmp:  # released: usable again
        tmp.write_bytes(b"ok")
    assert dst.read_bytes() == b"ok"


def test_evidence_stream_is_locked_and_appends_whole_lines(tmp_path):
    path = tmp_path / "evidence.jsonl"
    a = LockedAppender(path)
    with pytest.raises(OutputLockedError):
        LockedAppender(path)  # a second run into the same --output
    a.append('{"n": 1}\n')
    a.append('{"n": 2}\n')
    a.close()
    assert [json.loads(x)["n"] for x in path.read_text().splitlines()] == [1, 2]


def test_new_file_mode_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "m.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.bin").stat().st_mode) == 0o644


def test_failed_writer_leaves_old_file(tmp_path):
    dst = tmp_path / "keep.txt"
    dst.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(dst) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer failed")
    assert dst.read_text() == "old" and _temps(dst) == []


def test_hf_directory_is_replaced_as_a_whole(tiny_models, tmp_path):
    out = tmp_path / "hf"
    convert(tiny_models["qwen2-tiny"], out)
    (out / "stale.safetensors").write_bytes(b"")  # a file the new output does not have
    convert(tiny_models["llama-tiny"], out)
    assert not (out / "stale.safetensors").exists()
    assert json.loads((out / "config.json").read_text())["model_type"] == "llama"
    (out / "notes.bin").write_bytes(b"user data")
    with pytest.raises(OutputError, match="not part of an HF model"):
        convert(tiny_models["llama-tiny"], out)  # never deletes files aprqa did not write
    assert (out / "notes.bin").exists()


def test_output_that_is_the_input_is_refused(tiny_models, tmp_path):
    src = tmp_path / "m.gguf"
    convert(tiny_models["llama-tiny"], src)
    before = src.read_bytes()
    with pytest.raises(OutputError, match="output is the input"):
        convert(src, src)
    os.link(src, tmp_path / "hard.gguf")  # same inode under another name
    with pytest.raises(OutputError, match="output is the input"):
        convert(src, tmp_path / "hard.gguf")
    with pytest.raises(OutputError, match="holds the input"):
        convert(tiny_models["llama-tiny"], tiny_models["llama-tiny"].parent)
    assert src.read_bytes() == before


@pytest.mark.parametrize("case", ["missing-dir", "dir-in-the-way", "device", "report"])
def test_output_oserrors_are_one_typed_line(tiny_models, tmp_path, case):
    src = str(tiny_models["llama-tiny"])
    (tmp_path / "adir.gguf").mkdir()
    args = {"missing-dir": ["convert", src, str(tmp_path / "no" / "such" / "m.gguf")],
            "dir-in-the-way": ["convert", src, str(tmp_path / "adir.gguf")],
            "device": ["convert", src, "/dev/full", "--to", "gguf"],
            "report": ["compare", src, src, "--fast", "--report", str(tmp_path / "no" / "r.html")]}[case]
    p = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and p.stderr.startswith("error:")
    assert len(p.stderr.strip().splitlines()) <= 2  # the message (+ an optional hint line)
