"""Tensor pairs judged concurrently: the core releases the GIL in every kernel, so worker
threads overlap one tensor's decoding and diff with another's diagnosis.

Jobs are started biggest first (longest-processing-time order, so one large tensor does not
finish alone at the end); results come back in job order. Each worker's kernels get an equal
share of the thread budget, so the machine is never oversubscribed.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Sequence, TypeVar

from .. import core

J = TypeVar("J")
R = TypeVar("R")

MAX_WORKERS = 4  # beyond this, more threads go to each kernel instead (memory bandwidth, bounded RSS)


def plan(threads: int | None, jobs: int) -> tuple[int, int]:
    """``(workers, kernel threads per worker)`` for a thread budget (None/0 = all cores)."""
    budget = threads or core._core.get_threads()
    workers = max(1, min(budget, MAX_WORKERS, jobs))
    return workers, max(1, budget // workers)


def run_ordered(jobs: Sequence[J], fn: Callable[[J], R], *, workers: int, weight: Callable[[J], int],
                on_done: Callable[[int, R], None] | None = None) -> list[R]:
    """``[fn(j) for j in jobs]`` on ``workers`` threads; ``on_done(i, result)`` runs in the calling
    thread as each job finishes. An exception from ``fn`` is raised here after running jobs end."""
    results: list[R | None] = [None] * len(jobs)
    if workers <= 1:
        for i, j in enumerate(jobs):
            results[i] = fn(j)
            if on_done is not None:
                on_done(i, results[i])  # type: ignore[arg-type]
        return results  # type: ignore[return-value]
    order = sorted(range(len(jobs)), key=lambda i: -weight(jobs[i]))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aprqa-compare") as pool:
        pending: dict[Future, int] = {}
        it = iter(order)
        for i in it:  # keep at most 2 jobs per worker queued: resident memory stays bounded
            pending[pool.submit(fn, jobs[i])] = i
            if len(pending) >= 2 * workers:
                break
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = pending.pop(fut)
                    results[i] = fut.result()
                    if on_done is not None:
                        on_done(i, results[i])  # type: ignore[arg-type]
                    nxt = next(it, None)
                    if nxt is not None:
                        pending[pool.submit(fn, jobs[nxt])] = nxt
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results  # type: ignore[return-value]
