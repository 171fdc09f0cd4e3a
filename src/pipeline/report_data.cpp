// The report's training-data section (pipeline/stages_data.h): per domain the cascade's per-tier
// table, the judge and its agreement with the real checks, and what curation removed and why.
#include <fmt/format.h>

#include "pipeline/stages_data.h"

namespace cogumi {

namespace {

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

std::string cell(const std::string& s) {  // one Markdown table cell: no pipes or newlines
  std::string o;
  for (char c : s) o += c == '|' ? '/' : c == '\n' ? ' ' : c;
  return o;
}

const char* kTierHeader =
    "| tier | model | asked | kept | of which unchecked | still failing | errors | tokens | tokens per kept | "
    "failure rate closed |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n";

std::string tier_rows(const json& teach) {
  std::string s;
  for (auto& t : teach.value("tiers", json::array())) {
    const long kept = t.value("kept", 0L);
    const long tok = t.value("prompt_tokens", 0L) + t.value("completion_tokens", 0L);
    s += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1f}% |\n", cell(t.value("name", "")),
                     cell(t.value("model", "")), t.value("asked", 0L), kept, t.value("kept_unchecked", 0L),
                     t.value("failed", 0L), t.value("errors", 0L), tok, kept ? fmt::format("{:.0f}", double(tok) / kept) : "-",
                     100.0 * t.value("closed", 0.0));
  }
  return s;
}

std::string judge_line(const json& j) {
  const long both = j.value("judged_and_checked", 0L), agree = j.value("agree", 0L);
  return fmt::format("Judge: {} examples, {} kept; {} scored by the judge ({} unparsed, {} unanswered), {} decided by a real "
                     "check; judge/verifier agreement {} ({} of {} both judged and checked); {} tokens.",
                     j.value("examples", 0L), j.value("kept", 0L), j.value("judged", 0L), j.value("unparsed", 0L),
                     j.value("unanswered", 0L), j.value("checked", 0L),
                     both ? fmt::format("{:.1f}%", 100.0 * double(agree) / double(both)) : "-", agree, both,
                     j.value("tokens", 0L));
}

std::string curate_line(const json& c) {
  return fmt::format("Curation: {} examples in, {} kept; removed {} exact duplicates, {} near duplicates, {} contaminated "
                     "(shared an n-gram with a test set); {} training pairs ({} forward, {} reverse) at weight {}.",
                     c.value("in", 0L), c.value("kept", 0L), c.value("exact", 0L), c.value("near", 0L),
                     c.value("contaminated", 0L), c.value("pairs", 0L), c.value("forward", 0L), c.value("reverse", 0L),
                     c.value("weight", 1.0));
}

// "record (reason): benchmark item, the matching words" for each listed contaminated record.
std::vector<std::string> contamination_lines(const json& c) {
  std::vector<std::string> out;
  for (auto& r : c.value("contaminated_records", json::array()))
    out.push_back(fmt::format("{} matches {} item {}: \"{}\"", r.value("record", json("")).dump(),
                              r.value("benchmark", ""), r.value("item", ""), r.value("ngram", "")));
  return out;
}

std::string domain_title(const std::string& d, const json& t) {
  const long n = t.value("failures", 0L), kept = t.value("kept", 0L);
  return fmt::format("{}: {} failures, {} kept by the cascade ({:.1f}%), {} open{}", d, n, kept,
                     n ? 100.0 * double(kept) / double(n) : 0.0, t.value("open", 0L),
                     t.value("capped", false) ? " (the spend cap stopped it)" : "");
}

}  // namespace

std::string data_report_markdown(const json& data) {
  std::string m = "\n## Training data from teachers\n";
  for (auto& [d, row] : data.items()) {
    const json& t = row["teach"];
    m += "\n### " + domain_title(d, t) + "\n\n";
    if (t.contains("skipped")) m += "Skipped: " + t["skipped"].get<std::string>() + "\n";
    else m += kTierHeader + tier_rows(t);
    if (row.contains("judge")) m += "\n" + judge_line(row["judge"]) + "\n";
    m += "\n" + curate_line(row["curate"]) + "\n";
    for (auto& l : contamination_lines(row["curate"])) m += "- contaminated: " + l + "\n";
  }
  return m;
}

std::string data_report_html(const json& data) {
  std::string h = "<h2>Training data from teachers</h2>\n";
  for (auto& [d, row] : data.items()) {
    const json& t = row["teach"];
    h += "<h3>" + esc(domain_title(d, t)) + "</h3>\n";
    if (t.contains("skipped")) {
      h += "<p>Skipped: " + esc(t["skipped"].get<std::string>()) + "</p>\n";
    } else {
      h += "<table><tr><th>tier</th><th>model</th><th>asked</th><th>kept</th><th>of which unchecked</th><th>still failing"
           "</th><th>errors</th><th>tokens</th><th>tokens per kept</th><th>failure rate closed</th></tr>\n";
      const std::string rows = tier_rows(t);
      for (size_t at = 0; at < rows.size();) {
        const size_t end = rows.find('\n', at);
        const std::string line = rows.substr(at, end - at);
        at = end + 1;
        h += "<tr>";
        for (size_t a = 1, b; (b = line.find('|', a)) != std::string::npos; a = b + 1)
          h += "<td>" + esc(line.substr(a + 1, b > a + 1 ? b - a - 2 : 0)) + "</td>";
        h += "</tr>\n";
      }
      h += "</table>\n";
    }
    if (row.contains("judge")) h += "<p>" + esc(judge_line(row["judge"])) + "</p>\n";
    h += "<p>" + esc(curate_line(row["curate"])) + "</p>\n";
    const auto lines = contamination_lines(row["curate"]);
    if (!lines.empty()) {
      h += "<ul>\n";
      for (auto& l : lines) h += "<li>contaminated: " + esc(l) + "</li>\n";
      h += "</ul>\n";
    }
  }
  return h;
}

}  // namespace cogumi
