// Training: losses, optimizers, schedules, and fit() on a small synthetic data
// set written as IDX files by the test itself.
#include <cnn/cnn.hpp>

#include <catch2/catch.hpp>

#include <filesystem>

#include "test_support.hpp"

namespace fs = std::filesystem;
using cnn::Shape;
using cnn::Tensor;

namespace {

/// The bars data set of test_support.hpp, written as IDX files and read back.
cnn::Dataset make_bars(std::size_t count, std::uint64_t seed, const fs::path& dir) {
    const cnn::Dataset data = cnn::test::make_bars(count, seed);
    fs::create_directories(dir);
    cnn::write_idx(dir / "images", {count, 8, 8}, data.images);
    cnn::write_idx(dir / "labels", {count}, data.labels);
    return cnn::load_idx_dataset(dir / "images", dir / "labels", 4);
}

auto make_net() {
    return cnn::Sequential{cnn::Conv2D<float>{1, 4, 3, {.padding = 1}}, cnn::ReLU<float>{}, cnn::MaxPool<float>{2},
                           cnn::Flatten<float>{}, cnn::Dense<float>{64, 16}, cnn::ReLU<float>{},
                           cnn::Dense<float>{16, 4}};
}

/// The toy problem the training tests learn: 400 bars to train on, 200 to test, a network
/// initialised from seed 5 with that seed's stream for fit, SGD with momentum, and fit's
/// settings for it (batches of 16, 25 steps an epoch; standardised).
struct Bars {
    cnn::Dataset train, test;
    decltype(make_net()) net = make_net();
    cnn::Random rng{5};
    cnn::SGD<float> sgd{{.learning_rate = 0.05, .momentum = 0.9}};
    cnn::FitOptions options;

    Bars(const std::string& name, std::size_t epochs)
        : train(make_bars(400, 1, cnn::test::scratch_directory(name) / "train")),
          test(make_bars(200, 2, cnn::test::scratch_directory(name) / "test")) {
        net.initialize(rng);
        options.epochs = epochs;
        options.batch_size = 16;
        options.normalization = train.pixel_statistics();
    }
    cnn::History<float> fit() { return cnn::fit(net, sgd, train, rng, options); }
    [[nodiscard]] cnn::Evaluation evaluate() const { return cnn::evaluate(net, test, options.normalization); }
};

}  // namespace

TEST_CASE("Softmax cross-entropy is stable for huge logits and averages over the batch", "[training]") {
    const Tensor<double, 4> logits({2, 3, 1, 1}, {1000, 0, -1000, 1, 2, 3});
    Tensor<double, 4> delta(logits.shape());
    const std::vector<std::uint32_t> labels{0, 2};
    const double loss = cnn::softmax_cross_entropy<double>(logits, labels, delta.view());
    // sample 0: E = 0 (certain and right); sample 1: E = log(e^1 + e^2 + e^3) - 3
    const double expected = (0.0 + std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 3.0) / 2;
    CHECK(loss == Approx(expected).epsilon(1e-12));
    CHECK(std::isfinite(delta(0, 1, 0, 0)));
    CHECK(delta(0, 0, 0, 0) == Approx(0.0).margin(1e-15));
    double row_sum = 0;
    for (int j = 0; j < 3; ++j) row_sum += delta(1, j, 0, 0);
    CHECK(row_sum == Approx(0.0).margin(1e-15));
    CHECK(delta(1, 2, 0, 0) == Approx((std::exp(3.0) / (std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 1) / 2));
    const std::vector<std::uint32_t> bad{0, 3};
    CHECK_THROWS_WITH(cnn::softmax_cross_entropy<double>(logits, bad, delta.view()),
                      "softmax_cross_entropy: label 3 of sample 1 is not below the 3 classes");
}

TEST_CASE("Label smoothing: worked example EX24, finite differences, and bad values", "[training][smoothing]") {
    // EX24: z = (0, 0, ln 2), t = 2, e = 0.3: p = (1/4, 1/4, 1/2), q = (0.1, 0.1, 0.8)
    const Tensor<double, 4> z({1, 3, 1, 1}, {0.0, 0.0, std::log(2.0)});
    Tensor<double, 4> delta(z.shape());
    const std::vector<std::uint32_t> label{2};
    CHECK(cnn::softmax_cross_entropy<double>(z, label, delta.view(), 0.3) == Approx(1.2 * std::log(2.0)).epsilon(1e-14));
    CHECK(delta(0, 0, 0, 0) == Approx(0.15).epsilon(1e-14));
    CHECK(delta(0, 1, 0, 0) == Approx(0.15).epsilon(1e-14));
    CHECK(delta(0, 2, 0, 0) == Approx(-0.3).epsilon(1e-14));
    CHECK(cnn::softmax_cross_entropy<double>(z, label, delta.view(), 0.0) == Approx(std::log(2.0)).epsilon(1e-14));
    CHECK(delta(0, 2, 0, 0) == Approx(-0.5).epsilon(1e-14));

    // Finite differences of the batch mean, for a few smoothings, on random logits.
    std::mt19937_64 rng(24);
    for (const double smoothing : {0.05, 0.3, 1.0}) {
        INFO("label smoothing " << smoothing);
        auto logits = cnn::test::random_tensor<double>(Shape<4>{3, 5, 1, 1}, rng);
        const std::vector<std::uint32_t> labels{4, 0, 2};
        Tensor<double, 4> analytic(logits.shape()), scratch(logits.shape());
        (void)cnn::softmax_cross_entropy<double>(logits, labels, analytic.view(), smoothing);
        for (std::size_t i = 0; i < logits.size(); ++i) {
            const double kept = logits.data()[i], h = 1e-6;
            logits.data()[i] = kept + h;
            const double up = cnn::softmax_cross_entropy<double>(logits, labels, scratch.view(), smoothing);
            logits.data()[i] = kept - h;
            const double down = cnn::softmax_cross_entropy<double>(logits, labels, scratch.view(), smoothing);
            logits.data()[i] = kept;
            CHECK(analytic.data()[i] == Approx((up - down) / (2 * h)).margin(1e-9));
        }
    }
    for (const double bad : {-0.1, 1.5, std::nan("")})
        CHECK_THROWS_AS(cnn::softmax_cross_entropy<double>(z, label, delta.view(), bad), cnn::parameter_error);
    CHECK_THROWS_WITH(cnn::softmax_cross_entropy<double>(z, label, delta.view(), 1.5),
                      "softmax_cross_entropy: label smoothing 1.500000 is not in [0, 1]");
}

TEST_CASE("Mean squared error and its delta", "[training]") {
    const Tensor<double, 4> y({2, 2, 1, 1}, {1, 2, 3, 4});
    const Tensor<double, 4> t({2, 2, 1, 1}, {1, 0, 0, 4});
    Tensor<double, 4> delta(y.shape());
    CHECK(cnn::mean_squared_error<double>(y, t, delta.view()) == Approx((0.5 * 4 + 0.5 * 9) / 2));
    CHECK(delta(0, 1, 0, 0) == Approx(1.0));  // (2 - 0) / 2
    CHECK(delta(1, 0, 0, 0) == Approx(1.5));
}

TEST_CASE("SGD, momentum, Nesterov and Adam follow their update rules", "[training]") {
    std::vector<double> w{1.0}, g{0.5};
    const std::vector<cnn::ParameterGroup<double>> groups{{w, g}};
    SECTION("plain SGD with weight decay: w <- w - lr (g + wd w)") {
        cnn::SGD<double> sgd{{.learning_rate = 0.1, .weight_decay = 0.01}};
        sgd.step(groups);
        CHECK(w[0] == Approx(1.0 - 0.1 * (0.5 + 0.01)));
    }
    SECTION("momentum: v <- mu v + g, w <- w - lr v") {
        cnn::SGD<double> sgd{{.learning_rate = 0.1, .momentum = 0.9}};
        sgd.step(groups);
        CHECK(w[0] == Approx(1.0 - 0.1 * 0.5));
        sgd.step(groups);
        CHECK(w[0] == Approx(1.0 - 0.05 - 0.1 * (0.9 * 0.5 + 0.5)));
    }
    SECTION("Nesterov: w <- w - lr (g + mu v)") {
        cnn::SGD<double> sgd{{.learning_rate = 0.1, .momentum = 0.9, .nesterov = true}};
        sgd.step(groups);
        CHECK(w[0] == Approx(1.0 - 0.1 * (0.5 + 0.9 * 0.5)));
    }
    SECTION("Adam's first step moves by lr against the gradient's sign") {
        cnn::Adam<double> adam{{.learning_rate = 0.01}};
        adam.step(groups);
        CHECK(w[0] == Approx(1.0 - 0.01).epsilon(1e-6));
    }
    CHECK_THROWS_WITH((cnn::SGD<double>{{.learning_rate = -1}}),
                      "SGD: learning_rate must be a finite number >= 0, got -1.000000");
    CHECK_THROWS_AS((cnn::SGD<double>{{.nesterov = true}}), cnn::parameter_error);
}

TEST_CASE("Learning-rate schedules", "[training]") {
    const auto step = cnn::Schedule::step(3, 0.5);
    CHECK(step.rate(0.1, 0, 10) == Approx(0.1));
    CHECK(step.rate(0.1, 2, 10) == Approx(0.1));
    CHECK(step.rate(0.1, 3, 10) == Approx(0.05));
    CHECK(step.rate(0.1, 7, 10) == Approx(0.025));
    const auto cosine = cnn::Schedule::cosine(0.001);
    CHECK(cosine.rate(0.1, 0, 10) == Approx(0.1));
    CHECK(cosine.rate(0.1, 5, 10) == Approx(0.001 + 0.099 * 0.5));
    CHECK(cosine.rate(0.1, 9, 10) > 0.001);
    CHECK(cnn::Schedule::constant().rate(0.1, 9, 10) == 0.1);
}

TEST_CASE("Warm-up raises the rate step by step, then the schedule runs over the rest", "[training][warmup]") {
    const auto schedule = cnn::Schedule::cosine(0.001).with_warmup(2);
    // 2 epochs of 4 steps: base x 1/8, 2/8, ..., 8/8
    for (std::size_t epoch = 0; epoch < 2; ++epoch)
        for (std::size_t step = 0; step < 4; ++step)
            CHECK(schedule.rate(0.1, epoch, 12, step, 4) == Approx(0.1 * static_cast<double>(epoch * 4 + step + 1) / 8));
    // then the cosine over the remaining 10 epochs, as if they were the whole run
    const auto cosine = cnn::Schedule::cosine(0.001);
    for (std::size_t epoch = 2; epoch < 12; ++epoch)
        for (std::size_t step : {0, 3}) CHECK(schedule.rate(0.1, epoch, 12, step, 4) == cosine.rate(0.1, epoch - 2, 10));
    CHECK(schedule.rate(0.1, 2, 12, 0, 4) == Approx(0.1));
    // without warm-up the per-step rate is the per-epoch one
    for (std::size_t epoch = 0; epoch < 10; ++epoch) CHECK(cosine.rate(0.1, epoch, 10, 2, 4) == cosine.rate(0.1, epoch, 10));
}

TEST_CASE("fit warms up batch by batch and still learns the toy problem", "[training][warmup]") {
    Bars bars("bars-warmup", 12);
    cnn::FitOptions& options = bars.options;
    options.schedule = cnn::Schedule::cosine().with_warmup(2);
    std::vector<double> rates;
    options.on_batch = [&](const cnn::BatchReport& r) { rates.push_back(r.learning_rate); };
    const auto history = bars.fit();
    REQUIRE(rates.size() == 12 * 25);
    for (std::size_t k = 0; k < 50; ++k) CHECK(rates[k] == Approx(0.05 * static_cast<double>(k + 1) / 50));
    CHECK(rates[50] == Approx(0.05));
    CHECK(history.epochs[1].learning_rate == Approx(0.05));
    CHECK(history.epochs.back().learning_rate < 0.01);
    CHECK(bars.sgd.learning_rate() == 0.05);  // the optimizer's own rate is left as it was
    CHECK(bars.evaluate().accuracy == 1.0);

    options.schedule = cnn::Schedule::cosine().with_warmup(12);
    CHECK_THROWS_WITH(bars.fit(),
                      "fit: a warm-up of 12 epochs leaves none of the 12 epochs to the schedule");
}

TEST_CASE("A small network learns a separable toy problem to 100%", "[training]") {
    Bars bars("bars", 15);
    std::vector<double> batch_losses;
    bars.options.on_batch = [&](const cnn::BatchReport& r) { batch_losses.push_back(r.loss); };
    const auto history = bars.fit();
    REQUIRE(history.epochs.size() == 15);
    REQUIRE(batch_losses.size() == 15 * 25);

    // The loss falls: the last epoch's mean is a fraction of the first's.
    CHECK(history.epochs.back().train_loss < 0.1 * history.epochs.front().train_loss);
    double first = 0, last = 0;
    for (std::size_t i = 0; i < 25; ++i) {
        first += batch_losses[i];
        last += batch_losses[batch_losses.size() - 1 - i];
    }
    CHECK(last < first / 10);

    const cnn::Evaluation result = bars.evaluate();
    CHECK(result.accuracy == 1.0);
    std::size_t total = 0;
    for (std::size_t c : result.confusion) total += c;
    CHECK(total == bars.test.size());
    for (std::size_t k = 0; k < 4; ++k) CHECK(result.count(k, k) > 0);
}

TEST_CASE("Label smoothing keeps a network from certainty on the toy problem", "[training][smoothing]") {
    // With smoothing e and K classes the smoothed loss is least at p_t = 1 - e + e / K (0.85
    // for e = 0.2, K = 4): the network still learns every class, but its plain cross-entropy
    // on the test set stays near -log(0.85) instead of falling towards 0.
    const auto train_with = [&](double smoothing) {
        Bars bars("bars-smoothing", 15);
        bars.options.label_smoothing = smoothing;
        const auto history = bars.fit();
        const cnn::Evaluation result = bars.evaluate();
        UNSCOPED_INFO("smoothing " << smoothing << ": train loss " << history.epochs.back().train_loss
                                   << ", test cross-entropy " << result.loss << ", accuracy " << result.accuracy);
        return std::pair{history.epochs.back().train_loss, result};
    };
    const auto [plain_train, plain] = train_with(0.0);
    const auto [smoothed_train, smoothed] = train_with(0.2);
    CHECK(plain.accuracy == 1.0);
    CHECK(smoothed.accuracy == 1.0);
    CHECK(plain.loss < 0.05);
    CHECK(smoothed.loss > -std::log(0.9));  // mean -log p_t >= -log(mean p_t): the mean p_t is below 0.9
    // The smoothed training loss cannot go below the entropy of the smoothed target.
    const double entropy = -(0.85 * std::log(0.85) + 3 * 0.05 * std::log(0.05));
    CHECK(smoothed_train >= entropy - 1e-6);
    CHECK(plain_train < entropy);

    Bars bad("bars-smoothing", 1);
    bad.options.label_smoothing = -0.5;
    CHECK_THROWS_WITH(bad.fit(), "fit: label_smoothing -0.500000 is not in [0, 1]");
}

TEST_CASE("Identical seeds give identical weights after training", "[training]") {
    const cnn::Dataset train = make_bars(100, 3, cnn::test::scratch_directory("seeds"));
    const auto run = [&](std::uint64_t seed) {
        auto net = make_net();
        cnn::Random rng{seed};
        net.initialize(rng);
        cnn::SGD<float> sgd{{.learning_rate = 0.05, .momentum = 0.9, .nesterov = true}};
        cnn::FitOptions options;
        options.epochs = 2;
        options.batch_size = 10;
        (void)cnn::fit(net, sgd, train, rng, options);
        return cnn::serialize_model(net);
    };
    CHECK(run(4) == run(4));
    CHECK(run(4) != run(5));
}

TEST_CASE("Evaluating in the training workspace changes neither what fit learns nor what it reports",
          "[training][memory]") {
    // fit evaluates the validation split and the monitor data in its training workspace, at
    // batch 64 between training batches of 24: the buffers change shape both ways, and batch
    // normalisation, dropout and a residual block keep state in them.
    const cnn::Dataset train = make_bars(150, 3, cnn::test::scratch_directory("shared-workspace") / "train");
    const cnn::Dataset test = make_bars(70, 4, cnn::test::scratch_directory("shared-workspace") / "test");
    const auto make = [] {
        return cnn::Sequential{
            cnn::Conv2D<float>{1, 4, 3, {.padding = 1}}, cnn::BatchNorm2D<float>{4}, cnn::ReLU<float>{},
            cnn::Residual{cnn::Sequential{cnn::Conv2D<float>{4, 4, 3, {.padding = 1, .bias = false}},
                                          cnn::BatchNorm2D<float>{4}, cnn::ReLU<float>{},
                                          cnn::Conv2D<float>{4, 4, 3, {.padding = 1, .bias = false}},
                                          cnn::BatchNorm2D<float>{4}}},
            cnn::ReLU<float>{}, cnn::MaxPool<float>{2}, cnn::Flatten<float>{}, cnn::Dropout<float>{0.2},
            cnn::Dense<float>{64, 4}};
    };
    const auto run = [&](bool monitor) {
        auto net = make();
        cnn::Random rng{8};
        net.initialize(rng);
        cnn::SGD<float> sgd{{.learning_rate = 0.05, .momentum = 0.9}};
        cnn::FitOptions options;
        options.epochs = 3;
        options.batch_size = 24;
        options.validation_fraction = 0.2;
        options.normalization = train.pixel_statistics();
        if (monitor) options.monitor_data = &test;
        const auto history = cnn::fit(net, sgd, train, rng, options);
        return std::tuple{cnn::serialize_model(net), history, cnn::evaluate(net, test, options.normalization)};
    };
    const auto [plain, plain_history, plain_test] = run(false);
    const auto [monitored, history, final_test] = run(true);
    CHECK(monitored == plain);  // the same bits, so the evaluations disturbed no training state
    REQUIRE(history.epochs.size() == 3);
    for (std::size_t e = 0; e < 3; ++e) {
        CHECK(history.epochs[e].train_loss == plain_history.epochs[e].train_loss);
        CHECK(history.epochs[e].validation->loss == plain_history.epochs[e].validation->loss);
        CHECK(history.epochs[e].validation->confusion == plain_history.epochs[e].validation->confusion);
    }
    // The last epoch's monitor evaluation, run in the training workspace, is the one a fresh
    // workspace gives.
    CHECK(history.epochs[2].monitor->loss == final_test.loss);
    CHECK(history.epochs[2].monitor->confusion == final_test.confusion);
    CHECK(final_test.loss == plain_test.loss);
}

TEST_CASE("evaluate in a caller's workspace matches a fresh one, and the workspace trains on",
          "[training][memory]") {
    Bars bars("evaluate-workspace", 1);
    (void)bars.fit();
    decltype(bars.net)::Workspace workspace;
    std::mt19937_64 fill{3};
    const auto x = cnn::test::random_tensor<float>(Shape<4>{5, 1, 8, 8}, fill);
    const auto gradients = [&] {
        bars.net.zero_gradients();
        cnn::Random noise{9};
        const auto y = bars.net.forward(x.view(), workspace, cnn::Mode::training, &noise);
        Tensor<float, 4> dy(y.shape(), 0.5F);
        bars.net.backward(dy.view(), workspace);
        return cnn::test::parameter_gradients(bars.net);
    };
    const auto before = gradients();
    for (const std::size_t batch : {7, 64, 200}) {
        const cnn::Evaluation shared = cnn::evaluate(bars.net, bars.test, workspace, bars.options.normalization, batch);
        const cnn::Evaluation fresh = cnn::evaluate(bars.net, bars.test, bars.options.normalization, batch);
        CHECK(shared.loss == fresh.loss);
        CHECK(shared.confusion == fresh.confusion);
    }
    CHECK(gradients() == before);
}

TEST_CASE("A diverging loss stops training with the epoch and step", "[training][errors]") {
    const cnn::Dataset train = make_bars(64, 4, cnn::test::scratch_directory("diverge"));
    auto net = make_net();
    cnn::Random rng{6};
    net.initialize(rng);
    cnn::SGD<float> sgd{{.learning_rate = 1e30}};
    cnn::FitOptions options;
    options.epochs = 3;
    options.batch_size = 8;
    CHECK_THROWS_WITH(cnn::fit(net, sgd, train, rng, options),
                      Catch::StartsWith("training diverged: the loss became") && Catch::Contains("at epoch 1, step ") &&
                          Catch::Contains("try a lower learning rate"));
}

TEST_CASE("Early stopping restores the best weights of the validation split", "[training]") {
    const cnn::Dataset train = make_bars(200, 7, cnn::test::scratch_directory("early"));
    auto net = make_net();
    cnn::Random rng{8};
    net.initialize(rng);
    // A learning rate that makes progress at first and then overshoots.
    cnn::SGD<float> sgd{{.learning_rate = 0.5, .momentum = 0.9}};
    cnn::FitOptions options;
    options.epochs = 30;
    options.batch_size = 10;
    options.validation_fraction = 0.25;
    options.early_stopping_patience = 2;
    const auto history = cnn::fit(net, sgd, train, rng, options);
    for (const auto& epoch : history.epochs) REQUIRE(epoch.validation.has_value());
    CHECK(history.epochs.front().validation->classes == 4);
    REQUIRE(history.stopped_early);
    REQUIRE(history.best_epoch >= 1);
    const double best = history.epochs[history.best_epoch - 1].validation->loss;
    for (const auto& epoch : history.epochs) CHECK(epoch.validation->loss >= best);
    CHECK(history.epochs.size() == history.best_epoch + 2);  // the patience of 2 ran out
}

namespace {

/// The model file of make_net trained for two epochs in batches of 20 on `train` at `threads`
/// threads, with `augmentation`; interrupted after its fourth step and resumed when `interrupt`.
std::vector<std::uint8_t> trained_at(const cnn::Dataset& train, std::size_t threads,
                                     const cnn::Augmentation& augmentation = {}, bool interrupt = false) {
    cnn::set_threads(threads);
    auto net = make_net();
    cnn::Random rng{12};
    net.initialize(rng);
    cnn::SGD<float> sgd{{.learning_rate = 0.05, .momentum = 0.9}};
    cnn::FitOptions options;
    options.epochs = 2;
    options.batch_size = 20;
    options.augmentation = augmentation;
    std::size_t steps = 0;
    if (interrupt) options.should_stop = [&] { return ++steps == 4; };
    auto history = cnn::fit(net, sgd, train, rng, options);
    if (interrupt) {
        REQUIRE(history.interrupted);
        options.should_stop = {};
        (void)cnn::fit(net, sgd, train, rng, options, &*history.resume);
    }
    return cnn::serialize_model(net);
}

}  // namespace

TEST_CASE("The thread count does not change a single bit of the trained model", "[training][threads]") {
    const cnn::Dataset train = make_bars(120, 9, cnn::test::scratch_directory("threads"));
    const auto one = trained_at(train, 1);
    const auto two = trained_at(train, 2);
    const auto five = trained_at(train, 5);
    cnn::set_threads(1);
    CHECK(one == two);
    CHECK(one == five);
}

TEST_CASE("Augmented training is the same to the bit for any thread count, and interrupts exactly",
          "[training][threads][augment]") {
    const cnn::Dataset train = make_bars(120, 9, cnn::test::scratch_directory("augment-threads"));
    const cnn::Augmentation all{.crop_padding = 1, .horizontal_flip = true, .cutout = 2};
    const auto one = trained_at(train, 1, all);
    CHECK(one == trained_at(train, 3, all));
    CHECK(one == trained_at(train, 2, all, true));  // the augmentation draws resume where they stopped
    CHECK(one != trained_at(train, 1));              // and they do change what is learnt
    cnn::set_threads(1);

    auto net = make_net();
    cnn::Random rng{1};
    cnn::SGD<float> sgd;
    cnn::FitOptions options;
    options.augmentation.crop_padding = 9;
    CHECK_THROWS_WITH(cnn::fit(net, sgd, train, rng, options),
                      "Augmentation: a crop padding of 9 is larger than the 8x8 images (a crop could hold no pixel of "
                      "the image)");
}

TEST_CASE("A normalisation that would feed NaN or infinity is refused", "[training][errors]") {
    const cnn::Dataset train = make_bars(10, 9, cnn::test::scratch_directory("normalization"));
    auto net = make_net();
    cnn::Random rng{1};
    cnn::SGD<float> sgd;
    cnn::FitOptions options;
    options.normalization = {0.5, 0.0};
    CHECK_THROWS_WITH(cnn::fit(net, sgd, train, rng, options),
                      "Normalization: mean 0.500000 and deviation 0.000000 must be finite, with the deviation above 0");
    CHECK_THROWS_AS(cnn::evaluate(net, train, cnn::Normalization{NAN, 1.0}), cnn::parameter_error);
}
