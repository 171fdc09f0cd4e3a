#include "runtime/system.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>

#include "core/error.h"

namespace cogumi {

namespace {

const std::set<std::string> kAskAs = {"chat", "raw",  "gsm8k", "humaneval",
                                      "mmlu", "bfcl", "bbh",   "mbpp"};

// Reads one YAML file with errors that say where: "FILE:LINE: key 'x': ...".
class Reader {
 public:
  explicit Reader(std::filesystem::path file) : file_(std::move(file)) {}

  [[noreturn]] void error(const YAML::Node& n, const std::string& key,
                          const std::string& msg) const {
    fail("{}:{}: '{}': {}", file_.string(), n.Mark().line + 1, key, msg);
  }

  void expect_map(const YAML::Node& n, const std::string& key,
                  const std::set<std::string>& allowed) const {
    if (!n.IsMap()) error(n, key, "expected a mapping");
    for (auto it = n.begin(); it != n.end(); ++it) {
      const auto k = it->first.as<std::string>();
      if (!allowed.count(k)) error(it->first, key.empty() ? k : key + "." + k, "unknown key");
    }
  }

  template <typename T>
  T get(const YAML::Node& n, const std::string& key) const {
    try {
      return n.as<T>();
    } catch (const YAML::Exception&) {
      error(n, key,
            std::is_same_v<T, std::string> ? "expected a string"
            : std::is_same_v<T, bool>      ? "expected true or false"
                                           : "expected a number");
    }
  }

  std::filesystem::path path(const YAML::Node& n, const std::string& key) const {
    std::filesystem::path p = get<std::string>(n, key);
    if (p.empty()) error(n, key, "empty path");
    return p.is_absolute() ? p : file_.parent_path() / p;
  }

 private:
  std::filesystem::path file_;
};

// fewshot: {bank: FILE, k: 3, domains: [..], embedding: hashed|model, dim: 256, max_chars: 3000,
//           exact_below: 20000, ef_search: 64}
void read_fewshot(const Reader& r, const YAML::Node& n, FewshotOptions& f) {
  r.expect_map(n, "fewshot",
               {"bank", "k", "domains", "embedding", "dim", "max_chars", "exact_below", "ef_search"});
  if (!n["bank"]) r.error(n, "fewshot.bank", "required (a bank JSONL: cogumi fewshot build)");
  f.bank = r.path(n["bank"], "fewshot.bank");
  if (n["k"]) f.k = r.get<int>(n["k"], "fewshot.k");
  if (const YAML::Node d = n["domains"]) {
    if (!d.IsSequence()) r.error(d, "fewshot.domains", "expected a list of choice names");
    for (const auto& x : d) f.domains.push_back(r.get<std::string>(x, "fewshot.domains"));
  }
  if (n["embedding"]) {
    const auto e = r.get<std::string>(n["embedding"], "fewshot.embedding");
    if (e != "hashed" && e != "model") r.error(n["embedding"], "fewshot.embedding", "expected hashed or model");
    f.embedding = e == "model" ? Embedding::model : Embedding::hashed;
  }
  if (n["dim"]) f.dim = r.get<int>(n["dim"], "fewshot.dim");
  if (n["max_chars"]) {
    const auto m = r.get<long long>(n["max_chars"], "fewshot.max_chars");
    if (m < 1) r.error(n["max_chars"], "fewshot.max_chars", "must be 1..1000000");
    f.max_chars = size_t(m);
  }
  if (n["exact_below"]) {
    const auto m = r.get<long long>(n["exact_below"], "fewshot.exact_below");
    if (m < 0) r.error(n["exact_below"], "fewshot.exact_below", "must be >= 0");
    f.index.exact_below = size_t(m);
  }
  if (n["ef_search"]) f.index.ef_search = r.get<int>(n["ef_search"], "fewshot.ef_search");
}

}  // namespace

bool SystemConfig::has_choice(const std::string& n) const {
  return std::any_of(choices.begin(), choices.end(),
                     [&](const SystemChoice& c) { return c.name == n; });
}

std::string SystemConfig::adapter_name(const std::string& n) const {
  const SystemChoice& c = choice(n);
  if (c.adapter.empty()) return "";
  for (const SystemChoice& o : choices)  // choices with the same file share one loaded adapter: the first's
    if (o.adapter == c.adapter) return o.name;
  return n;
}

const SystemChoice& SystemConfig::choice(const std::string& n) const {
  for (auto& c : choices)
    if (c.name == n) return c;
  std::string known;
  for (auto& c : choices) known += (known.empty() ? "" : ", ") + c.name;
  fail("system '{}': no choice named '{}' (choices: {})", name, n, known);
}

void SystemConfig::validate() const {
  const std::string where = file.empty() ? "system" : file.string();
  if (base.empty()) fail("{}: 'base' is required", where);
  if (choices.empty()) fail("{}: 'choices' needs at least one entry", where);
  std::set<std::string> seen;
  for (auto& c : choices) {
    if (c.name.empty()) fail("{}: a choice has an empty name", where);
    if (!seen.insert(c.name).second) fail("{}: choice '{}' is named twice", where, c.name);
    if (!kAskAs.count(c.ask_as))
      fail(
          "{}: choices.{}.ask_as: '{}' is not one of chat, raw, gsm8k, humaneval, mmlu, bfcl, bbh, "
          "mbpp",
          where, c.name, c.ask_as);
  }
  if (!has_choice(default_choice))
    fail("{}: 'default' names '{}', which is not a choice", where, default_choice);
  if (!(threshold >= 0 && threshold <= 1))
    fail("{}: 'threshold' must be in [0, 1], got {}", where, threshold);
  if (escalation != "accurate" && escalation != "base")
    fail("{}: 'escalation' must be accurate or base, got '{}'", where, escalation);
  if (mode != "fast" && mode != "accurate")
    fail("{}: modes.default must be fast or accurate, got '{}'", where, mode);
  if (samples < 1 || samples > 64)
    fail("{}: modes.accurate.samples must be 1..64, got {}", where, samples);
  if (sandboxes < 0 || sandboxes > 4096)
    fail("{}: modes.accurate.sandboxes must be 0 (the CPU's cores) or 1..4096, got {}", where, sandboxes);
  if (!(temperature > 0 && temperature <= 2))
    fail("{}: modes.accurate.temperature must be in (0, 2], got {}", where, temperature);
  if (max_tokens < 1 || max_tokens > 32768)
    fail("{}: generation.max_tokens must be 1..32768, got {}", where, max_tokens);
  if (parallel < 1 || parallel > 255)
    fail("{}: generation.parallel must be 1..255, got {}", where, parallel);
  if (threads < 0 || threads > 1024)
    fail("{}: generation.threads must be 0..1024, got {}", where, threads);
  if (history < 0 || history > 64) fail("{}: 'history' must be 0..64 turns, got {}", where, history);
  if (!fewshot.bank.empty()) {
    try {
      fewshot.validate();
    } catch (const Error& e) {
      fail("{}: {}", where, e.what());
    }
    for (auto& d : fewshot.domains)
      if (!has_choice(d)) fail("{}: fewshot.domains names '{}', which is not a choice", where, d);
  }
}

SystemConfig SystemConfig::bare_model(const std::filesystem::path& model) {
  SystemConfig cfg;
  cfg.name = model.stem().string();
  cfg.base = model;
  cfg.choices = {{"base", {}, "chat"}};
  cfg.default_choice = "base";
  cfg.history = 8;
  return cfg;
}

SystemConfig SystemConfig::load(const std::filesystem::path& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path.string());
  } catch (const YAML::BadFile&) {
    fail("cannot read system file '{}'", path.string());
  } catch (const YAML::Exception& e) {
    fail("{}:{}: not valid YAML: {}", path.string(), e.mark.line + 1, e.msg);
  }
  Reader r(path);
  SystemConfig s;
  s.file = path;
  r.expect_map(root, "",
               {"name", "base", "router", "default", "choices", "threshold", "escalation", "modes",
                "generation", "memory", "detector", "calibration", "fewshot", "history", "critique"});
  if (root["name"]) s.name = r.get<std::string>(root["name"], "name");
  if (!root["base"]) fail("{}: 'base' is required (the base model GGUF)", path.string());
  s.base = r.path(root["base"], "base");
  if (root["router"]) s.router = r.path(root["router"], "router");
  if (root["default"]) s.default_choice = r.get<std::string>(root["default"], "default");
  if (!root["choices"]) fail("{}: 'choices' is required", path.string());
  if (!root["choices"].IsMap())
    r.error(root["choices"], "choices", "expected a mapping of choice names");
  for (auto it = root["choices"].begin(); it != root["choices"].end(); ++it) {
    SystemChoice c;
    c.name = it->first.as<std::string>();
    const std::string key = "choices." + c.name;
    const YAML::Node& v = it->second;
    if (!v.IsNull()) {
      r.expect_map(v, key, {"adapter", "ask_as"});
      if (v["adapter"]) c.adapter = r.path(v["adapter"], key + ".adapter");
      if (v["ask_as"]) c.ask_as = r.get<std::string>(v["ask_as"], key + ".ask_as");
    }
    s.choices.push_back(std::move(c));
  }
  if (root["threshold"]) s.threshold = r.get<double>(root["threshold"], "threshold");
  if (root["escalation"]) s.escalation = r.get<std::string>(root["escalation"], "escalation");
  if (const YAML::Node m = root["modes"]) {
    r.expect_map(m, "modes", {"default", "accurate"});
    if (m["default"]) s.mode = r.get<std::string>(m["default"], "modes.default");
    if (const YAML::Node a = m["accurate"]) {
      r.expect_map(a, "modes.accurate", {"samples", "temperature", "verify", "sandboxes"});
      if (a["verify"]) s.verify = r.get<bool>(a["verify"], "modes.accurate.verify");
      if (a["sandboxes"]) s.sandboxes = r.get<int>(a["sandboxes"], "modes.accurate.sandboxes");
      if (a["samples"]) s.samples = r.get<int>(a["samples"], "modes.accurate.samples");
      if (a["temperature"])
        s.temperature = r.get<float>(a["temperature"], "modes.accurate.temperature");
    }
  }
  if (const YAML::Node g = root["generation"]) {
    r.expect_map(g, "generation", {"max_tokens", "parallel", "threads"});
    if (g["max_tokens"]) s.max_tokens = r.get<int>(g["max_tokens"], "generation.max_tokens");
    if (g["parallel"]) s.parallel = r.get<int>(g["parallel"], "generation.parallel");
    if (g["threads"]) s.threads = r.get<int>(g["threads"], "generation.threads");
  }
  if (root["memory"]) s.memory = r.path(root["memory"], "memory");
  if (root["history"]) s.history = r.get<int>(root["history"], "history");
  if (root["detector"]) s.detector = r.path(root["detector"], "detector");
  if (root["fewshot"]) read_fewshot(r, root["fewshot"], s.fewshot);
  if (root["calibration"]) s.calibration = r.path(root["calibration"], "calibration");
  if (root["critique"]) s.critique = r.path(root["critique"], "critique");
  s.validate();
  return s;
}

}  // namespace cogumi
