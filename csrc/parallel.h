// Minimal static-partition parallel loop over std::thread, plus the process-wide
// default thread count (set_threads; 0 = hardware concurrency).
#pragma once
#if defined(__linux__)
#include <sched.h>
#endif
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <system_error>
#include <thread>
#include <vector>

namespace aprqa {

inline std::atomic<int>& default_threads_ref() {
    static std::atomic<int> n{0};
    return n;
}
inline int hardware_threads() {
    unsigned h = std::thread::hardware_concurrency();
    return h ? (int)h : 1;
}
// CPUs this process may run on (its affinity mask, e.g. under taskset or a cgroup cpuset).
inline int usable_cpus() {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        const int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
#endif
    return hardware_threads();
}
// Resolve a requested count: <= 0 means the default (set_threads, else all cores).
inline int resolve_threads(int requested) {
    if (requested > 0) return requested;
    int d = default_threads_ref().load();
    return d > 0 ? d : hardware_threads();
}

// Calls fn(t, begin, end) for nthreads contiguous slices of [0, n); slice t runs
// on thread t (slice 0 on the caller). Deterministic partition.
template <typename Fn>
void parallel_slices(size_t n, int nthreads, Fn&& fn) {
    if (nthreads < 1) nthreads = 1;
    if ((size_t)nthreads > n) nthreads = n ? (int)n : 1;
    if (nthreads == 1) {
        fn(0, (size_t)0, n);
        return;
    }
    std::vector<std::thread> pool;
    pool.reserve(nthreads - 1);
    auto lo = [&](int t) { return n * (size_t)t / (size_t)nthreads; };
    int started = 1;
    try {
        for (; started < nthreads; ++started) pool.emplace_back([&, t = started] { fn(t, lo(t), lo(t + 1)); });
    } catch (const std::system_error&) {
        // A thread that cannot start (resource limits) must not terminate the process:
        // the caller runs the slices that did not get a thread.
    }
    for (int t = started; t < nthreads; ++t) fn(t, lo(t), lo(t + 1));
    fn(0, lo(0), lo(1));
    for (auto& th : pool) th.join();
}

}  // namespace aprqa
