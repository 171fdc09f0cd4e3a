#include "pipeline/report_compress.h"

#include <fmt/format.h>

#include <cmath>

namespace cogumi {

namespace {

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) o += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : c == '"' ? "&quot;" : std::string(1, c);
  return o;
}

// What was done, in words ("prune 0.2 (deci) -> q4_k_m with an imatrix -> LoRA rank 8 -> packed").
std::string steps(const json& c) {
  std::string s;
  auto add = [&](const std::string& x) { s += (s.empty() ? "" : ", then ") + x; };
  if (c.contains("prune")) {
    const json& p = c["prune"]["prune"];
    add(fmt::format("pruned {:.0f}% of the layers' parameters ({} GGUF)", 100 * c["settings"]["prune"]["level"].get<double>(),
                    p.value("arch", std::string("?"))));
    if (p.contains("recovery"))
      add(fmt::format("recovered ({} {} steps, loss {:.3f} -> {:.3f}{})", p["recovery"].value("mode", std::string("")),
                      p["recovery"].value("steps", 0), p["recovery"].value("first_loss", 0.0), p["recovery"].value("last_loss", 0.0),
                      p.contains("quality_unrecovered") && p.contains("quality")
                          ? fmt::format("; same top {:.1f}% before recovery, {:.1f}% after",
                                        100 * p["quality_unrecovered"].value("top1_agree", 0.0), 100 * p["quality"].value("top1_agree", 0.0))
                          : ""));
  }
  if (c.contains("quantize")) {
    std::string q = "quantized to " + c["settings"]["quantize"].get<std::string>();
    q += c.contains("imatrix") ? fmt::format(" with an importance matrix ({} chunks)", c["imatrix"].value("chunks", 0))
                               : " without an importance matrix";
    if (!c["settings"]["tensor_types"].empty()) q += ", overrides " + c["settings"]["tensor_types"].dump();
    add(q);
  }
  if (c.contains("lora")) add(fmt::format("modifiers cut to rank {}", c["settings"]["lora_rank"].get<int>()));
  if (c.contains("pack")) add(fmt::format("the base packed (zstd, {:.1f}% of its size)", 100 * c["pack"]["ratio"].get<double>()));
  return s.empty() ? "nothing" : s;
}

struct Row {
  std::string size, packed, kld, p99, agree, ppl, delta;
};

Row row(const json& c) {
  Row r;
  r.size = fmt::format("{:.2f} (base {:.2f})", c["system_bytes"].get<double>() / 1e6, c["bytes"].get<double>() / 1e6);
  r.packed = c.contains("pack")
                 ? fmt::format("{:.2f}", (c["system_bytes"].get<double>() - c["bytes"].get<double>() +
                                          c["pack"]["bytes"].get<double>()) / 1e6)
                 : "-";
  if (c.contains("kld")) {
    const json& k = c["kld"];
    r.kld = fmt::format("{:.5f}", k["kld_mean"].get<double>());
    r.p99 = fmt::format("{:.5f}", k["kld_p99"].get<double>());
    r.agree = fmt::format("{:.2f}%", 100 * k["agreement"].get<double>());
    r.ppl = fmt::format("{:.4f}", k["ppl_ratio"].get<double>());
  } else {
    r.kld = r.p99 = r.agree = r.ppl = "-";
  }
  r.delta = c.contains("eval") ? fmt::format("{:+.1f}", c["eval"]["accuracy_delta"].get<double>()) : "-";
  return r;
}

std::string handed_over(const json& c) {
  return c.value("published", false) ? "handed over as system.compressed.yaml (its gates passed)"
                                     : "not handed over: " + c.value("not_published", std::string("a gate failed"));
}

}  // namespace

std::string report_compress_markdown(const json& report) {
  if (!report.contains("compress")) return "";
  const json& c = report["compress"];
  const Row r = row(c);
  std::string m = "\n## Compression\n\n" + steps(c) + "; " + handed_over(c) + ".\n";
  if (c.contains("note")) m += c["note"].get<std::string>() + ".\n";
  m += "\n| system MB | packed MB | KLD mean | KLD p99 | same top | PPL ratio | accuracy delta (worst domain, pts) |\n"
       "|---:|---:|---:|---:|---:|---:|---:|\n";
  m += fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", r.size, r.packed, r.kld, r.p99, r.agree, r.ppl, r.delta);
  if (c.contains("eval")) {
    const json& e = c["eval"];
    m += fmt::format("\n| domain | {} | compressed | delta |\n|---|---:|---:|---:|\n", e["against"].get<std::string>());
    for (auto& [d, v] : e["accuracy"].items())
      m += fmt::format("| {} | {:.1f}% | {:.1f}% | {:+.1f} |\n", d, e["reference"][d]["accuracy"].get<double>(),
                       v["accuracy"].get<double>(), e["delta"][d].get<double>());
  }
  return m;
}

std::string report_compress_html(const json& report) {
  if (!report.contains("compress")) return "";
  const json& c = report["compress"];
  const Row r = row(c);
  std::string h = "<h2>Compression</h2>\n<p>" + esc(steps(c)) + "; <span class=\"" +
                  (c.value("published", false) ? "pass" : "fail") + "\">" + esc(handed_over(c)) + "</span>.";
  if (c.contains("note")) h += " " + esc(c["note"].get<std::string>()) + ".";
  if (c.contains("kld"))
    h += fmt::format(" KLD etc. on {} tokens of <code>{}</code>.", c["kld"]["tokens"].get<long>(),
                     esc(c["kld"]["data"].get<std::string>()));
  h += "</p>\n<table><tr><th>system MB</th><th>packed MB</th><th>KLD mean</th><th>KLD p99</th><th>same top</th>"
       "<th>PPL ratio</th><th>accuracy delta (worst domain, pts)</th></tr>\n";
  h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n</table>\n",
                   r.size, r.packed, r.kld, r.p99, r.agree, r.ppl, r.delta);
  if (c.contains("eval")) {
    const json& e = c["eval"];
    h += fmt::format("<table><tr><th>domain</th><th>{}</th><th>compressed</th><th>delta</th></tr>\n",
                     esc(e["against"].get<std::string>()));
    for (auto& [d, v] : e["accuracy"].items()) {
      const double dl = e["delta"][d].get<double>();
      h += fmt::format("<tr><td>{}</td><td>{:.1f}%</td><td>{:.1f}%</td><td class=\"{}\">{:+.1f}</td></tr>\n", esc(d),
                       e["reference"][d]["accuracy"].get<double>(), v["accuracy"].get<double>(),
                       dl > 0 ? "up" : dl < 0 ? "down" : "", dl);
    }
    h += "</table>\n";
  }
  return h;
}

}  // namespace cogumi
