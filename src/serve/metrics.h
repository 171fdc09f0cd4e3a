// cogumi/serve/metrics: the server's metrics in Prometheus' text exposition format (0.0.4).
//
// metrics::Registry holds counters, gauges and histograms with labels and renders them for a
// scrape of GET /metrics. ServeMetrics is the server's own set on top of it: requests, tokens,
// latency and time-to-first-token histograms, queue depth, KV-cache use, in-flight requests,
// routing per choice, escalations, feedback, errors, and the process's memory and CPU.
//
// Format rules kept here (https://prometheus.io/docs/instrumenting/exposition_formats/):
// one `# HELP` and one `# TYPE` line per family; label values escaped (\\, \", \n); HELP text
// escaped (\\, \n); values as Go's ParseFloat reads them (+Inf, -Inf, NaN); a histogram is
// cumulative `_bucket{le=".."}` lines ending with le="+Inf" (== `_count`), then `_sum`, `_count`.
// Families render in registration order, series in label-value order, so output is stable.
//
// Thread safety: every method of Registry, its families and ServeMetrics may be called from any
// thread at any time (one mutex per family; render() takes them one at a time, so a scrape is
// consistent per family, not across families).
// Cardinality: a family keeps at most Registry's max_series series; later new label sets are
// folded into one series whose label values are all "other" (a client can name any model).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace cogumi::metrics {

enum class Kind { counter, gauge, histogram };

// Label values, in the order of the family's label names.
using Labels = std::vector<std::string>;

// One metric family: a name, help text, label names, and one series per label-value set.
// Misuse (wrong number of label values, a counter decreased, NaN observed) throws
// std::invalid_argument: it is a bug in the caller, not bad input.
class Family {
 public:
  Family(Kind kind, std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> buckets, size_t max_series);

  // counter: adds v (>= 0); gauge: adds v (any sign).
  void inc(const Labels& labels = {}, double v = 1);
  // gauge only.
  void set(const Labels& labels, double v);
  void set(double v) { set({}, v); }
  // histogram only.
  void observe(const Labels& labels, double v);
  void observe(double v) { observe({}, v); }
  // Creates the series at zero, so rate() and ratios see it before the first event.
  void touch(const Labels& labels);

  // counter/gauge value; for a histogram, the count. 0 for a series never written.
  double value(const Labels& labels = {}) const;
  // histogram: the sum of observations.
  double sum(const Labels& labels = {}) const;

  const std::string& name() const { return name_; }
  Kind kind() const { return kind_; }
  void render(std::string& out) const;

 private:
  struct Series {
    double value = 0;                 // counter/gauge; histogram: the sum
    uint64_t count = 0;               // histogram
    std::vector<uint64_t> buckets;    // histogram: per bucket, not cumulative
  };
  Kind kind_;
  std::string name_, help_;
  std::vector<std::string> label_names_;
  std::vector<double> bounds_;  // histogram upper bounds, ascending, without +Inf
  size_t max_series_;
  mutable std::mutex mu_;
  std::map<Labels, Series> series_;

  Series& series_locked(const Labels& labels);
  const Series* find_locked(const Labels& labels) const;
};

struct RegistryOptions {
  size_t max_series = 1000;  // series per family before new label sets fold into "other" (>= 1)
  void validate() const;
};

class Registry {
 public:
  explicit Registry(RegistryOptions options = {});

  // Registers a family. Names must match [a-zA-Z_:][a-zA-Z0-9_:]*, label names
  // [a-zA-Z_][a-zA-Z0-9_]* without a leading "__" (and not "le" for histograms); a name may be
  // registered once. Histogram buckets: finite, strictly ascending, at least one (+Inf is
  // implied). Violations throw std::invalid_argument naming the metric.
  Family& counter(const std::string& name, const std::string& help,
                  std::vector<std::string> label_names = {});
  Family& gauge(const std::string& name, const std::string& help,
                std::vector<std::string> label_names = {});
  Family& histogram(const std::string& name, const std::string& help,
                    std::vector<std::string> label_names, std::vector<double> buckets);

  std::string render() const;

 private:
  RegistryOptions options_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Family>> families_;

  Family& add(Kind kind, const std::string& name, const std::string& help,
              std::vector<std::string> label_names, std::vector<double> buckets);
};

// A sample value as Prometheus reads it: shortest round-trip decimal, +Inf, -Inf, NaN.
std::string format_value(double v);
// A label value with \\, \" and \n escaped.
std::string escape_label_value(const std::string& v);

}  // namespace cogumi::metrics

namespace cogumi {

// The server's metrics. Endpoint names are the route ("/v1/chat/completions"); model is the
// name the request resolved to (a modifier, the base, the system), or what the client sent
// when it did not resolve (capped by the registry's max_series).
class ServeMetrics {
 public:
  // Error types pre-created at zero (others may be passed too).
  static const std::vector<std::string>& error_types();

  explicit ServeMetrics(metrics::RegistryOptions options = {});

  // The choices the router can make and the models the server serves: their series are created
  // at zero, so dashboards and alert ratios see them before the first request.
  void declare(const std::vector<std::string>& choices, const std::vector<std::string>& models);

  // Requests being answered now (the server counts them; sampled at each scrape).
  void set_in_flight(int64_t n);
  // Prompt tokens a request took from the KV cache an earlier request left (not computed again).
  void cached_prompt_tokens(const std::string& model, int64_t n);
  // status: the HTTP status; ttft_seconds < 0 when no token was produced; queue_seconds < 0
  // when the request never waited for the engine (refused first).
  void request_finished(const std::string& endpoint, const std::string& model, int status,
                        double seconds, int64_t prompt_tokens, int64_t completion_tokens,
                        double ttft_seconds = -1, double queue_seconds = -1);
  // A routing decision: escalated_by is "" (none), "router" (confidence under the threshold) or
  // "detector" (a complaining follow-up); confidence < 0 when unknown; overridden when the
  // client named the modifier.
  void routed(const std::string& choice, const std::string& escalated_by = "",
              double confidence = -1, bool overridden = false);
  // Thumbs: score > 0 is up, < 0 down (0 is ignored).
  void feedback(int score);
  void set_queue_depth(int64_t depth);
  // KV cache cells in use and the total (capacity 0: ratio not set). Until the first call the
  // two gauges have no sample, so a dashboard shows "no data" rather than a made-up 0 (the
  // server sets them at each scrape from the engine).
  void set_kv_used(int64_t used, int64_t capacity = 0);
  // An error by type (see error_types(): bad_request, unknown_model, ...).
  void error(const std::string& type);

  // The exposition text (refreshes the process_* gauges from /proc/self first).
  std::string render();
  metrics::Registry& registry() { return reg_; }

 private:
  metrics::Registry reg_;
  metrics::Family &requests_, &prompt_tokens_, &cached_tokens_, &completion_tokens_, &duration_, &ttft_, &queue_wait_,
      &in_flight_, &queue_depth_, &kv_used_, &kv_ratio_, &routed_, &overrides_, &escalations_,
      &confidence_, &feedback_, &errors_, &rss_, &vsz_, &cpu_, &fds_, &start_time_;
  std::mutex render_mu_;  // one process_* refresh at a time (the CPU counter adds a difference)
};

}  // namespace cogumi
