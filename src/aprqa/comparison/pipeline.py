"""Tensor pairs judged concurrently: the core releases the GIL in every kernel, so worker
threads overlap one tensor's decoding and diff with another's diagnosis.

Jobs are started biggest first (longest-processing-time order, so one large tensor does not
finish alone at the end); results come back in job order. Each worker's kernels get an equal
share of the thread budget, so the machine is never oversubscribed.
"""

from __future__ import annotations

import threading
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
    thread as each job finishes. An exception from ``fn`` is raised here once the running jobs end
    (no new job starts after it). Plain threads: concurrent.futures costs more to import than the
    pool does to run."""
    results: list[R | None] = [None] * len(jobs)
    if workers <= 1 or len(jobs) <= 1:
        for i, j in enumerate(jobs):
            results[i] = fn(j)
            if on_done is not None:
                on_done(i, results[i])  # type: ignore[arg-type]
        return results  # type: ignore[return-value]
    order = sorted(range(len(jobs)), key=lambda i: -weight(jobs[i]))
    cond = threading.Condition()
    finished: list[tuple[int, R | None, BaseException | None]] = []
    state = {"next": 0, "stop": False}

    def worker() -> None:
        while True:
            with cond:
                if state["stop"] or state["next"] >= len(order):
                    return
                i = order[state["next"]]
                state["next"] += 1
            try:
                item: tuple[int, R | None, BaseException | None] = (i, fn(jobs[i]), None)
            except BaseException as err:  # handed to the calling thread, raised there
                item = (i, None, err)
            with cond:
                finished.append(item)
                cond.notify()

    threads = [threading.Thread(target=worker, name=f"aprqa-compare-{k}", daemon=True)
               for k in range(min(workers, len(jobs)))]
    for t in threads:
        t.start()
    try:
        remaining = len(jobs)
        while remaining:
            with cond:
                while not finished:
                    cond.wait()
                batch = finished[:]
                finished.clear()
            for i, r, err in batch:
                remaining -= 1
                if err is not None:
                    raise err
                results[i] = r
                if on_done is not None:
                    on_done(i, r)  # type: ignore[arg-type]
    except BaseException:
        with cond:
            state["stop"] = True
        raise
    finally:
        for t in threads:
            t.join()
    return results  # type: ignore[return-value]
