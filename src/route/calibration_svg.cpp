// The reliability diagram (route/calibration.h): plain SVG a browser opens, no scripts or
// external references.
#include <fmt/format.h>

#include <algorithm>

#include "route/calibration.h"

namespace cogumi {

namespace {

std::string escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '&') o += "&amp;";
    else if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

// One panel at (x0, y0): the reliability plot (size x size) and a count histogram below it.
std::string panel(const std::string& name, const CalibrationReport& r, double x0, double y0) {
  const double size = 300, hist = 60;
  auto px = [&](double v) { return x0 + v * size; };
  auto py = [&](double v) { return y0 + size - v * size; };
  std::string s = fmt::format(
      "<g class=\"panel\">\n<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"14\" "
      "text-anchor=\"middle\">{} (ECE {:.3f}, n {})</text>\n",
      x0 + size / 2, y0 - 10, escape(name), r.ece, r.n);
  s += fmt::format(
      "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"none\" "
      "stroke=\"#444\"/>\n",
      x0, y0, size, size);
  for (int t = 0; t <= 10; t += 2) {
    const double v = t / 10.0;
    s += fmt::format(
        "<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\" text-anchor=\"middle\">{:.1f}</text>\n",
        px(v), y0 + size + hist + 24, v);
    s += fmt::format(
        "<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\" text-anchor=\"end\">{:.1f}</text>\n",
        x0 - 4, py(v) + 3, v);
  }
  size_t max_n = 1;
  for (const auto& b : r.bins) max_n = std::max(max_n, b.n);
  for (const auto& b : r.bins) {
    const double w = (b.hi - b.lo) * size;
    // Count histogram below the plot.
    const double h = hist * double(b.n) / double(max_n);
    s += fmt::format(
        "<rect class=\"count\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
        "fill=\"#999\"><title>{:.2f}-{:.2f}: {} answers</title></rect>\n",
        px(b.lo) + 1, y0 + size + 8 + hist - h, w - 2, h, b.lo, b.hi, b.n);
    if (b.n == 0) continue;
    s += fmt::format(
        "<rect class=\"bin\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
        "fill=\"#3b6fb6\" fill-opacity=\"0.85\"><title>confidence {:.2f}-{:.2f}: accuracy "
        "{:.3f}, mean confidence {:.3f}, {} answers</title></rect>\n",
        px(b.lo) + 1, py(b.accuracy), w - 2, b.accuracy * size, b.lo, b.hi, b.accuracy,
        b.confidence, b.n);
    const double top = std::max(b.accuracy, b.confidence), bot = std::min(b.accuracy, b.confidence);
    s += fmt::format(
        "<rect class=\"gap\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
        "fill=\"#d9534f\" fill-opacity=\"0.35\"/>\n",
        px(b.lo) + 1, py(top), w - 2, (top - bot) * size);
  }
  s += fmt::format(
      "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#222\" "
      "stroke-dasharray=\"4 3\"/>\n",
      px(0), py(0), px(1), py(1));
  s += fmt::format(
      "<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"middle\">confidence</text>\n",
      x0 + size / 2, y0 + size + hist + 40);
  s += fmt::format(
      "<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"middle\" "
      "transform=\"rotate(-90 {:.1f} {:.1f})\">accuracy</text>\n</g>\n",
      x0 - 30, y0 + size / 2, x0 - 30, y0 + size / 2);
  return s;
}

}  // namespace

std::string reliability_svg(const std::vector<std::pair<std::string, CalibrationReport>>& panels,
                            const std::string& title) {
  const double pw = 380, width = 40 + pw * double(std::max<size_t>(1, panels.size())),
               height = 480;
  std::string s = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
      "width=\"{:.0f}\" height=\"{:.0f}\" viewBox=\"0 0 {:.0f} {:.0f}\" "
      "font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{:.1f}\" y=\"22\" font-size=\"16\" text-anchor=\"middle\">{}</text>\n",
      width, height, width, height, width / 2, escape(title));
  for (size_t i = 0; i < panels.size(); ++i)
    s += panel(panels[i].first, panels[i].second, 70 + pw * double(i), 60);
  s += "</svg>\n";
  return s;
}

}  // namespace cogumi
