// Data-parallel training over MPI: cnn::MpiCommunicator, a Communicator (distributed.hpp)
// for FitOptions::communicator. Link the CMake target cnn::mpi, which finds MPI with CMake's
// FindMPI (Debian: libopenmpi-dev, openmpi-bin) and defines CNN_WITH_MPI. The core library
// does not need MPI; only a program that includes this header does.
//
//   int main(int argc, char** argv) {
//       cnn::MpiSession session(argc, argv);          // MPI_Init ... MPI_Finalize
//       try {
//           cnn::MpiCommunicator world;               // MPI_COMM_WORLD
//           options.communicator = &world;
//           options.gradient_shards = 4;              // any number of processes up to 4
//           cnn::fit(net, optimizer, train, rng, options);
//           if (world.rank() == 0) cnn::save_model(net, "model.cnn");
//       } catch (const std::exception& e) {
//           std::cerr << e.what() << "\n";
//           cnn::MpiSession::abort(1);                // ends the other ranks too
//       }
//   }
//   mpirun -np 2 ./program
//
// Every wait (for a message, a broadcast, a barrier) has a deadline: a rank that hangs or
// was lost makes the others throw cnn::communication_error naming it, after `timeout`,
// instead of waiting forever; a program that lets the error end it (a non-zero exit) makes
// mpirun stop the rest of the job. A rank that dies makes Open MPI's mpirun end the job.
#pragma once

#if !defined(CNN_WITH_MPI)
#error "cnn/mpi.hpp needs MPI: link the CMake target cnn::mpi (find_package(MPI); Debian: libopenmpi-dev)"
#endif

#include <mpi.h>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstddef>
#include <span>
#include <string>
#include <thread>

#include "cnn/distributed.hpp"

namespace cnn {

/// MPI_Init on construction, MPI_Finalize on destruction (once per program). Asks for
/// MPI_THREAD_FUNNELED: only the thread that made it talks to MPI; the kernels' own threads
/// never do. On an error, report it and call abort(): MPI_Finalize would wait for ranks that
/// may never come, MPI_Abort ends them all.
class MpiSession {
public:
    MpiSession(int& argc, char**& argv) {
        int provided = 0;
        if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            throw communication_error("MPI_Init_thread failed");
    }
    ~MpiSession() { MPI_Finalize(); }
    /// Ends every process of the job with exit status `code`; does not return.
    [[noreturn]] static void abort(int code) {
        MPI_Abort(MPI_COMM_WORLD, code);
        std::_Exit(code);
    }
    MpiSession(const MpiSession&) = delete;
    MpiSession& operator=(const MpiSession&) = delete;
};

/// The ranks of an MPI communicator (MPI_COMM_WORLD by default) as a cnn::Communicator.
class MpiCommunicator final : public Communicator {
public:
    explicit MpiCommunicator(MPI_Comm communicator = MPI_COMM_WORLD,
                             std::chrono::milliseconds timeout = std::chrono::minutes(5))
        : communicator_(communicator), timeout_(timeout) {
        // Errors come back as codes, which become exceptions naming the call.
        check(MPI_Comm_set_errhandler(communicator_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
        int rank = 0, size = 0;
        check(MPI_Comm_rank(communicator_, &rank), "MPI_Comm_rank");
        check(MPI_Comm_size(communicator_, &size), "MPI_Comm_size");
        rank_ = static_cast<std::size_t>(rank);
        size_ = static_cast<std::size_t>(size);
    }

    [[nodiscard]] std::size_t rank() const noexcept override { return rank_; }
    [[nodiscard]] std::size_t size() const noexcept override { return size_; }
    [[nodiscard]] std::chrono::milliseconds timeout() const noexcept { return timeout_; }

    void send(std::span<const std::byte> bytes, std::size_t to) override {
        MPI_Request request{};
        check(MPI_Isend(bytes.data(), count(bytes.size()), MPI_BYTE, static_cast<int>(to), tag, communicator_,
                        &request),
              "MPI_Isend");
        wait(request, "rank " + std::to_string(to) + " did not take a message", true);
    }
    void receive(std::span<std::byte> bytes, std::size_t from) override {
        MPI_Request request{};
        check(MPI_Irecv(bytes.data(), count(bytes.size()), MPI_BYTE, static_cast<int>(from), tag, communicator_,
                        &request),
              "MPI_Irecv");
        MPI_Status status{};
        wait(request, "nothing from rank " + std::to_string(from), true, &status);
        int received = 0;
        MPI_Get_count(&status, MPI_BYTE, &received);
        if (static_cast<std::size_t>(received) != bytes.size())
            throw communication_error("rank " + std::to_string(rank_) + ": rank " + std::to_string(from) + " sent " +
                                      std::to_string(received) + " bytes, " + std::to_string(bytes.size()) +
                                      " expected");
    }
    void broadcast(std::span<std::byte> bytes, std::size_t root) override {
        MPI_Request request{};
        check(MPI_Ibcast(bytes.data(), count(bytes.size()), MPI_BYTE, static_cast<int>(root), communicator_, &request),
              "MPI_Ibcast");
        wait(request, "the broadcast from rank " + std::to_string(root) + " did not complete");
    }
    void barrier() override {
        MPI_Request request{};
        check(MPI_Ibarrier(communicator_, &request), "MPI_Ibarrier");
        wait(request, "not every rank reached the barrier");
    }

private:
    static constexpr int tag = 7031;

    void check(int code, const char* call) const {
        if (code == MPI_SUCCESS) return;
        char text[MPI_MAX_ERROR_STRING] = {};
        int length = 0;
        MPI_Error_string(code, text, &length);
        throw communication_error("rank " + std::to_string(rank_) + ": " + call + " failed: " +
                                  std::string(text, static_cast<std::size_t>(length)));
    }
    int count(std::size_t bytes) const {
        if (bytes > static_cast<std::size_t>(INT_MAX))
            throw communication_error("rank " + std::to_string(rank_) + ": a message of " + std::to_string(bytes) +
                                      " bytes is more than one MPI call carries");
        return static_cast<int>(bytes);
    }
    /// Waits for `request` until the deadline: polls at once for a millisecond, then every 50
    /// microseconds, so that a step's messages are not delayed and an idle wait costs no core.
    /// A send or receive past the deadline is cancelled (a collective cannot be).
    void wait(MPI_Request& request, const std::string& what, bool cancellable = false,
              MPI_Status* status = MPI_STATUS_IGNORE) const {
        const auto started = std::chrono::steady_clock::now();
        for (;;) {
            int done = 0;
            check(MPI_Test(&request, &done, status), "MPI_Test");
            if (done) return;
            const auto waited = std::chrono::steady_clock::now() - started;
            if (waited > timeout_) {
                if (cancellable) {
                    MPI_Cancel(&request);
                    MPI_Request_free(&request);
                }
                throw communication_error("rank " + std::to_string(rank_) + ": " + what + " within " +
                                          std::to_string(timeout_.count()) + " ms");
            }
            if (waited > std::chrono::milliseconds(1)) std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
    }

    MPI_Comm communicator_;
    std::chrono::milliseconds timeout_;
    std::size_t rank_ = 0, size_ = 1;
};

}  // namespace cnn
