// The pipeline config's `data:` block (pipeline/config_data.h).
#include "pipeline/config_data.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <set>

#include "core/error.h"
#include "data/teacher_yaml.h"

namespace cogumi {

namespace {

const std::set<std::string> kBenchKinds = {"gsm8k", "humaneval", "mbpp", "mmlu", "bbh", "bfcl", "jsonl"};

// Errors "FILE:LINE: 'data.KEY': what", as the rest of the pipeline config reports them.
struct DataReader {
  fs::path file;
  [[noreturn]] void error(const YAML::Node& n, const std::string& key, const std::string& msg) const {
    fail("{}:{}: 'data.{}': {}", file.string(), n.Mark().line + 1, key, msg);
  }
  void expect_map(const YAML::Node& n, const std::string& key, const std::set<std::string>& allowed) const {
    if (!n.IsMap()) error(n, key, "expected a mapping");
    for (auto it = n.begin(); it != n.end(); ++it) {
      const std::string k = it->first.Scalar();
      if (allowed.count(k)) continue;
      std::string known;
      for (auto& a : allowed) known += (known.empty() ? "" : ", ") + a;
      error(it->first, key.empty() ? k : key + "." + k, "unknown key (known: " + known + ")");
    }
  }
  double number(const YAML::Node& n, const std::string& key, double lo, double hi, bool lo_open = false) const {
    double v = 0;
    try {
      if (!n.IsScalar()) error(n, key, "expected a number");
      v = n.as<double>();
    } catch (const YAML::Exception&) {
      error(n, key, fmt::format("expected a number, got '{}'", n.Scalar()));
    }
    if (!std::isfinite(v) || (lo_open ? v <= lo : v < lo) || v > hi)
      error(n, key, fmt::format("must be in {}{}, {}], got {}", lo_open ? "(" : "[", lo, hi, n.Scalar()));
    return v;
  }
  int64_t integer(const YAML::Node& n, const std::string& key, int64_t lo, int64_t hi) const {
    const double v = number(n, key, double(lo), double(hi));
    if (v != std::floor(v)) error(n, key, fmt::format("expected a whole number, got {}", n.Scalar()));
    return int64_t(v);
  }
  bool boolean(const YAML::Node& n, const std::string& key) const {
    try {
      if (n.IsScalar()) return n.as<bool>();
    } catch (const YAML::Exception&) {
    }
    error(n, key, "expected true or false");
  }
};

void read_tiers(const DataReader& r, const YAML::Node& n, DataConfig& c) {
  if (!n.IsSequence() || n.size() == 0) r.error(n, "tiers", "expected a list of teacher endpoints (at least one)");
  std::set<std::string> names;
  for (size_t i = 0; i < n.size(); ++i) {
    const std::string key = fmt::format("data.tiers[{}]", i);
    c.tiers.push_back(teacher_endpoint_from_yaml(n[i], r.file, key));
    if (!n[i]["name"]) c.tiers.back().name = fmt::format("tier{}", i + 1);
    if (!names.insert(c.tiers.back().name).second) r.error(n[i], fmt::format("tiers[{}].name", i), "repeats another tier's name");
  }
}

void read_judge(const DataReader& r, YAML::Node n, DataConfig& c) {
  if (!n.IsMap()) r.error(n, "judge", "expected a mapping (base_url, model, threshold, ...)");
  if (n["threshold"]) {
    c.judge_threshold = r.number(n["threshold"], "judge.threshold", 1, 10);
    n.remove("threshold");  // the rest are endpoint fields
  }
  c.judge_endpoint = teacher_endpoint_from_yaml(n, r.file, "data.judge");
  if (!n["name"]) c.judge_endpoint.name = "judge";
  c.judge = true;
}

void read_decontam(const DataReader& r, const YAML::Node& n, DataConfig& c) {
  r.expect_map(n, "decontaminate", {"ngram", "min_words", "benches"});
  if (n["ngram"]) c.ngram = int(r.integer(n["ngram"], "decontaminate.ngram", 1, 64));
  if (n["min_words"]) c.min_words = int(r.integer(n["min_words"], "decontaminate.min_words", 1, 64));
  if (c.min_words > c.ngram)
    r.error(n["min_words"] ? n["min_words"] : n, "decontaminate.min_words", fmt::format("must not exceed ngram ({})", c.ngram));
  if (const YAML::Node b = n["benches"]) {
    if (!b.IsMap()) r.error(b, "decontaminate.benches", "expected a mapping of benchmark kind to file, e.g. {gsm8k: test.jsonl}");
    for (auto it = b.begin(); it != b.end(); ++it) {
      const std::string kind = it->first.Scalar(), key = "decontaminate.benches." + kind;
      if (!kBenchKinds.count(kind)) r.error(it->first, key, "unknown benchmark kind (gsm8k, humaneval, mbpp, mmlu, bbh, bfcl, jsonl)");
      if (!it->second.IsScalar() || it->second.Scalar().empty()) r.error(it->second, key, "expected a file path");
      fs::path p = it->second.Scalar();
      c.decontam_extra.push_back({kind, p.is_absolute() ? p : r.file.parent_path() / p});
    }
  }
}

}  // namespace

DataConfig read_data_config(const YAML::Node& n, const fs::path& file) {
  const DataReader r{file};
  if (!n.IsMap()) r.error(n, "", "expected a mapping (tiers, judge, dedup, decontaminate, pairs, ...)");
  r.expect_map(n, "", {"domains", "limit", "spend_cap_tokens", "tiers", "judge", "dedup", "decontaminate", "pairs", "weight"});
  DataConfig c;
  c.enabled = true;
  if (const YAML::Node d = n["domains"]) {
    if (!d.IsSequence() || d.size() == 0) r.error(d, "domains", "expected a list of domain names, e.g. [math, code]");
    for (size_t i = 0; i < d.size(); ++i) {
      if (!d[i].IsScalar()) r.error(d[i], fmt::format("domains[{}]", i), "expected a domain name");
      c.domains.push_back(d[i].Scalar());
    }
  }
  if (n["limit"]) c.limit = size_t(r.integer(n["limit"], "limit", 0, 10000000));
  if (n["spend_cap_tokens"]) c.spend_cap_tokens = r.integer(n["spend_cap_tokens"], "spend_cap_tokens", 0, 1000000000000000);
  if (!n["tiers"]) r.error(n, "tiers", "required: the teacher endpoints, in cascade order");
  read_tiers(r, n["tiers"], c);
  if (n["judge"]) read_judge(r, n["judge"], c);
  if (const YAML::Node d = n["dedup"]) {
    r.expect_map(d, "dedup", {"exact", "near", "threshold"});
    if (d["exact"]) c.exact = r.boolean(d["exact"], "dedup.exact");
    if (d["near"]) c.near = r.boolean(d["near"], "dedup.near");
    if (d["threshold"]) c.dedup_threshold = r.number(d["threshold"], "dedup.threshold", 0, 0.999, true);
  }
  if (n["decontaminate"]) read_decontam(r, n["decontaminate"], c);
  if (const YAML::Node p = n["pairs"]) {
    r.expect_map(p, "pairs", {"reverse", "form"});
    if (p["reverse"]) c.reverse = r.boolean(p["reverse"], "pairs.reverse");
    if (const YAML::Node f = p["form"]) {
      if (!f.IsScalar() || (f.Scalar() != "instruction" && f.Scalar() != "eval"))
        r.error(f, "pairs.form", "must be instruction ({instruction, output}) or eval ({prompt, completion} as the eval asked)");
      c.form = f.Scalar();
    }
  }
  if (n["weight"]) c.weight = r.number(n["weight"], "weight", 0, 100, true);
  return c;
}

void DataConfig::validate(const std::string& where, const std::vector<std::string>& modifier_domains) const {
  if (!enabled) return;
  if (tiers.empty()) fail("{}: data.tiers needs at least one teacher", where);
  std::set<std::string> names;
  for (size_t i = 0; i < tiers.size(); ++i) {
    tiers[i].validate(fmt::format("{}: data.tiers[{}]", where, i));
    if (!names.insert(tiers[i].name).second) fail("{}: data.tiers[{}].name '{}' repeats another tier's", where, i, tiers[i].name);
  }
  if (judge) judge_endpoint.validate(where + ": data.judge");
  if (!(judge_threshold >= 1 && judge_threshold <= 10)) fail("{}: data.judge.threshold must be in [1, 10], got {}", where, judge_threshold);
  if (limit > 10000000) fail("{}: data.limit must be in 0..10000000, got {}", where, limit);
  if (spend_cap_tokens < 0) fail("{}: data.spend_cap_tokens must be >= 0, got {}", where, spend_cap_tokens);
  if (!(dedup_threshold > 0 && dedup_threshold < 1)) fail("{}: data.dedup.threshold must be in (0, 1), got {}", where, dedup_threshold);
  if (ngram < 1 || ngram > 64) fail("{}: data.decontaminate.ngram must be in 1..64, got {}", where, ngram);
  if (min_words < 1 || min_words > ngram)
    fail("{}: data.decontaminate.min_words must be in 1..ngram ({}), got {}", where, ngram, min_words);
  if (form != "instruction" && form != "eval") fail("{}: data.pairs.form must be instruction or eval, got '{}'", where, form);
  if (!(weight > 0 && weight <= 100)) fail("{}: data.weight must be in (0, 100], got {}", where, weight);
  std::string known;
  for (auto& m : modifier_domains) known += (known.empty() ? "" : ", ") + m;
  if (modifier_domains.empty())
    fail("{}: data: no domain trains a modifier on mined failures, so no teacher data can be made or used", where);
  std::set<std::string> seen;
  for (auto& d : domains) {
    if (std::find(modifier_domains.begin(), modifier_domains.end(), d) == modifier_domains.end())
      fail("{}: data.domains: '{}' is not a domain that trains a modifier on mined failures ({})", where, d, known);
    if (!seen.insert(d).second) fail("{}: data.domains: '{}' is named twice", where, d);
  }
}

}  // namespace cogumi
