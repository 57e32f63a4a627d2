// gradient_check: compares an analytic gradient with central finite differences.
//
//   numeric_i = (E(p + eps e_i) - E(p - eps e_i)) / (2 eps)
//
// and reports the largest difference |analytic_i - numeric_i| relative to the
// largest gradient magnitude of either kind, so entries whose true gradient is
// 0 (a ReLU that is off, a max-pool loser) are judged at the scale of the whole
// gradient instead of dividing rounding noise by zero. Use it in double.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <span>
#include <string>

#include "cnn/error.hpp"
#include "cnn/tensor.hpp"

namespace cnn {

struct GradientCheckResult {
    double relative_error = 0;  ///< max_i |a_i - n_i| / max_i max(|a_i|, |n_i|)
    double max_abs_error = 0;   ///< max_i |a_i - n_i|
    std::size_t worst_index = 0;
    double worst_analytic = 0;
    double worst_numeric = 0;
};

/// `loss()` evaluates E at the current values of `point`; `analytic` holds dE/d(point).
/// The elements `indices` of `point` (all of them when `indices` is empty) are perturbed
/// in turn and restored afterwards.
template <Scalar T, class Loss>
    requires std::invocable<Loss&> && std::convertible_to<std::invoke_result_t<Loss&>, double>
GradientCheckResult gradient_check(Loss&& loss, std::span<T> point, std::span<const T> analytic, T epsilon = T(1e-6),
                                   std::span<const std::size_t> indices = {}) {
    if (point.size() != analytic.size())
        throw shape_error("gradient_check: " + std::to_string(point.size()) + " values but " +
                          std::to_string(analytic.size()) + " analytic gradients");
    GradientCheckResult result;
    double scale = 0;
    const std::size_t checks = indices.empty() ? point.size() : indices.size();
    for (std::size_t check = 0; check < checks; ++check) {
        const std::size_t i = indices.empty() ? check : indices[check];
        if (i >= point.size())
            throw shape_error("gradient_check: index " + std::to_string(i) + " is outside the " +
                              std::to_string(point.size()) + " values");
        const T saved = point[i];
        point[i] = saved + epsilon;
        const double plus = static_cast<double>(loss());
        point[i] = saved - epsilon;
        const double minus = static_cast<double>(loss());
        point[i] = saved;
        const double numeric = (plus - minus) / (2.0 * static_cast<double>(epsilon));
        const double exact = static_cast<double>(analytic[i]);
        const double difference = std::abs(exact - numeric);
        scale = std::max({scale, std::abs(exact), std::abs(numeric)});
        if (difference > result.max_abs_error || check == 0) {
            result.max_abs_error = difference;
            result.worst_index = i;
            result.worst_analytic = exact;
            result.worst_numeric = numeric;
        }
    }
    result.relative_error = scale > 0 ? result.max_abs_error / scale : 0.0;
    return result;
}

}  // namespace cnn
