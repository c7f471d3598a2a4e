"""Who runs a zoo's model tasks: a local process pool, or a Ray cluster.

A task is one model's playbook run (``zoo.run_model``): it converts, measures and writes that
model's evidence folder, and returns its result as JSON text (only text crosses the process
boundary; the caller rebuilds typed records from it). One that raises (or dies more than
``MAX_RETRIES`` times), or returns anything but text, is reported with its error and the other
models go on. Every file it writes is written to a temporary name and renamed, so a
task killed part-way leaves no half-written model or record, and its retry resumes from the
records already streamed (``resume``). Results come back as they finish and the caller merges them
in playbook order.

Placement: the upstream runner limits how many models of a size class run at once (tiny/small 4,
medium 2, large and bigger 1) to avoid running out of memory. On Ray this is a custom resource per
class, ``aprqa-size-<class>``: a node started with ``--resources '{"aprqa-size-large": 1}'``
runs one large model at a time (docs/zoo.md). The local pool runs ``workers`` tasks at once, at
most the smallest limit among the queued models' classes.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import re
import signal
import socket
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as mp_wait
from multiprocessing.process import BaseProcess
from typing import Any, Callable, Iterator, Sequence

from ..errors import UsageError

# apr-qa's SizeCategory::max_workers: models of a class that may run at once.
SIZE_LIMITS = {"tiny": 4, "small": 4, "medium": 2, "large": 1, "xlarge": 1, "huge": 1}
DEFAULT_SIZE = "small"  # a playbook without size_category (apr-qa's serde default is tiny; small is safer)
MAX_RETRIES = 2
STOP_SECONDS = 5.0  # a stopped worker gets this long after SIGTERM before SIGKILL


def size_resource(size_category: str | None) -> str:
    """The Ray custom resource of a size class (``auto`` and unset count as small)."""
    cat = size_category if size_category in SIZE_LIMITS else DEFAULT_SIZE
    return f"aprqa-size-{cat}"


def size_resources() -> dict[str, float]:
    """Resources a single-node cluster declares so that each class runs at most its limit at once."""
    return {f"aprqa-size-{k}": float(v) for k, v in SIZE_LIMITS.items()}


@dataclass(frozen=True)
class Task:
    """One model task: ``fn(*args)`` in a worker, returning JSON text; ``size_category`` places it."""

    index: int
    fn: Callable[..., str]
    args: tuple[Any, ...]
    size_category: str | None
    name: str = ""  # the model, for messages


class TaskFailed(Exception):
    """A model task that raised in its worker, or whose worker died (the message says which)."""


def arm_death_signal(parent: int) -> None:
    """In a worker: SIGKILL it when ``parent`` dies (Linux ``prctl(PR_SET_PDEATHSIG)``), so a
    killed ``aprqa run`` leaves no worker converting on and holding locks; exits at once when the
    parent is already gone."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def _worker(conn: Connection, parent: int, fn: Callable[..., str], args: tuple[Any, ...]) -> None:
    """A worker process's body: one task; only UTF-8 text goes back (b"R" + result or b"E" + why)."""
    arm_death_signal(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides: Ctrl-C reaches the whole group
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        res = fn(*args)
        out = b"R" + res.encode("utf-8") if isinstance(res, str) else \
            b"E" + f"returned {type(res).__name__}, not JSON text".encode("utf-8")
    except BaseException as err:  # noqa: BLE001 (a worker reports every failure as text, then exits)
        out = b"E" + f"{type(err).__name__}: {err}".encode("utf-8", "replace")
    try:
        conn.send_bytes(out)
    finally:
        conn.close()


@dataclass
class _Running:
    task: Task
    proc: BaseProcess
    conn: Connection


class LocalExecutor:
    """One spawned process per model task (no inherited threads or CUDA state), at most ``workers``
    (and the queued models' size limit) at once.

    Lifecycle: every worker dies with the parent (``arm_death_signal``) and ignores SIGINT; a
    KeyboardInterrupt (Ctrl-C, or SIGTERM turned into one by the caller) in ``run`` stops the
    running workers (SIGTERM, then SIGKILL after ``STOP_SECONDS``) and is re-raised. A worker
    that dies costs only its own task: that task is run again, at most ``MAX_RETRIES`` times
    (its retry resumes from the streamed records and sweeps the dead attempt's temporaries).
    Only text comes back: nothing of a worker's is unpickled."""

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise UsageError(f"--workers must be ≥ 1, got {workers}")
        self.workers = workers
        self.retries: dict[int, int] = {}
        self.warnings: list[str] = []

    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, str | None, BaseException | None]]:
        pending = list(tasks)
        limit = max(1, min([self.workers] + [SIZE_LIMITS.get(t.size_category or DEFAULT_SIZE, 4) for t in tasks]))
        ctx = multiprocessing.get_context("spawn")
        running: list[_Running] = []
        try:
            while pending or running:
                while pending and len(running) < limit:
                    t = pending.pop(0)
                    recv, send = ctx.Pipe(duplex=False)
                    proc = ctx.Process(target=_worker, args=(send, os.getpid(), t.fn, t.args),
                                       name=f"aprqa-zoo-{t.index}", daemon=True)
                    proc.start()
                    send.close()
                    running.append(_Running(t, proc, recv))
                ready = set(mp_wait([r.conn for r in running] + [r.proc.sentinel for r in running]))
                for r in [r for r in running if r.conn in ready or r.proc.sentinel in ready]:
                    outcome = self._finished(r)
                    if outcome is None:  # still running (its sentinel fired before the pipe closed)
                        continue
                    running.remove(r)
                    if outcome == "retry":
                        pending.append(r.task)
                        continue
                    yield outcome
        except BaseException:
            stop_workers([r.proc for r in running])
            raise
        finally:
            for r in running:
                r.conn.close()

    def _finished(self, r: _Running) -> tuple[Task, str | None, BaseException | None] | str | None:
        """The finished task's result, ``"retry"`` when its worker died and it may run again, or None."""
        try:
            data = r.conn.recv_bytes() if r.conn.poll() else None
        except (EOFError, OSError):
            data = None
        if data is None and r.proc.is_alive():
            r.proc.join(timeout=1.0)
            if r.proc.is_alive():
                return None
        r.proc.join(timeout=10.0)
        r.conn.close()
        if data is not None:
            text = data[1:].decode("utf-8", "replace")
            return (r.task, text, None) if data[:1] == b"R" else (r.task, None, TaskFailed(text))
        code = r.proc.exitcode
        died = f"killed by {_signal_name(-code)}" if code is not None and code < 0 else f"exit status {code}"
        tries = self.retries.get(r.task.index, 0) + 1
        who = r.task.name or f"task {r.task.index}"
        if tries > MAX_RETRIES:
            return r.task, None, TaskFailed(f"its worker died {tries} times ({died})")
        self.retries[r.task.index] = tries
        print(f"aprqa: the worker running {who} died ({died}); retry {tries}/{MAX_RETRIES}", file=sys.stderr)
        return "retry"


def stop_workers(procs: Sequence[BaseProcess]) -> None:
    """SIGTERM every live worker, SIGKILL the ones still alive after ``STOP_SECONDS``; waits for all."""
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for p in procs:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join(timeout=5.0)


def _signal_name(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


class RayExecutor:
    """Ray tasks (``max_retries``: a task whose worker dies is run again), placed by size class.

    Args:
        address: a running cluster (``ray://host:10001`` or ``auto``); None: the cluster this process
            already joined (``ray.init`` called before), else a local one started here with
            ``size_resources()``.
    """

    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise UsageError("--executor ray needs Ray: pip install 'aprqa[ray]'") from None
        self.ray = ray
        if not ray.is_initialized():
            try:
                if address:
                    ray.init(address=address, log_to_driver=False)
                else:
                    ray.init(resources=size_resources(), log_to_driver=False, include_dashboard=False)
            except Exception as err:  # noqa: BLE001 (Ray raises ConnectionError, RuntimeError, ValueError...)
                raise UsageError(f"--executor ray{'=' + address if address else ''}: Ray could not start or "
                                 f"join a cluster: {type(err).__name__}: {str(err).strip()[:300]}") from None
        self.available = set(ray.cluster_resources())
        self.warnings: list[str] = []

    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, str | None, BaseException | None]]:
        ray = self.ray
        refs: dict[Any, Task] = {}
        for t in tasks:
            res = size_resource(t.size_category)
            opts: dict[str, Any] = {"max_retries": MAX_RETRIES, "num_cpus": 1}
            if res in self.available:
                opts["resources"] = {res: 1}
            else:  # placing on a resource no node has would wait forever
                msg = (f"the cluster declares no {res} resource: task {t.index} placed by CPU only "
                       "(docs/zoo.md: start nodes with --resources)")
                if msg not in self.warnings:
                    self.warnings.append(msg)
                    print(f"aprqa: {msg}", file=sys.stderr)
            refs[ray.remote(**opts)(t.fn).remote(*t.args)] = t
        try:
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1)
                for r in done:
                    t = refs.pop(r)
                    try:
                        res = ray.get(r)
                    except Exception as err:  # the task raised, or died more often than max_retries
                        yield t, None, err
                        continue
                    yield _text(t, res)
        finally:  # interrupted (or closed early): no task converts on; force kills its worker process,
            for r in refs:  # whose converter dies with it (its death signal)
                try:
                    ray.cancel(r, force=True)
                except Exception:  # noqa: BLE001 (already finished, or the cluster is gone)
                    pass
            if refs:  # a cancelled task resolves once its worker is gone (its locks released)
                try:
                    ray.wait(list(refs), num_returns=len(refs), timeout=STOP_SECONDS)
                except Exception:  # noqa: BLE001
                    pass


def _text(t: Task, res: Any) -> tuple[Task, str | None, BaseException | None]:
    """What an executor yields for a finished task: its text, or an error when it returned anything else."""
    if isinstance(res, str):
        return t, res, None
    return t, None, TypeError(f"task {t.index} returned {type(res).__name__}, not JSON text")


CONNECT_SECONDS = 5.0  # a cluster address that does not accept a TCP connection in this time is refused
_ADDRESS = re.compile(r"(?:ray://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253}):([0-9]{1,5})")


def check_ray_address(address: str) -> None:
    """Refuse a Ray address that is not ``auto`` or ``[ray://]HOST:PORT``, or that accepts no TCP
    connection within ``CONNECT_SECONDS`` (``ray.init`` would otherwise wait minutes).

    Raises:
        UsageError: the address and why.
    """
    if address == "auto":
        return
    m = _ADDRESS.fullmatch(address)
    if m is None or not 0 < int(m.group(2)) < 65536:
        raise UsageError(f"--executor ray={address!r}: not an address; use ray=auto, ray=HOST:PORT or "
                         "ray=ray://HOST:PORT")
    host = m.group(1).strip("[]")
    try:
        socket.create_connection((host, int(m.group(2))), timeout=CONNECT_SECONDS).close()
    except OSError as err:
        raise UsageError(f"--executor ray={address}: cannot connect to {host}:{m.group(2)} within "
                         f"{CONNECT_SECONDS:.0f} s ({err.strerror or err})") from err


def make_executor(spec: str, workers: int = 1) -> LocalExecutor | RayExecutor:
    """``local`` or ``ray`` / ``ray=ADDRESS`` (the --executor value)."""
    kind, _, address = spec.partition("=")
    if kind == "local" and not address:
        return LocalExecutor(workers)
    if kind == "ray":
        if address:
            check_ray_address(address)
        return RayExecutor(address or None)
    raise UsageError(f"unknown --executor {spec!r}: use local, ray or ray=ADDRESS")
