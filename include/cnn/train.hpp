// The training loop and evaluation for image classification.
//
//   cnn::Random rng{42};
//   net.initialize(rng);
//   cnn::SGD<float> sgd{{.learning_rate = 0.05, .momentum = 0.9}};
//   auto history = cnn::fit(net, sgd, train, rng, {.epochs = 10, .batch_size = 64});
//   auto result = cnn::evaluate(net, test);      // loss, accuracy, confusion matrix
//
// Each epoch shuffles the training samples with `rng`, runs forward (in training mode,
// with `rng` as the random stream of stochastic layers), softmax
// cross-entropy, backward and an optimizer step per mini-batch, and reports
// through the callbacks (a network with batch normalisation skips a last batch of a
// single sample). Buffers are sized on the first batch and reused. If the
// loss stops being a finite number, fit throws cnn::training_error naming the
// epoch and step instead of training on garbage.
//
// fit and evaluate read any BatchSource (data/source.hpp), not only a Dataset. With
// FitOptions::communicator and gradient_shards, several processes train one model together,
// each computing its shards of every batch; the shards' gradients are summed in shard order,
// so the model is the same to the bit for any number of processes (distributed.hpp).
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numbers>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "cnn/data/dataset.hpp"
#include "cnn/data/source.hpp"
#include "cnn/distributed.hpp"
#include "cnn/error.hpp"
#include "cnn/loss.hpp"
#include "cnn/network.hpp"
#include "cnn/optimizer.hpp"
#include "cnn/random.hpp"

namespace cnn {

/// The learning rate for each epoch, from the optimizer's base rate.
struct Schedule {
    enum class Kind { constant, step, cosine };
    Kind kind = Kind::constant;
    std::size_t step_every = 10;  ///< step decay: epochs between drops
    double step_factor = 0.1;     ///< step decay: multiplier at each drop
    double minimum = 0.0;         ///< cosine: the rate reached at the last epoch
    /// Linear warm-up before the schedule: over the first `warmup_epochs` epochs the rate
    /// rises step by step from base / (warmup_epochs x steps) to base; the schedule then runs
    /// over the remaining epochs as if they were the whole run. 0: no warm-up.
    std::size_t warmup_epochs = 0;

    static Schedule constant() { return {}; }
    /// lr(e) = base * factor^floor(e / every)
    static Schedule step(std::size_t every, double factor) { return {Kind::step, every, factor, 0.0}; }
    /// lr(e) = minimum + (base - minimum) (1 + cos(pi e / epochs)) / 2
    static Schedule cosine(double minimum = 0.0) { return {Kind::cosine, 10, 0.1, minimum}; }
    /// This schedule after `epochs` epochs of linear warm-up: Schedule::cosine().with_warmup(2).
    [[nodiscard]] Schedule with_warmup(std::size_t epochs) const {
        Schedule s = *this;
        s.warmup_epochs = epochs;
        return s;
    }

    /// The rate for step `step` (0-based) of `steps` in epoch `epoch` (0-based) of `epochs`:
    /// the warm-up's, or the schedule's for epoch - warmup_epochs of epochs - warmup_epochs.
    [[nodiscard]] double rate(double base, std::size_t epoch, std::size_t epochs, std::size_t step,
                              std::size_t steps) const {
        if (epoch < warmup_epochs) {
            const double done = static_cast<double>(epoch * steps + step + 1);
            return base * done / static_cast<double>(warmup_epochs * std::max<std::size_t>(steps, 1));
        }
        return rate(base, epoch - warmup_epochs, epochs > warmup_epochs ? epochs - warmup_epochs : 1);
    }

    /// The schedule's rate for epoch `epoch` (0-based) of `epochs`, without the warm-up.
    [[nodiscard]] double rate(double base, std::size_t epoch, std::size_t epochs) const {
        switch (kind) {
            case Kind::constant:
                return base;
            case Kind::step:
                return base * std::pow(step_factor, static_cast<double>(epoch / std::max<std::size_t>(step_every, 1)));
            case Kind::cosine: {
                const double progress = static_cast<double>(epoch) / static_cast<double>(std::max<std::size_t>(epochs, 1));
                return minimum + (base - minimum) * (1.0 + std::cos(std::numbers::pi * progress)) / 2.0;
            }
        }
        return base;
    }
};

/// Training went wrong (the loss became NaN or infinite).
struct training_error : error {
    using error::error;
};

struct Evaluation {
    double loss = 0;
    double accuracy = 0;
    std::size_t classes = 0;
    std::vector<std::size_t> confusion;  ///< classes x classes: row = true class, column = predicted

    [[nodiscard]] std::size_t count(std::size_t actual, std::size_t predicted) const {
        return confusion[actual * classes + predicted];
    }
};

namespace detail {

/// Whether the last layer of a chain is a Softmax (which fit refuses).
template <class Net>
constexpr bool ends_in_softmax() {
    if constexpr (requires { Net::layer_count; }) {
        using Last = std::remove_cvref_t<decltype(std::declval<Net&>().template layer<Net::layer_count - 1>())>;
        return requires { requires Last::is_softmax; };
    } else {
        return false;
    }
}

/// Throws unless `data` is consistent and `net` takes its images and has one output per class.
template <class Net, class Source>
void check_network_and_data(const Net& net, const Source& data, const char* who) {
    data.check(who);
    const Shape<4> out = net.shapes(data.batch_shape(1)).back();
    const std::size_t outputs = out[1] * out[2] * out[3];
    if (outputs != data.class_count())
        throw shape_error(std::string(who) + ": the network has " + std::to_string(outputs) + " outputs, the data set " +
                          std::to_string(data.class_count()) + " classes");
}

}  // namespace detail

/// Loss, accuracy and confusion matrix of `net` on `data` (a Dataset or any BatchSource).
/// With a `communicator` of several processes (each calling evaluate with the same network and
/// data), each evaluates its share of the batches and all get the combined result, the same
/// to the bit as one process's. Throws cnn::parameter_error for a batch size of 0,
/// cnn::data_error for an inconsistent data set and cnn::shape_error when the network's
/// outputs are not the data set's classes.
///
/// The overload with a `workspace` runs the batches in it (one whose buffers are already
/// grown, such as a training loop's, costs no new memory); the other makes its own.
template <class Net, class Source>
    requires BatchSource<Source, typename Net::value_type>
Evaluation evaluate(const Net& net, const Source& data, typename Net::Workspace& workspace,
                    Normalization normalization = {}, std::size_t batch_size = 64,
                    Communicator* communicator = nullptr) {
    using T = typename Net::value_type;
    if (batch_size == 0) throw parameter_error("evaluate: batch_size must be at least 1");
    detail::check_network_and_data(net, data, "evaluate");
    const std::size_t classes = data.class_count();
    Evaluation result;
    result.classes = classes;
    result.confusion.assign(classes * classes, 0);
    if (data.size() == 0) return result;
    batch_size = std::min(batch_size, data.size());
    const std::size_t batches = (data.size() + batch_size - 1) / batch_size;
    const std::size_t ranks = communicator != nullptr ? communicator->size() : 1;
    const std::size_t rank = communicator != nullptr ? communicator->rank() : 0;
    Tensor<T, 4> x(data.batch_shape(batch_size));
    Tensor<T, 4> delta;
    std::vector<std::uint32_t> labels(batch_size);
    std::vector<std::size_t> indices(batch_size);
    // Each batch's loss sum, then the confusion counts: whole numbers, and each batch's loss
    // from one rank only, so the sum over the ranks is exact and the loss is summed below in
    // batch order, as one process sums it.
    std::vector<double> sums(batches + classes * classes, 0.0);
    for (std::size_t batch = rank * batches / ranks; batch < (rank + 1) * batches / ranks; ++batch) {
        const std::size_t first = batch * batch_size, n = std::min(batch_size, data.size() - first);
        for (std::size_t i = 0; i < n; ++i) indices[i] = first + i;
        x.resize(data.batch_shape(n));
        data.template fill_batch<T>({indices.data(), n}, x.view(), {labels.data(), n}, normalization);
        const auto output = net.forward(x.view(), workspace);
        delta.resize(output.shape());
        sums[batch] = softmax_cross_entropy<T>(output, {labels.data(), n}, delta.view()) * static_cast<double>(n);
        for (std::size_t i = 0; i < n; ++i) sums[batches + labels[i] * classes + predicted_class<T>(output, i)] += 1.0;
    }
    if (ranks > 1) sum_in_rank_order<double>(*communicator, sums);
    double total_loss = 0;
    for (std::size_t batch = 0; batch < batches; ++batch) total_loss += sums[batch];
    std::size_t correct = 0;
    for (std::size_t i = 0; i < classes * classes; ++i) {
        result.confusion[i] = static_cast<std::size_t>(sums[batches + i]);
        if (i / classes == i % classes) correct += result.confusion[i];
    }
    result.loss = total_loss / static_cast<double>(data.size());
    result.accuracy = static_cast<double>(correct) / static_cast<double>(data.size());
    return result;
}
template <class Net, class Source>
    requires BatchSource<Source, typename Net::value_type>
Evaluation evaluate(const Net& net, const Source& data, Normalization normalization = {},
                    std::size_t batch_size = 64, Communicator* communicator = nullptr) {
    typename Net::Workspace workspace;
    return evaluate(net, data, workspace, normalization, batch_size, communicator);
}

struct BatchReport {
    std::size_t epoch, epochs;  ///< 1-based
    std::size_t step, steps;    ///< 1-based step within the epoch
    double loss;                ///< of this batch
    double running_loss;        ///< mean over the epoch so far
    double running_accuracy;
    std::size_t images;  ///< images seen this epoch
    double learning_rate;
    double seconds;  ///< since the epoch started
};

struct EpochReport {
    std::size_t epoch = 0, epochs = 0;  ///< 1-based
    double train_loss = 0, train_accuracy = 0;
    std::optional<Evaluation> validation;  ///< on the validation split, when there is one
    std::optional<Evaluation> monitor;     ///< on FitOptions::monitor_data, when given
    double learning_rate = 0;
    double train_seconds = 0;  ///< the training steps alone
    double seconds = 0;        ///< with the evaluations
    /// With gradient shards: of train_seconds, the time spent waiting for and passing the
    /// gradient sum between processes (it includes waiting for slower ranks).
    double communication_seconds = 0;
};

struct FitOptions {
    std::size_t epochs = 10;
    std::size_t batch_size = 64;
    Schedule schedule = {};
    Normalization normalization = {};
    /// Random crops, flips and cutout of the training images (off by default), drawn from
    /// fit's random stream; validation and monitor data are never augmented.
    Augmentation augmentation = {};
    /// Label smoothing e of the training loss, in [0, 1]: each target becomes (1 - e) for its
    /// class plus e / K spread over all K (FORMULAS.md section 21). The training loss reported
    /// is the smoothed one; evaluations report plain cross-entropy.
    double label_smoothing = 0.0;
    /// Fraction of the training samples held out (after one shuffle) to validate on.
    double validation_fraction = 0.0;
    /// With a validation split: stop after this many epochs without a lower validation
    /// loss, and restore the best weights (0: never stop early).
    std::size_t early_stopping_patience = 0;
    /// A data set evaluated after every epoch for the record only (e.g. the test set
    /// for training curves); it never influences training. A pointer to a Dataset or to
    /// any other BatchSource (SourceRef converts from either); it must outlive fit.
    SourceRef monitor_data = nullptr;
    std::function<void(const BatchReport&)> on_batch{};
    std::function<void(const EpochReport&)> on_epoch{};
    /// Polled after every batch; returning true ends training after that batch, with
    /// History::resume holding what it takes to continue. With several processes, rank 0's
    /// answer (polled as its share of the batch is done) holds for every rank.
    std::function<bool()> should_stop{};
    /// Data-parallel training (distributed.hpp): this process's rank among those training
    /// the model together, each calling fit with the same network, seed, data and options.
    /// Null: this process alone.
    Communicator* communicator = nullptr;
    /// Gradient shards per batch: each batch is cut into this many parts whose gradients are
    /// computed apart (in training mode, each part is a batch of its own for batch
    /// normalisation and draws its own augmentation and dropout) and summed in shard order.
    /// The arithmetic depends on the shards alone, so the trained model is the same to the
    /// bit for any number of processes up to this. 1: the whole batch at once (the default,
    /// for one process). The number of processes must not exceed it.
    std::size_t gradient_shards = 1;
};

/// Where an interrupted fit() stood: with the network's parameters and the optimizer's
/// state, enough to continue exactly as if it had not stopped (see save_checkpoint).
template <Scalar T>
struct TrainingState {
    std::size_t epoch = 0;                ///< 0-based epoch to continue
    std::size_t step = 0;                 ///< 0-based step of that epoch to run next
    std::vector<std::size_t> order;       ///< that epoch's order of the training samples
    std::vector<std::size_t> validation;  ///< the held-out samples
    Random::State rng{};
    double loss_sum = 0;  ///< this epoch's running sums
    std::size_t correct = 0, seen = 0;
    double best_loss = INFINITY;  ///< early stopping
    std::size_t best_epoch = 0, epochs_without_improvement = 0;
    std::vector<T> best_parameters;
    OptimizerState<T> optimizer;
    std::vector<EpochReport> epochs;  ///< the reports of the finished epochs (without confusion matrices)
};

template <Scalar T>
struct History {
    std::vector<EpochReport> epochs;
    bool stopped_early = false;  ///< by early stopping (the best weights were restored)
    bool interrupted = false;    ///< by should_stop; `resume` then holds where training stood
    std::size_t best_epoch = 0;  ///< 1-based, with early stopping
    std::optional<TrainingState<T>> resume;
};

/// Trains `net` on `train` with `optimizer`; `rng` shuffles the samples. With
/// `resume` (from an interrupted run's History::resume or a checkpoint file, after
/// the network's parameters were restored) training continues where it stopped and
/// ends with the same weights as a run that was never interrupted.
namespace detail {

/// Marks a network as being trained for the lifetime of a fit call: a second fit on the same
/// network (from another thread) would race on its parameters and gradients, so it throws.
class TrainingClaim {
public:
    explicit TrainingClaim(const void* net) : net_(net) {
        const std::lock_guard lock(mutex());
        if (!claimed().insert(net_).second)
            throw training_error("fit: this network is already being trained by another fit call; one network "
                                 "trains in one call at a time (forward on a const network is what may run in parallel)");
    }
    ~TrainingClaim() {
        const std::lock_guard lock(mutex());
        claimed().erase(net_);
    }
    TrainingClaim(const TrainingClaim&) = delete;
    TrainingClaim& operator=(const TrainingClaim&) = delete;

private:
    static std::mutex& mutex() {
        static std::mutex instance;
        return instance;
    }
    static std::set<const void*>& claimed() {
        static std::set<const void*> instance;
        return instance;
    }
    const void* net_;
};

/// Throws cnn::parameter_error naming the first thing a training state (a checkpoint's) says
/// that does not fit this data set, these parameter groups or these options.
template <Scalar T>
void check_training_state(const TrainingState<T>& state, std::size_t samples,
                          std::span<const ParameterGroup<T>> groups, const FitOptions& options) {
    const auto fail = [](const std::string& what) {
        throw parameter_error("fit: the training state does not fit: " + what);
    };
    std::vector<bool> seen(samples, false);
    for (const auto* part : {&state.order, &state.validation})
        for (const std::size_t index : *part) {
            if (index >= samples)
                fail("it refers to sample " + std::to_string(index) + " of a data set of " + std::to_string(samples));
            if (seen[index]) fail("it names sample " + std::to_string(index) + " twice");
            seen[index] = true;
        }
    if (state.order.size() + state.validation.size() != samples)
        fail("its sample order and validation set cover " +
             std::to_string(state.order.size() + state.validation.size()) + " samples, the data set has " +
             std::to_string(samples));
    if (state.order.empty()) fail("it has no training samples");
    const std::size_t batch = std::min(options.batch_size, state.order.size());
    if (state.step >= (state.order.size() + batch - 1) / batch)
        fail("step " + std::to_string(state.step) + " is past the end of an epoch");
    if (state.epoch > options.epochs || state.epochs.size() != state.epoch)
        fail("it is at epoch " + std::to_string(state.epoch) + " with " + std::to_string(state.epochs.size()) +
             " epoch reports, of " + std::to_string(options.epochs) + " epochs");
    std::size_t parameters = 0;
    for (const auto& group : groups) parameters += group.values.size();
    if (!state.best_parameters.empty() && state.best_parameters.size() != parameters)
        fail("its best weights hold " + std::to_string(state.best_parameters.size()) + " values, the network " +
             std::to_string(parameters));
    if (state.best_epoch > 0 && state.best_parameters.empty())
        fail("it records a best epoch (" + std::to_string(state.best_epoch) + ") but no best weights");
    if (state.best_parameters.empty() ? state.best_loss != INFINITY : std::isnan(state.best_loss))
        fail("its best validation loss (" + std::to_string(state.best_loss) + ") does not fit its best weights (" +
             std::to_string(state.best_parameters.size()) + " values)");
    if (state.seen > state.order.size() || state.correct > state.seen)
        fail("its running counts (" + std::to_string(state.correct) + " of " + std::to_string(state.seen) +
             ") do not fit an epoch");
}

/// Samples [first, last) of a batch of n, of shard s of `shards` (the first shards are the
/// smaller when n does not divide).
inline std::pair<std::size_t, std::size_t> shard_range(std::size_t s, std::size_t shards, std::size_t n) {
    return {s * n / shards, (s + 1) * n / shards};
}

/// The seed of shard s's random stream (augmentation and dropout) in a step whose seed is
/// `step_seed`: a different stream per shard, whichever rank computes it.
inline std::uint64_t shard_seed(std::uint64_t step_seed, std::size_t s) {
    return step_seed ^ (0x9e3779b97f4a7c15ULL * (s + 1));
}

/// One training step cut into gradient shards (FitOptions::gradient_shards), this rank's of
/// them computed here and all summed in shard order along the ranks; see distributed.hpp.
/// Sized once, then reused: nothing is allocated per step.
template <Scalar T>
class ShardedStep {
public:
    ShardedStep(Communicator& communicator, std::size_t shards, std::span<const ParameterGroup<T>> groups)
        : communicator_(communicator) {
        const std::size_t rank = communicator.rank(), size = communicator.size();
        first_ = rank * shards / size;
        last_ = (rank + 1) * shards / size;
        for (const auto& group : groups) {
            values_ += group.values.size();
            buffers_ += group.layout.buffers;
        }
        own_.assign(last_ - first_, std::vector<T>(values_));
        kept_.assign(last_ - first_, false);
        losses_.assign(last_ - first_, 0.0);
        correct_.assign(last_ - first_, 0.0);
        total_.resize(values_);
        before_.resize(buffers_);
    }

    [[nodiscard]] std::size_t first_shard() const noexcept { return first_; }
    [[nodiscard]] std::size_t last_shard() const noexcept { return last_; }

    /// Before the shards: keeps the buffers (running statistics) the step starts from.
    void start(std::span<const ParameterGroup<T>> groups) {
        std::size_t at = 0;
        for (const auto& group : groups) {
            const std::size_t learned = group.layout.learned();
            std::copy(group.values.begin() + static_cast<std::ptrdiff_t>(learned), group.values.end(),
                      before_.begin() + static_cast<std::ptrdiff_t>(at));
            at += group.values.size() - learned;
        }
        started_ = false;
        stats_ = {};
    }
    /// Before each shard's forward pass: the buffers as the step found them.
    void restore_buffers(std::span<const ParameterGroup<T>> groups) const {
        std::size_t at = 0;
        for (const auto& group : groups) {
            const std::size_t learned = group.layout.learned(), buffers = group.values.size() - learned;
            std::copy_n(before_.begin() + static_cast<std::ptrdiff_t>(at), buffers,
                        group.values.begin() + static_cast<std::ptrdiff_t>(learned));
            at += buffers;
        }
    }
    /// Seconds spent in finish (the sum along the ranks), for EpochReport; fit resets it.
    double communication_seconds = 0;

    /// After shard s's backward pass: its gradients, and how it moved the buffers.
    void keep(std::size_t s, std::span<const ParameterGroup<T>> groups, double loss_sum, std::size_t correct) {
        std::vector<T>& out = own_[s - first_];
        std::size_t at = 0, buffer = 0;
        for (const auto& group : groups) {
            const std::size_t learned = group.layout.learned();
            std::copy_n(group.gradients.begin(), learned, out.begin() + static_cast<std::ptrdiff_t>(at));
            for (std::size_t i = learned; i < group.values.size(); ++i) out[at + i] = group.values[i] - before_[buffer++];
            at += group.values.size();
        }
        kept_[s - first_] = true;
        losses_[s - first_] = loss_sum;
        correct_[s - first_] = static_cast<double>(correct);
    }

    /// Sums every shard's gradients in shard order across the ranks, then writes the sum into
    /// the groups' gradients and the buffers' mean move into their values. `stop` is rank 0's
    /// should_stop answer. Returns the batch's loss sum, correct count, and the stop answer,
    /// the same on every rank.
    struct Result {
        double loss_sum;
        std::size_t correct;
        bool stop;
    };
    Result finish(std::span<const ParameterGroup<T>> groups, bool stop) {
        const auto started = std::chrono::steady_clock::now();
        const std::size_t rank = communicator_.rank(), size = communicator_.size();
        if (rank > 0) {
            communicator_.receive(std::as_writable_bytes(std::span{total_}), rank - 1);
            communicator_.receive(std::as_writable_bytes(std::span{stats_}), rank - 1);
            started_ = stats_[2] != 0;
        } else {
            stats_[3] = stop ? 1.0 : 0.0;
        }
        // Shard by shard, in shard order: gradients, loss and counts alike.
        for (std::size_t s = first_; s < last_; ++s) {
            if (!kept_[s - first_]) continue;
            const std::vector<T>& g = own_[s - first_];
            if (!started_) {
                std::copy(g.begin(), g.end(), total_.begin());
                started_ = true;
            } else {
                for (std::size_t i = 0; i < values_; ++i) total_[i] = total_[i] + g[i];
            }
            stats_[0] += losses_[s - first_];
            stats_[1] += correct_[s - first_];
            stats_[4] += 1;
        }
        stats_[2] = started_ ? 1.0 : 0.0;
        if (rank + 1 < size) {
            communicator_.send(std::as_bytes(std::span{total_}), rank + 1);
            communicator_.send(std::as_bytes(std::span{stats_}), rank + 1);
        }
        if (size > 1) {
            communicator_.broadcast(std::as_writable_bytes(std::span{total_}), size - 1);
            communicator_.broadcast(std::as_writable_bytes(std::span{stats_}), size - 1);
        }
        communication_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        const T shards_run = static_cast<T>(stats_[4]);
        std::size_t at = 0, buffer = 0;
        for (const auto& group : groups) {
            const std::size_t learned = group.layout.learned();
            std::copy_n(total_.begin() + static_cast<std::ptrdiff_t>(at), learned, group.gradients.begin());
            for (std::size_t i = learned; i < group.values.size(); ++i)
                group.values[i] = before_[buffer++] + total_[at + i] / shards_run;
            at += group.values.size();
        }
        std::fill(kept_.begin(), kept_.end(), false);
        return {stats_[0], static_cast<std::size_t>(stats_[1]), stats_[3] != 0};
    }

private:
    Communicator& communicator_;
    std::size_t first_ = 0, last_ = 0, values_ = 0, buffers_ = 0;
    std::vector<std::vector<T>> own_;
    std::vector<bool> kept_;
    std::vector<T> total_, before_;
    bool started_ = false;
    /// loss sum, correct count, started, rank 0's stop, shards run: travel with the sum.
    std::array<double, 5> stats_{};
    std::vector<double> losses_, correct_;  ///< of this rank's shards
};

/// Whether a layer of `net` normalises by batch statistics (BatchNorm2D).
template <class Net>
bool uses_batch_statistics(const Net& net) {
    bool found = false;
    for_each_leaf(net, [&](const auto& leaf) {
        if constexpr (requires { requires std::remove_cvref_t<decltype(leaf)>::batch_statistics; }) found = true;
    });
    return found;
}

/// One step of fit in gradient shards: this rank's shards of the batch `indices`, forward and
/// backward one shard at a time, then the sum along the ranks (ShardedStep). Returns the
/// batch's loss sum, correct count and rank 0's should_stop answer, the same on every rank.
template <class Net, class Source, class Workspace, Scalar T>
typename ShardedStep<T>::Result sharded_step(Net& net, ShardedStep<T>& sharded,
                                             std::type_identity_t<std::span<const ParameterGroup<T>>> groups,
                                             Workspace& workspace, const Source& train,
                                             std::span<const std::size_t> indices, Tensor<T, 4>& x, Tensor<T, 4>& delta,
                                             std::vector<std::uint32_t>& labels, const FitOptions& options,
                                             std::uint64_t step_seed, std::size_t shards) {
    const std::size_t n = indices.size();
    sharded.start(groups);
    for (std::size_t s = sharded.first_shard(); s < sharded.last_shard(); ++s) {
        const auto [a, b] = shard_range(s, shards, n);
        const std::size_t m = b - a;
        if (m == 0) continue;
        Random shard_rng{shard_seed(step_seed, s)};
        x.resize(train.batch_shape(m));
        train.template fill_batch<T>(indices.subspan(a, m), x.view(), {labels.data(), m}, options.normalization,
                                     options.augmentation, shard_rng);
        sharded.restore_buffers(groups);
        const auto output = net.forward(x.view(), workspace, Mode::training, &shard_rng);
        delta.resize(output.shape());
        const double loss =
            softmax_cross_entropy<T>(output, {labels.data(), m}, delta.view(), options.label_smoothing);
        std::size_t correct = 0;
        for (std::size_t i = 0; i < m; ++i) correct += predicted_class<T>(output, i) == labels[i];
        // The loss is the shard's mean; its share of the batch's mean weighs it.
        const T share = static_cast<T>(static_cast<double>(m) / static_cast<double>(n));
        for (T& d : std::span{delta.data(), delta.size()}) d *= share;
        net.zero_gradients();
        net.backward(delta.view(), workspace);
        sharded.keep(s, groups, loss * static_cast<double>(m), correct);
    }
    const bool stop = sharded.first_shard() == 0 && options.should_stop && options.should_stop();
    return sharded.finish(groups, stop);
}

}  // namespace detail

/// Trains `net` with `optimizer` on `train`, a Dataset or any BatchSource (see the top of this
/// file). `resume`, a state from History::resume or load_checkpoint, continues an interrupted
/// run; it is checked against this network, optimizer and data first. One network trains in one fit call at a time: a second
/// call on the same network while the first runs (from another thread, or from a callback)
/// throws cnn::training_error.
template <class Net, class Optimizer, class Source>
    requires BatchSource<Source, typename Net::value_type>
History<typename Net::value_type> fit(Net& net, Optimizer& optimizer, const Source& train, Random& rng,
                                      const FitOptions& options,
                                      const TrainingState<typename Net::value_type>* resume = nullptr) {
    static_assert(!detail::ends_in_softmax<Net>(),
                  "cnn::fit: this network ends in cnn::Softmax, and fit's loss, softmax_cross_entropy, applies softmax "
                  "itself; train the network without the Softmax and wrap it for inference: "
                  "cnn::Sequential{std::move(net), cnn::Softmax<float>{}}");
    using T = typename Net::value_type;
    using Clock = std::chrono::steady_clock;
    const detail::TrainingClaim claim(&net);
    if (options.batch_size == 0) throw parameter_error("fit: batch_size must be at least 1");
    if (!(options.validation_fraction >= 0.0 && options.validation_fraction < 1.0))
        throw parameter_error("fit: validation_fraction must lie in [0, 1)");
    if (options.schedule.warmup_epochs >= options.epochs && options.schedule.warmup_epochs > 0)
        throw parameter_error("fit: a warm-up of " + std::to_string(options.schedule.warmup_epochs) +
                              " epochs leaves none of the " + std::to_string(options.epochs) + " epochs to the schedule");
    if (!(options.label_smoothing >= 0.0 && options.label_smoothing <= 1.0))
        throw parameter_error("fit: label_smoothing " + std::to_string(options.label_smoothing) + " is not in [0, 1]");

    const std::size_t shards = options.gradient_shards;
    Communicator* communicator = options.communicator;
    const std::size_t processes = communicator != nullptr ? communicator->size() : 1;
    if (shards == 0) throw parameter_error("fit: gradient_shards must be at least 1");
    if (processes > shards)
        throw parameter_error("fit: " + std::to_string(processes) + " processes but " + std::to_string(shards) +
                              " gradient shards; every process needs at least one (set gradient_shards to at least " +
                              std::to_string(processes) + ")");
    if (shards > 1 && detail::uses_batch_statistics(net) && options.batch_size < 2 * shards)
        throw parameter_error("fit: a batch of " + std::to_string(options.batch_size) + " in " + std::to_string(shards) +
                              " gradient shards leaves a shard fewer than the 2 samples batch normalisation needs");
    detail::check_network_and_data(net, train, "fit");
    const Shape<4> image = train.batch_shape(1);
    options.normalization.check(image[1]);
    options.augmentation.check(image[2], image[3]);
    if (options.monitor_data) detail::check_network_and_data(net, options.monitor_data, "fit (monitor data)");
    const auto groups = net.parameter_groups();

    TrainingState<T> state;
    if (resume != nullptr) {
        // Everything the state says is checked against this network, optimizer and data before
        // anything changes: a checkpoint of another run must not train on garbage or read past memory.
        detail::check_training_state(*resume, train.size(), std::span<const ParameterGroup<T>>{groups}, options);
        state = *resume;
        rng.restore(state.rng);
        optimizer.restore(state.optimizer);
        optimizer.check_state(groups);
    } else {
        state.order.resize(train.size());
        for (std::size_t i = 0; i < state.order.size(); ++i) state.order[i] = i;
        if (options.validation_fraction > 0) {
            for (std::size_t i = state.order.size(); i > 1; --i) std::swap(state.order[i - 1], state.order[rng.below(i)]);
            const auto held_out =
                static_cast<std::size_t>(options.validation_fraction * static_cast<double>(state.order.size()));
            state.validation.assign(state.order.end() - static_cast<std::ptrdiff_t>(held_out), state.order.end());
            state.order.resize(state.order.size() - held_out);
        }
    }
    if (state.order.empty()) throw parameter_error("fit: no training samples");
    std::optional<SubsetSource<Source>> validation;
    if (!state.validation.empty()) validation.emplace(train, state.validation);

    const std::size_t batch_size = std::min(options.batch_size, state.order.size());
    std::size_t steps = (state.order.size() + batch_size - 1) / batch_size;
    // Batch normalisation cannot learn from a batch of one sample: a last batch that would give
    // a shard one sample (with one shard: a last batch of one) is left out of that epoch (a
    // different sample each epoch, as the order is shuffled).
    if (detail::uses_batch_statistics(net) && steps > 1 && state.order.size() - (steps - 1) * batch_size < 2 * shards)
        --steps;
    SingleProcess alone;
    std::optional<detail::ShardedStep<T>> sharded;
    if (shards > 1 || processes > 1)
        sharded.emplace(communicator != nullptr ? *communicator : alone, shards,
                        std::span<const ParameterGroup<T>>{groups});
    bool stop_after_epoch = false;  // sharded: rank 0's answer at the epoch's last batch
    typename Net::Workspace workspace;
    Tensor<T, 4> x(train.batch_shape(batch_size));
    Tensor<T, 4> delta;
    std::vector<std::uint32_t> labels(batch_size);
    const double base_rate = optimizer.learning_rate();

    History<T> history;
    history.epochs = state.epochs;
    history.best_epoch = state.best_epoch;
    // Stops here: hands what it takes to continue to History::resume.
    const auto interrupt = [&] {
        state.rng = rng.state();
        state.optimizer = optimizer.state();
        state.epochs = history.epochs;
        history.interrupted = true;
        history.resume = std::move(state);
        optimizer.set_learning_rate(base_rate);
    };
    const auto save_best = [&] {
        state.best_parameters.clear();
        for (const auto& group : groups)
            state.best_parameters.insert(state.best_parameters.end(), group.values.begin(), group.values.end());
    };

    for (; state.epoch < options.epochs; ++state.epoch) {
        const std::size_t epoch = state.epoch;
        const auto started = Clock::now();
        double rate = options.schedule.rate(base_rate, epoch, options.epochs, state.step, steps);
        if (state.step == 0) {
            for (std::size_t i = state.order.size(); i > 1; --i) std::swap(state.order[i - 1], state.order[rng.below(i)]);
            state.loss_sum = 0;
            state.correct = state.seen = 0;
        }

        for (; state.step < steps; ++state.step) {
            const std::size_t step = state.step;
            rate = options.schedule.rate(base_rate, epoch, options.epochs, step, steps);
            optimizer.set_learning_rate(rate);
            const std::size_t first = step * batch_size, n = std::min(batch_size, state.order.size() - first);
            if (sharded) {
                const auto [loss_sum, correct, stop] = detail::sharded_step(
                    net, *sharded, groups, workspace, train, {state.order.data() + first, n}, x, delta, labels, options,
                    rng(), shards);
                const double loss = loss_sum / static_cast<double>(n);
                if (!std::isfinite(loss)) {
                    std::ostringstream message;
                    message << "training diverged: the loss became " << loss << " at epoch " << epoch + 1 << ", step "
                            << step + 1 << " (learning rate " << rate << "); try a lower learning rate";
                    throw training_error(message.str());
                }
                optimizer.step(groups);
                state.correct += correct;
                state.loss_sum += loss_sum;
                state.seen += n;
                if (options.on_batch)
                    options.on_batch({epoch + 1, options.epochs, step + 1, steps, loss,
                                      state.loss_sum / static_cast<double>(state.seen),
                                      static_cast<double>(state.correct) / static_cast<double>(state.seen), state.seen,
                                      rate, std::chrono::duration<double>(Clock::now() - started).count()});
                stop_after_epoch = stop;
                if (stop && step + 1 < steps) {
                    ++state.step;
                    interrupt();
                    return history;
                }
                continue;
            }
            x.resize(train.batch_shape(n));
            train.template fill_batch<T>({state.order.data() + first, n}, x.view(), {labels.data(), n}, options.normalization,
                                options.augmentation, rng);

            const auto output = net.forward(x.view(), workspace, Mode::training, &rng);
            delta.resize(output.shape());
            const double loss =
                softmax_cross_entropy<T>(output, {labels.data(), n}, delta.view(), options.label_smoothing);
            if (!std::isfinite(loss)) {
                std::ostringstream message;
                message << "training diverged: the loss became " << loss << " at epoch " << epoch + 1 << ", step "
                        << step + 1 << " (learning rate " << rate << "); try a lower learning rate";
                throw training_error(message.str());
            }
            for (std::size_t i = 0; i < n; ++i) state.correct += predicted_class<T>(output, i) == labels[i];
            net.zero_gradients();
            net.backward(delta.view(), workspace);
            optimizer.step(groups);

            state.loss_sum += loss * static_cast<double>(n);
            state.seen += n;
            if (options.on_batch) {
                options.on_batch({epoch + 1, options.epochs, step + 1, steps, loss,
                                  state.loss_sum / static_cast<double>(state.seen),
                                  static_cast<double>(state.correct) / static_cast<double>(state.seen), state.seen, rate,
                                  std::chrono::duration<double>(Clock::now() - started).count()});
            }
            if (options.should_stop && options.should_stop() && step + 1 < steps) {
                ++state.step;
                interrupt();
                return history;
            }
        }
        state.step = 0;

        EpochReport report;
        report.epoch = epoch + 1;
        report.epochs = options.epochs;
        report.train_loss = state.loss_sum / static_cast<double>(std::max<std::size_t>(state.seen, 1));
        report.train_accuracy = static_cast<double>(state.correct) / static_cast<double>(std::max<std::size_t>(state.seen, 1));
        report.learning_rate = rate;
        report.train_seconds = std::chrono::duration<double>(Clock::now() - started).count();
        if (sharded) {
            report.communication_seconds = sharded->communication_seconds;
            sharded->communication_seconds = 0;
        }
        // In the training workspace: its buffers, grown by the training batches, take the
        // evaluation's (a second workspace would hold a second copy of the activations).
        if (validation)
            report.validation = evaluate(net, *validation, workspace, options.normalization, 64, communicator);
        if (options.monitor_data)
            report.monitor = evaluate(net, options.monitor_data, workspace, options.normalization, 64, communicator);
        report.seconds = std::chrono::duration<double>(Clock::now() - started).count();
        history.epochs.push_back(report);
        if (options.on_epoch) options.on_epoch(report);

        if (validation && !std::isfinite(report.validation->loss)) {
            std::ostringstream message;
            message << "training diverged: the validation loss became " << report.validation->loss << " at epoch "
                    << epoch + 1 << " (learning rate " << rate << "); try a lower learning rate";
            throw training_error(message.str());
        }
        if (validation && options.early_stopping_patience > 0) {
            if (report.validation->loss < state.best_loss) {
                state.best_loss = report.validation->loss;
                history.best_epoch = state.best_epoch = epoch + 1;
                state.epochs_without_improvement = 0;
                save_best();
            } else if (++state.epochs_without_improvement >= options.early_stopping_patience) {
                // Set by save_best whenever the loss was finite, which it was (checked above).
                if (state.best_parameters.size() != net.parameter_count())
                    throw training_error("fit: early stopping has no best weights to restore");
                std::size_t offset = 0;
                for (const auto& group : groups) {
                    std::copy_n(state.best_parameters.begin() + static_cast<std::ptrdiff_t>(offset),
                                group.values.size(), group.values.begin());
                    offset += group.values.size();
                }
                history.stopped_early = true;
                break;
            }
        }
        const bool stop = sharded ? stop_after_epoch : options.should_stop && options.should_stop();
        if (stop && epoch + 1 < options.epochs) {
            ++state.epoch;
            interrupt();
            return history;
        }
    }
    optimizer.set_learning_rate(base_rate);
    return history;
}

}  // namespace cnn
