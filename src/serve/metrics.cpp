#include "serve/metrics.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/error.h"

namespace cogumi::metrics {
namespace {

bool valid_name(const std::string& s, bool colons) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                       (colons && c == ':');
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

std::string escape_help(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::counter: return "counter";
    case Kind::gauge: return "gauge";
    case Kind::histogram: return "histogram";
  }
  return "untyped";
}

// {a="x",b="y"} plus an optional extra label (le), or "" when there are none.
std::string label_text(const std::vector<std::string>& names, const Labels& values,
                       const std::string& extra_name = "", const std::string& extra_value = "") {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i)
    out += fmt::format("{}{}=\"{}\"", out.empty() ? "" : ",", names[i],
                       escape_label_value(values[i]));
  if (!extra_name.empty())
    out += fmt::format("{}{}=\"{}\"", out.empty() ? "" : ",", extra_name, extra_value);
  return out.empty() ? "" : "{" + out + "}";
}

}  // namespace

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

std::string escape_label_value(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

Family::Family(Kind kind, std::string name, std::string help, std::vector<std::string> label_names,
               std::vector<double> buckets, size_t max_series)
    : kind_(kind),
      name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      bounds_(std::move(buckets)),
      max_series_(max_series) {}

Family::Series& Family::series_locked(const Labels& labels) {
  if (labels.size() != label_names_.size())
    throw std::invalid_argument(fmt::format("metric {}: {} label values given, {} expected", name_,
                                            labels.size(), label_names_.size()));
  auto it = series_.find(labels);
  if (it == series_.end()) {
    Labels key = labels;
    if (series_.size() >= max_series_) key.assign(labels.size(), "other");
    it = series_.try_emplace(std::move(key)).first;
    if (kind_ == Kind::histogram) it->second.buckets.resize(bounds_.size(), 0);
  }
  return it->second;
}

const Family::Series* Family::find_locked(const Labels& labels) const {
  auto it = series_.find(labels);
  return it == series_.end() ? nullptr : &it->second;
}

void Family::inc(const Labels& labels, double v) {
  if (kind_ == Kind::histogram) throw std::invalid_argument("metric " + name_ + ": inc on a histogram");
  if (std::isnan(v) || (kind_ == Kind::counter && v < 0))
    throw std::invalid_argument(fmt::format("metric {}: counter increment {}", name_, v));
  std::lock_guard lock(mu_);
  series_locked(labels).value += v;
}

void Family::set(const Labels& labels, double v) {
  if (kind_ != Kind::gauge) throw std::invalid_argument("metric " + name_ + ": set on a non-gauge");
  std::lock_guard lock(mu_);
  series_locked(labels).value = v;
}

void Family::observe(const Labels& labels, double v) {
  if (kind_ != Kind::histogram)
    throw std::invalid_argument("metric " + name_ + ": observe on a non-histogram");
  if (std::isnan(v)) throw std::invalid_argument("metric " + name_ + ": NaN observed");
  std::lock_guard lock(mu_);
  Series& s = series_locked(labels);
  // Bucket i counts observations in (bounds[i-1], bounds[i]]; le is "less than or equal".
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  if (i < s.buckets.size()) ++s.buckets[i];
  ++s.count;
  s.value += v;
}

void Family::touch(const Labels& labels) {
  std::lock_guard lock(mu_);
  series_locked(labels);
}

double Family::value(const Labels& labels) const {
  std::lock_guard lock(mu_);
  const Series* s = find_locked(labels);
  if (!s) return 0;
  return kind_ == Kind::histogram ? double(s->count) : s->value;
}

double Family::sum(const Labels& labels) const {
  std::lock_guard lock(mu_);
  const Series* s = find_locked(labels);
  return s ? s->value : 0;
}

void Family::render(std::string& out) const {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name_, escape_help(help_), name_,
                     kind_name(kind_));
  std::lock_guard lock(mu_);
  for (const auto& [labels, s] : series_) {
    if (kind_ != Kind::histogram) {
      out += fmt::format("{}{} {}\n", name_, label_text(label_names_, labels), format_value(s.value));
      continue;
    }
    uint64_t cumulative = 0;
    for (size_t i = 0; i < bounds_.size(); ++i) {
      cumulative += s.buckets[i];
      out += fmt::format("{}_bucket{} {}\n", name_,
                         label_text(label_names_, labels, "le", format_value(bounds_[i])),
                         cumulative);
    }
    out += fmt::format("{}_bucket{} {}\n", name_, label_text(label_names_, labels, "le", "+Inf"),
                       s.count);
    out += fmt::format("{}_sum{} {}\n", name_, label_text(label_names_, labels),
                       format_value(s.value));
    out += fmt::format("{}_count{} {}\n", name_, label_text(label_names_, labels), s.count);
  }
}

void RegistryOptions::validate() const {
  if (max_series < 1) fail("metrics: max_series must be >= 1 (got {})", max_series);
}

Registry::Registry(RegistryOptions options) : options_(options) { options_.validate(); }

Family& Registry::add(Kind kind, const std::string& name, const std::string& help,
                      std::vector<std::string> label_names, std::vector<double> buckets) {
  if (!valid_name(name, true)) throw std::invalid_argument("metric name '" + name + "' is invalid");
  for (const auto& l : label_names) {
    if (!valid_name(l, false) || l.rfind("__", 0) == 0 || (kind == Kind::histogram && l == "le"))
      throw std::invalid_argument("metric " + name + ": label name '" + l + "' is invalid");
    if (std::count(label_names.begin(), label_names.end(), l) > 1)
      throw std::invalid_argument("metric " + name + ": label name '" + l + "' repeated");
  }
  if (kind == Kind::histogram) {
    if (buckets.empty()) throw std::invalid_argument("metric " + name + ": no buckets");
    for (size_t i = 0; i < buckets.size(); ++i)
      if (!std::isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1]))
        throw std::invalid_argument("metric " + name +
                                    ": buckets must be finite and strictly ascending");
  }
  std::lock_guard lock(mu_);
  for (const auto& f : families_)
    if (f->name() == name) throw std::invalid_argument("metric " + name + " registered twice");
  families_.push_back(std::make_unique<Family>(kind, name, help, std::move(label_names),
                                               std::move(buckets), options_.max_series));
  return *families_.back();
}

Family& Registry::counter(const std::string& name, const std::string& help,
                          std::vector<std::string> label_names) {
  return add(Kind::counter, name, help, std::move(label_names), {});
}

Family& Registry::gauge(const std::string& name, const std::string& help,
                        std::vector<std::string> label_names) {
  return add(Kind::gauge, name, help, std::move(label_names), {});
}

Family& Registry::histogram(const std::string& name, const std::string& help,
                            std::vector<std::string> label_names, std::vector<double> buckets) {
  return add(Kind::histogram, name, help, std::move(label_names), std::move(buckets));
}

std::string Registry::render() const {
  std::vector<const Family*> fams;
  {
    std::lock_guard lock(mu_);
    for (const auto& f : families_) fams.push_back(f.get());
  }
  std::string out;
  for (const Family* f : fams) f->render(out);
  return out;
}

}  // namespace cogumi::metrics

namespace cogumi {
namespace {

// Latency of a whole request: an LLM answer takes from tens of ms (nano) to minutes (8B, long).
const std::vector<double> kDurationBuckets = {0.025, 0.05, 0.1, 0.25, 0.5, 1,  2.5,
                                              5,     10,   20,  30,   60,  120};
const std::vector<double> kTtftBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5,   1,    2.5,   5,    10};
const std::vector<double> kConfidenceBuckets = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1};

struct ProcStats {
  double rss = 0, vsz = 0, cpu = 0, start = 0, fds = 0;
};

ProcStats read_proc_self() {
  ProcStats p;
  const double page = double(sysconf(_SC_PAGESIZE));
  const double ticks = double(sysconf(_SC_CLK_TCK));
  {
    std::ifstream f("/proc/self/statm");
    double size = 0, resident = 0;
    if (f >> size >> resident) p.vsz = size * page, p.rss = resident * page;
  }
  {
    std::ifstream f("/proc/self/stat");
    std::string line;
    std::getline(f, line);
    // Fields after the command name (which may hold spaces) start at state (field 3).
    const size_t close = line.rfind(')');
    if (close != std::string::npos) {
      std::istringstream rest(line.substr(close + 2));
      std::vector<std::string> fields;
      for (std::string s; rest >> s;) fields.push_back(s);
      // utime = field 14, stime = 15, starttime = 22; fields[0] is field 3.
      if (fields.size() > 19) {
        p.cpu = (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
        double btime = 0;
        std::ifstream st("/proc/stat");
        for (std::string key; st >> key;) {
          if (key == "btime") {
            st >> btime;
            break;
          }
        }
        p.start = btime + std::stod(fields[19]) / ticks;
      }
    }
  }
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    p.fds += 1;
  return p;
}

}  // namespace

const std::vector<std::string>& ServeMetrics::error_types() {
  static const std::vector<std::string> kTypes = {
      "bad_request",  "unknown_model", "context_length", "body_too_large",    "invalid_schema",
      "unauthorized", "rate_limited",  "timeout",        "client_disconnect", "unavailable", "internal"};
  return kTypes;
}

ServeMetrics::ServeMetrics(metrics::RegistryOptions options)
    : reg_(options),
      requests_(reg_.counter("cogumi_requests_total", "HTTP requests answered, by status code",
                             {"endpoint", "model", "status"})),
      prompt_tokens_(reg_.counter("cogumi_prompt_tokens_total", "Prompt tokens processed",
                                  {"model"})),
      cached_tokens_(reg_.counter("cogumi_prompt_tokens_cached_total",
                                  "Prompt tokens taken from the KV cache an earlier request left", {"model"})),
      completion_tokens_(reg_.counter("cogumi_completion_tokens_total", "Tokens generated",
                                      {"model"})),
      duration_(reg_.histogram("cogumi_request_duration_seconds",
                               "Time from a request's arrival to its last byte",
                               {"endpoint", "model"}, kDurationBuckets)),
      ttft_(reg_.histogram("cogumi_time_to_first_token_seconds",
                           "Time from a request's arrival to its first generated token",
                           {"endpoint", "model"}, kTtftBuckets)),
      queue_wait_(reg_.histogram("cogumi_queue_wait_seconds",
                                 "Time a request waited for the engine before its batch started",
                                 {"endpoint"}, kTtftBuckets)),
      in_flight_(reg_.gauge("cogumi_requests_in_flight", "Requests being answered now")),
      queue_depth_(reg_.gauge("cogumi_queue_depth", "Requests waiting for the engine")),
      kv_used_(reg_.gauge("cogumi_kv_cache_used_cells",
                          "KV cache cells held by requests being answered (caches kept for later ones not counted)")),
      kv_ratio_(reg_.gauge("cogumi_kv_cache_usage_ratio", "KV cache cells in use / capacity")),
      routed_(reg_.counter("cogumi_routed_total", "Requests answered per choice (base or modifier)",
                           {"choice"})),
      overrides_(reg_.counter("cogumi_route_overrides_total",
                              "Requests whose client named the choice", {"choice"})),
      escalations_(reg_.counter("cogumi_escalations_total",
                                "Escalated requests, by what escalated them (router: confidence "
                                "under the threshold; detector: a complaining follow-up)",
                                {"by"})),
      confidence_(reg_.histogram("cogumi_router_confidence",
                                 "The router's probability of the choice it made", {},
                                 kConfidenceBuckets)),
      feedback_(reg_.counter("cogumi_feedback_total", "User feedback on answers", {"score"})),
      errors_(reg_.counter("cogumi_errors_total", "Failed requests, by error type", {"type"})),
      rss_(reg_.gauge("process_resident_memory_bytes", "Resident memory size in bytes")),
      vsz_(reg_.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes")),
      cpu_(reg_.counter("process_cpu_seconds_total", "User and system CPU time spent in seconds")),
      fds_(reg_.gauge("process_open_fds", "Number of open file descriptors")),
      start_time_(reg_.gauge("process_start_time_seconds",
                             "Start time of the process since the Unix epoch in seconds")) {
  for (const char* s : {"up", "down"}) feedback_.touch({s});
  for (const char* by : {"router", "detector"}) escalations_.touch({by});
  for (const auto& t : error_types()) errors_.touch({t});
  queue_depth_.set(0);
  in_flight_.set(0);
}

void ServeMetrics::declare(const std::vector<std::string>& choices,
                           const std::vector<std::string>& models) {
  for (const auto& c : choices) routed_.touch({c});
  for (const auto& m : models) {
    prompt_tokens_.touch({m});
    cached_tokens_.touch({m});
    completion_tokens_.touch({m});
  }
}

void ServeMetrics::set_in_flight(int64_t n) { in_flight_.set(double(n)); }

void ServeMetrics::cached_prompt_tokens(const std::string& model, int64_t n) {
  if (n > 0) cached_tokens_.inc({model}, double(n));
}

void ServeMetrics::request_finished(const std::string& endpoint, const std::string& model,
                                    int status, double seconds, int64_t prompt_tokens,
                                    int64_t completion_tokens, double ttft_seconds,
                                    double queue_seconds) {
  requests_.inc({endpoint, model, std::to_string(status)});
  if (prompt_tokens > 0) prompt_tokens_.inc({model}, double(prompt_tokens));
  if (completion_tokens > 0) completion_tokens_.inc({model}, double(completion_tokens));
  if (std::isfinite(seconds) && seconds >= 0) duration_.observe({endpoint, model}, seconds);
  if (std::isfinite(ttft_seconds) && ttft_seconds >= 0) ttft_.observe({endpoint, model}, ttft_seconds);
  if (std::isfinite(queue_seconds) && queue_seconds >= 0) queue_wait_.observe({endpoint}, queue_seconds);
}

void ServeMetrics::routed(const std::string& choice, const std::string& escalated_by,
                          double confidence, bool overridden) {
  routed_.inc({choice});
  if (overridden) overrides_.inc({choice});
  if (!escalated_by.empty()) escalations_.inc({escalated_by});
  if (!overridden && std::isfinite(confidence) && confidence >= 0)
    confidence_.observe({}, std::min(confidence, 1.0));
}

void ServeMetrics::feedback(int score) {
  if (score != 0) feedback_.inc({score > 0 ? "up" : "down"});
}

void ServeMetrics::set_queue_depth(int64_t depth) { queue_depth_.set(double(depth)); }

void ServeMetrics::set_kv_used(int64_t used, int64_t capacity) {
  kv_used_.set(double(used));
  if (capacity > 0) kv_ratio_.set(double(used) / double(capacity));
}

void ServeMetrics::error(const std::string& type) { errors_.inc({type}); }

std::string ServeMetrics::render() {
  std::lock_guard lock(render_mu_);
  const ProcStats p = read_proc_self();
  rss_.set(p.rss);
  vsz_.set(p.vsz);
  fds_.set(p.fds);
  start_time_.set(p.start);
  // The counter follows the kernel's total: add the difference since the last scrape.
  const double seen = cpu_.value();
  if (p.cpu > seen) cpu_.inc({}, p.cpu - seen);
  return reg_.render();
}

}  // namespace cogumi
