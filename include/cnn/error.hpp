// The library's error types. Everything the library throws on bad input derives
// from cnn::error, so a caller can catch one type and print what() to the user.
#pragma once

#include <stdexcept>
#include <string>

namespace cnn {

/// Base of every error the library reports about its inputs.
struct error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// An input shape a layer (or network) cannot take. The message names the
/// layer, its parameters and both shapes.
struct shape_error : error {
    using error::error;
};

/// An invalid hyper-parameter (stride 0, window 0, negative padding, ...),
/// rejected when the layer is constructed.
struct parameter_error : error {
    using error::error;
};

}  // namespace cnn
