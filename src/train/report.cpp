#include "train/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/io.h"

namespace cogumi {

namespace {

struct Series {
  std::vector<std::pair<double, double>> pts;  // (step, loss)
};

std::string polyline(const Series& s, double x0, double x1, double y0, double y1, const char* color, bool dots) {
  const double W = 640, H = 360, L = 60, R = 20, Tp = 30, B = 40;
  auto px = [&](double x) { return L + (x - x0) / std::max(1e-12, x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (y - y0) / std::max(1e-12, y1 - y0) * (H - Tp - B); };
  std::string out = fmt::format(R"(<polyline fill="none" stroke="{}" stroke-width="1.5" points=")", color);
  for (auto& [x, y] : s.pts) out += fmt::format("{:.1f},{:.1f} ", px(x), py(y));
  out += "\"/>\n";
  if (dots)
    for (auto& [x, y] : s.pts) out += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="{}"/>)", px(x), py(y), color) + "\n";
  return out;
}

}  // namespace

void write_train_report(const std::filesystem::path& log, const std::filesystem::path& svg,
                        const std::filesystem::path& summary, const TrainResult& res, const TrainOptions& o) {
  Series train, val;
  double grad_max = 0;
  read_jsonl(log, [&](const json& j, size_t) {
    double step = j.value("step", 0);
    train.pts.emplace_back(step, j.value("loss", 0.0));
    if (j.contains("val_loss")) val.pts.emplace_back(step, j["val_loss"].get<double>());
    // A skipped step's norm was not finite: JSON holds it as null.
    if (j.contains("grad_norm") && j["grad_norm"].is_number()) grad_max = std::max(grad_max, j["grad_norm"].get<double>());
  });
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (!train.pts.empty()) {
    x0 = train.pts.front().first, x1 = std::max(x0 + 1, train.pts.back().first);
    y0 = 1e300, y1 = -1e300;
    for (auto* s : {&train, &val})
      for (auto& [x, y] : s->pts)
        if (std::isfinite(y)) y0 = std::min(y0, y), y1 = std::max(y1, y);
    y0 = std::max(0.0, y0 - 0.05 * (y1 - y0));
    y1 += 0.05 * (y1 - y0) + 1e-9;
  }
  std::string s = R"(<svg xmlns="http://www.w3.org/2000/svg" width="640" height="360" font-family="sans-serif" font-size="11">)";
  s += "\n<rect width=\"640\" height=\"360\" fill=\"white\"/>\n";
  s += fmt::format(R"(<text x="60" y="18" font-size="13">{} — loss by step</text>)", o.out.filename().string()) + "\n";
  s += R"(<line x1="60" y1="320" x2="620" y2="320" stroke="#444"/><line x1="60" y1="30" x2="60" y2="320" stroke="#444"/>)";
  s += "\n";
  for (int i = 0; i <= 4; ++i) {
    double y = y0 + (y1 - y0) * i / 4, py = 320 - 290.0 * i / 4;
    double x = x0 + (x1 - x0) * i / 4, px = 60 + 560.0 * i / 4;
    s += fmt::format(R"(<text x="54" y="{:.1f}" text-anchor="end">{:.3g}</text>)", py + 4, y) + "\n";
    s += fmt::format(R"(<text x="{:.1f}" y="336" text-anchor="middle">{:.0f}</text>)", px, x) + "\n";
  }
  s += polyline(train, x0, x1, y0, y1, "#1f77b4", false);
  if (!val.pts.empty()) s += polyline(val, x0, x1, y0, y1, "#d62728", true);
  s += R"(<text x="470" y="48" fill="#1f77b4">train loss</text><text x="470" y="62" fill="#d62728">validation loss</text>)";
  s += "\n<text x=\"340\" y=\"354\" text-anchor=\"middle\">optimizer step</text>\n</svg>\n";
  write_file_atomic(svg, s);

  json sum = {{"output", o.out.string()},
              {"mode", o.full ? "full" : "lora"},
              {"steps", res.steps},
              {"first_loss", res.first_loss},
              {"last_loss", res.last_loss},
              {"best_val_loss", res.best_val_loss >= 0 ? json(res.best_val_loss) : json(nullptr)},
              {"best_step", res.best_step},
              {"stopped_early", res.stopped_early},
              {"diverged_at_step", res.diverged_at ? json(res.diverged_at) : json(nullptr)},
              {"resumed_from_step", res.resumed_from},
              {"skipped_steps", res.n_skipped},
              {"tokens_per_s", res.tokens_per_s},
              {"base_weights", to_string(res.base_weights)},
              {"max_grad_norm", grad_max},
              {"memory", {{"estimated_bytes", res.memory_estimate}, {"reserved_bytes", res.memory_reserved}}},
              {"loss_rows", {{"per_batch", res.loss_rows}, {"extra_passes", res.loss_extra_passes}}},
              {"examples", {{"read", res.data.n_examples}, {"truncated", res.data.n_truncated},
                            {"dropped", res.data.n_dropped}, {"train", res.n_train}, {"validation", res.n_val}}},
              {"options", {{"model", o.model.string()}, {"lora_rank", o.lora.rank}, {"lora_alpha", o.lora.alpha},
                           {"lora_targets", o.lora.targets},
                           {"seq_len", o.sft.max_len}, {"batch", o.batch}, {"grad_accum", o.grad_accum},
                           {"lr", o.lr}, {"schedule", o.schedule}, {"warmup", o.warmup}, {"clip", o.clip},
                           {"weight_decay", o.weight_decay}, {"pack", o.pack}, {"seed", o.seed}}},
              {"log", log.string()},
              {"loss_svg", svg.string()}};
  write_file_atomic(summary, sum.dump(2) + "\n");
}

}  // namespace cogumi
