// A small persistent thread pool. The kernels split work into pieces whose
// results do not depend on which thread computes them, so the thread count
// changes speed, never the numbers.
//
//   cnn::set_threads(n)   threads the kernels use from now on (default 1)
//   cnn::threads()        the current count
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

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
        for (std::size_t i = 1; i < threads; ++i) workers_.emplace_back([this, i] { work(i); });
    }

    /// Calls task(i, worker) for every i in [0, count), spread over the pool; returns when all
    /// are done. `worker` (below size()) names the thread running the task, so a task may use
    /// scratch memory of its own worker without locking. The first exception a task throws is rethrown here. A call made while the pool is busy
    /// (from another thread, or from inside a task) runs on the calling thread alone.
    void parallel_for(std::size_t count, TaskRef task) {
        if (count == 0) return;
        if (workers_.empty() || count == 1 || busy_.exchange(true)) {
            for (std::size_t i = 0; i < count; ++i) task(i, 0);
            return;
        }
        struct Release {
            std::atomic<bool>& flag;
            ~Release() { flag = false; }
        } release{busy_};
        std::unique_lock lock(mutex_);
        task_ = &task;
        count_ = count;
        next_ = 0;
        pending_ = workers_.size();
        error_ = nullptr;
        ++generation_;
        lock.unlock();
        wake_.notify_all();
        run_tasks(0);
        lock.lock();
        done_.wait(lock, [this] { return pending_ == 0; });
        task_ = nullptr;
        if (error_) std::rethrow_exception(error_);
    }

private:
    void run_tasks(std::size_t worker) {
        for (;;) {
            std::size_t index;
            {
                std::lock_guard lock(mutex_);
                if (next_ >= count_) return;
                index = next_++;
            }
            try {
                (*task_)(index, worker);
            } catch (...) {
                std::lock_guard lock(mutex_);
                if (!error_) error_ = std::current_exception();
                next_ = count_;
            }
        }
    }

    void work(std::size_t worker) {
        std::size_t seen = 0;
        for (;;) {
            {
                std::unique_lock lock(mutex_);
                wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
                if (stopping_) return;
                seen = generation_;
            }
            run_tasks(worker);
            {
                std::lock_guard lock(mutex_);
                --pending_;
            }
            done_.notify_one();
        }
    }

    void stop_workers() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        for (std::thread& worker : workers_) worker.join();
        workers_.clear();
    }

    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable wake_, done_;
    const TaskRef* task_ = nullptr;
    std::size_t count_ = 0, next_ = 0, pending_ = 0, generation_ = 0;
    bool stopping_ = false;
    std::atomic<bool> busy_{false};
    std::exception_ptr error_;
};

/// The pool the kernels use.
inline ThreadPool& thread_pool() {
    static ThreadPool pool;
    return pool;
}

inline void set_threads(std::size_t threads) { thread_pool().resize(threads); }
inline std::size_t threads() { return thread_pool().size(); }

}  // namespace cnn
