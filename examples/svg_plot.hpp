// Training curves as a self-contained SVG: loss and accuracy per epoch, train and test.
#pragma once

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
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

/// One panel: the series against epochs 1..n, with axes, ticks and a legend.
inline std::string svg_panel(const std::string& title, const std::vector<Series>& series, double x0, double y0,
                             double width, double height) {
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
    if (high - low < 1e-9) {
        low -= 0.5;
        high += 0.5;
    }
    const double pad = (high - low) * 0.08;
    low -= pad;
    high += pad;
    const double left = x0 + 60, right = x0 + width - 20, top = y0 + 40, bottom = y0 + height - 45;
    const auto px = [&](std::size_t epoch) {
        return epochs == 1 ? (left + right) / 2 : left + (right - left) * static_cast<double>(epoch) / static_cast<double>(epochs - 1);
    };
    const auto py = [&](double v) { return bottom - (bottom - top) * (v - low) / (high - low); };

    std::ostringstream svg;
    svg << std::fixed << std::setprecision(2);
    svg << "<text x='" << (left + right) / 2 << "' y='" << y0 + 22 << "' text-anchor='middle' font-size='16'>" << title
        << "</text>\n";
    svg << "<rect x='" << left << "' y='" << top << "' width='" << right - left << "' height='" << bottom - top
        << "' fill='none' stroke='#888'/>\n";
    for (int tick = 0; tick <= 4; ++tick) {
        const double v = low + (high - low) * tick / 4.0, y = py(v);
        svg << "<line x1='" << left << "' y1='" << y << "' x2='" << right << "' y2='" << y << "' stroke='#eee'/>\n";
        svg << "<text x='" << left - 6 << "' y='" << y + 4 << "' text-anchor='end' font-size='11'>"
            << std::setprecision(3) << v << std::setprecision(2) << "</text>\n";
    }
    const std::size_t step = std::max<std::size_t>(1, epochs / 10);
    for (std::size_t e = 0; e < epochs; e += step)
        svg << "<text x='" << px(e) << "' y='" << bottom + 16 << "' text-anchor='middle' font-size='11'>" << e + 1
            << "</text>\n";
    svg << "<text x='" << (left + right) / 2 << "' y='" << bottom + 34 << "' text-anchor='middle' font-size='12'>epoch</text>\n";
    for (const Series& s : series) {
        svg << "<polyline fill='none' stroke='" << s.color << "' stroke-width='2' points='";
        for (std::size_t e = 0; e < s.values.size(); ++e) svg << px(e) << "," << py(s.values[e]) << " ";
        svg << "'/>\n";
        for (std::size_t e = 0; e < s.values.size(); ++e)
            svg << "<circle cx='" << px(e) << "' cy='" << py(s.values[e]) << "' r='3' fill='" << s.color << "'/>\n";
    }
    // The legend on a white box, drawn last so that no curve runs through it.
    svg << "<rect x='" << right - 138 << "' y='" << top + 4 << "' width='130' height='"
        << 18 * static_cast<double>(series.size()) + 8 << "' fill='white' fill-opacity='0.9' stroke='#ccc'/>\n";
    for (std::size_t k = 0; k < series.size(); ++k) {
        const double ly = top + 20 + 18 * static_cast<double>(k);
        svg << "<line x1='" << right - 130 << "' y1='" << ly - 4 << "' x2='" << right - 110 << "' y2='" << ly - 4
            << "' stroke='" << series[k].color << "' stroke-width='2'/>\n";
        svg << "<text x='" << right - 104 << "' y='" << ly << "' font-size='12'>" << series[k].name << "</text>\n";
    }
    return svg.str();
}

/// Writes the loss panel and the accuracy panel side by side.
inline void write_training_curves(const std::filesystem::path& path, const std::string& title,
                                  const std::vector<Series>& loss, const std::vector<Series>& accuracy) {
    const double width = 520, height = 360;
    std::ofstream out(path);
    out << "<svg xmlns='http://www.w3.org/2000/svg' width='" << 2 * width << "' height='" << height + 30
        << "' font-family='sans-serif'>\n<rect width='100%' height='100%' fill='white'/>\n";
    out << "<text x='" << width << "' y='20' text-anchor='middle' font-size='14' fill='#444'>" << title << "</text>\n";
    out << svg_panel("loss", loss, 0, 30, width, height);
    out << svg_panel("accuracy", accuracy, width, 30, width, height);
    out << "</svg>\n";
    if (!out) throw std::runtime_error(path.string() + ": cannot write the training curves");
}

}  // namespace examples
