// A persistent worker pool for the matmul kernels. A forward pass makes ~200 matmul calls per
// decoded token; starting threads per call (parallel.h) would cost more than a small matvec.
// Workers sleep on a condition variable between jobs (no spinning: the cores may be shared).
// Work is handed out by the caller's atomic counter, so a descheduled worker only delays the
// items it already took, and results never depend on which thread ran an item.
#pragma once
#include <unistd.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "parallel.h"

namespace aprqa {

class VecdotPool {
  public:
    // Runs fn(worker) on `n` threads (the caller is worker 0) and returns when all are done.
    void run(int n, const std::function<void(int)>& fn) {
        std::lock_guard<std::mutex> one_job(job_mu_);
        grow(n - 1);
        const int helpers = std::min<int>(n - 1, (int)workers_.size());
        {
            std::lock_guard<std::mutex> lk(mu_);
            fn_ = &fn;
            want_ = helpers;
            pending_ = helpers;
            ++gen_;
        }
        cv_.notify_all();
        fn(0);
        std::unique_lock<std::mutex> lk(mu_);
        done_cv_.wait(lk, [&] { return pending_ == 0; });
        fn_ = nullptr;
    }

  private:
    void grow(int k) {
        while ((int)workers_.size() < k) {
            try {
                const int id = (int)workers_.size() + 1;
                workers_.emplace_back([this, id] { loop(id); });
            } catch (const std::system_error&) {
                return;  // resource limits: run with the workers we have
            }
        }
    }
    void loop(int id) {
        uint64_t seen = 0;
        for (;;) {
            const std::function<void(int)>* fn;
            {
                std::unique_lock<std::mutex> lk(mu_);
                cv_.wait(lk, [&] { return gen_ != seen; });
                seen = gen_;
                if (id > want_) continue;
                fn = fn_;
            }
            (*fn)(id);
            std::lock_guard<std::mutex> lk(mu_);
            if (--pending_ == 0) done_cv_.notify_one();
        }
    }

    std::mutex job_mu_, mu_;
    std::condition_variable cv_, done_cv_;
    std::vector<std::thread> workers_;
    const std::function<void(int)>* fn_ = nullptr;
    int want_ = 0, pending_ = 0;
    uint64_t gen_ = 0;
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
