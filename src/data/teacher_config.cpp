// Teacher endpoints: validation and the YAML config (data/teacher.h).
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdlib>
#include <set>

#include "core/error.h"
#include "data/teacher.h"
#include "data/teacher_yaml.h"

namespace cogumi {

void TeacherEndpoint::validate(const std::string& where) const {
  auto bad = [&](const std::string& field, const std::string& why) { fail("{}: '{}' {}", where, field, why); };
  if (name.empty()) bad("name", "is empty");
  if (base_url.rfind("http://", 0) != 0 && base_url.rfind("https://", 0) != 0)
    bad("base_url", fmt::format("must start with http:// or https://, got '{}'", base_url));
  if (model.empty()) bad("model", "is empty");
  if (api != "chat" && api != "completions") bad("api", fmt::format("must be chat or completions, got '{}'", api));
  if (concurrency < 1 || concurrency > 256) bad("concurrency", fmt::format("must be in 1..256, got {}", concurrency));
  if (!std::isfinite(rate_limit) || rate_limit < 0 || rate_limit > 1e6)
    bad("rate_limit", fmt::format("must be in 0..1000000 requests per minute (0 = off), got {}", rate_limit));
  if (max_retries < 0 || max_retries > 100) bad("max_retries", fmt::format("must be in 0..100, got {}", max_retries));
  if (!std::isfinite(backoff_s) || backoff_s < 0 || backoff_s > 3600)
    bad("backoff_s", fmt::format("must be in 0..3600 seconds, got {}", backoff_s));
  if (!std::isfinite(backoff_max_s) || backoff_max_s < backoff_s || backoff_max_s > 86400)
    bad("backoff_max_s", fmt::format("must be in backoff_s..86400 seconds, got {}", backoff_max_s));
  if (!std::isfinite(timeout_s) || timeout_s <= 0 || timeout_s > 86400)
    bad("timeout_s", fmt::format("must be in (0, 86400] seconds, got {}", timeout_s));
  if (max_tokens < 1 || max_tokens > 1000000) bad("max_tokens", fmt::format("must be in 1..1000000, got {}", max_tokens));
  if (!std::isfinite(temperature) || temperature < 0 || temperature > 2)
    bad("temperature", fmt::format("must be in 0..2, got {}", temperature));
  if (!ca_file.empty() && !std::filesystem::is_regular_file(ca_file))
    bad("ca_file", fmt::format("'{}' is not a file", ca_file));
  if (!ca_file.empty() && base_url.rfind("https://", 0) != 0)
    bad("ca_file", "is given but base_url is not https://");
}

std::string TeacherEndpoint::api_key() const {
  if (api_key_env.empty()) return "";
  const char* v = std::getenv(api_key_env.c_str());
  if (!v || !*v) fail("tier '{}': environment variable {} (api_key_env) is not set", name, api_key_env);
  return v;
}

namespace {

class Reader {
 public:
  explicit Reader(std::filesystem::path file) : file_(std::move(file)) {}
  [[noreturn]] void error(const YAML::Node& n, const std::string& key, const std::string& msg) const {
    fail("{}:{}: '{}': {}", file_.string(), n.Mark().line + 1, key, msg);
  }
  std::string str(const YAML::Node& n, const std::string& key) const {
    if (!n.IsScalar()) error(n, key, "expected a string");
    return n.Scalar();
  }
  double number(const YAML::Node& n, const std::string& key) const {
    try {
      if (n.IsScalar()) return n.as<double>();
    } catch (const YAML::Exception&) {
    }
    error(n, key, fmt::format("expected a number, got '{}'", n.IsScalar() ? n.Scalar() : "a non-scalar"));
  }
  int integer(const YAML::Node& n, const std::string& key) const {
    double v = number(n, key);
    if (v != std::floor(v) || std::abs(v) > 2e9) error(n, key, fmt::format("expected a whole number, got {}", n.Scalar()));
    return int(v);
  }
  std::string path(const YAML::Node& n, const std::string& key) const {
    std::filesystem::path p = str(n, key);
    return (p.is_absolute() ? p : file_.parent_path() / p).string();
  }

  TeacherEndpoint endpoint(const YAML::Node& n, const std::string& key) const {
    if (!n.IsMap()) error(n, key, "expected a mapping (base_url, model, ...)");
    TeacherEndpoint ep;
    for (auto it = n.begin(); it != n.end(); ++it) {
      const std::string k = it->first.Scalar(), full = key + "." + k;
      const YAML::Node& v = it->second;
      if (k == "name") ep.name = str(v, full);
      else if (k == "base_url") ep.base_url = str(v, full);
      else if (k == "model") ep.model = str(v, full);
      else if (k == "api") ep.api = str(v, full);
      else if (k == "api_key_env") ep.api_key_env = str(v, full);
      else if (k == "ca_file") ep.ca_file = path(v, full);
      else if (k == "template") ep.prompt_template = path(v, full);
      else if (k == "concurrency") ep.concurrency = integer(v, full);
      else if (k == "rate_limit") ep.rate_limit = number(v, full);
      else if (k == "max_retries") ep.max_retries = integer(v, full);
      else if (k == "backoff_s") ep.backoff_s = number(v, full);
      else if (k == "backoff_max_s") ep.backoff_max_s = number(v, full);
      else if (k == "timeout_s") ep.timeout_s = number(v, full);
      else if (k == "max_tokens") ep.max_tokens = integer(v, full);
      else if (k == "temperature") ep.temperature = number(v, full);
      else
        error(it->first, full,
              "unknown key (known: name, base_url, model, api, api_key_env, ca_file, template, concurrency, "
              "rate_limit, max_retries, backoff_s, backoff_max_s, timeout_s, max_tokens, temperature)");
    }
    ep.validate(fmt::format("{}:{}: {}", file_.string(), n.Mark().line + 1, key));
    return ep;
  }

 private:
  std::filesystem::path file_;
};

}  // namespace

TeacherEndpoint teacher_endpoint_from_yaml(const YAML::Node& n, const std::filesystem::path& file, const std::string& key) {
  return Reader(file).endpoint(n, key);
}

std::vector<TeacherEndpoint> load_teacher_config(const std::filesystem::path& path, const std::string& section,
                                                 int64_t* spend_cap_tokens) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path.string());
  } catch (const YAML::BadFile&) {
    fail("cannot read teacher config '{}'", path.string());
  } catch (const YAML::ParserException& e) {
    fail("{}:{}: not valid YAML: {}", path.string(), e.mark.line + 1, e.msg);
  }
  Reader r(path);
  if (!root.IsMap()) r.error(root, "(top level)", "expected a mapping with '" + section + "'");
  const std::set<std::string> known = {"tiers", "judge", "spend_cap_tokens"};
  for (auto it = root.begin(); it != root.end(); ++it)
    if (!known.count(it->first.Scalar())) r.error(it->first, it->first.Scalar(), "unknown key (known: tiers, judge, spend_cap_tokens)");
  if (spend_cap_tokens && root["spend_cap_tokens"]) {
    double cap = r.number(root["spend_cap_tokens"], "spend_cap_tokens");
    if (cap < 0 || cap > 1e15) r.error(root["spend_cap_tokens"], "spend_cap_tokens", "must be >= 0 (0 = no cap)");
    *spend_cap_tokens = int64_t(cap);
  }
  const YAML::Node n = root[section];
  if (!n) fail("{}: no '{}' section", path.string(), section);
  std::vector<TeacherEndpoint> out;
  if (n.IsMap()) {
    out.push_back(r.endpoint(n, section));
    if (!n["name"]) out.back().name = section;
  } else if (n.IsSequence() && n.size() > 0) {
    std::set<std::string> names;
    for (size_t i = 0; i < n.size(); ++i) {
      const std::string key = fmt::format("{}[{}]", section, i);
      out.push_back(r.endpoint(n[i], key));
      if (!n[i]["name"]) out.back().name = fmt::format("tier{}", i + 1);
      if (!names.insert(out.back().name).second) r.error(n[i], key + ".name", "repeats another tier's name");
    }
  } else {
    r.error(n, section, "expected a list of endpoints");
  }
  return out;
}

}  // namespace cogumi
