// Training curves as a self-contained SVG: loss and accuracy per epoch, train and test.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

namespace examples {

struct Series {
    std::string name;
    std::string color;
    std::vector<double> values;  ///< one per epoch
};

/// Round axis ticks covering [low, high]: a step of 1, 2, 2.5 or 5 times a power of ten,
/// about `wanted` steps, and the range widened to whole steps.
struct Ticks {
    double low, high, step;
    int decimals;  ///< what printing the step exactly takes
};
inline Ticks round_ticks(double low, double high, int wanted = 5) {
    if (!(high - low > 1e-12)) {
        low -= 0.5;
        high += 0.5;
    }
    const double raw = (high - low) / wanted;
    const int exponent = static_cast<int>(std::floor(std::log10(raw)));
    const double power = std::pow(10.0, exponent);
    double step = 10 * power, multiple = 10;
    for (const double m : {1.0, 2.0, 2.5, 5.0})
        if (m * power >= raw) {
            step = m * power;
            multiple = m;
            break;
        }
    const int decimals = std::max(0, -exponent - (multiple == 10 ? 1 : 0)) + (multiple == 2.5 ? 1 : 0);
    return {std::floor(low / step + 1e-9) * step, std::ceil(high / step - 1e-9) * step, step, decimals};
}

/// One panel: the series against epochs 1..n, with round ticks, axis titles and a legend in
/// the corner that the curves cross least.
inline std::string svg_panel(const std::string& title, const std::string& quantity, const std::vector<Series>& series,
                             double x0, double y0, double width, double height) {
    std::size_t epochs = 0;
    double low = INFINITY, high = -INFINITY;
    for (const Series& s : series) {
        epochs = std::max(epochs, s.values.size());
        for (double v : s.values) {
            low = std::min(low, v);
            high = std::max(high, v);
        }
    }
    if (epochs == 0) return "";
    const Ticks ticks = round_ticks(low, high);
    const double left = x0 + 70, right = x0 + width - 20, top = y0 + 40, bottom = y0 + height - 50;
    const auto px = [&](std::size_t epoch) {
        return epochs == 1 ? (left + right) / 2
                           : left + (right - left) * static_cast<double>(epoch) / static_cast<double>(epochs - 1);
    };
    const auto py = [&](double v) { return bottom - (bottom - top) * (v - ticks.low) / (ticks.high - ticks.low); };

    std::ostringstream svg;
    svg << std::fixed << std::setprecision(2);
    svg << "<text x='" << (left + right) / 2 << "' y='" << y0 + 22 << "' text-anchor='middle' font-size='16'>" << title
        << "</text>\n";
    svg << "<rect x='" << left << "' y='" << top << "' width='" << right - left << "' height='" << bottom - top
        << "' fill='none' stroke='#888'/>\n";
    const auto tick_count = static_cast<int>(std::lround((ticks.high - ticks.low) / ticks.step));
    for (int i = 0; i <= tick_count; ++i) {
        const double v = ticks.low + i * ticks.step, y = py(v);
        svg << "<line x1='" << left << "' y1='" << y << "' x2='" << right << "' y2='" << y << "' stroke='#eee'/>\n";
        svg << "<text x='" << left - 6 << "' y='" << y + 4 << "' text-anchor='end' font-size='11'>"
            << std::setprecision(ticks.decimals) << (std::abs(v) < ticks.step / 1e6 ? 0.0 : v) << std::setprecision(2)
            << "</text>\n";
    }
    const std::size_t step = std::max<std::size_t>(1, (epochs + 9) / 10);
    for (std::size_t e = 0; e < epochs; e += step)
        svg << "<text x='" << px(e) << "' y='" << bottom + 16 << "' text-anchor='middle' font-size='11'>" << e + 1
            << "</text>\n";
    svg << "<text x='" << (left + right) / 2 << "' y='" << bottom + 36
        << "' text-anchor='middle' font-size='12'>epoch</text>\n";
    svg << "<text transform='translate(" << x0 + 18 << "," << (top + bottom) / 2
        << ") rotate(-90)' text-anchor='middle' font-size='12'>" << quantity << "</text>\n";
    for (const Series& s : series) {
        svg << "<polyline fill='none' stroke='" << s.color << "' stroke-width='2' points='";
        for (std::size_t e = 0; e < s.values.size(); ++e) svg << px(e) << "," << py(s.values[e]) << " ";
        svg << "'/>\n";
        for (std::size_t e = 0; e < s.values.size(); ++e)
            svg << "<circle cx='" << px(e) << "' cy='" << py(s.values[e]) << "' r='3' fill='" << s.color << "'/>\n";
    }
    // The legend in the corner whose box the curves (sampled along each segment) cross least.
    const double box_w = 130, box_h = 18 * static_cast<double>(series.size()) + 8;
    const std::array<std::array<double, 2>, 4> corners{{{right - box_w - 8, top + 4},
                                                        {left + 8, top + 4},
                                                        {right - box_w - 8, bottom - box_h - 4},
                                                        {left + 8, bottom - box_h - 4}}};
    std::size_t best = 0, fewest = SIZE_MAX;
    for (std::size_t c = 0; c < corners.size(); ++c) {
        const auto [bx, by] = corners[c];
        std::size_t inside = 0;
        for (const Series& s : series)
            for (std::size_t e = 0; e < s.values.size(); ++e) {
                const std::size_t next = std::min(e + 1, s.values.size() - 1);
                for (int k = 0; k <= 20; ++k) {
                    const double t = k / 20.0;
                    const double x = px(e) + t * (px(next) - px(e));
                    const double y = py(s.values[e]) + t * (py(s.values[next]) - py(s.values[e]));
                    inside += x >= bx - 4 && x <= bx + box_w + 4 && y >= by - 4 && y <= by + box_h + 4;
                }
            }
        if (inside < fewest) {
            fewest = inside;
            best = c;
        }
    }
    const auto [bx, by] = corners[best];
    svg << "<rect x='" << bx << "' y='" << by << "' width='" << box_w << "' height='" << box_h
        << "' fill='white' fill-opacity='0.9' stroke='#ccc'/>\n";
    for (std::size_t k = 0; k < series.size(); ++k) {
        const double ly = by + 16 + 18 * static_cast<double>(k);
        svg << "<line x1='" << bx + 8 << "' y1='" << ly - 4 << "' x2='" << bx + 28 << "' y2='" << ly - 4
            << "' stroke='" << series[k].color << "' stroke-width='2'/>\n";
        svg << "<text x='" << bx + 34 << "' y='" << ly << "' font-size='12'>" << series[k].name << "</text>\n";
    }
    return svg.str();
}

/// The loss panel and the accuracy panel side by side, as one SVG document.
inline std::string training_curves_svg(const std::string& title, const std::vector<Series>& loss,
                                       const std::vector<Series>& accuracy) {
    const double width = 520, height = 360;
    std::ostringstream out;
    out << "<svg xmlns='http://www.w3.org/2000/svg' width='" << 2 * width << "' height='" << height + 30
        << "' font-family='sans-serif'>\n<rect width='100%' height='100%' fill='white'/>\n";
    out << "<text x='" << width << "' y='20' text-anchor='middle' font-size='14' fill='#444'>" << title << "</text>\n";
    out << svg_panel("loss", "cross-entropy loss", loss, 0, 30, width, height);
    out << svg_panel("accuracy", "accuracy", accuracy, width, 30, width, height);
    out << "</svg>\n";
    return out.str();
}

}  // namespace examples
