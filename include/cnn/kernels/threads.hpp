// A small persistent thread pool. The kernels split work into pieces whose
// results do not depend on which thread computes them, so the thread count
// changes speed, never the numbers.
//
//   cnn::set_threads(n)   threads the kernels use from now on (default 1, at most
//                         cnn::max_threads)
//   cnn::threads()        the current count
//
// A training step hands the pool a few dozen short jobs, so waking a sleeping
// thread for each would cost more than some jobs take: between jobs the workers
// spin for up to a millisecond before they go to sleep. Each job's tasks are
// dealt out in one contiguous share per thread, the same shares every time, so
// that a layer finds the samples it works on in the cache of the core that
// computed them in the layer before; a thread that runs out of work takes tasks
// from the end of another's share.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <string>
#include <vector>

#include "cnn/error.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace cnn {

/// A non-owning reference to a callable taking (task, worker): unlike std::function
/// it never allocates, so handing work to the pool costs no heap traffic.
class TaskRef {
public:
    template <class F>
    TaskRef(const F& f) noexcept  // NOLINT(google-explicit-constructor)
        : object_(&f), call_([](const void* object, std::size_t task, std::size_t worker) {
              (*static_cast<const F*>(object))(task, worker);
          }) {}
    void operator()(std::size_t task, std::size_t worker) const { call_(object_, task, worker); }

private:
    const void* object_;
    void (*call_)(const void*, std::size_t, std::size_t);
};

class ThreadPool {
public:
    /// How long an idle worker spins, waiting for the next job, before it sleeps. Waking a
    /// sleeping thread took 105-145 us at the median (and up to 4.7 ms) on the virtual machine
    /// we measure on, longer than many of a training step's jobs take; within a step a thread
    /// waits far less than this, so it never sleeps there, and a program that stops using the
    /// pool has its core back after a millisecond.
    static constexpr std::chrono::microseconds spin_time{1000};

    explicit ThreadPool(std::size_t threads = 1) { resize(threads); }
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;
    ~ThreadPool() { stop_workers(); }

    [[nodiscard]] std::size_t size() const noexcept { return workers_.size() + 1; }

    /// Uses `threads` threads in all (the caller's included). Not to be called while work runs.
    void resize(std::size_t threads) {
        threads = std::max<std::size_t>(threads, 1);
        if (threads == size()) return;
        stop_workers();
        stopping_ = false;
        // The generation is read here, not in the new thread: a thread that starts late must
        // still see the first job handed out after resize() returns as new.
        const std::size_t seen = generation_.load(std::memory_order_acquire);
        shares_ = std::make_unique<Share[]>(threads);
        for (std::size_t i = 1; i < threads; ++i) workers_.emplace_back([this, i, seen] { work(i, seen); });
    }

    /// Calls task(i, worker) for every i in [0, count), spread over the pool; returns when all
    /// are done. `worker` (below size()) names the thread running the task, so a task may use
    /// scratch memory of its own worker without locking. The first exception a task throws is
    /// rethrown here. A call made while the pool is busy (from another thread, or from inside a
    /// task) runs on the calling thread alone.
    void parallel_for(std::size_t count, TaskRef task) {
        if (count == 0) return;
        if (workers_.empty() || count == 1 || busy_.exchange(true, std::memory_order_acquire)) {
            for (std::size_t i = 0; i < count; ++i) task(i, 0);
            return;
        }
        struct Release {
            std::atomic<bool>& flag;
            ~Release() { flag.store(false, std::memory_order_release); }
        } release{busy_};

        task_ = &task;
        error_ = nullptr;
        // Shares of count / workers tasks, the first count % workers of them one more; the
        // workers are idle, so no lock is needed.
        const std::size_t workers = size(), each = count / workers, extra = count % workers;
        for (std::size_t w = 0, front = 0; w < workers; ++w) {
            shares_[w].front = front;
            front += each + (w < extra ? 1 : 0);
            shares_[w].back = front;
        }
        pending_.store(workers_.size(), std::memory_order_relaxed);
        generation_.fetch_add(1, std::memory_order_release);
        if (sleepers_.load(std::memory_order_acquire) > 0) {
            std::lock_guard lock(mutex_);
            wake_.notify_all();
        }
        run_tasks(0);
        while (pending_.load(std::memory_order_acquire) != 0) pause();
        task_ = nullptr;
        if (error_) std::rethrow_exception(error_);
    }

private:
    static void pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
        _mm_pause();
#else
        std::this_thread::yield();
#endif
    }

    /// Spins until a new job is handed out, the pool stops, or spin_time has passed.
    void spin_while_idle(std::size_t seen) const {
        const auto deadline = std::chrono::steady_clock::now() + spin_time;
        for (;;) {
            for (int i = 0; i < 64; ++i) {
                if (generation_.load(std::memory_order_acquire) != seen || stopping_.load(std::memory_order_acquire))
                    return;
                pause();
            }
            if (std::chrono::steady_clock::now() >= deadline) return;
        }
    }

    /// The tasks [front, back) not yet taken from one worker's share, behind a spin lock
    /// (the owner and a thief rarely meet, and then for a few instructions).
    struct alignas(64) Share {
        std::atomic<bool> locked{false};
        std::size_t front = 0, back = 0;

        void lock() noexcept {
            while (locked.exchange(true, std::memory_order_acquire)) pause();
        }
        void unlock() noexcept { locked.store(false, std::memory_order_release); }
    };

    /// Takes the first task left in worker w's share (from_back: the last); false when none is left.
    bool take(std::size_t w, bool from_back, std::size_t& index) noexcept {
        Share& share = shares_[w];
        const std::lock_guard lock(share);
        if (share.front >= share.back) return false;
        index = from_back ? --share.back : share.front++;
        return true;
    }

    /// Leaves no task to take (after a task threw).
    void drop_tasks() noexcept {
        for (std::size_t w = 0; w < size(); ++w) {
            Share& share = shares_[w];
            const std::lock_guard lock(share);
            share.front = share.back;
        }
    }

    // Each worker runs its own share of the tasks front to back, then takes what is left of
    // the others' shares from their backs. Task i goes to the same worker in every call with
    // the same count as long as no worker falls behind, so data a task leaves in its core's
    // cache is there for the task with the same index in the next call (a layer's samples
    // [first, last) are on the same core as in the layer before); a slower core gives up
    // the end of its share.
    void run_tasks(std::size_t worker) {
        const std::size_t workers = size();
        for (std::size_t k = 0; k < workers; ++k) {
            const std::size_t w = (worker + k) % workers;
            std::size_t index = 0;
            while (take(w, k != 0, index)) {
                try {
                    (*task_)(index, worker);
                } catch (...) {
                    std::lock_guard lock(mutex_);
                    if (!error_) error_ = std::current_exception();
                    drop_tasks();
                }
            }
        }
    }

    void work(std::size_t worker, std::size_t seen) {
        for (;;) {
            spin_while_idle(seen);
            if (generation_.load(std::memory_order_acquire) == seen) {
                std::unique_lock lock(mutex_);
                sleepers_.fetch_add(1, std::memory_order_acq_rel);
                wake_.wait(lock, [&] {
                    return stopping_.load(std::memory_order_acquire) ||
                           generation_.load(std::memory_order_acquire) != seen;
                });
                sleepers_.fetch_sub(1, std::memory_order_acq_rel);
            }
            if (stopping_.load(std::memory_order_acquire)) return;
            seen = generation_.load(std::memory_order_acquire);
            run_tasks(worker);
            pending_.fetch_sub(1, std::memory_order_acq_rel);
        }
    }

    void stop_workers() {
        {
            std::lock_guard lock(mutex_);
            stopping_.store(true, std::memory_order_release);
        }
        wake_.notify_all();
        for (std::thread& worker : workers_) worker.join();
        workers_.clear();
    }

    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable wake_;
    const TaskRef* task_ = nullptr;
    std::unique_ptr<Share[]> shares_ = std::make_unique<Share[]>(1);
    std::atomic<std::size_t> pending_{0}, generation_{0};
    std::atomic<int> sleepers_{0};
    std::atomic<bool> stopping_{false}, busy_{false};
    std::exception_ptr error_;
};

/// The pool the kernels use.
inline ThreadPool& thread_pool() {
    static ThreadPool pool;
    return pool;
}

/// The most threads set_threads takes. Each is a kernel worker; past the hardware's
/// threads they only take turns (1,000 made a 1-second epoch take 98 s), and a count in
/// the hundreds of thousands would exhaust the process table.
inline constexpr std::size_t max_threads = 256;

/// Threads the kernels use from now on, the caller's included (0 counts as 1). Throws
/// cnn::parameter_error above max_threads. Not to be called while a kernel runs.
inline void set_threads(std::size_t threads) {
    if (threads > max_threads)
        throw parameter_error("set_threads: " + std::to_string(threads) + " threads is more than the " +
                              std::to_string(max_threads) + " the library runs");
    thread_pool().resize(threads);
}

/// Calls f(begin, end) for the blocks of `block` elements that cover [0, count), spread
/// over the pool: for element-wise work, whose results never depend on the split.
template <class F>
void parallel_blocks(std::size_t count, std::size_t block, const F& f) {
    thread_pool().parallel_for((count + block - 1) / block, [&](std::size_t task, std::size_t) {
        f(task * block, std::min(count, (task + 1) * block));
    });
}
inline std::size_t threads() { return thread_pool().size(); }

}  // namespace cnn
