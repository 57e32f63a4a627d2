// mnist_train: trains one of the example networks on an image data set (by default
// Debian's Fashion-MNIST; IDX, CIFAR-10 or CIFAR-100 files), then reports the test
// accuracy, prints the confusion matrix, writes the training curves as SVG and saves the model.
#include <cnn/cnn.hpp>
#if defined(CNN_WITH_ONNX)
#include <cnn/onnx.hpp>
#endif
#if defined(CNN_WITH_MPI)
#include <cnn/mpi.hpp>
#endif

#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <csignal>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

#include "common.hpp"
#include "networks.hpp"
#include "svg_plot.hpp"

namespace {

const char* usage = R"(usage: mnist_train [flags]

  --data DIR          the data set, its format told by what DIR holds (default
                      /usr/share/datasets/fashion-mnist):
                        IDX        train-/t10k-images-idx3-ubyte and -labels-idx1-ubyte, raw
                                   or .gz, and optionally classes.txt (one name per line)
                        CIFAR-10   data_batch_1.bin to data_batch_5.bin, test_batch.bin and
                                   optionally batches.meta.txt (cifar-10-batches-bin)
                        CIFAR-100  train.bin, test.bin, optionally fine_label_names.txt
                                   (cifar-100-binary; the 100 fine labels, or with
                                   --labels coarse the 20 superclasses and
                                   coarse_label_names.txt)
                        folders    train/ and test/, each with one folder of PNG, JPEG,
                                   PGM or PPM images per class, named after it
                      The networks take the data's image size, channels and classes.
  --image-size HxW    resize the images of folders to H x W (default: every image must have
                      the first one's size)
  --labels fine|coarse  CIFAR-100: learn the 100 fine classes (default) or the 20 superclasses
  --classes FILE      the class names, one per line (default: the data set's own; Fashion-MNIST's
                      names for the default data set; else the class numbers)
  --net NAME          lenet (LeNet-5, ReLU, max pooling; default), wide (conv32-pool-conv64-pool-dense128),
                      wide-bn (wide with batch normalisation and dropout 0.25/0.25/0.5),
                      resnet (a 14-layer ResNet with batch normalisation, 16/32/64 channels)
                      or mobilenet (depthwise 3x3 + pointwise 1x1 blocks, 16 to 128 channels)
  --augment           random crops (zero padding of an eighth of the image side) and horizontal
                      flips of the training images, drawn from the seed (default on for resnet,
                      off otherwise; --augment=no turns it off)
  --crop N            with --augment: the crops' zero padding (default an eighth of the image
                      side; 0: flips only)
  --cutout N          also zero a random N x N square of each training image (default 0: off)
  --epochs N          passes over the training set, at least 1 (default 15 for lenet, 12 for
                      wide, 40 for wide-bn, 20 for resnet, 10 for mobilenet)
  --batch N           mini-batch size, at least 1 (default 128 for resnet, else 64)
  --optimizer NAME    sgd, nesterov or adam (default adam for wide and wide-bn, else nesterov)
  --lr X              base learning rate (default 0.05 for sgd/nesterov, 0.1 for resnet, 0.001 for adam)
  --momentum X        momentum of sgd/nesterov (default 0.9)
  --weight-decay X    L2 weight decay (default 0.0005 for sgd/nesterov, 0 for adam)
  --schedule NAME     cosine (default), step (x0.1 every third of the epochs) or constant
  --warmup N          first raise the rate linearly, batch by batch, over N epochs; the
                      schedule then runs over the remaining epochs (default 1 for resnet, else 0)
  --label-smoothing E train towards 1 - E for the true class plus E / K spread over all K
                      classes, from 0 to 1 (default 0.1 for resnet, else 0)
  --validation F      hold out this fraction of the training set to validate on (default 0)
  --patience N        with --validation: stop after N epochs without improvement (default 0: never)
  --seed N            seed of the weights and the shuffling (default 1)
  --threads N         threads for the kernels; 0 or unset: every hardware thread
  --limit N           use only the first N training images (quick runs)
  --test-limit N      evaluate on the first N test images only (quick runs)
  --output PATH       the model file (default model-NET.cnn); the curves go next to it as .svg
  --export-onnx PATH  also write the trained model as an ONNX file (opset 13; the input
                      normalisation and class names go into its metadata; needs a build
                      with ONNX: libonnx-dev, libprotobuf-dev)
  --resume PATH       continue an interrupted run from its checkpoint, with its settings
                      (only --threads, --distributed and --export-onnx may be given with it)
  --distributed       one of the processes of `mpirun -np P mnist_train --distributed ...`
                      (data-parallel; needs a build with Open MPI): each takes its share of
                      every batch, rank 0 alone prints and writes files, and writes the
                      checkpoint after every epoch (if a rank dies, --resume it)
  --shards N          with --distributed: gradient shards per batch, at least P (default 6,
                      or P when more): the same N gives the same model for any number of
                      processes up to N (with the default: 1, 2, 3 or 6 processes)

Numbers are plain decimal; an empty value or a flag given twice is an error. The
output's place is checked before training starts; if the final save still fails,
the model is saved to a temporary file that the error message names.

Ctrl-C finishes the current batch, writes PATH.checkpoint next to the model and
exits; --resume PATH.checkpoint then ends with the same weights as an
uninterrupted run. A second Ctrl-C stops at once.
)";

volatile std::sig_atomic_t interrupt_requested = 0;

extern "C" void on_interrupt(int) { interrupt_requested = 1; }

void install_interrupt_handler() {
    struct sigaction action {};
    action.sa_handler = on_interrupt;
    action.sa_flags = SA_RESETHAND;  // a second Ctrl-C ends the program the usual way
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
}

std::string format_duration(double seconds) {
    std::ostringstream out;
    const auto total = static_cast<long>(seconds + 0.5);
    if (total >= 3600) out << total / 3600 << "h";
    out << std::setw(total >= 3600 ? 2 : 1) << std::setfill('0') << (total / 60) % 60 << ":" << std::setw(2)
        << total % 60;
    return out.str();
}

/// Columns of the terminal on standard output (COLUMNS, else 80, when it cannot be asked).
std::size_t terminal_columns() {
    winsize size{};
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
    if (const char* columns = std::getenv("COLUMNS")) {
        const long value = std::strtol(columns, nullptr, 10);
        if (value > 0) return static_cast<std::size_t>(value);
    }
    return 80;
}

/// One progress line that fits `columns` (a line that wraps can no longer be redrawn in
/// place): the bar takes what the numbers leave, and the numbers least needed go first
/// when even that is too narrow.
std::string progress_line(const cnn::BatchReport& r, std::size_t columns) {
    const double fraction = static_cast<double>(r.step) / static_cast<double>(r.steps);
    const double rate = static_cast<double>(r.images) / std::max(r.seconds, 1e-9);
    const double per_step = r.seconds / static_cast<double>(r.step);
    const double epoch_left = per_step * static_cast<double>(r.steps - r.step);
    const double run_left = epoch_left + per_step * static_cast<double>(r.steps * (r.epochs - r.epoch));
    char text[160];
    std::vector<std::string> parts;
    std::snprintf(text, sizeof text, "epoch %zu/%zu", r.epoch, r.epochs);
    const std::string head = text;
    std::snprintf(text, sizeof text, " %3.0f%%", fraction * 100);
    const std::string percent = text;
    std::snprintf(text, sizeof text, "  loss %.4f acc %.4f", r.running_loss, r.running_accuracy);
    const std::string metrics = text;
    std::snprintf(text, sizeof text, "  %.0f img/s", rate);
    const std::string speed = text;
    const std::string eta = "  ETA " + format_duration(epoch_left) + " (run " + format_duration(run_left) + ")";
    std::vector<std::string> tail{speed, metrics, eta};  // dropped from the front when too narrow
    const auto length = [&] {
        std::size_t n = head.size() + percent.size();
        for (const auto& t : tail) n += t.size();
        return n;
    };
    constexpr std::size_t min_bar = 10;
    while (!tail.empty() && length() + min_bar + 3 >= columns) tail.erase(tail.begin());
    const std::size_t room = columns > length() + 4 ? columns - length() - 4 : 0;
    const std::size_t bar = std::min<std::size_t>(40, room);
    std::string line = head;
    if (bar >= 3) {
        const auto filled = static_cast<std::size_t>(fraction * static_cast<double>(bar));
        line += " [" + std::string(filled, '#') + std::string(bar - filled, '.') + "]";
    }
    line += percent;
    for (const auto& t : tail) line += t;
    if (line.size() >= columns) line.resize(columns - 1);
    return line;
}

/// A switch that may be turned off: --name (on), --name=yes|on|1, --name=no|off|0.
bool switch_value(examples::Arguments& args, const std::string& name, bool fallback) {
    const std::string value = args.text(name, fallback ? "1" : "0");
    if (value == "1" || value == "yes" || value == "on") return true;
    if (value == "0" || value == "no" || value == "off") return false;
    throw std::invalid_argument("--" + name + " is a switch: --" + name + ", or --" + name + "=no to turn it off; got '" +
                                value + "'");
}

struct Settings {
    std::filesystem::path data;
    std::filesystem::path classes;  ///< --classes, or empty
    bool default_data = false;      ///< no --data: Debian's Fashion-MNIST
    std::string net_name, optimizer, schedule;
    std::size_t epochs, batch, seed, threads, limit, test_limit = 0, patience, warmup = 0, cutout = 0;
    std::optional<std::size_t> crop;  ///< --crop N; unset: an eighth of the image side
    std::string image_size;  ///< --image-size HxW, or empty
    std::string labels = "fine";  ///< --labels: CIFAR-100's fine or coarse labels
    std::size_t shards = 1;       ///< --shards: gradient shards per batch
    bool augment = false;
    double lr, momentum, weight_decay, validation, label_smoothing = 0;
    std::filesystem::path output;
    std::filesystem::path checkpoint;  ///< where Ctrl-C writes the checkpoint
    std::filesystem::path onnx;        ///< --export-onnx, or empty (not a training setting: not recorded)

    /// What a checkpoint records, so that --resume continues with the same settings.
    [[nodiscard]] std::string to_metadata() const {
        std::ostringstream out;
        out << std::setprecision(17) << "setting.data=" << data.string() << "\nsetting.classes=" << classes.string()
            << "\nsetting.default_data=" << default_data << "\nsetting.net=" << net_name
            << "\nsetting.optimizer=" << optimizer << "\nsetting.schedule=" << schedule << "\nsetting.epochs=" << epochs
            << "\nsetting.batch=" << batch << "\nsetting.seed=" << seed << "\nsetting.limit=" << limit
            << "\nsetting.test_limit=" << test_limit
            << "\nsetting.patience=" << patience << "\nsetting.lr=" << lr << "\nsetting.momentum=" << momentum
            << "\nsetting.weight_decay=" << weight_decay << "\nsetting.validation=" << validation
            << "\nsetting.label_smoothing=" << label_smoothing << "\nsetting.warmup=" << warmup
            << "\nsetting.augment=" << augment << "\nsetting.cutout=" << cutout
            << "\nsetting.image_size=" << image_size << "\nsetting.crop=" << (crop ? std::to_string(*crop) : "")
            << "\nsetting.labels=" << labels << "\nsetting.shards=" << shards
            << "\nsetting.output=" << output.string() << "\n";
        return out.str();
    }
    /// The settings a checkpoint recorded; a missing or malformed one is an error naming it.
    static Settings from_metadata(const std::map<std::string, std::string>& m, const std::filesystem::path& checkpoint,
                                  std::size_t threads) {
        const auto get = [&](const std::string& key) -> const std::string& {
            const auto it = m.find("setting." + key);
            if (it == m.end())
                throw std::runtime_error(checkpoint.string() + ": the checkpoint does not record setting " + key +
                                         " (not written by mnist_train?)");
            return it->second;
        };
        const auto number = [&](const std::string& key) {
            const std::optional<double> value = examples::finite_number(get(key));
            if (!value)
                throw std::runtime_error(checkpoint.string() + ": setting " + key + " is '" + get(key) +
                                         "', not a number");
            return *value;
        };
        const auto count = [&](const std::string& key) {
            const double value = number(key);
            if (value < 0 || value > 1e15 || value != std::floor(value))
                throw std::runtime_error(checkpoint.string() + ": setting " + key + " is not a whole number >= 0");
            return static_cast<std::size_t>(value);
        };
        Settings s;
        s.data = get("data");
        s.classes = m.count("setting.classes") ? m.at("setting.classes") : "";
        s.default_data = m.count("setting.default_data") && m.at("setting.default_data") == "1";
        s.net_name = get("net");
        s.optimizer = get("optimizer");
        s.schedule = get("schedule");
        s.epochs = count("epochs");
        s.batch = count("batch");
        s.seed = count("seed");
        s.limit = count("limit");
        s.test_limit = m.count("setting.test_limit") ? count("test_limit") : 0;
        s.patience = count("patience");
        s.lr = number("lr");
        s.momentum = number("momentum");
        s.weight_decay = number("weight_decay");
        s.validation = number("validation");
        // (checkpoints from before label smoothing do not record it: they trained without)
        s.label_smoothing = m.count("setting.label_smoothing") ? number("label_smoothing") : 0.0;
        s.warmup = m.count("setting.warmup") ? count("warmup") : 0;
        s.augment = m.count("setting.augment") && m.at("setting.augment") == "1";
        s.cutout = m.count("setting.cutout") ? count("cutout") : 0;
        s.image_size = m.count("setting.image_size") ? m.at("setting.image_size") : "";
        if (m.count("setting.crop") && !m.at("setting.crop").empty()) s.crop = count("crop");
        s.labels = m.count("setting.labels") ? m.at("setting.labels") : "fine";
        s.shards = m.count("setting.shards") ? count("shards") : 1;
        s.output = get("output");
        s.threads = threads;
        return s;
    }
};


/// Saves the model; when that fails (the disk filled up, the directory went away), saves it
/// to a temporary file instead and says where, so that the trained weights are never lost.
/// Returns whether the model is where it was asked to go.
template <class Net>
bool save_or_keep(const Net& net, const std::filesystem::path& path, const std::string& metadata) {
    try {
        cnn::save_model(net, path, metadata);
        return true;
    } catch (const cnn::error& e) {
        std::error_code ignored;
        const std::filesystem::path fallback = std::filesystem::temp_directory_path(ignored) /
                                               ("mnist_train-" + std::to_string(::getpid()) + ".cnn");
        std::cerr << "mnist_train: " << e.what() << "\n";
        cnn::save_model(net, fallback, metadata);
        std::cerr << "mnist_train: the trained model was saved to " << fallback.string() << " instead\n";
        return false;
    }
}

template <class Net, class Optimizer>
int train(Net net, Optimizer optimizer, const Settings& settings, const cnn::Dataset& train_set,
          const cnn::Dataset& test_set, const cnn::TrainingState<typename Net::value_type>* resume,
          cnn::Communicator* communicator) {
    // With --distributed, rank 0 leads: it alone prints and writes files.
    const bool lead = communicator == nullptr || communicator->rank() == 0;
    if (!lead) std::cout.setstate(std::ios::failbit);
    const bool terminal = lead && ::isatty(STDOUT_FILENO) != 0;
    const std::vector<std::string> names = examples::class_names(train_set, settings.classes, settings.default_data);
    const cnn::Normalization normalization = train_set.pixel_statistics();

    cnn::Random rng{settings.seed};  // with --resume, fit restores its state from the checkpoint
    if (resume == nullptr)
        net.initialize(rng);
    else
        std::cout << "resuming at epoch " << resume->epoch + 1 << ", step " << resume->step + 1 << " from "
                  << settings.checkpoint.string() << "\n";
    std::cout << net.summary(train_set.batch_shape(settings.batch));
    std::cout << "training on " << train_set.size() << " " << examples::task_of(train_set).input_text()
              << " images of " << train_set.files.at(0).string() << " with "
              << settings.optimizer << " (lr " << settings.lr << "), batch " << settings.batch << ", "
              << settings.epochs << " epochs, " << cnn::threads() << " thread(s)";
    if (communicator != nullptr)
        std::cout << " in each of " << communicator->size() << " processes, " << settings.shards
                  << " gradient shards per batch";
    std::cout << "\n";

    cnn::FitOptions options;
    options.epochs = settings.epochs;
    options.batch_size = settings.batch;
    options.normalization = normalization;
    options.validation_fraction = settings.validation;
    options.label_smoothing = settings.label_smoothing;
    if (settings.augment) {
        options.augmentation.crop_padding =
            settings.crop.value_or(std::max<std::size_t>(1, std::min(train_set.rows, train_set.cols) / 8));
        options.augmentation.horizontal_flip = true;
    }
    options.augmentation.cutout = settings.cutout;
    options.early_stopping_patience = settings.patience;
    options.monitor_data = &test_set;
    options.communicator = communicator;
    options.gradient_shards = settings.shards;
    if (settings.schedule == "cosine")
        options.schedule = cnn::Schedule::cosine();
    else if (settings.schedule == "step")
        options.schedule = cnn::Schedule::step(std::max<std::size_t>(1, (settings.epochs - settings.warmup + 2) / 3), 0.1);
    else if (settings.schedule != "constant")
        throw std::invalid_argument("--schedule takes cosine, step or constant, got " + settings.schedule);
    options.schedule = options.schedule.with_warmup(settings.warmup);

    auto last_draw = std::chrono::steady_clock::now() - std::chrono::seconds(1);
    std::size_t drawn = 0;  // the length of the progress line on the screen
    options.on_batch = [&](const cnn::BatchReport& r) {
        if (!terminal) return;
        const auto now = std::chrono::steady_clock::now();
        if (r.step != r.steps && now - last_draw < std::chrono::milliseconds(100)) return;
        last_draw = now;
        const std::string line = progress_line(r, terminal_columns());
        std::printf("\r%s%s", line.c_str(), std::string(drawn > line.size() ? drawn - line.size() : 0, ' ').c_str());
        drawn = line.size();
        std::fflush(stdout);
    };
    // With --distributed, a checkpoint after every epoch (rank 0 writes it): a rank that dies
    // or hangs ends the whole job, which then resumes from the last one. Once an epoch is
    // reported, fit is stopped (at the next batch, when rank 0 polls should_stop), the
    // checkpoint written, and fit continued from its state, exactly.
    const bool checkpoint_epochs = communicator != nullptr;
    bool epoch_reported = false;
    options.on_epoch = [&](const cnn::EpochReport& r) {
        epoch_reported = true;
        if (!lead) return;
        if (terminal) std::printf("\r%s\r", std::string(drawn, ' ').c_str());
        drawn = 0;
        std::printf("epoch %zu/%zu  lr %.5f  train loss %.4f acc %.4f", r.epoch, r.epochs, r.learning_rate,
                    r.train_loss, r.train_accuracy);
        if (r.validation) std::printf("  val loss %.4f acc %.4f", r.validation->loss, r.validation->accuracy);
        if (r.monitor) std::printf("  test loss %.4f acc %.4f", r.monitor->loss, r.monitor->accuracy);
        std::printf("  %.1fs (%.0f img/s)", r.seconds,
                    static_cast<double>(train_set.size()) * (1 - settings.validation) / r.train_seconds);
        if (communicator != nullptr)
            std::printf("  %.1f%% of it passing gradients", 100.0 * r.communication_seconds / r.train_seconds);
        std::printf("\n");
        std::fflush(stdout);
    };

    options.should_stop = [&] { return interrupt_requested != 0 || (checkpoint_epochs && epoch_reported); };
    install_interrupt_handler();

    const auto started = std::chrono::steady_clock::now();
    std::optional<cnn::TrainingState<typename Net::value_type>> state;
    const cnn::TrainingState<typename Net::value_type>* from = resume;
    cnn::History<typename Net::value_type> history;
    for (;;) {
        history = cnn::fit(net, optimizer, train_set, rng, options, from);
        if (!history.interrupted) break;
        // Ctrl-C, or an epoch's checkpoint? Rank 0's answer (its should_stop stopped fit) holds.
        std::byte by_user{static_cast<unsigned char>(interrupt_requested != 0 ? 1 : 0)};
        if (communicator != nullptr && communicator->size() > 1) communicator->broadcast({&by_user, 1}, 0);
        if (by_user != std::byte{0}) break;
        if (lead) cnn::save_checkpoint(net, *history.resume, settings.checkpoint, settings.to_metadata());
        state = std::move(history.resume);
        from = &*state;
        epoch_reported = false;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (history.interrupted && !lead) return 130;  // rank 0 writes the checkpoint
    if (history.interrupted) {
        if (terminal) std::printf("\n");
        cnn::save_checkpoint(net, *history.resume, settings.checkpoint, settings.to_metadata());
        std::cout << "interrupted; training would continue with epoch " << history.resume->epoch + 1 << ", step "
                  << history.resume->step + 1 << "; checkpoint written to " << settings.checkpoint.string() << "\n"
                  << "continue with: mnist_train --resume " << settings.checkpoint.string() << "\n";
        return 130;
    }
    if (history.stopped_early)
        std::cout << "stopped early; restored the weights of epoch " << history.best_epoch << "\n";
    std::cout << "trained in " << format_duration(seconds) << " (" << std::fixed << std::setprecision(1) << seconds
              << " s)\n";
    std::cout.unsetf(std::ios::fixed);

    if (!lead) return 0;  // every rank holds the same model; rank 0 evaluates and saves it
    const cnn::Evaluation result = cnn::evaluate(net, test_set, normalization);
    examples::print_confusion(std::cout, result, names);

    std::ostringstream metadata;
    metadata << std::setprecision(17) << "net=" << settings.net_name << "\n"
             << examples::normalization_metadata(normalization)
             << "input_shape=" << examples::task_of(train_set).input_text()
             << "\nclass_count=" << train_set.classes << "\nclasses=";
    for (std::size_t i = 0; i < names.size(); ++i) metadata << (i ? "," : "") << names[i];
    metadata << "\ntest_accuracy=" << result.accuracy << "\n";
    bool saved = save_or_keep(net, settings.output, metadata.str());
#if defined(CNN_WITH_ONNX)
    if (!settings.onnx.empty()) {
        std::string classes;
        for (std::size_t i = 0; i < names.size(); ++i) classes += (i ? "," : "") + names[i];
        try {
            const examples::Task task = examples::task_of(train_set);
            cnn::save_onnx(net, settings.onnx, {task.channels, task.rows, task.cols},
                           {.normalization = normalization, .metadata = {{"classes", classes}}});
            std::cout << "ONNX model written to " << settings.onnx.string() << "\n";
        } catch (const cnn::error& e) {
            std::cerr << "mnist_train: " << e.what() << "\n";
            saved = false;
        }
    }
#endif

    std::vector<examples::Series> loss{{"train", "#1f77b4", {}}, {"test", "#d62728", {}}};
    std::vector<examples::Series> accuracy{{"train", "#1f77b4", {}}, {"test", "#d62728", {}}};
    for (const cnn::EpochReport& r : history.epochs) {
        loss[0].values.push_back(r.train_loss);
        accuracy[0].values.push_back(r.train_accuracy);
        loss[1].values.push_back(r.monitor->loss);
        accuracy[1].values.push_back(r.monitor->accuracy);
    }
    // The curves are a convenience: failing to write them is a warning, not a failed run.
    const std::filesystem::path curves = examples::curves_path(settings.output);
    try {
        cnn::write_file_atomically(curves, examples::training_curves_svg(
                                               settings.net_name + " on " + settings.data.filename().string(), loss,
                                               accuracy));
        if (saved) std::cout << "model saved to " << settings.output.string() << ", training curves to " << curves.string() << "\n";
    } catch (const cnn::error& e) {
        std::cerr << "mnist_train: warning: no training curves: " << e.what() << "\n";
        if (saved) std::cout << "model saved to " << settings.output.string() << "\n";
    }
    if ((resume != nullptr || checkpoint_epochs) && saved) std::filesystem::remove(settings.checkpoint);
    std::printf("test accuracy: %.4f\n", result.accuracy);
    return saved ? 0 : 1;
}

#if defined(CNN_WITH_MPI)
std::optional<cnn::MpiSession> mpi_session;  // with --distributed; outlives main's error handler
std::optional<cnn::MpiCommunicator> mpi_world;
#endif

}  // namespace

int main(int argc, char** argv) try {
    examples::Arguments args(argc, argv, {"help", "augment", "distributed"});
    if (args.flag("help")) {
        std::cout << usage;
        return 0;
    }
    const std::size_t threads = examples::thread_count(args, "mnist_train");
    cnn::set_threads(threads);
    Settings s;
    cnn::Communicator* communicator = nullptr;
    if (args.flag("distributed")) {
#if defined(CNN_WITH_MPI)
        mpi_session.emplace(argc, argv);
        mpi_world.emplace();
        communicator = &*mpi_world;
#else
        throw std::invalid_argument("--distributed needs a build with MPI (install libopenmpi-dev and rebuild)");
#endif
    }
    const bool lead = communicator == nullptr || communicator->rank() == 0;
    s.onnx = args.text("export-onnx", "");
#if !defined(CNN_WITH_ONNX)
    if (!s.onnx.empty())
        throw std::invalid_argument("--export-onnx needs a build with ONNX (install libonnx-dev and libprotobuf-dev and rebuild)");
#endif
    const std::filesystem::path resume_path = args.text("resume", "");
    if (!resume_path.empty()) {
        args.reject_unknown({"data", "classes", "net", "epochs", "batch", "optimizer", "lr", "momentum",
                             "weight-decay", "schedule", "validation", "patience", "seed", "limit", "test-limit", "output",
                             "label-smoothing", "warmup", "augment", "cutout", "image-size", "crop", "labels", "shards"},
                            "with --resume the settings come from the checkpoint");
        // The checkpoint records its settings, readable before a network is built.
        s = Settings::from_metadata(examples::parse_metadata(cnn::read_checkpoint_metadata(resume_path)), resume_path,
                                    threads);
        s.checkpoint = resume_path;
    } else {
        s.default_data = !args.has("data");
        s.data = args.text("data", examples::default_data_directory);
        s.classes = args.text("classes", "");
        s.net_name = args.text("net", "lenet");
        // Defaults that reach the accuracy the README reports for each network; the ResNet's
        // are its training recipe (augmentation, label smoothing, warm-up, larger batches).
        const bool wide = s.net_name == "wide" || s.net_name == "wide-bn";
        const bool resnet = s.net_name == "resnet";
        s.augment = switch_value(args, "augment", resnet);
        s.cutout = args.count("cutout", 0);
        if (args.has("crop")) s.crop = args.count("crop", 0, 1024);
        s.image_size = args.text("image-size", "");
        s.labels = args.text("labels", "fine");
        if (args.has("shards") && communicator == nullptr)
            throw std::invalid_argument("--shards applies to --distributed training");
        s.shards = args.count("shards", communicator != nullptr ? std::max<std::size_t>(6, communicator->size()) : 1);
        s.epochs = args.count("epochs", s.net_name == "wide"        ? 12
                                        : s.net_name == "wide-bn"   ? 40
                                        : resnet                    ? 20
                                        : s.net_name == "mobilenet" ? 10
                                                                    : 15);
        s.batch = args.count("batch", resnet ? 128 : 64);
        s.optimizer = args.text("optimizer", wide ? "adam" : "nesterov");
        const bool adam = s.optimizer == "adam";
        s.lr = args.number("lr", adam ? 0.001 : resnet ? 0.1 : 0.05);
        s.momentum = args.number("momentum", 0.9);
        s.weight_decay = args.number("weight-decay", adam ? 0.0 : 0.0005);
        s.schedule = args.text("schedule", "cosine");
        s.validation = args.number("validation", 0.0);
        s.label_smoothing = args.number("label-smoothing", resnet ? 0.1 : 0.0);
        s.warmup = args.count("warmup", resnet && s.epochs > 1 ? 1 : 0);
        s.patience = args.count("patience", 0);
        s.seed = args.count("seed", 1, std::numeric_limits<std::uint64_t>::max());
        s.limit = args.count("limit", 0);
        s.test_limit = args.count("test-limit", 0);
        s.output = args.text("output", "model-" + s.net_name + ".cnn");
        s.checkpoint = s.output;
        s.checkpoint += ".checkpoint";
        s.threads = threads;
        args.reject_unknown();
    }
    if (!args.positional().empty()) throw std::invalid_argument("unexpected argument '" + args.positional()[0] + "'");
    if (s.epochs == 0) throw std::invalid_argument("--epochs must be at least 1");
    if (s.batch == 0) throw std::invalid_argument("--batch must be at least 1");
    if (s.crop && !s.augment) throw std::invalid_argument("--crop applies to --augment, which is off");
    if (s.warmup >= s.epochs)
        throw std::invalid_argument("--warmup " + std::to_string(s.warmup) + " leaves none of the " +
                                    std::to_string(s.epochs) + " epochs to the schedule");
    if (!(s.label_smoothing >= 0 && s.label_smoothing <= 1))
        throw std::invalid_argument("--label-smoothing takes a number from 0 to 1, got " +
                                    std::to_string(s.label_smoothing));
    // Before any training: every file the run will write can be written, and none is another.
    if (examples::curves_path(s.output) == s.output)
        throw std::invalid_argument("--output " + s.output.string() + ": the training curves go to " +
                                    examples::curves_path(s.output).string() +
                                    ", so the model needs another name (e.g. " +
                                    std::filesystem::path(s.output).replace_extension(".cnn").string() + ")");
    if (communicator != nullptr && s.shards < communicator->size())
        throw std::invalid_argument("--shards " + std::to_string(s.shards) + " is fewer than the " +
                                    std::to_string(communicator->size()) + " processes; each needs a shard");
    if (communicator == nullptr && s.shards != 1)
        throw std::invalid_argument("the checkpoint was written by a --distributed run of " + std::to_string(s.shards) +
                                    " gradient shards: resume it with --distributed");
    if (!s.onnx.empty() && (s.onnx == s.output || s.onnx == examples::curves_path(s.output) || s.onnx == s.checkpoint))
        throw std::invalid_argument("--export-onnx " + s.onnx.string() + " is where another file of the run goes");
    if (lead)
        for (const std::filesystem::path& path : {s.output, examples::curves_path(s.output), s.checkpoint, s.onnx})
            if (!path.empty()) cnn::check_writable(path);

    if (std::find(examples::network_names.begin(), examples::network_names.end(), s.net_name) ==
        examples::network_names.end())
        throw std::invalid_argument("--net takes lenet, wide, wide-bn, resnet or mobilenet, got " + s.net_name);
    examples::ImageSize size;
    if (s.labels != "fine" && s.labels != "coarse")
        throw std::invalid_argument("--labels takes fine or coarse, got '" + s.labels + "'");
    if (s.labels == "coarse") {
        if (examples::detect_format(s.data) != examples::DataFormat::cifar100)
            throw std::invalid_argument("--labels coarse applies to CIFAR-100 (train.bin, test.bin); " +
                                        s.data.string() + " holds another format");
        size.cifar100_labels = cnn::CifarLabels::coarse;
    }
    if (!s.image_size.empty()) {
        const std::vector<std::string> parts = examples::split(s.image_size, 'x');
        const auto side = [](const std::string& text) {  // 0: not 1 to 4 digits
            return text.size() <= 4 ? examples::whole_number(text, 9999).value_or(0) : 0;
        };
        if (parts.size() != 2 || side(parts[0]) == 0 || side(parts[1]) == 0)
            throw std::invalid_argument("--image-size takes HxW, two whole numbers from 1 to 9999, got '" +
                                        s.image_size + "'");
        size.rows = side(parts[0]);
        size.cols = side(parts[1]);
        size.resize = true;
    }
    const cnn::Dataset train_set = examples::load_split(s.data, "train", size).head(s.limit);
    const cnn::Dataset test_set = examples::load_split(s.data, "test", size, &train_set).head(s.test_limit);
    if (examples::task_of(test_set) != examples::task_of(train_set))
        throw std::runtime_error("--data " + s.data.string() + ": the test set's images or classes (" +
                                 examples::task_of(test_set).input_text() + ", " + std::to_string(test_set.classes) +
                                 " classes) are not the training set's (" + examples::task_of(train_set).input_text() +
                                 ", " + std::to_string(train_set.classes) + ")");
    if (s.cutout > std::max(train_set.rows, train_set.cols))
        throw std::invalid_argument("--cutout " + std::to_string(s.cutout) + " is larger than the " +
                                    std::to_string(train_set.rows) + "x" + std::to_string(train_set.cols) + " images");

    int status = 0;
    const auto run = [&](auto net) {
        using T = typename decltype(net)::value_type;
        std::optional<cnn::TrainingState<T>> state;
        if (!resume_path.empty()) state = cnn::load_checkpoint(net, resume_path);
        const cnn::TrainingState<T>* resume = state ? &*state : nullptr;
        if (s.optimizer == "adam")
            status = train(std::move(net), cnn::Adam<T>{{.learning_rate = s.lr, .weight_decay = s.weight_decay}}, s,
                           train_set, test_set, resume, communicator);
        else if (s.optimizer == "sgd" || s.optimizer == "nesterov")
            status = train(std::move(net),
                           cnn::SGD<T>{{.learning_rate = s.lr, .momentum = s.momentum,
                                        .nesterov = s.optimizer == "nesterov", .weight_decay = s.weight_decay}},
                           s, train_set, test_set, resume, communicator);
        else
            throw std::invalid_argument("--optimizer takes sgd, nesterov or adam, got " + s.optimizer);
    };
    examples::with_network(s.net_name, examples::task_of(train_set), run);
    return status;
} catch (const std::exception& e) {
    std::cerr << "mnist_train: " << e.what() << "\n";
#if defined(CNN_WITH_MPI)
    if (mpi_session) cnn::MpiSession::abort(1);  // the other ranks stop too, instead of waiting
#endif
    return 1;
}
