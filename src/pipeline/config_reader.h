// cogumi/pipeline: the YAML reader of pipeline configs (internal to src/pipeline; config.cpp and
// the config files of optional sections share it). Every error says "FILE:LINE: 'key': what".
#pragma once

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "eval/run.h"

namespace cogumi::pipeline_detail {

namespace fs = std::filesystem;

inline const std::set<std::string> kKinds = {"gsm8k", "humaneval", "mbpp", "mmlu", "bbh", "bfcl", "jsonl"};

// Reads one YAML file; every error says "FILE:LINE: 'key': what".
class Reader {
 public:
  explicit Reader(fs::path file) : file_(std::move(file)) {}

  [[noreturn]] void error(const YAML::Node& n, const std::string& key, const std::string& msg) const {
    fail("{}:{}: '{}': {}", file_.string(), n.Mark().line + 1, key, msg);
  }
  void expect_map(const YAML::Node& n, const std::string& key, const std::set<std::string>& allowed) const {
    if (!n.IsMap()) error(n, key.empty() ? "(top level)" : key, "expected a mapping");
    for (auto it = n.begin(); it != n.end(); ++it) {
      const auto k = it->first.as<std::string>();
      if (!allowed.count(k)) {
        std::string known;
        for (auto& a : allowed) known += (known.empty() ? "" : ", ") + a;
        error(it->first, key.empty() ? k : key + "." + k, "unknown key (known: " + known + ")");
      }
    }
  }
  std::string str(const YAML::Node& n, const std::string& key) const {
    if (!n.IsScalar()) error(n, key, "expected a string");
    return n.as<std::string>();
  }
  bool boolean(const YAML::Node& n, const std::string& key) const {
    try {
      if (n.IsScalar()) return n.as<bool>();
    } catch (const YAML::Exception&) {
    }
    error(n, key, "expected true or false");
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
  int integer(const YAML::Node& n, const std::string& key, long lo, long hi) const {
    double v = number(n, key, double(lo), double(hi));
    if (v != std::floor(v)) error(n, key, fmt::format("expected a whole number, got {}", n.Scalar()));
    return int(v);
  }
  fs::path path(const YAML::Node& n, const std::string& key) const {
    fs::path p = str(n, key);
    if (p.empty()) error(n, key, "empty path");
    return p.is_absolute() ? p : file_.parent_path() / p;
  }
  std::vector<fs::path> paths(const YAML::Node& n, const std::string& key) const {
    std::vector<fs::path> out;
    if (n.IsScalar()) return {path(n, key)};
    if (!n.IsSequence()) error(n, key, "expected a path or a list of paths");
    for (size_t i = 0; i < n.size(); ++i) out.push_back(path(n[i], fmt::format("{}[{}]", key, i)));
    return out;
  }
  std::vector<BenchSpec> benches(const YAML::Node& n, const std::string& key) const {
    if (!n.IsMap()) error(n, key, "expected a mapping of benchmark kind to file, e.g. {gsm8k: test.jsonl}");
    std::vector<BenchSpec> out;
    for (auto it = n.begin(); it != n.end(); ++it) {
      const std::string kind = it->first.as<std::string>();
      if (!kKinds.count(kind))
        error(it->first, key + "." + kind, "unknown benchmark kind (gsm8k, humaneval, mbpp, mmlu, bbh, bfcl, jsonl)");
      out.push_back({kind, path(it->second, key + "." + kind)});
    }
    return out;
  }
  const fs::path& file() const { return file_; }

 private:
  fs::path file_;
};

}  // namespace cogumi::pipeline_detail
