// Checkpoints: an interrupted training run (fit's History::resume), its network
// and its optimizer in one file, so that fit can continue exactly where it stopped.
//
// Format, version 1 (little-endian): magic "CNNCHKPT", format version (u32),
// the length (u64) and bytes of a model file (io/model.hpp) holding the network
// and the application's metadata, the training state (positions, sample orders,
// generator state, running sums, early-stopping record, optimizer buffers, the
// finished epochs' reports), and a CRC-32 of everything before it. Written like
// a model: to a temporary file, flushed, renamed over the target.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "cnn/io/model.hpp"
#include "cnn/train.hpp"

namespace cnn {

inline constexpr std::string_view checkpoint_magic = "CNNCHKPT";
inline constexpr std::uint32_t checkpoint_format_version = 1;

namespace detail {

inline void put_indices(ByteWriter& out, const std::vector<std::size_t>& values) {
    out.put(static_cast<std::uint64_t>(values.size()));
    for (std::size_t v : values) out.put(static_cast<std::uint64_t>(v));
}

template <Scalar T>
void put_values(ByteWriter& out, const std::vector<T>& values) {
    out.put(static_cast<std::uint64_t>(values.size()));
    out.put_bytes(values.data(), values.size() * sizeof(T));
}

inline std::vector<std::size_t> get_indices(ByteReader& in, const char* field) {
    const auto count = in.get<std::uint64_t>(field);
    const auto* bytes = in.take(count > (std::uint64_t{1} << 40) ? ~std::size_t{0} : count * 8, field);
    std::vector<std::size_t> values(count);
    for (std::size_t i = 0; i < count; ++i) {
        std::uint64_t v;
        std::memcpy(&v, bytes + 8 * i, 8);
        values[i] = static_cast<std::size_t>(v);
    }
    return values;
}

template <Scalar T>
std::vector<T> get_values(ByteReader& in, const char* field) {
    const auto count = in.get<std::uint64_t>(field);
    const auto* bytes = in.take(count > (std::uint64_t{1} << 40) ? ~std::size_t{0} : count * sizeof(T), field);
    std::vector<T> values(count);
    if (count != 0) std::memcpy(values.data(), bytes, count * sizeof(T));
    return values;
}

}  // namespace detail

/// Saves `net` (with `metadata`, as in save_model) and the training state to `path`.
template <class Net>
void save_checkpoint(const Net& net, const TrainingState<typename Net::value_type>& state,
                     const std::filesystem::path& path, std::string_view metadata = {}) {
    using T = typename Net::value_type;
    detail::ByteWriter out;
    out.put_bytes(checkpoint_magic.data(), checkpoint_magic.size());
    out.put(checkpoint_format_version);
    const std::vector<std::uint8_t> model = serialize_model(net, metadata);
    out.put(static_cast<std::uint64_t>(model.size()));
    out.put_bytes(model.data(), model.size());
    out.put(static_cast<std::uint64_t>(state.epoch));
    out.put(static_cast<std::uint64_t>(state.step));
    detail::put_indices(out, state.order);
    detail::put_indices(out, state.validation);
    for (std::uint64_t word : state.rng.words) out.put(word);
    out.put(state.rng.spare);
    out.put(static_cast<std::uint8_t>(state.rng.has_spare));
    out.put(state.loss_sum);
    out.put(static_cast<std::uint64_t>(state.correct));
    out.put(static_cast<std::uint64_t>(state.seen));
    out.put(state.best_loss);
    out.put(static_cast<std::uint64_t>(state.best_epoch));
    out.put(static_cast<std::uint64_t>(state.epochs_without_improvement));
    detail::put_values(out, state.best_parameters);
    out.put(static_cast<std::uint64_t>(state.optimizer.buffers.size()));
    for (const auto& buffer : state.optimizer.buffers) detail::put_values<T>(out, buffer);
    out.put(state.optimizer.steps);
    out.put(static_cast<std::uint64_t>(state.epochs.size()));
    for (const EpochReport& r : state.epochs) {
        out.put(static_cast<std::uint64_t>(r.epoch));
        out.put(static_cast<std::uint64_t>(r.epochs));
        for (double v : {r.train_loss, r.train_accuracy, r.learning_rate, r.train_seconds, r.seconds}) out.put(v);
        for (const auto* evaluation : {&r.validation, &r.monitor}) {
            out.put(static_cast<std::uint8_t>(evaluation->has_value()));
            out.put(evaluation->has_value() ? (*evaluation)->loss : 0.0);
            out.put(evaluation->has_value() ? (*evaluation)->accuracy : 0.0);
        }
    }
    out.put(detail::crc32(out.bytes().data(), out.bytes().size()));
    write_file_atomically<model_error>(path, out.bytes());
}

namespace detail {

/// Checks a checkpoint's header and checksum; returns a reader past the model file it holds,
/// and that model file's bytes through `model`.
inline ByteReader open_checkpoint(const std::vector<std::uint8_t>& bytes, const std::string& name,
                                  std::vector<std::uint8_t>& model) {
    if (bytes.size() < checkpoint_magic.size() ||
        std::memcmp(bytes.data(), checkpoint_magic.data(), checkpoint_magic.size()) != 0)
        throw model_error(name + ": not a checkpoint file (it does not start with \"CNNCHKPT\")");
    if (bytes.size() < checkpoint_magic.size() + 8)
        throw model_error(name + ": truncated: " + std::to_string(bytes.size()) +
                          " bytes, too short for a checkpoint's header and checksum");
    std::uint32_t version;
    std::memcpy(&version, bytes.data() + checkpoint_magic.size(), 4);
    if (version != checkpoint_format_version)
        throw model_error(name + ": checkpoint format version " + std::to_string(version) + ", this library reads " +
                          std::to_string(checkpoint_format_version));
    const std::size_t body = bytes.size() - 4;
    std::uint32_t stored_crc;
    std::memcpy(&stored_crc, bytes.data() + body, 4);
    if (stored_crc != crc32(bytes.data(), body))
        throw model_error(name + ": checksum mismatch: the checkpoint is corrupt or truncated");

    ByteReader in(bytes, body, name);
    in.take(checkpoint_magic.size() + 4, "header");
    const auto model_size = in.get<std::uint64_t>("model size");
    const auto* model_bytes = in.take(model_size > bytes.size() ? ~std::size_t{0} : model_size, "model");
    model.assign(model_bytes, model_bytes + model_size);
    return in;
}

}  // namespace detail

/// The checkpoint in `bytes` (what save_checkpoint writes; `name` for messages): restores
/// `net`'s parameters and returns the training state. Checks everything it can first (the
/// format, the checksum, the network's architecture, the best weights' size); on any error
/// `net` is unchanged and a cnn::model_error names the problem. fit checks the rest against
/// the optimizer and the data.
template <class Net>
TrainingState<typename Net::value_type> deserialize_checkpoint(Net& net, const std::vector<std::uint8_t>& bytes,
                                                               const std::string& name,
                                                               std::string* metadata = nullptr) {
    using T = typename Net::value_type;
    std::vector<std::uint8_t> model;
    detail::ByteReader in = detail::open_checkpoint(bytes, name, model);
    const std::size_t body = bytes.size() - 4;

    TrainingState<T> state;
    state.epoch = in.get<std::uint64_t>("epoch");
    state.step = in.get<std::uint64_t>("step");
    state.order = detail::get_indices(in, "sample order");
    state.validation = detail::get_indices(in, "validation samples");
    for (std::uint64_t& word : state.rng.words) word = in.get<std::uint64_t>("generator state");
    state.rng.spare = in.get<double>("generator state");
    state.rng.has_spare = in.get<std::uint8_t>("generator state") != 0;
    state.loss_sum = in.get<double>("running loss");
    state.correct = in.get<std::uint64_t>("running accuracy");
    state.seen = in.get<std::uint64_t>("running count");
    state.best_loss = in.get<double>("best loss");
    state.best_epoch = in.get<std::uint64_t>("best epoch");
    state.epochs_without_improvement = in.get<std::uint64_t>("patience count");
    state.best_parameters = detail::get_values<T>(in, "best parameters");
    const auto buffers = in.get<std::uint64_t>("optimizer buffers");
    if (buffers > 1024) throw model_error(name + ": " + std::to_string(buffers) + " optimizer buffers is not plausible");
    for (std::uint64_t i = 0; i < buffers; ++i) state.optimizer.buffers.push_back(detail::get_values<T>(in, "optimizer state"));
    state.optimizer.steps = in.get<std::uint64_t>("optimizer steps");
    const auto epochs = in.get<std::uint64_t>("epoch count");
    if (epochs > 1000000) throw model_error(name + ": " + std::to_string(epochs) + " epochs is not plausible");
    for (std::uint64_t e = 0; e < epochs; ++e) {
        EpochReport r;
        r.epoch = in.get<std::uint64_t>("epoch report");
        r.epochs = in.get<std::uint64_t>("epoch report");
        for (double* v : {&r.train_loss, &r.train_accuracy, &r.learning_rate, &r.train_seconds, &r.seconds})
            *v = in.get<double>("epoch report");
        for (auto* evaluation : {&r.validation, &r.monitor}) {
            const bool present = in.get<std::uint8_t>("epoch report") != 0;
            const double loss = in.get<double>("epoch report"), accuracy = in.get<double>("epoch report");
            if (present) *evaluation = Evaluation{loss, accuracy, 0, {}};
        }
        state.epochs.push_back(r);
    }
    if (in.offset() != body) throw model_error(name + ": unexpected bytes after the training state");
    if (!state.best_parameters.empty() && state.best_parameters.size() != net.parameter_count())
        throw model_error(name + ": the best weights hold " + std::to_string(state.best_parameters.size()) +
                          " values, the network " + std::to_string(net.parameter_count()));

    const std::string saved_metadata = deserialize_model(net, model, name);
    if (metadata != nullptr) *metadata = saved_metadata;
    return state;
}

/// The metadata text of the checkpoint file `path`, read without a network (to decide which
/// network to build for it): the header, the checksum and the model file in it are checked.
inline std::string read_checkpoint_metadata(const std::filesystem::path& path) {
    const std::vector<std::uint8_t> bytes = read_file<model_error>(path, max_model_file_size * 4, "checkpoint");
    std::vector<std::uint8_t> model;
    (void)detail::open_checkpoint(bytes, path.string(), model);
    return model_metadata(model, path.string());
}

/// Loads the checkpoint file `path` (see deserialize_checkpoint) and returns the training
/// state to pass to fit, and the model metadata through `metadata`.
template <class Net>
TrainingState<typename Net::value_type> load_checkpoint(Net& net, const std::filesystem::path& path,
                                                        std::string* metadata = nullptr) {
    const std::vector<std::uint8_t> bytes = read_file<model_error>(path, max_model_file_size * 4, "checkpoint");
    return deserialize_checkpoint(net, bytes, path.string(), metadata);
}

}  // namespace cnn
