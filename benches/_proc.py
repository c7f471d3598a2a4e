"""Processes for the benches.

Whole processes measured like /usr/bin/time -v: wall, CPU (user + sys) and peak RSS of the child
(``os.wait4``'s rusage), commands interleaved over rounds, medians per command. And long-lived
workers: a child that loads its model once and answers one JSON line per request (``Worker`` on the
parent's side, ``serve`` on the child's), so runners can be measured interleaved, round by round."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ProcResult:
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    returncode: int
    stdout: str


# ru_maxrss survives exec on Linux: a child forked from this (large) process would report this
# process's RSS as its floor. A small launcher (python -S, ~9 MB) forks the command instead and
# reports the command's own rusage.
_LAUNCH = """import json, os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, ru = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    json.dump([time.perf_counter() - t0, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, os.waitstatus_to_exitcode(status)], fh)
"""


def _child_env(env: dict[str, str] | None) -> dict[str, str]:
    """Bytecode caching on, as an installed package has it: under PYTHONDONTWRITEBYTECODE (set in
    some CI and agent shells) every start of an editable install recompiles aprqa from source."""
    out = dict(os.environ if env is None else env)
    out.pop("PYTHONDONTWRITEBYTECODE", None)
    return out


def run_process(cmd: list[str], env: dict[str, str] | None = None) -> ProcResult:
    """Run ``cmd`` to completion: its own wall time, CPU and peak RSS (not this process's)."""
    env = _child_env(env)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(suffix=".json") as rus:
        subprocess.run([sys.executable, "-S", "-c", _LAUNCH, rus.name, *cmd], stdout=out, stderr=err, env=env,
                       check=True)
        wall, cpu, maxrss_kb, code = json.loads(Path(rus.name).read_text())
        out.seek(0)
        err.seek(0)
        text = out.read().decode(errors="replace")
        if code not in (0, 1):  # 1: a compare that found failures, which is expected here
            raise RuntimeError(f"{' '.join(cmd)} exited {code}:\n{err.read().decode()[-3000:]}")
    return ProcResult(wall, cpu, maxrss_kb / 1024, code, text)


def interleaved(cmds: dict[str, list[str]], rounds: int, warmup: bool = True,
                env: dict[str, str] | None = None,
                before: Callable[[], None] | None = None) -> dict[str, dict[str, float]]:
    """Median wall / CPU / peak RSS per named command, one run of each per round (``before()`` ahead of
    every run, e.g. to drop the page cache)."""
    if warmup:
        for cmd in cmds.values():
            run_process(cmd, env)  # page cache hot, .pyc written
    runs: dict[str, list[ProcResult]] = {k: [] for k in cmds}
    for _ in range(rounds):
        for k, cmd in cmds.items():
            if before is not None:
                before()
            runs[k].append(run_process(cmd, env))
    return {k: {"wall_s": statistics.median(r.wall_s for r in v), "cpu_s": statistics.median(r.cpu_s for r in v),
                "peak_rss_mb": max(r.peak_rss_mb for r in v), "rounds": len(v)} for k, v in runs.items()}


def median_call(fn, reps: int, clock=time.perf_counter) -> float:  # type: ignore[no-untyped-def]
    """Median seconds of ``fn()`` after one warm-up call."""
    fn()
    ts = []
    for _ in range(reps):
        t0 = clock()
        fn()
        ts.append(clock() - t0)
    return statistics.median(ts)


def line(name: str, r: dict[str, float], base: dict[str, float] | None = None) -> str:
    s = f"  {name:<44} wall {r['wall_s'] * 1e3:8.1f} ms  cpu {r['cpu_s'] * 1e3:8.1f} ms  peak RSS {r['peak_rss_mb']:7.1f} MB"
    if base is not None:
        s += f"  | x{r['wall_s'] / base['wall_s']:.2f} wall, x{r['cpu_s'] / base['cpu_s']:.2f} cpu"
    return s


def peak_rss_mb() -> float:
    """This process's peak RSS in MB: VmHWM (this process image only), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as fh:
            for row in fh:
                if row.startswith("VmHWM:"):
                    return int(row.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def serve(handlers: dict[str, Callable[[], dict]]) -> None:
    """The worker's side: say ready, answer each request line with its handler's JSON line; any
    other line (``quit``) or the end of stdin answers the peak RSS and returns."""
    print(json.dumps({"ready": True}), flush=True)
    for request in sys.stdin:
        handler = handlers.get(request.strip())
        if handler is None:
            break
        print(json.dumps(handler()), flush=True)
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}), flush=True)


class Worker:
    """The parent's side of a worker process: ``script --child KIND *args`` started once, then one
    request line -> one JSON reply; its own process, so its peak RSS is its own."""

    def __init__(self, script: str | Path, kind: str, args: Sequence[str]) -> None:
        self.kind = kind
        cmd = [sys.executable, str(script), "--child", kind, *args]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self._read()  # ready: the model is loaded

    def _read(self) -> dict:
        reply = self.proc.stdout.readline() if self.proc.stdout else ""
        if not reply:
            raise SystemExit(f"bench worker {self.kind} died (exit {self.proc.wait()})")
        return json.loads(reply)

    def ask(self, request: str) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(request + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> float:
        """End the worker; its peak RSS in MB."""
        rss = self.ask("quit")["peak_rss_mb"]
        self.proc.wait()
        return float(rss)


def load_span(before: tuple[float, float, float], after: tuple[float, float, float]) -> str:
    """The load averages before and after a run, as printed next to its timings."""
    return " ".join(f"{v:.1f}" for v in before) + " -> " + " ".join(f"{v:.1f}" for v in after)
