// The teacher cascade (data/cascade.h).
#include "data/cascade.h"

#include <set>

#include "core/error.h"
#include "core/io.h"
#include "data/teacher_check.h"
#include "data/teacher_prompt.h"

namespace cogumi {

using json = nlohmann::json;

void GenerateOptions::validate() const {
  if (tiers.empty()) fail("no teacher given (--config with 'tiers:', or --endpoint)");
  std::set<std::string> names;
  for (size_t i = 0; i < tiers.size(); ++i) {
    tiers[i].validate(fmt::format("tier {} ('{}')", i + 1, tiers[i].name));
    if (!names.insert(tiers[i].name).second) fail("tier {}: name '{}' repeats another tier's", i + 1, tiers[i].name);
  }
  if (clusters.empty()) fail("no failure clusters given (--failures CLUSTERS.jsonl)");
  if (run.empty()) fail("no eval run given (--run RUN: the run whose failures were clustered)");
  if (domain.empty()) fail("no domain given (--domain)");
  if (out.empty()) fail("no output given (-o OUT.jsonl)");
  if (spend_cap_tokens < 0) fail("--spend-cap must be >= 0 tokens (0 = no cap), got {}", spend_cap_tokens);
  sandbox.validate();
}

std::filesystem::path sibling_path(const std::filesystem::path& out, const std::string& suffix) {
  auto p = out;
  p.replace_extension();
  return p.string() + suffix;
}

namespace {

std::string trimmed(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// The kept example a passing (or unchecked) reply becomes: a training record with its provenance.
json kept_record(const json& item, const json& r, size_t tier_index) {
  return {{"instruction", item.value("question", "")},
          {"output", trimmed(r.value("reply", ""))},
          {"tier", r["tier"]},
          {"tier_index", tier_index},
          {"model", r["model"]},
          {"tokens", r["usage"]},
          {"item", item.value("id", "")},
          {"benchmark", item.value("benchmark", "")},
          {"kind", item.value("kind", "")},
          {"reference", item.value("reference", "")},
          {"cluster", r.value("cluster", json(nullptr))},
          {"cluster_label", r.value("cluster_label", "")},
          {"check", r.value("check", "")},
          {"passed", r.value("passed", json(nullptr))},
          {"key", r["key"]}};
}

json tier_json(const TierReport& t) {
  return {{"name", t.name},
          {"model", t.model},
          {"asked", t.asked},
          {"answered", t.answered},
          {"resumed", t.resumed},
          {"kept", t.kept},
          {"kept_unchecked", t.kept_unchecked},
          {"failed", t.failed},
          {"errors", t.errors},
          {"retries", t.retries},
          {"prompt_tokens", t.prompt_tokens},
          {"completion_tokens", t.completion_tokens},
          {"closed", t.closed}};
}

std::vector<TeacherRequest> tier_requests(const GenerateOptions& o, const FailureSet& set,
                                          const std::vector<size_t>& pending, size_t t) {
  const TeacherEndpoint& ep = o.tiers[t];
  const std::string tmpl = load_template(ep.prompt_template, kTeacherFailureTemplate);
  const std::string where = ep.prompt_template.empty() ? "the built-in teacher template" : ep.prompt_template.string();
  std::vector<TeacherRequest> reqs;
  for (size_t i : pending) {
    const json& item = set.items[i];
    const json& cl = set.clusters[set.cluster_of[i]];
    reqs.push_back({fill_template(tmpl, failure_prompt_values(set, i, o.domain), where),
                    {{"item", item.value("id", "")},
                     {"benchmark", item.value("benchmark", "")},
                     {"domain", o.domain},
                     {"cluster", cl.value("cluster", json(nullptr))},
                     {"cluster_label", cl.value("label", "")},
                     {"tier_index", t + 1}}});
  }
  return reqs;
}

}  // namespace

CascadeResult run_cascade(const GenerateOptions& o) {
  o.validate();
  const FailureSet set = load_failure_set(o.clusters, o.run, o.domain, o.limit);
  const auto bench_items = load_check_items(o.benches);
  std::vector<EvalItem> items;
  for (const auto& line : set.items) items.push_back(check_item_for(line, bench_items));
  RequestLog log(o.out);
  SpendMeter spend;
  spend.cap = o.spend_cap_tokens;
  spend.spent = log.tokens();
  auto annotate = [&](json& line) {
    const size_t i = set.by_id.at(line.value("item", ""));
    const CheckResult c = check_answer(items[i], line.value("reply", ""), line.value("finish_reason", ""), o.sandbox);
    line["check"] = c.check;
    line["passed"] = c.passed ? json(*c.passed) : json(nullptr);
    line["check_detail"] = c.detail;
  };
  CascadeResult res;
  res.n_failures = set.items.size();
  std::vector<size_t> pending(set.items.size());
  for (size_t i = 0; i < pending.size(); ++i) pending[i] = i;
  std::string kept_lines;
  for (size_t t = 0; t < o.tiers.size() && !pending.empty() && !spend.capped; ++t) {
    const auto reqs = tier_requests(o, set, pending, t);
    const auto replies = ask_all(o.tiers[t], reqs, log, spend, annotate, o.progress);
    TierReport tr{o.tiers[t].name, o.tiers[t].model};
    tr.asked = pending.size();
    std::vector<size_t> next;
    for (size_t k = 0; k < pending.size(); ++k) {
      const json& r = replies[k];
      if (r.is_null()) {  // not asked (the spend cap) stays open; no reply after retries goes on
        if (!spend.capped) ++tr.errors, next.push_back(pending[k]);
        continue;
      }
      ++tr.answered;
      tr.resumed += r.value("resumed", false);
      tr.retries += r.value("retries", size_t(0));
      tr.prompt_tokens += r["usage"].value("prompt_tokens", int64_t(0));
      tr.completion_tokens += r["usage"].value("completion_tokens", int64_t(0));
      const json passed = r.value("passed", json(nullptr));
      if (passed.is_boolean() && !passed.get<bool>()) {
        ++tr.failed;
        next.push_back(pending[k]);
        continue;
      }
      ++tr.kept;
      tr.kept_unchecked += passed.is_null();
      kept_lines += kept_record(set.items[pending[k]], r, t + 1).dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    }
    tr.closed = res.n_failures ? double(tr.kept) / res.n_failures : 0.0;
    res.n_kept += tr.kept;
    res.tiers.push_back(tr);
    pending = std::move(next);
  }
  res.capped = spend.capped;
  res.n_open = res.n_failures - res.n_kept;
  json tiers = json::array();
  for (auto& t : res.tiers) tiers.push_back(tier_json(t));
  res.report = {{"domain", o.domain},         {"failures", res.n_failures}, {"kept", res.n_kept},
                {"open", res.n_open},         {"capped", res.capped},       {"spent_tokens", spend.spent.load()},
                {"spend_cap_tokens", o.spend_cap_tokens}, {"log", o.out.string()},
                {"kept_file", sibling_path(o.out, ".kept.jsonl").string()}, {"tiers", tiers}};
  write_file_atomic(sibling_path(o.out, ".kept.jsonl"), kept_lines);
  write_file_atomic(sibling_path(o.out, ".report.json"), res.report.dump(2) + "\n");
  return res;
}

std::string cascade_table(const CascadeResult& r) {
  std::string s =
      "| tier | model | asked | kept | of which unchecked | still failing | errors | retries | prompt tokens | "
      "completion tokens | tokens per kept | failure rate closed |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n";
  for (const auto& t : r.tiers) {
    const int64_t tok = t.prompt_tokens + t.completion_tokens;
    s += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1f}% |\n", t.name, t.model, t.asked,
                     t.kept, t.kept_unchecked, t.failed, t.errors, t.retries, t.prompt_tokens, t.completion_tokens,
                     t.kept ? fmt::format("{:.0f}", double(tok) / t.kept) : "-", 100.0 * t.closed);
  }
  s += fmt::format("\n{} failures of '{}': {} kept ({:.1f}%), {} open{}\n", r.n_failures,
                   r.report.value("domain", ""), r.n_kept, r.n_failures ? 100.0 * r.n_kept / r.n_failures : 0.0,
                   r.n_open, r.capped ? " (the spend cap stopped the run)" : "");
  return s;
}

}  // namespace cogumi
