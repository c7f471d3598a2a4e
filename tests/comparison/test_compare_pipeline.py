"""comparison/pipeline.py: jobs on worker threads, results in job order, callbacks in the caller's
thread, a job's exception raised in the caller after the running jobs end."""

from __future__ import annotations

import threading
import time

import pytest

from aprqa.comparison.pipeline import plan, run_ordered


@pytest.mark.parametrize("workers", [1, 3])
def test_results_in_job_order_and_callbacks_in_the_calling_thread(workers):
    jobs = list(range(20))
    ran_on, called_on = set(), set()

    def fn(j: int) -> int:
        ran_on.add(threading.get_ident())
        time.sleep(0.001 * (j % 3))
        return j * j

    seen = []
    out = run_ordered(jobs, fn, workers=workers, weight=lambda j: j % 7,
                      on_done=lambda i, r: (called_on.add(threading.get_ident()), seen.append((i, r))))
    assert out == [j * j for j in jobs]
    assert sorted(seen) == [(j, j * j) for j in jobs]
    assert called_on == {threading.get_ident()}
    if workers > 1:
        assert threading.get_ident() not in ran_on


def test_an_exception_stops_new_jobs_and_reaches_the_caller():
    started = []

    def fn(j: int) -> int:
        started.append(j)
        if j == 0:
            raise ValueError("job 0 failed")
        time.sleep(0.01)
        return j

    with pytest.raises(ValueError, match="job 0 failed"):
        run_ordered(list(range(50)), fn, workers=2, weight=lambda j: -j)  # job 0 starts first
    assert len(started) < 50
    assert not [t for t in threading.enumerate() if t.name.startswith("aprqa-compare-")]


def test_plan_splits_the_thread_budget():
    assert plan(1, 10) == (1, 1)
    assert plan(2, 10) == (2, 1)
    assert plan(16, 10) == (4, 4)
    assert plan(8, 1) == (1, 8)
