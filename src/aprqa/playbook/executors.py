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

import multiprocessing
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from ..errors import UsageError

# apr-qa's SizeCategory::max_workers: models of a class that may run at once.
SIZE_LIMITS = {"tiny": 4, "small": 4, "medium": 2, "large": 1, "xlarge": 1, "huge": 1}
DEFAULT_SIZE = "small"  # a playbook without size_category (apr-qa's serde default is tiny; small is safer)
MAX_RETRIES = 2


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


class LocalExecutor:
    """A process pool (spawned workers: no inherited threads or CUDA state). A worker that dies
    breaks the pool; the unfinished tasks are resubmitted to a fresh pool, each at most
    ``MAX_RETRIES`` times."""

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise UsageError(f"--workers must be ≥ 1, got {workers}")
        self.workers = workers
        self.retries: dict[int, int] = {}

    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, str | None, BaseException | None]]:
        pending = list(tasks)
        limit = min([self.workers] + [SIZE_LIMITS.get(t.size_category or DEFAULT_SIZE, 4) for t in tasks])
        while pending:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max(1, limit), mp_context=ctx) as pool:
                futs: dict[Future, Task] = {pool.submit(t.fn, *t.args): t for t in pending}
                pending = []
                while futs:
                    done, _ = wait(futs, return_when=FIRST_COMPLETED)
                    for f in done:
                        t = futs.pop(f)
                        try:
                            res = f.result()
                        except BrokenProcessPool as err:
                            tries = self.retries.get(t.index, 0) + 1
                            if tries > MAX_RETRIES:
                                yield t, None, err
                                continue
                            self.retries[t.index] = tries
                            print(f"aprqa: a worker died running task {t.index}; retry {tries}/{MAX_RETRIES}",
                                  file=sys.stderr)
                            pending.append(t)
                            continue
                        except Exception as err:  # this model's task failed: the others go on
                            yield t, None, err
                            continue
                        yield _text(t, res)


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
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(resources=size_resources(), log_to_driver=False, include_dashboard=False)
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


def _text(t: Task, res: Any) -> tuple[Task, str | None, BaseException | None]:
    """What an executor yields for a finished task: its text, or an error when it returned anything else."""
    if isinstance(res, str):
        return t, res, None
    return t, None, TypeError(f"task {t.index} returned {type(res).__name__}, not JSON text")


def make_executor(spec: str, workers: int = 1) -> LocalExecutor | RayExecutor:
    """``local`` or ``ray`` / ``ray=ADDRESS`` (the --executor value)."""
    kind, _, address = spec.partition("=")
    if kind == "local" and not address:
        return LocalExecutor(workers)
    if kind == "ray":
        return RayExecutor(address or None)
    raise UsageError(f"unknown --executor {spec!r}: use local, ray or ray=ADDRESS")
