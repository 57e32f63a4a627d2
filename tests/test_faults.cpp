// Faults on purpose: a save whose writes fail part-way, a process killed while
// saving, and a training run interrupted and resumed. Each test fails if the
// guarantee breaks: the previous model stays intact and readable, and a resumed
// run ends with the same weights as one that was never interrupted.
#include <cnn/cnn.hpp>

#include <catch2/catch.hpp>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "test_support.hpp"

namespace fs = std::filesystem;

namespace {

auto make_net(std::size_t hidden = 32) {
    return cnn::Sequential{cnn::Conv2D<float>{1, 4, 3, {.padding = 1}}, cnn::ReLU<float>{}, cnn::MaxPool<float>{2},
                           cnn::Flatten<float>{}, cnn::Dense<float>{64, hidden}, cnn::ReLU<float>{},
                           cnn::Dense<float>{hidden, 4}};
}

}  // namespace

TEST_CASE("A save whose writes fail part-way leaves the previous model intact", "[faults][io]") {
    const fs::path dir = cnn::test::scratch_directory("failing-write");
    auto old_net = make_net();
    cnn::Random rng{1};
    old_net.initialize(rng);
    cnn::save_model(old_net, dir / "model.cnn");
    const auto old_size = fs::file_size(dir / "model.cnn");

    // In a child process, limit the size of any file it writes to 2 KB, so the
    // new, larger model's writes fail half-way (EFBIG); the child reports what save_model did.
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        std::signal(SIGXFSZ, SIG_IGN);
        const rlimit limit{2048, 2048};
        ::setrlimit(RLIMIT_FSIZE, &limit);
        auto new_net = make_net(200);
        cnn::Random other{2};
        new_net.initialize(other);
        try {
            cnn::save_model(new_net, dir / "model.cnn");
            ::_exit(1);  // the write should not have succeeded
        } catch (const cnn::model_error& e) {
            ::_exit(std::string(e.what()).find("the previous file is unchanged") != std::string::npos ? 0 : 2);
        }
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);  // 1: the save claimed success, 2: another message

    CHECK(fs::file_size(dir / "model.cnn") == old_size);
    auto reloaded = make_net();
    (void)cnn::load_model(reloaded, dir / "model.cnn");
    CHECK(cnn::test::parameter_values(reloaded) == cnn::test::parameter_values(old_net));
    for (const auto& entry : fs::directory_iterator(dir)) CHECK(entry.path().filename() == "model.cnn");
}

TEST_CASE("A process killed while saving leaves a complete model, old or new", "[faults][io]") {
    const fs::path dir = cnn::test::scratch_directory("killed-save");
    auto first = make_net(200), second = make_net(200);
    cnn::Random rng{3};
    first.initialize(rng);
    second.initialize(rng);
    cnn::save_model(first, dir / "model.cnn");
    const auto a = cnn::test::parameter_values(first), b = cnn::test::parameter_values(second);

    for (int attempt = 0; attempt < 12; ++attempt) {
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            for (int i = 0;; ++i) cnn::save_model(i % 2 ? first : second, dir / "model.cnn");
        }
        ::usleep(static_cast<useconds_t>(2000 + 1700 * attempt));
        ::kill(child, SIGKILL);
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        auto reloaded = make_net(200);
        REQUIRE_NOTHROW(cnn::load_model(reloaded, dir / "model.cnn"));
        const auto values = cnn::test::parameter_values(reloaded);
        CHECK((values == a || values == b));
    }
}

TEST_CASE("An interrupted training run resumes to the same weights", "[faults][training]") {
    const fs::path dir = cnn::test::scratch_directory("resume");
    const cnn::Dataset train = cnn::test::make_bars(150, 11);
    cnn::FitOptions options;
    options.epochs = 3;
    options.batch_size = 16;  // 10 steps per epoch, the last one short
    options.schedule = cnn::Schedule::cosine();
    options.validation_fraction = 0.2;
    options.early_stopping_patience = 5;

    const auto run = [&](std::size_t stop_after_steps) {
        auto net = make_net();
        cnn::Random rng{21};
        net.initialize(rng);
        cnn::Adam<float> adam{{.learning_rate = 0.01}};
        std::size_t steps = 0;
        cnn::FitOptions first = options;
        first.should_stop = [&] { return stop_after_steps != 0 && ++steps == stop_after_steps; };
        auto history = cnn::fit(net, adam, train, rng, first);
        if (stop_after_steps == 0) {
            REQUIRE_FALSE(history.interrupted);
            return cnn::serialize_model(net);
        }
        REQUIRE(history.interrupted);
        // Through a checkpoint file, into fresh objects, as a new process would.
        cnn::save_checkpoint(net, *history.resume, dir / "run.checkpoint", "note=resume test\n");
        auto resumed = make_net();
        std::string metadata;
        const auto state = cnn::load_checkpoint(resumed, dir / "run.checkpoint", &metadata);
        CHECK(metadata == "note=resume test\n");
        cnn::Random fresh_rng{999};
        cnn::Adam<float> fresh_adam{{.learning_rate = 0.01}};
        const auto rest = cnn::fit(resumed, fresh_adam, train, fresh_rng, options, &state);
        CHECK_FALSE(rest.interrupted);
        CHECK(rest.epochs.size() == 3);
        return cnn::serialize_model(resumed);
    };
    const auto uninterrupted = run(0);
    CHECK(run(4) == uninterrupted);   // in the middle of the first epoch
    CHECK(run(10) == uninterrupted);  // at the end of the first epoch
    CHECK(run(23) == uninterrupted);  // in the third epoch
}

TEST_CASE("A corrupt checkpoint is refused and leaves the network unchanged", "[faults][io]") {
    const fs::path dir = cnn::test::scratch_directory("bad-checkpoint");
    auto net = make_net();
    cnn::Random rng{5};
    net.initialize(rng);
    cnn::TrainingState<float> state;
    state.order = {3, 1, 2};
    cnn::save_checkpoint(net, state, dir / "run.checkpoint");
    std::ifstream in(dir / "run.checkpoint", std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto target = make_net();
    cnn::Random other{6};
    target.initialize(other);
    const auto before = cnn::test::parameter_values(target);
    for (std::size_t i = 0; i < bytes.size(); i += 7) {
        auto damaged = bytes;
        damaged[i] = static_cast<char>(damaged[i] ^ 0x01);
        std::ofstream(dir / "damaged", std::ios::binary).write(damaged.data(), static_cast<std::streamsize>(damaged.size()));
        CHECK_THROWS_AS(cnn::load_checkpoint(target, dir / "damaged"), cnn::model_error);
    }
    CHECK(cnn::test::parameter_values(target) == before);
    CHECK(cnn::load_checkpoint(target, dir / "run.checkpoint").order == state.order);
}
