// examples/common/svg_plot.hpp - a small, dependency-free SVG line-plot writer for the examples.
//
// Several named series over x, each optionally with a shaded band (lo..hi, e.g. mean ± std), on
// linear axes with "nice" ticks (1, 2 or 5 × 10^k), axis labels, a legend and a title:
//
//   kaizen::plot::LinePlot plot({.title = "Learned skill", .x_label = "step", .y_label = "skill"});
//   plot.add_series("SEC", steps, mean, lo, hi);   // lo/hi optional: the shaded band
//   plot.add_series("uniform", steps, mean_uniform);
//   plot.write("skill.svg");                        // or plot.svg() for the text
//
// Non-finite points are skipped (the line breaks there). Throws kaizen::Error on mismatched lengths,
// an empty plot, or a file that cannot be written.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <fstream>
#include <limits>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <kaizen/core/error.hpp>

namespace kaizen::plot {

/// Size, labels and optional fixed y range of a plot (designated initializers: {.title = "..."}).
struct PlotOptions {
  std::string title;
  std::string x_label;
  std::string y_label;
  int width = 800;   ///< pixels, > 200
  int height = 500;  ///< pixels, > 150
  /// Fixed y range; when y_min >= y_max (the default) the range is fitted to the data and bands.
  double y_min = 0.0;
  double y_max = 0.0;
};

/// A line plot written as a standalone SVG document.
class LinePlot {
 public:
  explicit LinePlot(PlotOptions options = {}) : options_(std::move(options)) {
    KAIZEN_CHECK(options_.width > 200 && options_.height > 150,
                 "LinePlot: expected width > 200 and height > 150 pixels, got ", options_.width, "x",
                 options_.height);
  }

  /// Adds a line named `name` through (xs[i], ys[i]). Throws unless xs and ys have equal length.
  void add_series(std::string name, std::span<const double> xs, std::span<const double> ys) {
    add_series(std::move(name), xs, ys, {}, {});
  }

  /// Adds a line with a shaded band from lo[i] to hi[i] (both the length of xs, or both empty).
  void add_series(std::string name, std::span<const double> xs, std::span<const double> ys,
                  std::span<const double> lo, std::span<const double> hi) {
    KAIZEN_CHECK(xs.size() == ys.size(), "LinePlot::add_series: series '", name, "' has ", xs.size(),
                 " x values but ", ys.size(), " y values");
    KAIZEN_CHECK(lo.size() == hi.size() && (lo.empty() || lo.size() == xs.size()),
                 "LinePlot::add_series: series '", name, "' needs a band of ", xs.size(),
                 " lo and hi values (or none), got ", lo.size(), " and ", hi.size());
    series_.push_back(Series{std::move(name),
                             {xs.begin(), xs.end()},
                             {ys.begin(), ys.end()},
                             {lo.begin(), lo.end()},
                             {hi.begin(), hi.end()}});
  }

  /// The SVG document. Throws when no series has a finite point.
  [[nodiscard]] std::string svg() const {
    Range xr, yr;
    for (const Series& s : series_) {
      for (std::size_t i = 0; i < s.xs.size(); ++i) {
        if (!std::isfinite(s.xs[i])) continue;
        if (std::isfinite(s.ys[i])) xr.add(s.xs[i]), yr.add(s.ys[i]);
        if (!s.lo.empty() && std::isfinite(s.lo[i]) && std::isfinite(s.hi[i]))
          yr.add(s.lo[i]), yr.add(s.hi[i]);
      }
    }
    KAIZEN_CHECK(xr.valid() && yr.valid(), "LinePlot::svg: expected at least one finite point, got ",
                 series_.size(), " series without one");
    if (options_.y_min < options_.y_max) yr = Range{options_.y_min, options_.y_max};
    const Axis xa = nice_axis(xr), ya = nice_axis(yr);

    // Margins; the legend sits on the right, as wide as its longest name (about 7 px per character).
    std::size_t longest = 0;
    for (const auto& s : series_) longest = std::max(longest, s.name.size());
    const double left = 70, right = 60 + 7.0 * static_cast<double>(longest), top = 40, bottom = 55;
    const double pw = options_.width - left - right, ph = options_.height - top - bottom;
    KAIZEN_CHECK(pw >= 100.0, "LinePlot::svg: the legend (longest name ", longest, " characters) leaves ", pw,
                 " px of plot width; expected at least 100 (widen the plot or shorten the names)");
    auto px = [&](double x) { return left + (x - xa.lo) / (xa.hi - xa.lo) * pw; };
    auto py = [&](double y) { return top + (1.0 - (y - ya.lo) / (ya.hi - ya.lo)) * ph; };

    std::ostringstream out;
    out.precision(6);
    out << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << options_.width << "\" height=\""
        << options_.height << "\" viewBox=\"0 0 " << options_.width << ' ' << options_.height
        << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
        << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    out << "<text x=\"" << left + pw / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">"
        << escape(options_.title) << "</text>\n";
    // Grid, ticks and tick labels.
    for (double t : xa.ticks) {
      out << "<line x1=\"" << px(t) << "\" y1=\"" << top << "\" x2=\"" << px(t) << "\" y2=\"" << top + ph
          << "\" stroke=\"#e5e5e5\"/>\n<text x=\"" << px(t) << "\" y=\"" << top + ph + 16
          << "\" text-anchor=\"middle\">" << tick_label(t, xa.step) << "</text>\n";
    }
    for (double t : ya.ticks) {
      out << "<line x1=\"" << left << "\" y1=\"" << py(t) << "\" x2=\"" << left + pw << "\" y2=\"" << py(t)
          << "\" stroke=\"#e5e5e5\"/>\n<text x=\"" << left - 6 << "\" y=\"" << py(t) + 4
          << "\" text-anchor=\"end\">" << tick_label(t, ya.step) << "</text>\n";
    }
    out << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << pw << "\" height=\"" << ph
        << "\" fill=\"none\" stroke=\"#333\"/>\n";
    out << "<text x=\"" << left + pw / 2 << "\" y=\"" << options_.height - 12 << "\" text-anchor=\"middle\">"
        << escape(options_.x_label) << "</text>\n";
    out << "<text transform=\"translate(18," << top + ph / 2 << ") rotate(-90)\" text-anchor=\"middle\">"
        << escape(options_.y_label) << "</text>\n";
    // Bands first, so every line is drawn on top of every band.
    for (std::size_t k = 0; k < series_.size(); ++k) {
      const Series& s = series_[k];
      if (s.lo.empty()) continue;
      std::ostringstream upper, lower;
      upper.precision(6), lower.precision(6);
      bool any = false;
      for (std::size_t i = 0; i < s.xs.size(); ++i) {
        if (!std::isfinite(s.xs[i]) || !std::isfinite(s.lo[i]) || !std::isfinite(s.hi[i])) continue;
        upper << (any ? " L" : "M") << px(s.xs[i]) << ',' << py(clamp(s.hi[i], ya)) << ' ';
        any = true;
      }
      for (std::size_t i = s.xs.size(); i-- > 0;) {
        if (!std::isfinite(s.xs[i]) || !std::isfinite(s.lo[i]) || !std::isfinite(s.hi[i])) continue;
        lower << " L" << px(s.xs[i]) << ',' << py(clamp(s.lo[i], ya));
      }
      if (any)
        out << "<path d=\"" << upper.str() << lower.str() << " Z\" fill=\"" << color(k)
            << "\" fill-opacity=\"0.15\" stroke=\"none\"/>\n";
    }
    for (std::size_t k = 0; k < series_.size(); ++k) {
      const Series& s = series_[k];
      std::ostringstream d;
      d.precision(6);
      bool pen_down = false;
      for (std::size_t i = 0; i < s.xs.size(); ++i) {
        if (!std::isfinite(s.xs[i]) || !std::isfinite(s.ys[i])) {
          pen_down = false;
          continue;
        }
        d << (pen_down ? " L" : " M") << px(s.xs[i]) << ',' << py(clamp(s.ys[i], ya));
        pen_down = true;
      }
      out << "<path d=\"" << d.str() << "\" fill=\"none\" stroke=\"" << color(k)
          << "\" stroke-width=\"2\"/>\n";
      const double ly = top + 10 + 20.0 * static_cast<double>(k);
      out << "<line x1=\"" << left + pw + 12 << "\" y1=\"" << ly << "\" x2=\"" << left + pw + 36 << "\" y2=\""
          << ly << "\" stroke=\"" << color(k) << "\" stroke-width=\"3\"/>\n<text x=\"" << left + pw + 42
          << "\" y=\"" << ly + 4 << "\">" << escape(s.name) << "</text>\n";
    }
    out << "</svg>\n";
    return out.str();
  }

  /// Writes svg() to `path`; throws kaizen::Error when the file cannot be written.
  void write(const std::string& path) const {
    const std::string text = svg();
    std::ofstream file(path);
    KAIZEN_CHECK(file.good(), "LinePlot::write: cannot open '", path, "' for writing");
    file << text;
    file.close();
    KAIZEN_CHECK(!file.fail(), "LinePlot::write: writing '", path, "' failed");
  }

 private:
  struct Series {
    std::string name;
    std::vector<double> xs, ys, lo, hi;
  };
  struct Range {
    double lo = std::numeric_limits<double>::infinity();
    double hi = -std::numeric_limits<double>::infinity();
    void add(double v) { lo = std::min(lo, v), hi = std::max(hi, v); }
    [[nodiscard]] bool valid() const { return lo <= hi; }
  };
  struct Axis {
    double lo, hi, step;
    std::vector<double> ticks;
  };

  // Widens [lo, hi] to multiples of a 1/2/5 × 10^k step giving about 5-10 ticks.
  static Axis nice_axis(Range r) {
    if (r.hi - r.lo < 1e-12 * std::max(1.0, std::abs(r.lo))) {
      const double pad = std::max(0.5, std::abs(r.lo) * 0.1);
      r.lo -= pad, r.hi += pad;
    }
    const double raw = (r.hi - r.lo) / 6.0;
    const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
    double step = magnitude * 10.0;
    for (double m : {1.0, 2.0, 5.0}) {
      if (raw <= m * magnitude) {
        step = m * magnitude;
        break;
      }
    }
    Axis a{std::floor(r.lo / step) * step, std::ceil(r.hi / step) * step, step, {}};
    for (double t = a.lo; t <= a.hi + 0.5 * step; t += step)
      a.ticks.push_back(std::abs(t) < 1e-9 * step ? 0.0 : t);
    return a;
  }

  static double clamp(double y, const Axis& a) { return std::clamp(y, a.lo, a.hi); }

  static std::string tick_label(double v, double step) {
    std::ostringstream s;
    const int decimals = step >= 1.0 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
    s.setf(std::ios::fixed);
    s.precision(decimals);
    s << v;
    return s.str();
  }

  static std::string_view color(std::size_t k) {
    static constexpr std::array<std::string_view, 10> kPalette = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                                                  "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                                                  "#bcbd22", "#17becf"};
    return kPalette[k % kPalette.size()];
  }

  static std::string escape(std::string_view text) {
    std::string out;
    for (char c : text) {
      switch (c) {
        case '&':
          out += "&amp;";
          break;
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '"':
          out += "&quot;";
          break;
        default:
          out += c;
      }
    }
    return out;
  }

  PlotOptions options_;
  std::vector<Series> series_;
};

}  // namespace kaizen::plot
