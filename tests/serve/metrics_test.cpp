// The Prometheus registry and the server's metrics: exact exposition text, escaping, histogram
// buckets, cardinality cap, thread safety, and promtool's own parser as the judge of the format.
#include "serve/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <thread>

#include "test_util.h"

namespace cogumi {
namespace {

// Runs promtool check metrics on `text` (stdin); returns its exit code and output. Fails the
// test when promtool is not installed (scripts/deps.sh --test installs Debian's prometheus).
int promtool_check(const std::string& text, std::string* output) {
  const auto file = test::tmp_dir() / "metrics.txt";
  {
    std::ofstream f(file);
    f << text;
  }
  const std::string cmd = "promtool check metrics < " + file.string() + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  output->clear();
  while (size_t n = fread(buf, 1, sizeof buf, p)) output->append(buf, n);
  const int rc = pclose(p);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

void require_promtool() {
  ASSERT_EQ(system("command -v promtool >/dev/null"), 0)
      << "promtool is missing: install Debian's 'prometheus' package (scripts/deps.sh --test)";
}

TEST(Metrics, ExactTextForASmallRegistry) {
  metrics::Registry reg;
  auto& reqs = reg.counter("app_requests_total", "Requests.\nSecond line \\ here", {"path", "code"});
  auto& temp = reg.gauge("app_temperature_celsius", "A gauge without labels");
  auto& lat = reg.histogram("app_latency_seconds", "Latency", {"path"}, {0.1, 1});
  reqs.inc({"/a", "200"});
  reqs.inc({"/a", "200"}, 2);
  reqs.inc({"say \"hi\"\\\n", "500"});
  temp.set(-1.5);
  lat.observe({"/a"}, 0.05);
  lat.observe({"/a"}, 0.1);  // le is inclusive: counts in the 0.1 bucket
  lat.observe({"/a"}, 0.5);
  lat.observe({"/a"}, 7);
  EXPECT_EQ(reg.render(),
            "# HELP app_requests_total Requests.\\nSecond line \\\\ here\n"
            "# TYPE app_requests_total counter\n"
            "app_requests_total{path=\"/a\",code=\"200\"} 3\n"
            "app_requests_total{path=\"say \\\"hi\\\"\\\\\\n\",code=\"500\"} 1\n"
            "# HELP app_temperature_celsius A gauge without labels\n"
            "# TYPE app_temperature_celsius gauge\n"
            "app_temperature_celsius -1.5\n"
            "# HELP app_latency_seconds Latency\n"
            "# TYPE app_latency_seconds histogram\n"
            "app_latency_seconds_bucket{path=\"/a\",le=\"0.1\"} 2\n"
            "app_latency_seconds_bucket{path=\"/a\",le=\"1\"} 3\n"
            "app_latency_seconds_bucket{path=\"/a\",le=\"+Inf\"} 4\n"
            "app_latency_seconds_sum{path=\"/a\"} 7.65\n"
            "app_latency_seconds_count{path=\"/a\"} 4\n");
  EXPECT_EQ(reqs.value({"/a", "200"}), 3);
  EXPECT_EQ(lat.value({"/a"}), 4);
  EXPECT_DOUBLE_EQ(lat.sum({"/a"}), 7.65);
}

TEST(Metrics, SpecialValuesAsPrometheusReadsThem) {
  EXPECT_EQ(metrics::format_value(INFINITY), "+Inf");
  EXPECT_EQ(metrics::format_value(-INFINITY), "-Inf");
  EXPECT_EQ(metrics::format_value(NAN), "NaN");
  EXPECT_EQ(metrics::format_value(0), "0");
  EXPECT_EQ(metrics::format_value(123456789), "123456789");
  EXPECT_EQ(metrics::format_value(0.1), "0.1");
  EXPECT_EQ(std::stod(metrics::format_value(1e300)), 1e300);
}

TEST(Metrics, MisuseIsRefusedNamingTheMetric) {
  metrics::Registry reg;
  auto& c = reg.counter("c_total", "c", {"a"});
  auto& g = reg.gauge("g", "g");
  auto msg = [](auto fn) {
    try {
      fn();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(msg([&] { c.inc({"x"}, -1); }).find("c_total"), std::string::npos);
  EXPECT_NE(msg([&] { c.inc({"x", "y"}); }).find("2 label values given, 1 expected"),
            std::string::npos);
  EXPECT_NE(msg([&] { c.set({"x"}, 1); }).find("non-gauge"), std::string::npos);
  EXPECT_NE(msg([&] { reg.gauge("g", "again"); }).find("registered twice"), std::string::npos);
  EXPECT_NE(msg([&] { reg.gauge("1bad", "x"); }).find("'1bad' is invalid"), std::string::npos);
  EXPECT_NE(msg([&] { reg.gauge("ok", "x", {"__x"}); }).find("'__x'"), std::string::npos);
  EXPECT_NE(msg([&] { reg.histogram("h", "x", {"le"}, {1}); }).find("'le'"), std::string::npos);
  EXPECT_NE(msg([&] { reg.histogram("h2", "x", {}, {1, 1}); }).find("strictly ascending"),
            std::string::npos);
  EXPECT_NE(msg([&] { reg.histogram("h3", "x", {}, {}); }).find("no buckets"), std::string::npos);
  g.set(2);
  EXPECT_EQ(g.value(), 2);
  EXPECT_NE(test::error_of([] { metrics::Registry r({.max_series = 0}); }).find("max_series"),
            std::string::npos);
}

TEST(Metrics, NewLabelSetsOverTheCapFoldIntoOther) {
  metrics::Registry reg({.max_series = 2});
  auto& c = reg.counter("m_total", "m", {"model"});
  c.inc({"a"});
  c.inc({"b"});
  c.inc({"client-chosen-1"});
  c.inc({"client-chosen-2"});
  c.inc({"a"});
  EXPECT_EQ(c.value({"a"}), 2);
  EXPECT_EQ(c.value({"other"}), 2);
  EXPECT_EQ(reg.render().find("client-chosen"), std::string::npos);
}

TEST(Metrics, ConcurrentUpdatesAreAllCounted) {
  ServeMetrics m;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&m, t] {
      for (int i = 0; i < 2000; ++i) {
        m.routed(t % 2 ? "math" : "code", i % 10 == 0 ? "router" : "", 0.7);
        m.request_finished("/v1/chat/completions", "nano", 200, 0.01, 3, 2, 0.001);
        if (i % 100 == 0) m.render();
      }
    });
  for (auto& t : threads) t.join();
  const std::string text = m.render();
  EXPECT_NE(text.find("cogumi_requests_total{endpoint=\"/v1/chat/completions\",model=\"nano\","
                      "status=\"200\"} 8000\n"),
            std::string::npos);
  EXPECT_NE(text.find("cogumi_prompt_tokens_total{model=\"nano\"} 24000\n"), std::string::npos);
  EXPECT_NE(text.find("cogumi_routed_total{choice=\"math\"} 4000\n"), std::string::npos);
  EXPECT_NE(text.find("cogumi_escalations_total{by=\"router\"} 800\n"), std::string::npos);
}

TEST(Metrics, ServeMetricsRecordWhatTheServerReports) {
  ServeMetrics m;
  m.declare({"base", "math", "code"}, {"nano-system", "math"});
  const std::string fresh = m.render();
  EXPECT_NE(fresh.find("cogumi_requests_in_flight 0\n"), std::string::npos);
  // No KV figure is made up before one is reported: the family is declared, without a sample.
  EXPECT_NE(fresh.find("# TYPE cogumi_kv_cache_used_cells gauge\n"), std::string::npos);
  EXPECT_EQ(fresh.find("\ncogumi_kv_cache_used_cells "), std::string::npos);
  m.set_in_flight(2);
  m.request_finished("/v1/completions", "math", 200, 0.3, 12, 5, 0.02, 0.004);
  m.routed("math", "", 0.95, true);
  m.routed("code", "detector", 0.4);
  m.feedback(1);
  m.feedback(-1);
  m.feedback(-1);
  m.set_queue_depth(3);
  m.set_kv_used(256, 1024);
  m.error("unknown_model");
  const std::string t = m.render();
  for (const char* want : {
           "cogumi_requests_total{endpoint=\"/v1/completions\",model=\"math\",status=\"200\"} 1\n",
           "cogumi_prompt_tokens_total{model=\"math\"} 12\n",
           "cogumi_completion_tokens_total{model=\"math\"} 5\n",
           "cogumi_completion_tokens_total{model=\"nano-system\"} 0\n",
           "cogumi_request_duration_seconds_bucket{endpoint=\"/v1/completions\",model=\"math\","
           "le=\"0.25\"} 0\n",
           "cogumi_request_duration_seconds_bucket{endpoint=\"/v1/completions\",model=\"math\","
           "le=\"0.5\"} 1\n",
           "cogumi_time_to_first_token_seconds_count{endpoint=\"/v1/completions\",model=\"math\"} 1\n",
           "cogumi_queue_wait_seconds_bucket{endpoint=\"/v1/completions\",le=\"0.005\"} 1\n",
           "cogumi_routed_total{choice=\"base\"} 0\n",
           "cogumi_routed_total{choice=\"math\"} 1\n",
           "cogumi_route_overrides_total{choice=\"math\"} 1\n",
           "cogumi_escalations_total{by=\"detector\"} 1\n",
           "cogumi_escalations_total{by=\"router\"} 0\n",
           "cogumi_router_confidence_count 1\n",  // the override's confidence is not the router's
           "cogumi_feedback_total{score=\"down\"} 2\n",
           "cogumi_feedback_total{score=\"up\"} 1\n",
           "cogumi_queue_depth 3\n",
           "cogumi_requests_in_flight 2\n",
           "cogumi_kv_cache_used_cells 256\n",
           "cogumi_kv_cache_usage_ratio 0.25\n",
           "cogumi_errors_total{type=\"unknown_model\"} 1\n",
           "cogumi_errors_total{type=\"timeout\"} 0\n",
       })
    EXPECT_NE(t.find(want), std::string::npos) << "missing: " << want << "\nin:\n" << t;
  // The process's own resident memory, as the load test and the dashboard read it.
  const size_t at = t.find("\nprocess_resident_memory_bytes ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_GT(std::stod(t.substr(at + 31)), 1e6);
}

TEST(Metrics, PromtoolAcceptsTheServersExposition) {
  require_promtool();
  ServeMetrics m;
  m.declare({"base", "math"}, {"nano-system"});
  m.request_finished("/v1/chat/completions", "model \"quoted\"\n\\", 500, 1.5, 3, 0, -1);
  m.routed("math", "router", 0.2);
  m.feedback(-1);
  std::string out;
  EXPECT_EQ(promtool_check(m.render(), &out), 0) << out;
  // promtool lints names too: a counter without _total is reported (and the check fails).
  metrics::Registry bad;
  bad.counter("requests", "no _total suffix").inc();
  EXPECT_NE(promtool_check(bad.render(), &out), 0);
  EXPECT_NE(out.find("requests"), std::string::npos) << out;
  // A broken exposition is a parse error, so the check above is a real parse.
  EXPECT_NE(promtool_check("cogumi_x{a=\"unterminated} 1\n", &out), 0);
}

}  // namespace
}  // namespace cogumi
