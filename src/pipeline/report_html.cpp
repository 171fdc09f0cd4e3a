#include "pipeline/report_html.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "eval/score.h"
#include "pipeline/report_compress.h"
#include "pipeline/stages_data.h"

namespace cogumi {

namespace {

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

double acc(const json& by_domain, const std::string& d) {
  return by_domain.contains(d) ? by_domain[d].value("accuracy", 0.0) : std::nan("");
}

std::string fmt_p(double p) { return p < 0.001 ? "&lt;0.001" : fmt::format("{:.3f}", p); }

// The 95% Wilson interval (points) of a domain's accuracy; {nan, nan} when it was not measured.
std::pair<double, double> ci(const json& by_domain, const std::string& d) {
  if (!by_domain.contains(d) || !by_domain[d].contains("n")) return {std::nan(""), std::nan("")};
  const auto [lo, hi] = wilson_interval(by_domain[d].value("correct", 0), by_domain[d].value("n", 0));
  return {100 * lo, 100 * hi};
}
std::string acc_ci(const json& by_domain, const std::string& d) {
  const auto [lo, hi] = ci(by_domain, d);
  return std::isnan(lo) ? "-" : fmt::format("{:.1f}% [{:.1f}, {:.1f}]", acc(by_domain, d), lo, hi);
}

// Grouped bars per domain: base, own modifier, routed system (0..100%), with W/T/L and p below.
std::string accuracy_chart(const json& r) {
  const json& doms = r["domains"];
  const int n = int(doms.size()), gw = 150, h = 300, top = 20, plot = 200, left = 40;
  const int w = left + n * gw + 20;
  std::string s = fmt::format("<svg class=\"chart\" id=\"accuracy-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" "
                              "height=\"{}\" viewBox=\"0 0 {} {}\">\n", w, h + 40, w, h + 40);
  for (int t = 0; t <= 100; t += 25) {
    const double y = top + plot * (1 - t / 100.0);
    s += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1f}\" "
                     "font-size=\"10\" text-anchor=\"end\">{}%</text>\n", left, w - 10, y, y, left - 4, y + 3, t);
  }
  const char* colors[] = {"#9aa0a6", "#1a73e8", "#188038"};
  for (int i = 0; i < n; ++i) {
    const std::string d = doms[i]["name"];
    const double vals[] = {acc(r["base_accuracy"], d),
                           r["modifiers"].contains(d) ? acc(r["modifiers"][d]["accuracy"], d) : std::nan(""),
                           acc(r["routed_accuracy"], d)};
    const int x0 = left + i * gw + 15;
    const json* sets[] = {&r["base_accuracy"], r["modifiers"].contains(d) ? &r["modifiers"][d]["accuracy"] : nullptr,
                          &r["routed_accuracy"]};
    for (int k = 0; k < 3; ++k) {
      if (std::isnan(vals[k])) continue;
      if (const auto [lo, hi] = sets[k] ? ci(*sets[k], d) : std::pair{std::nan(""), std::nan("")}; !std::isnan(lo))
        s += fmt::format("<line class=\"ci\" x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#202124\"/>\n",
                         x0 + k * 40 + 18, x0 + k * 40 + 18, top + plot * (1 - lo / 100), top + plot * (1 - hi / 100));
      const double bh = std::max(1.0, plot * vals[k] / 100.0);
      s += fmt::format("<rect class=\"bar\" x=\"{}\" y=\"{:.1f}\" width=\"36\" height=\"{:.1f}\" fill=\"{}\"><title>{} {}: "
                       "{:.1f}%</title></rect><text x=\"{}\" y=\"{:.1f}\" font-size=\"10\" text-anchor=\"middle\">{:.1f}</text>\n",
                       x0 + k * 40, top + plot - bh, bh, colors[k], d, k == 0 ? "base" : k == 1 ? "own modifier" : "routed",
                       vals[k], x0 + k * 40 + 18, top + plot - bh - 3, vals[k]);
    }
    s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>\n",
                     x0 + 58, top + plot + 16, esc(d));
    if (r["modifiers"].contains(d)) {
      const json& v = r["modifiers"][d]["vs_base"][d];
      s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">W/T/L {}/{}/{}</text>"
                       "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">McNemar p {}</text>\n",
                       x0 + 58, top + plot + 30, v["wins"].get<int>(), v["ties"].get<int>(), v["losses"].get<int>(), x0 + 58,
                       top + plot + 43, fmt_p(v["mcnemar_p"].get<double>()));
    }
  }
  const char* names[] = {"base", "own modifier", "routed system"};
  for (int k = 0; k < 3; ++k)
    s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{}\" "
                     "font-size=\"11\">{}</text>\n", left + k * 120, h + 22, colors[k], left + k * 120 + 14, h + 31, names[k]);
  return s + "</svg>\n";
}

std::string loss_chart(const std::string& name, const json& curve) {
  const json& loss = curve["loss"];
  const json& val = curve["val"];
  if (loss.empty()) return "<p>No training log.</p>";
  const int w = 420, h = 220, l = 45, t = 12, pw = w - l - 12, ph = h - t - 30;
  double smax = 1, ymax = 0, ymin = 1e30;
  for (const json* c : {&loss, &val})
    for (auto& p : *c) {
      smax = std::max(smax, p[0].get<double>());
      ymax = std::max(ymax, p[1].get<double>());
      ymin = std::min(ymin, p[1].get<double>());
    }
  if (ymax - ymin < 1e-9) ymax = ymin + 1;
  auto X = [&](double s) { return l + pw * s / smax; };
  auto Y = [&](double v) { return t + ph * (1 - (v - ymin) / (ymax - ymin)); };
  std::string s = fmt::format("<svg class=\"chart loss\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
                              "viewBox=\"0 0 {} {}\">\n<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" "
                              "stroke=\"#ccc\"/>\n", w, h, w, h, l, t, pw, ph);
  s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{:.3g}</text><text x=\"{}\" y=\"{}\" "
                   "font-size=\"10\" text-anchor=\"end\">{:.3g}</text>\n", l - 3, t + 8, ymax, l - 3, t + ph, ymin);
  s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">step (max {})</text>\n", l + pw / 2,
                   h - 6, int(smax));
  std::string pts;
  for (auto& p : loss) pts += fmt::format("{:.1f},{:.1f} ", X(p[0].get<double>()), Y(p[1].get<double>()));
  s += fmt::format("<polyline class=\"train-loss\" points=\"{}\" fill=\"none\" stroke=\"#1a73e8\" stroke-width=\"1.5\"/>\n", pts);
  if (!val.empty()) {
    std::string vp;
    for (auto& p : val) vp += fmt::format("{:.1f},{:.1f} ", X(p[0].get<double>()), Y(p[1].get<double>()));
    s += fmt::format("<polyline class=\"val-loss\" points=\"{}\" fill=\"none\" stroke=\"#d93025\" stroke-width=\"1.5\" "
                     "stroke-dasharray=\"4 2\"/>\n", vp);
    for (auto& p : val)
      s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"#d93025\"/>", X(p[0].get<double>()),
                       Y(p[1].get<double>()));
  }
  s += fmt::format("\n<text x=\"{}\" y=\"{}\" font-size=\"11\" font-weight=\"bold\">{}: training loss (blue), validation "
                   "(red)</text>\n", l + 6, t + 14, esc(name));
  return s + "</svg>\n";
}

std::string confusion_chart(const json& heldout) {
  const json& ch = heldout["choices"];
  const json& m = heldout["confusion"];
  const int n = int(ch.size()), cell = 54, l = 100, t = 40;
  const int w = l + n * cell + 10, h = t + n * cell + 30;
  int mx = 1;
  for (auto& row : m)
    for (auto& v : row) mx = std::max(mx, v.get<int>());
  std::string s = fmt::format("<svg class=\"chart\" id=\"confusion-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" "
                              "height=\"{}\" viewBox=\"0 0 {} {}\">\n", w, h, w, h);
  s += fmt::format("<text x=\"{}\" y=\"14\" font-size=\"11\">routed to &#8594;</text>\n", l);
  for (int j = 0; j < n; ++j)
    s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>\n", l + j * cell + cell / 2,
                     t - 6, esc(ch[j]));
  for (int i = 0; i < n; ++i) {
    s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{}</text>\n", l - 6, t + i * cell + cell / 2 + 3,
                     esc(ch[i]));
    for (int j = 0; j < n; ++j) {
      const int v = m[i][j].get<int>();
      const double a = 0.08 + 0.92 * double(v) / mx;
      s += fmt::format("<rect class=\"cell\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" fill-opacity=\"{:.2f}\" "
                       "stroke=\"#fff\"/><text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>\n",
                       l + j * cell, t + i * cell, cell, cell, i == j ? "#188038" : "#d93025", a, l + j * cell + cell / 2,
                       t + i * cell + cell / 2 + 4, v);
    }
  }
  s += fmt::format("<text x=\"4\" y=\"{}\" font-size=\"11\">true domain &#8595;</text>\n", h - 8);
  return s + "</svg>\n";
}

// Reliability diagram: bins {confidence, accuracy, count} from calibration, when it ran.
std::string reliability_chart(const json& bins) {
  const int sz = 260, l = 40, t = 10, p = 200;
  std::string s = fmt::format("<svg class=\"chart\" id=\"reliability-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" "
                              "height=\"{}\" viewBox=\"0 0 {} {}\">\n<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" "
                              "fill=\"none\" stroke=\"#ccc\"/><line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\" "
                              "stroke-dasharray=\"3 3\"/>\n", sz, sz + 20, sz, sz + 20, l, t, p, p, l, t + p, l + p, t);
  const double bw = p / std::max<double>(1, double(bins.size()));
  for (size_t i = 0; i < bins.size(); ++i) {
    const double a = bins[i].value("accuracy", 0.0);
    s += fmt::format("<rect class=\"bar\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"#1a73e8\" "
                     "fill-opacity=\"0.7\"><title>confidence {:.2f}: accuracy {:.2f} ({} queries)</title></rect>\n",
                     l + i * bw, t + p * (1 - a), bw - 1, std::max(1.0, p * a), bins[i].value("confidence", 0.0), a,
                     bins[i].value("count", 0));
  }
  s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">confidence</text>\n", l + p / 2, sz + 14);
  return s + "</svg>\n";
}

std::string failure_types_chart(const json& by_type) {
  if (by_type.empty()) return "";
  int mx = 1;
  for (auto& [k, v] : by_type.items()) mx = std::max(mx, v.get<int>());
  const int rowh = 20, l = 160, w = 560;
  // At least 80 px tall: a run with one or two failure types still gets a chart, not a sliver.
  const int h = std::max(int(rowh * by_type.size()) + 10, 80);
  std::string s = fmt::format("<svg class=\"chart\" id=\"failure-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" "
                              "height=\"{}\" viewBox=\"0 0 {} {}\">\n", w, h, w, h);
  int i = 0;
  for (auto& [k, v] : by_type.items()) {
    const double bw = std::max(1.0, (w - l - 60) * v.get<double>() / mx);
    s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text><rect class=\"bar\" x=\"{}\" "
                     "y=\"{}\" width=\"{:.1f}\" height=\"14\" fill=\"#e37400\"/><text x=\"{:.1f}\" y=\"{}\" font-size=\"11\">"
                     "{}</text>\n", l - 6, i * rowh + 16, esc(k), l, i * rowh + 5, bw, l + bw + 4, i * rowh + 16, v.get<int>());
    ++i;
  }
  return s + "</svg>\n";
}

std::string cross_table(const json& r) {
  std::string t = "<table><tr><th>domain</th><th>base</th>";
  for (auto& [m, _] : r["modifiers"].items()) t += "<th>+" + esc(m) + "</th>";
  t += "<th>routed</th></tr>\n";
  for (auto& d : r["domains"]) {
    const std::string n = d["name"];
    const double b = acc(r["base_accuracy"], n);
    t += fmt::format("<tr><td>{}</td><td>{:.1f}%</td>", esc(n), b);
    for (auto& [m, mod] : r["modifiers"].items()) {
      const double a = acc(mod["accuracy"], n);
      const json& v = mod["vs_base"][n];
      t += fmt::format("<td class=\"{}\">{:.1f}% <small>({:+.1f}; {}/{}/{}, p {})</small></td>", a >= b ? "up" : "down", a,
                       a - b, v["wins"].get<int>(), v["ties"].get<int>(), v["losses"].get<int>(), fmt_p(v["mcnemar_p"]));
    }
    const double ra = acc(r["routed_accuracy"], n);
    t += fmt::format("<td class=\"{}\">{:.1f}%</td></tr>\n", ra >= b ? "up" : "down", ra);
  }
  return t + "</table>\n";
}

std::string gates_section(const json& g) {
  std::string t = fmt::format("<p class=\"{}\">{}</p><table><tr><th></th><th>gate</th><th>checks</th></tr>\n",
                              g.value("passed", false) ? "pass" : "fail",
                              g.value("passed", false) ? "All gates passed." : "Some gates failed.");
  for (auto& x : g["gates"]) {
    std::string checks;
    for (auto& c : x["checks"])
      checks += fmt::format("{} {} {:.4g} vs {:.4g}<br>", c["passed"].get<bool>() ? "&#10003;" : "&#10007;",
                            esc(c["what"]), c["value"].get<double>(), c["threshold"].get<double>());
    if (x.contains("error")) checks += esc(x["error"]);
    const bool ok = x["passed"].get<bool>();
    t += fmt::format("<tr><td class=\"{}\">{}</td><td><code>{}</code></td><td>{}</td></tr>\n", ok ? "pass" : "fail",
                     ok ? "PASS" : "FAIL", esc(x["gate"]), checks);
  }
  return t + "</table>\n";
}

// A Markdown table's rows as HTML rows (the separator row dropped), so both reports show one table.
std::string md_to_html_rows(const std::string& md) {
  std::string out;
  size_t row = 0;
  for (size_t at = 0; at < md.size();) {
    size_t end = md.find('\n', at);
    if (end == std::string::npos) end = md.size();
    const std::string line = md.substr(at, end - at);
    at = end + 1;
    if (line.size() < 2 || line[0] != '|' || line.rfind("|---", 0) == 0) continue;
    const char* cell = row++ == 0 ? "th" : "td";
    out += "<tr>";
    for (size_t a = 1, b; (b = line.find('|', a)) != std::string::npos; a = b + 1)
      out += fmt::format("<{}>{}</{}>", cell, esc(line.substr(a + 1, b > a + 1 ? b - a - 2 : 0)), cell);
    out += "</tr>\n";
  }
  return out;
}

std::string model_card(const json& r) {
  std::string t = fmt::format("<table><tr><th>base</th><td><code>{}</code><br>sha256 {}<br>{:.2f} MB</td></tr>\n",
                              esc(r["base"]["model"]), esc(r["base"].value("sha256", "")),
                              r["base"]["bytes"].get<double>() / 1e6);
  for (auto& [m, mod] : r["modifiers"].items()) {
    const json& tr = mod["train"];
    const json& st = mod["settings"];
    std::string data;
    for (auto& s : mod["trainset"])
      data += fmt::format("{} &times;{} <code>{}</code><br>", esc(s.value("what", "")), s["weight"].get<double>(),
                          esc(fs::path(s["path"].get<std::string>()).filename().string()));
    t += fmt::format("<tr><th>{} modifier</th><td>rank {}, lr {}, {} of max {} steps (best {}; {}), {} examples, {:.2f} MB"
                     "<br>{}</td></tr>\n", esc(m), st["rank"].get<int>(), st["lr"].get<double>(), tr["steps"].get<int>(),
                     st["steps"].get<int>(), tr["best_step"].get<int>(),
                     tr["stopped_early"].get<bool>() ? "stopped early" : "ran to the end", tr["n_train"].get<long>(),
                     tr["bytes"].get<double>() / 1e6, data);
  }
  return t + "</table>\n";
}

// A modifier's paired dev result against the base in a domain (the `routes` stage's dev_vs_base), or "".
std::string vs_base(const json& rc, const std::string& config, const std::string& domain) {
  if (!rc.contains("dev_vs_base") || !rc["dev_vs_base"].contains(config) || !rc["dev_vs_base"][config].contains(domain))
    return "";
  const json& v = rc["dev_vs_base"][config][domain];
  return fmt::format("{}/{} vs base, p {:.2g}", v.value("wins", 0), v.value("losses", 0), v.value("p", 1.0));
}

}  // namespace

std::string report_html(const json& r) {
  std::string h = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Cogumi run: {}</title>\n<style>\n"
      "body{{font-family:sans-serif;max-width:1100px;margin:20px auto;color:#202124}} table{{border-collapse:collapse;"
      "margin:8px 0}} td,th{{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}} .pass{{color:#188038;"
      "font-weight:bold}} .fail{{color:#d93025;font-weight:bold}} td.up{{background:#e6f4ea}} td.down{{background:#fce8e6}} "
      "svg.chart{{display:block;margin:8px 0}} .curves{{display:flex;flex-wrap:wrap;gap:8px}}\n</style></head><body>\n"
      "<h1>Cogumi run: {}</h1>\n<p>config <code>{}</code></p>\n", esc(r["name"]), esc(r["name"]), esc(r["config"]));
  h += "<h2>Gates</h2>\n" + gates_section(r["gates"]);
  h += "<h2>Accuracy per domain: base, own modifier, routed system</h2>\n<p>Lines: 95% Wilson intervals.</p>\n" +
       accuracy_chart(r) + "<table>" + md_to_html_rows(report_table(r)) + "</table>\n";
  h += "<h3>Every configuration on every domain (change vs base; wins/ties/losses, McNemar p)</h3>\n" + cross_table(r);
  h += report_compress_html(r);
  if (r.contains("data")) h += data_report_html(r["data"]);
  h += "<h2>Model card</h2>\n" + model_card(r);
  h += "<h2>Training curves</h2>\n<div class=\"curves\">\n";
  for (auto& [m, mod] : r["modifiers"].items()) h += loss_chart(m, mod["curve"]);
  h += "</div>\n<h2>Failures</h2>\n";
  if (r.contains("failures")) {
    h += "<p>Mined per domain: ";
    for (auto& [d, n] : r["failures"]["counts"].items()) h += fmt::format("{} {}; ", esc(d), n.get<int>());
    h += "</p>\n" + failure_types_chart(r["failures"]["by_type"]);
  } else {
    h += "<p>No failures were mined (no domain has a mining set).</p>\n";
  }
  if (r.contains("clusters")) {
    const json& c = r["clusters"];
    if (c.contains("skipped")) {
      h += "<p>Clustering skipped: " + esc(c["skipped"]) + "</p>\n";
    } else {
      h += fmt::format("<p>{} failures in {} clusters (silhouette {:.3f}).</p><table><tr><th>cluster</th><th>size</th></tr>\n",
                       c["n_failures"].get<long>(), c["clusters"].size(), c["summary"].value("silhouette", 0.0));
      for (auto& x : c["clusters"]) h += fmt::format("<tr><td>{}</td><td>{}</td></tr>\n", esc(x["label"]), x["size"].get<int>());
      h += "</table>\n";
    }
  }
  h += "<h2>Router</h2>\n";
  const json& ro = r["router"];
  if (ro.contains("skipped")) {
    h += "<p>Skipped: " + esc(ro["skipped"]) + "</p>\n";
  } else {
    h += fmt::format("<p>Held-out accuracy {:.2f}% on {} queries ({} trained on).</p>\n",
                     100 * ro["heldout"].value("accuracy", 0.0), ro["n_heldout"].get<long>(), ro["n_train"].get<long>());
    if (ro["n_heldout"].get<long>() > 0) h += confusion_chart(ro["heldout"]);
  }
  h += "<h2>Router calibration</h2>\n";
  const json& ca = r["calibration"];
  if (ca.contains("bins"))
    h += fmt::format("<p>The router's confidence in its route against how often the route was right: ECE {:.4f} "
                     "(before temperature scaling {:.4f}) on {} held-out queries.</p>\n",
                     ca.value("ece", 0.0), ca.value("ece_before", 0.0), ca.value("n_measured", 0L)) +
         reliability_chart(ca["bins"]);
  else h += "<p>Skipped: " + esc(ca.value("skipped", std::string("no data"))) + "</p>\n";
  h += "<h2>Routed system: where each domain's test items went</h2>\n<table><tr><th>domain</th><th>routes</th></tr>\n";
  for (auto& [d, routes] : r["routes"].items()) {
    std::string rs;
    for (auto& [c, n] : routes.items()) rs += fmt::format("{} {}; ", esc(c), n.get<int>());
    h += fmt::format("<tr><td>{}</td><td>{}</td></tr>\n", esc(d), rs);
  }
  h += "</table>\n";
  // Each domain's route, chosen on its dev split (the `routes` stage): dev accuracy per configuration.
  const json& rc = r.value("route_choice", json::object());
  if (rc.contains("dev_accuracy")) {
    h += "<h2>Routes chosen on the dev splits</h2>\n<table><tr><th>domain</th><th>route</th>";
    for (auto& [config, _] : rc["dev_accuracy"].items()) h += "<th>" + esc(config) + " (dev)</th>";
    h += "</tr>\n";
    for (auto& [d, route] : rc["routes"].items()) {
      h += fmt::format("<tr><td>{}</td><td>{}</td>", esc(d), esc(route.get<std::string>()));
      for (auto& [config, acc] : rc["dev_accuracy"].items())
        if (acc.contains(d)) {
          const std::string v = vs_base(rc, config, d);
          h += fmt::format("<td>{:.1f}% of {}{}</td>", acc[d]["accuracy"].get<double>(), acc[d]["n"].get<long>(),
                           v.empty() ? "" : "<br><small>" + esc(v) + "</small>");
        } else {
          h += "<td>-</td>";
        }
      h += "</tr>\n";
    }
    h += "</table>\n";
    if (rc.value("route_alpha", 1.0) < 1)
      h += fmt::format("<p>A modifier takes a domain from the base only where it wins more of the paired dev items (wins/losses "
                       "against the base), with McNemar p &lt; {:g}.</p>\n", rc["route_alpha"].get<double>());
  } else if (rc.contains("reason")) {
    h += "<p>Routes: each domain's default (" + esc(rc["reason"].get<std::string>()) + ").</p>\n";
  }
  h += "<h2>Stages: seconds each took, and their keys</h2>\n<table>" + md_to_html_rows(report_times(r));
  return h + "</table>\n</body></html>\n";
}

std::string report_markdown(const json& r) {
  std::string m = fmt::format("# Cogumi run: {}\n\nconfig `{}`; base `{}` ({:.2f} MB)\n\n", r["name"].get<std::string>(),
                              r["config"].get<std::string>(), r["base"]["model"].get<std::string>(),
                              r["base"]["bytes"].get<double>() / 1e6);
  m += report_table(r);
  const json& ro = r["router"];
  m += ro.contains("skipped") ? "\nRouter: skipped (" + ro["skipped"].get<std::string>() + ")\n"
                              : fmt::format("\nRouter: held-out accuracy {:.2f}% on {} queries.\n",
                                            100 * ro["heldout"].value("accuracy", 0.0), ro["n_heldout"].get<long>());
  const json& rc = r.value("route_choice", json::object());
  if (rc.contains("dev_accuracy")) {
    m += "Routes chosen on dev:";
    for (auto& [d, route] : rc["routes"].items()) {
      m += fmt::format(" {} -> {} (", d, route.get<std::string>());
      std::string sep;
      for (auto& [config, acc] : rc["dev_accuracy"].items())
        if (acc.contains(d)) {
          const std::string v = vs_base(rc, config, d);
          m += fmt::format("{}{} {:.1f}%{}", sep, config, acc[d]["accuracy"].get<double>(), v.empty() ? "" : " [" + v + "]");
          sep = ", ";
        }
      m += ");";
    }
    m += "\n";
    if (rc.value("route_alpha", 1.0) < 1)
      m += fmt::format("(a modifier takes a domain from the base only where it wins more of the paired dev items, McNemar p < {:g})\n",
                       rc["route_alpha"].get<double>());
  }
  const json& ca = r["calibration"];
  m += ca.contains("ece") ? fmt::format("Router calibration (its confidence in the route): ECE {:.4f}, {:.4f} before "
                                        "temperature scaling, on {} held-out queries\n",
                                        ca["ece"].get<double>(), ca.value("ece_before", 0.0), ca.value("n_measured", 0L))
                          : "Router calibration: skipped (" + ca.value("skipped", std::string("")) + ")\n";
  if (r.contains("failures")) {
    m += "\nFailures mined:";
    for (auto& [d, n] : r["failures"]["counts"].items()) m += fmt::format(" {} {};", d, n.get<int>());
    m += " by type:";
    for (auto& [t, n] : r["failures"]["by_type"].items()) m += fmt::format(" {} {};", t, n.get<int>());
    m += "\n";
  }
  if (r.contains("clusters") && r["clusters"].contains("clusters")) {
    m += "Clusters:";
    for (auto& c : r["clusters"]["clusters"]) m += fmt::format(" \"{}\" ({});", c["label"].get<std::string>(), c["size"].get<int>());
    m += "\n";
  }
  m += report_compress_markdown(r);
  if (r.contains("data")) m += data_report_markdown(r["data"]);
  m += "\n## Time per stage\n\n" + report_times(r);
  m += "\n## Gates\n\n";
  for (auto& g : r["gates"]["gates"]) {
    m += fmt::format("- {} `{}`", g["passed"].get<bool>() ? "PASS" : "FAIL", g["gate"].get<std::string>());
    if (g.contains("error")) m += " (" + g["error"].get<std::string>() + ")";
    for (auto& c : g["checks"])
      if (!c["passed"].get<bool>())
        m += fmt::format("; {} {:.4g} vs {:.4g}", c["what"].get<std::string>(), c["value"].get<double>(),
                         c["threshold"].get<double>());
    m += "\n";
  }
  return m;
}

std::string report_table(const json& r) {
  std::string m = "| domain | items | base [95% CI] | own modifier [95% CI] | W/T/L vs base | McNemar p | routed [95% CI] |\n"
                  "|---|---:|---:|---:|---|---:|---:|\n";
  for (auto& d : r["domains"]) {
    const std::string n = d["name"];
    const long items = r["base_accuracy"].contains(n) ? r["base_accuracy"][n].value("n", 0L) : 0L;
    m += fmt::format("| {} | {} | {} |", n, items, acc_ci(r["base_accuracy"], n));
    if (r["modifiers"].contains(n)) {
      const json& v = r["modifiers"][n]["vs_base"][n];
      m += fmt::format(" {} | {}/{}/{} | {:.3g} |", acc_ci(r["modifiers"][n]["accuracy"], n), v["wins"].get<int>(),
                       v["ties"].get<int>(), v["losses"].get<int>(), v["mcnemar_p"].get<double>());
    } else {
      m += " - | - | - |";
    }
    m += fmt::format(" {} |\n", acc_ci(r["routed_accuracy"], n));
  }
  return m;
}

std::string report_times(const json& r) {
  std::string m = "| stage | seconds | key |\n|---|---:|---|\n";
  double total = 0;
  for (auto& s : r["stages"]) {
    const double sec = s.value("seconds", 0.0);
    total += sec;
    m += fmt::format("| {} | {:.1f} | {} |\n", s["name"].get<std::string>(), sec, s["key"].get<std::string>());
  }
  return m + fmt::format("| all stages before the report | {:.1f} | |\n", total);
}

}  // namespace cogumi
