"""The atheris fuzzers (tests/fuzz/fuzz.py) run a bounded number of inputs: 0 crashes, 0 hangs.

Each target starts from its checked-in seed corpus (tests/fuzz/corpus/TARGET, copied so the
run does not modify it) and runs a fixed number of inputs from a fixed seed (``RUNS``; all five in
parallel, about 25 s each on 2 shared cores), so CI fuzzes exactly the inputs a local run did: a
time bound made the input count depend on the machine's speed, and CI's faster runner reached an
input no local run had. ``APRQA_FUZZ_SECONDS`` instead bounds the time (with ``APRQA_FUZZ_SEED=0``,
a random seed: the nightly-length run of docs/reliability.md).
"""

from __future__ import annotations

from _paths import TESTS
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris is in the [test] extra")

FUZZ = TESTS / "fuzz" / "fuzz.py"
TARGETS = ("gguf", "apr", "safetensors", "playbook", "evidence")
# Inputs per target: about 25 s each when the five share 2 cores (their speeds differ 7x).
RUNS = {"gguf": 30_000, "apr": 100_000, "safetensors": 30_000, "playbook": 12_000, "evidence": 12_000}
SECONDS = int(os.environ.get("APRQA_FUZZ_SECONDS", "0"))  # 0: bounded by RUNS
_CAP_SECONDS = 600  # a run-bounded target slower than this is a hang, not a slow machine
# A fixed seed and input count keep CI reproducible (a finding is fixed, and its input added to the
# corpus, before landing); APRQA_FUZZ_SEED=0 asks libFuzzer for a random seed, as nightly runs should.
SEED = int(os.environ.get("APRQA_FUZZ_SEED", "1"))


# ru_maxrss survives fork and exec on Linux, and libFuzzer's -rss_limit_mb reads it: a fuzzer started
# straight from this pytest process (which may have peaked above 3 GB on the model tests) would
# report an OOM before its first input. A small launcher forks it instead, from a fresh low peak.
_LAUNCH = """import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) & 0xFF)
"""


def _run(target: str, cwd: Path, *args: str) -> subprocess.Popen:
    # a fixed hash seed: str hashing orders sets and dicts, so coverage feedback (and the inputs that
    # follow from it) would otherwise differ between two runs of the same seed
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.Popen([sys.executable, "-S", "-c", _LAUNCH, str(FUZZ), target, *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_fuzzers_find_no_crash_or_hang(tmp_path):
    runs = {}
    for t in TARGETS:
        corpus = tmp_path / t / "corpus"
        shutil.copytree(FUZZ.parent / "corpus" / t, corpus)
        bound = f"-max_total_time={SECONDS or _CAP_SECONDS}"
        count = () if SECONDS else (f"-runs={RUNS[t]}",)
        runs[t] = _run(t, tmp_path / t, bound, *count, f"-seed={SEED}", "-timeout=10", "-rss_limit_mb=3072",
                       "-max_len=8192", str(corpus))
    failed = {}
    for t, p in runs.items():
        out, _ = p.communicate(timeout=(SECONDS or _CAP_SECONDS) + 300)
        artifacts = [a.name for a in (tmp_path / t).iterdir() if a.name.startswith(("crash-", "timeout-", "oom-"))]
        if p.returncode != 0 or artifacts or "DONE" not in out:
            failed[t] = f"exit {p.returncode}, artifacts {artifacts}:\n{out[-3000:]}"
    assert not failed, "\n\n".join(f"[{t}] {m}" for t, m in failed.items())


def test_harness_reports_an_untyped_exception(tmp_path):
    crash = tmp_path / "input"
    crash.write_bytes(b"crash!")
    p = _run("selfcheck", tmp_path, str(crash))
    out, _ = p.communicate(timeout=300)
    assert p.returncode != 0 and "KeyError" in out, out[-2000:]
