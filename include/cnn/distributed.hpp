// Data-parallel training across processes: the small interface fit talks to when several
// processes train one model, and two implementations that need nothing but the standard
// library. The MPI one (include/cnn/mpi.hpp, CMake target cnn::mpi) is the one for real
// clusters; the core library never depends on MPI.
//
//   Communicator     rank(), size(), send and receive bytes between two ranks, broadcast
//                    bytes from one rank to all, barrier. Every call may throw
//                    cnn::communication_error, e.g. when a rank has died or hangs past the
//                    communicator's timeout: then every process stops with an error
//                    instead of waiting forever.
//   SingleProcess    rank 0 of 1: what fit uses without a communicator.
//   InProcessGroup   n communicators joined in memory, one per thread: the same protocol
//                    without processes, for tests and for trying a distributed setting.
//
// How fit uses it (FitOptions::communicator, FitOptions::gradient_shards): each global batch
// is cut into S shards; rank r of p computes the gradients of shards r S / p to
// (r + 1) S / p - 1, one shard at a time; the shards' gradients are summed in shard order,
// g0 + g1 + g2 + ..., by passing the running sum along the ranks (rank 0 adds its shards,
// sends to rank 1, which adds its own, ...), and the last rank broadcasts the total. Every
// addition happens in the same order whatever p is, so the trained model is the same to the
// bit for 1, 2 or S processes (MPI's own reductions fix no order, which is why fit does not
// use them).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "cnn/error.hpp"
#include "cnn/tensor.hpp"

namespace cnn {

/// A failure between processes: a rank that died, hung past the timeout, or sent what was not
/// expected. The message names the ranks.
struct communication_error : error {
    using error::error;
};

/// The interface between fit and the processes that train one model together.
class Communicator {
public:
    virtual ~Communicator() = default;
    /// This process's rank, 0 to size() - 1.
    [[nodiscard]] virtual std::size_t rank() const noexcept = 0;
    /// The number of processes.
    [[nodiscard]] virtual std::size_t size() const noexcept = 0;
    /// Sends `bytes` to rank `to`; it returns when `bytes` may be reused.
    virtual void send(std::span<const std::byte> bytes, std::size_t to) = 0;
    /// Receives exactly bytes.size() bytes from rank `from`, which sent that many.
    virtual void receive(std::span<std::byte> bytes, std::size_t from) = 0;
    /// Rank `root`'s bytes, on every rank (the same size everywhere).
    virtual void broadcast(std::span<std::byte> bytes, std::size_t root) = 0;
    /// Returns when every rank has called it.
    virtual void barrier() = 0;
};

/// One process alone: rank 0 of 1. There is no one to send to.
class SingleProcess final : public Communicator {
public:
    [[nodiscard]] std::size_t rank() const noexcept override { return 0; }
    [[nodiscard]] std::size_t size() const noexcept override { return 1; }
    void send(std::span<const std::byte>, std::size_t to) override {
        throw communication_error("SingleProcess: no rank " + std::to_string(to) + " to send to");
    }
    void receive(std::span<std::byte>, std::size_t from) override {
        throw communication_error("SingleProcess: no rank " + std::to_string(from) + " to receive from");
    }
    void broadcast(std::span<std::byte>, std::size_t root) override {
        if (root != 0) throw communication_error("SingleProcess: no rank " + std::to_string(root) + " to broadcast from");
    }
    void barrier() override {}
};

/// `size` communicators in one process, joined by queues in memory; communicator r is used
/// from one thread. A receive that waits longer than `timeout` throws, naming both ranks;
/// so does one whose partner has been closed (its thread ended, e.g. by an exception).
class InProcessGroup {
public:
    static std::vector<std::unique_ptr<Communicator>> make(std::size_t size,
                                                           std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
        if (size == 0) throw parameter_error("InProcessGroup: a group needs at least one rank");
        auto shared = std::make_shared<Shared>(size, timeout);
        std::vector<std::unique_ptr<Communicator>> group;
        for (std::size_t r = 0; r < size; ++r) group.push_back(std::make_unique<Member>(shared, r));
        return group;
    }

private:
    struct Shared {
        Shared(std::size_t n, std::chrono::milliseconds t) : size(n), timeout(t), queues(n * n), closed(n, false) {}
        std::size_t size;
        std::chrono::milliseconds timeout;
        std::mutex mutex;
        std::condition_variable changed;
        std::vector<std::deque<std::vector<std::byte>>> queues;  ///< [from * size + to]
        std::vector<bool> closed;
        std::size_t barrier_count = 0, barrier_generation = 0;
    };

    class Member final : public Communicator {
    public:
        Member(std::shared_ptr<Shared> shared, std::size_t rank) : shared_(std::move(shared)), rank_(rank) {}
        ~Member() override {
            const std::lock_guard lock(shared_->mutex);
            shared_->closed[rank_] = true;
            shared_->changed.notify_all();
        }
        Member(const Member&) = delete;
        Member& operator=(const Member&) = delete;

        [[nodiscard]] std::size_t rank() const noexcept override { return rank_; }
        [[nodiscard]] std::size_t size() const noexcept override { return shared_->size; }

        void send(std::span<const std::byte> bytes, std::size_t to) override {
            check_rank(to, "send to");
            const std::lock_guard lock(shared_->mutex);
            shared_->queues[rank_ * shared_->size + to].emplace_back(bytes.begin(), bytes.end());
            shared_->changed.notify_all();
        }
        void receive(std::span<std::byte> bytes, std::size_t from) override {
            check_rank(from, "receive from");
            std::unique_lock lock(shared_->mutex);
            auto& queue = shared_->queues[from * shared_->size + rank_];
            const bool arrived = shared_->changed.wait_for(lock, shared_->timeout, [&] {
                return !queue.empty() || shared_->closed[from];
            });
            if (queue.empty())
                throw communication_error("rank " + std::to_string(rank_) + ": " +
                                          (arrived ? "rank " + std::to_string(from) + " stopped before sending"
                                                   : "nothing from rank " + std::to_string(from) + " within " +
                                                         std::to_string(shared_->timeout.count()) + " ms"));
            if (queue.front().size() != bytes.size())
                throw communication_error("rank " + std::to_string(rank_) + ": rank " + std::to_string(from) +
                                          " sent " + std::to_string(queue.front().size()) + " bytes, " +
                                          std::to_string(bytes.size()) + " expected");
            std::memcpy(bytes.data(), queue.front().data(), bytes.size());
            queue.pop_front();
        }
        void broadcast(std::span<std::byte> bytes, std::size_t root) override {
            if (root >= shared_->size)
                throw communication_error("rank " + std::to_string(rank_) + ": cannot broadcast from rank " +
                                          std::to_string(root) + " of a group of " + std::to_string(shared_->size));
            if (rank_ == root) {
                for (std::size_t r = 0; r < shared_->size; ++r)
                    if (r != root) send(bytes, r);
            } else {
                receive(bytes, root);
            }
        }
        void barrier() override {
            std::unique_lock lock(shared_->mutex);
            const std::size_t generation = shared_->barrier_generation;
            if (++shared_->barrier_count == shared_->size) {
                shared_->barrier_count = 0;
                ++shared_->barrier_generation;
                shared_->changed.notify_all();
                return;
            }
            if (!shared_->changed.wait_for(lock, shared_->timeout,
                                           [&] { return shared_->barrier_generation != generation; }))
                throw communication_error("rank " + std::to_string(rank_) + ": not every rank reached the barrier within " +
                                          std::to_string(shared_->timeout.count()) + " ms");
        }

    private:
        void check_rank(std::size_t other, const char* what) const {
            if (other >= shared_->size || other == rank_)
                throw communication_error("rank " + std::to_string(rank_) + ": cannot " + what + " rank " +
                                          std::to_string(other) + " of a group of " + std::to_string(shared_->size));
        }
        std::shared_ptr<Shared> shared_;
        std::size_t rank_;
    };
};

/// Sums `values` over the ranks, element by element, in rank order ((v0 + v1) + v2) + ...:
/// the same bits on every rank (the running sum travels from rank 0 to the last, which
/// broadcasts it). Every rank calls it with the same number of values.
template <Scalar T>
void sum_in_rank_order(Communicator& communicator, std::span<T> values) {
    const std::size_t rank = communicator.rank(), size = communicator.size();
    if (size == 1) return;
    const std::span<std::byte> bytes = std::as_writable_bytes(values);
    if (rank > 0) {
        std::vector<T> before(values.size());
        communicator.receive(std::as_writable_bytes(std::span{before}), rank - 1);
        for (std::size_t i = 0; i < values.size(); ++i) values[i] = before[i] + values[i];
    }
    if (rank + 1 < size) communicator.send(bytes, rank + 1);
    communicator.broadcast(bytes, size - 1);
}

}  // namespace cnn
