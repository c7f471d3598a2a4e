// A persistent worker pool for the matmul kernels. A decode step makes ~170 matmul calls a few
// tens of microseconds apart; waking a sleeping thread per call costs about as much as a small
// matvec (a futex wake, and in a VM an inter-processor interrupt), so:
//  - after a job a worker spins on the job counter for a short window (kSpinNs) before it sleeps
//    on a condition variable: back-to-back matmuls find it awake. Only workers that took part in
//    the last job and fit on the CPUs this process may use (with the caller) spin; the others
//    sleep at once, so an oversubscribed pool never spins.
//  - work is handed out by the caller's atomic counter, and the caller never waits for a worker
//    that has not joined the job: it runs whatever no one else took, closes the job, and waits
//    only for workers inside it (each at most one work item from done). A worker descheduled by
//    other load delays nothing but the item it holds.
// Results never depend on which thread ran an item.
#pragma once
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "parallel.h"

namespace aprqa {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

class VecdotPool {
  public:
    // How long an idle worker polls for the next job before it sleeps: longer than the gaps
    // between the matmuls of one forward step (p99 ~0.3 ms measured on the Qwen2.5-0.5B shape).
    static constexpr int64_t kSpinNs = 1000000;
    static constexpr int kPauseSpins = 1024;  // ~10 us of pause instructions before yielding

    // Runs fn(worker) on up to `n` threads (the caller is worker 0) and returns when every
    // thread that entered fn has left it.
    void run(int n, const std::function<void(int)>& fn) {
        std::lock_guard<std::mutex> one_job(job_mu_);
        grow(n - 1);
        const int helpers = std::min<int>(n - 1, (int)workers_.size());
        fn_ = &fn;
        want_.store(helpers, std::memory_order_relaxed);
        const uint64_t g = gen_.load(std::memory_order_relaxed) + 1;
        open_.store(g);  // seq_cst: a worker that reads open_ == g also sees fn_
        gen_.store(g);
        if (sleepers_.load() > 0) {
            std::lock_guard<std::mutex> lk(mu_);
            cv_.notify_all();
        }
        fn(0);
        // Close the job, then wait for the workers inside it. Dekker pair with the worker's
        // active_++ / open_ check (both seq_cst): either it sees the job closed and never calls
        // fn, or this load sees it active.
        open_.store(0);
        for (int i = 0; active_.load() != 0; ++i) {
            if (i < 4096) cpu_relax();
            else std::this_thread::yield();  // a worker was descheduled mid-item
        }
        fn_ = nullptr;
    }

  private:
    void grow(int k) {
        while ((int)workers_.size() < k) {
            try {
                const int id = (int)workers_.size() + 1;
                const uint64_t start = gen_.load();
                workers_.emplace_back([this, id, start] { loop(id, start); });
            } catch (const std::system_error&) {
                return;  // resource limits: run with the workers we have
            }
        }
    }
    // The next job number after `seen`: polled for kSpinNs when spinning is allowed, then slept for.
    uint64_t next_job(uint64_t seen, bool spin) {
        uint64_t g;
        if (spin) {
            // pause-spin first; then yield between polls, so that on a loaded machine the
            // threads that have work (ours or another process's) get this CPU
            auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(kSpinNs);
            for (int i = 1;; ++i) {
                if ((g = gen_.load(std::memory_order_acquire)) != seen) return g;
                if (i < kPauseSpins) {
                    cpu_relax();
                    continue;
                }
                std::this_thread::yield();
                if (std::chrono::steady_clock::now() > deadline) break;
            }
        }
        std::unique_lock<std::mutex> lk(mu_);
        sleepers_.fetch_add(1);  // seq_cst, before the check: run() either sees it or we see its job
        while ((g = gen_.load()) == seen) cv_.wait(lk);
        sleepers_.fetch_sub(1);
        return g;
    }
    void loop(int id, uint64_t seen) {
        bool spin = false;
        for (;;) {
            const uint64_t g = next_job(seen, spin);
            seen = g;
            spin = id <= want_.load(std::memory_order_relaxed) && id < cpus_;
            if (id > want_.load(std::memory_order_relaxed)) continue;
            active_.fetch_add(1);
            if (open_.load() == g) (*fn_)(id);
            active_.fetch_sub(1);
        }
    }

    std::mutex job_mu_, mu_;
    std::condition_variable cv_;
    std::vector<std::thread> workers_;
    const std::function<void(int)>* fn_ = nullptr;
    std::atomic<uint64_t> gen_{0}, open_{0};
    std::atomic<int> want_{0}, active_{0}, sleepers_{0};
    const int cpus_ = usable_cpus();
};

// The process's pool; a forked child (multiprocessing, Ray) gets a fresh one (the parent's
// workers do not exist there). Pools are never destroyed: their workers sleep until exit.
inline void run_parallel(int threads, int64_t items, const std::function<void(int)>& fn) {
    int n = resolve_threads(threads);
    if ((int64_t)n > items) n = (int)(items > 0 ? items : 1);
    if (n <= 1) {
        fn(0);
        return;
    }
    static std::mutex mu;
    static VecdotPool* pool = nullptr;
    static pid_t owner = 0;
    VecdotPool* p;
    {
        std::lock_guard<std::mutex> lk(mu);
        if (!pool || owner != getpid()) {
            pool = new VecdotPool();
            owner = getpid();
        }
        p = pool;
    }
    p->run(n, fn);
}

}  // namespace aprqa
