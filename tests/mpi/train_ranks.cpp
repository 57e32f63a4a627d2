// Test program for data-parallel training over MPI (tests/mpi/run.cmake runs it): trains a
// small network with batch normalisation, dropout and augmentation on a synthetic data set,
// in 6 gradient shards, as one rank of `mpirun -np N`, and rank 0 saves the model; with
// --alone, as one process without MPI. The model files of 1, 2 and 3 ranks and of --alone
// must be the same bytes. --hang R makes rank R stop answering, --die R makes it exit at
// once: the other ranks must stop with an error, not wait forever.
//   train_ranks MODEL [--alone] [--hang R | --die R] [--timeout MS]
#include <cnn/cnn.hpp>
#include <cnn/mpi.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

#include "../bars.hpp"

namespace {

int run(int argc, char** argv, std::optional<cnn::MpiSession>& session) {
    if (argc < 2) {
        std::cerr << "usage: train_ranks MODEL [--alone] [--hang R | --die R] [--timeout MS]\n";
        return 2;
    }
    const std::string model = argv[1];
    bool alone = false;
    std::optional<std::size_t> hang, die;
    long timeout_ms = 60000;
    for (int i = 2; i < argc; ++i) {
        const std::string flag = argv[i];
        if (flag == "--alone") {
            alone = true;
        } else if ((flag == "--hang" || flag == "--die" || flag == "--timeout") && i + 1 < argc) {
            const long value = std::stol(argv[++i]);
            if (flag == "--hang") hang = static_cast<std::size_t>(value);
            if (flag == "--die") die = static_cast<std::size_t>(value);
            if (flag == "--timeout") timeout_ms = value;
        } else {
            std::cerr << "train_ranks: unknown argument " << flag << "\n";
            return 2;
        }
    }

    std::optional<cnn::MpiCommunicator> world;
    if (!alone) {
        session.emplace(argc, argv);
        world.emplace(MPI_COMM_WORLD, std::chrono::milliseconds(timeout_ms));
        if (hang == world->rank()) std::this_thread::sleep_for(std::chrono::hours(1));
        if (die == world->rank()) std::_Exit(3);
    }
    cnn::set_threads(1);
    const cnn::Dataset train = cnn::test::make_bars(230, 41);
    auto net = cnn::Sequential{cnn::Conv2D<float>{1, 4, 3, {.padding = 1, .bias = false}},
                               cnn::BatchNorm2D<float>{4},
                               cnn::ReLU<float>{},
                               cnn::MaxPool<float>{2},
                               cnn::Flatten<float>{},
                               cnn::Dense<float>{64, 16},
                               cnn::ReLU<float>{},
                               cnn::Dropout<float>{0.2},
                               cnn::Dense<float>{16, 4}};
    cnn::Random rng{77};
    net.initialize(rng);
    cnn::SGD<float> sgd{{.learning_rate = 0.05, .momentum = 0.9, .nesterov = true, .weight_decay = 1e-4}};
    cnn::FitOptions options;
    options.epochs = 3;
    options.batch_size = 24;
    options.gradient_shards = 6;
    options.communicator = world ? &*world : nullptr;
    options.normalization = {0.2, 0.3};
    options.augmentation = {.crop_padding = 1, .horizontal_flip = true};
    options.validation_fraction = 0.1;
    const auto history = cnn::fit(net, sgd, train, rng, options);
    if (!world || world->rank() == 0) {
        cnn::save_model(net, model);
        std::cout << "validation accuracy " << history.epochs.back().validation->accuracy << "\n";
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::optional<cnn::MpiSession> session;  // outlives run(), so that an error can end the job
    try {
        return run(argc, argv, session);
    } catch (const std::exception& e) {
        std::cerr << "train_ranks: " << e.what() << std::endl;
        if (session) cnn::MpiSession::abort(1);
        return 1;
    }
}
