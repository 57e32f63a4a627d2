// Data-parallel training: fit over 1, 2 and 3 ranks (threads joined by an InProcessGroup)
// gives the same model to the bit, with batch normalisation, dropout and augmentation; a
// rank that is gone stops the others with an error in bounded time. tests/mpi/ runs the
// same over Open MPI processes.
#include <cnn/cnn.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <exception>
#include <stdexcept>
#include <thread>

#include "test_support.hpp"

namespace {

/// A network with every layer whose training depends on the batch or on random draws.
auto make_net() {
    using T = float;
    return cnn::Sequential{cnn::Conv2D<T>{1, 4, 3, {.padding = 1, .bias = false}},
                           cnn::BatchNorm2D<T>{4},
                           cnn::ReLU<T>{},
                           cnn::MaxPool<T>{2},
                           cnn::Flatten<T>{},
                           cnn::Dense<T>{64, 16},
                           cnn::ReLU<T>{},
                           cnn::Dropout<T>{0.2},
                           cnn::Dense<T>{16, 4}};
}

struct Run {
    std::vector<std::uint8_t> model;
    cnn::History<float> history;
};

cnn::FitOptions options_for(cnn::Communicator* communicator, std::size_t shards) {
    cnn::FitOptions options;
    options.epochs = 2;
    options.batch_size = 24;
    options.gradient_shards = shards;
    options.communicator = communicator;
    options.normalization = {0.2, 0.3};
    options.augmentation = {.crop_padding = 1, .horizontal_flip = true};
    options.validation_fraction = 0.1;
    return options;
}

/// make_net trained on `train` by one rank; `stop_after` > 0 interrupts rank 0 after that many
/// steps and resumes.
Run train_rank(const cnn::Dataset& train, cnn::Communicator* communicator, std::size_t shards,
               std::size_t stop_after = 0) {
    auto net = make_net();
    cnn::Random rng{77};
    net.initialize(rng);
    cnn::SGD<float> sgd{{.learning_rate = 0.05, .momentum = 0.9, .nesterov = true, .weight_decay = 1e-4}};
    cnn::FitOptions options = options_for(communicator, shards);
    std::size_t steps = 0;
    if (stop_after > 0) options.should_stop = [&] { return ++steps == stop_after; };
    auto history = cnn::fit(net, sgd, train, rng, options);
    if (stop_after > 0) {
        // Not a Catch assertion: this runs in the ranks' threads, and Catch is not thread-safe
        // (ThreadSanitizer saw two threads count passed assertions). train_group rethrows.
        if (!history.interrupted) throw std::runtime_error("rank's fit was not interrupted after " + std::to_string(stop_after) + " steps");
        options.should_stop = {};
        history = cnn::fit(net, sgd, train, rng, options, &*history.resume);
    }
    return {cnn::serialize_model(net), std::move(history)};
}

/// Every rank of an InProcessGroup of `ranks` trains in its own thread; their runs in rank order.
std::vector<Run> train_group(const cnn::Dataset& train, std::size_t ranks, std::size_t shards,
                             std::size_t stop_after = 0) {
    auto group = cnn::InProcessGroup::make(ranks);
    std::vector<Run> runs(ranks);
    std::vector<std::exception_ptr> errors(ranks);
    std::vector<std::thread> threads;
    for (std::size_t r = 0; r < ranks; ++r)
        threads.emplace_back([&, r] {
            try {
                runs[r] = train_rank(train, group[r].get(), shards, stop_after);
            } catch (...) {
                errors[r] = std::current_exception();
            }
        });
    for (auto& thread : threads) thread.join();
    for (const auto& error : errors)
        if (error) std::rethrow_exception(error);
    return runs;
}

}  // namespace

TEST_CASE("fit over 1, 2 and 3 ranks gives the same model to the bit", "[distributed]") {
    const cnn::Dataset train = cnn::test::make_bars(230, 41);  // batches of 24, a last one of 14
    const Run alone = train_rank(train, nullptr, 6);
    for (const std::size_t ranks : {1, 2, 3, 6}) {
        INFO(ranks << " ranks");
        const auto runs = train_group(train, ranks, 6);
        for (const auto& run : runs) CHECK(run.model == alone.model);
        REQUIRE(runs[0].history.epochs.size() == 2);
        CHECK(runs[0].history.epochs[1].train_loss == alone.history.epochs[1].train_loss);
        CHECK(runs[0].history.epochs[1].train_accuracy == alone.history.epochs[1].train_accuracy);
        CHECK(runs.back().history.epochs[1].validation->loss == alone.history.epochs[1].validation->loss);
    }
    // The shards are the arithmetic: another count trains another model...
    CHECK(train_rank(train, nullptr, 3).model != alone.model);
    // ...and one shard on one rank is the fit of one process, bit for bit.
    const auto one = train_group(train, 1, 1);
    CHECK(one[0].model == train_rank(train, nullptr, 1).model);
}

TEST_CASE("An interrupted distributed fit stops on every rank and resumes exactly", "[distributed]") {
    const cnn::Dataset train = cnn::test::make_bars(230, 42);
    const Run whole = train_rank(train, nullptr, 4);
    // Rank 0's should_stop after the 5th step holds for every rank; each resumes from its state.
    const auto runs = train_group(train, 2, 4, 5);
    CHECK(runs[0].model == whole.model);
    CHECK(runs[1].model == whole.model);
}

TEST_CASE("Distributed settings that cannot work are refused", "[distributed][errors]") {
    const cnn::Dataset train = cnn::test::make_bars(60, 43);
    auto net = make_net();
    cnn::Random rng{1};
    net.initialize(rng);
    cnn::SGD<float> sgd;
    auto group = cnn::InProcessGroup::make(3);
    cnn::FitOptions options = options_for(group[0].get(), 2);
    CHECK_THROWS_WITH(cnn::fit(net, sgd, train, rng, options),
                      "fit: 3 processes but 2 gradient shards; every process needs at least one (set gradient_shards to "
                      "at least 3)");
    options = options_for(nullptr, 0);
    CHECK_THROWS_WITH(cnn::fit(net, sgd, train, rng, options), "fit: gradient_shards must be at least 1");
    options = options_for(nullptr, 16);
    CHECK_THROWS_WITH(cnn::fit(net, sgd, train, rng, options),
                      "fit: a batch of 24 in 16 gradient shards leaves a shard fewer than the 2 samples batch "
                      "normalisation needs");
}

TEST_CASE("A rank that is gone stops the others with an error, not a hang", "[distributed][errors]") {
    const cnn::Dataset train = cnn::test::make_bars(60, 44);
    auto net = make_net();
    cnn::Random rng{1};
    net.initialize(rng);
    cnn::SGD<float> sgd;

    // Rank 1 never trains (hung, or on a host that went away): rank 0 waits 300 ms, then stops.
    auto group = cnn::InProcessGroup::make(2, std::chrono::milliseconds(300));
    const auto started = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH(cnn::fit(net, sgd, train, rng, options_for(group[0].get(), 2)),
                      "rank 0: nothing from rank 1 within 300 ms");
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(30));

    // Rank 0's communicator is closed (its process ended): rank 1 learns it at once.
    auto pair = cnn::InProcessGroup::make(2, std::chrono::seconds(60));
    pair[0].reset();
    CHECK_THROWS_WITH(cnn::fit(net, sgd, train, rng, options_for(pair[1].get(), 2)),
                      "rank 1: rank 0 stopped before sending");
}

TEST_CASE("sum_in_rank_order adds in rank order, the same bits on every rank", "[distributed]") {
    auto group = cnn::InProcessGroup::make(3);
    // In float the order matters: rank order gives (1e8 - 1e8) + 1 = 1, another 1e8 + (-1e8 + 1) = 0.
    const std::vector<float> parts{1e8f, -1e8f, 1.0f};
    volatile float big = 1e8f;
    REQUIRE(big + (-big + 1.0f) == 0.0f);
    std::vector<std::vector<float>> results(3);
    std::vector<std::thread> threads;
    for (std::size_t r = 0; r < 3; ++r)
        threads.emplace_back([&, r] {
            results[r] = {parts[r], static_cast<float>(r)};
            cnn::sum_in_rank_order<float>(*group[r], results[r]);
        });
    for (auto& thread : threads) thread.join();
    for (const auto& result : results) {
        CHECK(result[0] == 1.0f);
        CHECK(result[1] == 3.0f);
    }
    cnn::SingleProcess alone;
    std::vector<double> values{1.5, 2.5};
    cnn::sum_in_rank_order<double>(alone, values);
    CHECK(values == std::vector<double>{1.5, 2.5});
    CHECK_THROWS_WITH(alone.send({}, 1), "SingleProcess: no rank 1 to send to");
    CHECK_THROWS_WITH(group[0]->send({}, 0), "rank 0: cannot send to rank 0 of a group of 3");
}

TEST_CASE("evaluate shared among ranks gives one process's result to the bit", "[distributed]") {
    const cnn::Dataset data = cnn::test::make_bars(203, 45);  // batches of 16: a last one of 11
    auto net = make_net();
    cnn::Random rng{5};
    net.initialize(rng);
    const cnn::Normalization normalization{0.2, 0.3};
    const cnn::Evaluation alone = cnn::evaluate(net, data, normalization, 16);
    for (const std::size_t ranks : {2, 3, 5}) {
        INFO(ranks << " ranks");
        auto group = cnn::InProcessGroup::make(ranks);
        std::vector<cnn::Evaluation> results(ranks);
        std::vector<std::thread> threads;
        for (std::size_t r = 0; r < ranks; ++r)
            threads.emplace_back([&, r] { results[r] = cnn::evaluate(net, data, normalization, 16, group[r].get()); });
        for (auto& thread : threads) thread.join();
        for (const auto& result : results) {
            CHECK(result.loss == alone.loss);
            CHECK(result.accuracy == alone.accuracy);
            CHECK(result.confusion == alone.confusion);
        }
    }
}
