// The thread pool the kernels share: every task runs once, each thread starts on its
// own share of the tasks and takes what is left of the others' from their ends, a
// task's exception reaches the caller, and a pool whose workers fell asleep wakes up.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "cnn/kernels/threads.hpp"

namespace {

// Waits until `done` holds, at most 20 seconds, so that a broken pool fails the test
// instead of hanging it.
template <class Done>
bool wait_for(const Done& done) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!done())
        if (std::chrono::steady_clock::now() > give_up) return false;
    return true;
}

}  // namespace

TEST_CASE("The pool runs every task exactly once, for any count and thread count", "[threads]") {
    for (std::size_t threads : {1, 2, 3, 5}) {
        cnn::ThreadPool pool(threads);
        REQUIRE(pool.size() == threads);
        for (std::size_t count : {0, 1, 2, 3, 4, 7, 16, 100, 1001}) {
            std::vector<std::atomic<int>> runs(count);
            std::vector<std::atomic<int>> by_worker(threads);
            pool.parallel_for(count, [&](std::size_t task, std::size_t worker) {
                ++runs[task];
                ++by_worker[worker];
            });
            INFO(threads << " threads, " << count << " tasks");
            CHECK(std::all_of(runs.begin(), runs.end(), [](const std::atomic<int>& r) { return r == 1; }));
            int total = 0;
            for (const auto& n : by_worker) total += n;
            CHECK(total == static_cast<int>(count));
        }
    }
}

TEST_CASE("Each thread starts on its own share and takes the rest of a stalled share from its end", "[threads]") {
    // Two threads, eight tasks: the caller's share is 0-3, the worker's 4-7. Task 0 (the
    // caller's first) stalls until every other task has run, so the worker runs its own
    // share front to back and then the caller's remaining tasks from the end: 4 5 6 7 3 2 1.
    cnn::ThreadPool pool(2);
    std::mutex mutex;
    std::vector<std::size_t> order;
    std::atomic<int> others{0};
    bool waited = true;
    pool.parallel_for(8, [&](std::size_t task, std::size_t) {
        if (task == 0) {
            waited = wait_for([&] { return others == 7; });
            return;
        }
        {
            std::lock_guard lock(mutex);
            order.push_back(task);
        }
        ++others;
    });
    REQUIRE(waited);
    CHECK(order == std::vector<std::size_t>{4, 5, 6, 7, 3, 2, 1});
}

TEST_CASE("A task's exception reaches the caller and the pool keeps working", "[threads]") {
    cnn::ThreadPool pool(3);
    std::atomic<int> runs{0};
    const auto throwing = [&](std::size_t task, std::size_t) {
        ++runs;
        if (task == 5) throw std::runtime_error("task 5 failed");
    };
    CHECK_THROWS_WITH(pool.parallel_for(40, throwing), "task 5 failed");
    CHECK(runs >= 1);
    CHECK(runs <= 40);
    std::vector<std::atomic<int>> after(64);
    pool.parallel_for(after.size(), [&](std::size_t task, std::size_t) { ++after[task]; });
    CHECK(std::all_of(after.begin(), after.end(), [](const std::atomic<int>& r) { return r == 1; }));
}

TEST_CASE("A job from inside a task runs on the calling thread", "[threads]") {
    cnn::ThreadPool pool(2);
    std::atomic<int> inner{0}, wrong_worker{0};
    pool.parallel_for(4, [&](std::size_t, std::size_t) {
        pool.parallel_for(3, [&](std::size_t, std::size_t inner_worker) {
            ++inner;
            if (inner_worker != 0) ++wrong_worker;
        });
    });
    CHECK(inner == 12);
    CHECK(wrong_worker == 0);
}

TEST_CASE("Workers that went to sleep take part in the next job", "[threads]") {
    cnn::ThreadPool pool(2);
    for (int round = 0; round < 3; ++round) {
        // Longer than a worker spins: it sleeps now, and must be woken for the job.
        std::this_thread::sleep_for(cnn::ThreadPool::spin_time * 5);
        std::atomic<bool> worker_ran{false};
        std::atomic<int> runs{0};
        bool waited = true;
        // Task 0 (the caller's) waits for the worker to run a task of its own share.
        pool.parallel_for(2, [&](std::size_t task, std::size_t worker) {
            ++runs;
            if (worker == 1) worker_ran = true;
            if (task == 0) waited = wait_for([&] { return worker_ran.load(); });
        });
        REQUIRE(waited);
        CHECK(runs == 2);
    }
}
