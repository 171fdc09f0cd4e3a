// GET /metrics on a real server (the nano system in process, a free loopback port, real HTTP):
// what a scrape shows after answers, streams and refusals, and promtool's parse of it.
#include "serve/server_metrics.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <fstream>
#include <regex>
#include <thread>

#include "core/io.h"
#include "serve/server.h"
#include "test_util.h"

namespace cogumi::serve {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// models/nano-system.yaml with absolute model paths and its session memory in the test's dir.
fs::path nano_system_copy() {
  const fs::path models = fs::path(COGUMI_REPO_DIR) / "models";
  std::string yaml = read_file(models / "nano-system.yaml");
  yaml = std::regex_replace(yaml, std::regex(R"((nano-[a-z]+\.(gguf|json)))"), models.string() + "/$1");
  yaml = std::regex_replace(yaml, std::regex(R"(memory:.*)"),
                            "memory: " + (test::tmp_dir() / "metrics-sessions.db").string());
  const fs::path out = test::tmp_dir() / "metrics-system.yaml";
  std::ofstream(out) << yaml;
  return out;
}

// The value of the sample `series` (name{labels} exactly as rendered); -1 when absent.
double sample(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

class ServeMetricsHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    ServeOptions o;
    o.system = nano_system_copy();
    o.port = 0;
    server_ = std::make_unique<Server>(o);
    add_metrics(*server_, metrics_);
    port_ = server_->bind();
    thread_ = std::thread([this] { server_->listen(); });
  }
  void TearDown() override {
    server_->stop();
    thread_.join();
  }
  httplib::Client client() {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(120);
    return c;
  }
  std::string scrape() {
    auto res = client().Get("/metrics");
    EXPECT_TRUE(res);
    if (!res) return "";
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
    return res->body;
  }
  ServeMetrics metrics_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  int port_ = 0;
};

TEST_F(ServeMetricsHttp, AScrapeCountsAnswersStreamsRoutingAndRefusals) {
  const std::string before = scrape();
  // Every choice and model is there at zero before the first request.
  EXPECT_EQ(sample(before, R"(cogumi_routed_total{choice="code"})"), 0) << before;
  EXPECT_EQ(sample(before, R"(cogumi_completion_tokens_total{model="nano"})"), 0) << before;
  EXPECT_EQ(sample(before, R"(cogumi_errors_total{type="unknown_model"})"), 0);
  EXPECT_EQ(sample(before, "cogumi_requests_in_flight"), 0);

  auto body = [](const std::string& model, bool stream) {
    return json{{"model", model},
                {"max_tokens", 8},
                {"stream", stream},
                {"messages", {{{"role", "user"}, {"content", "Sam has 30 cards. He gives 11 "
                                                            "away. How many are left?"}}}}}
        .dump();
  };
  auto c = client();
  auto whole = c.Post("/v1/chat/completions", body("nano", false), "application/json");
  ASSERT_TRUE(whole);
  ASSERT_EQ(whole->status, 200) << whole->body;
  const int completion_tokens = json::parse(whole->body)["usage"]["completion_tokens"];
  auto streamed = c.Post("/v1/chat/completions", body("nano", true), "application/json");
  ASSERT_TRUE(streamed);
  ASSERT_EQ(streamed->status, 200);
  json override = json::parse(body("nano", false));
  override["cogumi"] = {{"choice", "code"}};
  auto overridden = c.Post("/v1/chat/completions", override.dump(), "application/json");
  ASSERT_TRUE(overridden);
  ASSERT_EQ(overridden->status, 200) << overridden->body;
  auto unknown = c.Post("/v1/chat/completions", body("gpt-9", false), "application/json");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  auto malformed = c.Post("/v1/completions", "{not json", "application/json");
  ASSERT_TRUE(malformed);
  EXPECT_EQ(malformed->status, 400);

  // A stream is counted when its writer finishes, which may be just after the client read its
  // last byte: scrape until it shows (as Prometheus would at its next scrape).
  const std::string chat = R"(endpoint="/v1/chat/completions",model="nano")";
  std::string t = scrape();
  for (int i = 0; i < 100 && sample(t, "cogumi_requests_total{" + chat + R"(,status="200"})") < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    t = scrape();
  }
  EXPECT_EQ(sample(t, "cogumi_requests_total{" + chat + R"(,status="200"})"), 3) << t;
  EXPECT_EQ(sample(t, R"(cogumi_requests_total{endpoint="/v1/chat/completions",model="gpt-9",status="404"})"), 1) << t;
  EXPECT_EQ(sample(t, R"(cogumi_errors_total{type="unknown_model"})"), 1);
  EXPECT_EQ(sample(t, R"(cogumi_errors_total{type="bad_request"})"), 1);
  EXPECT_EQ(sample(t, R"(cogumi_routed_total{choice="math"})"), 2);
  EXPECT_EQ(sample(t, R"(cogumi_routed_total{choice="code"})"), 1);
  EXPECT_EQ(sample(t, R"(cogumi_route_overrides_total{choice="code"})"), 1) << t;
  // The router's confidence is observed for the two answers it routed, not the override.
  EXPECT_EQ(sample(t, "cogumi_router_confidence_count"), 2);
  EXPECT_GT(sample(t, R"(cogumi_router_confidence_bucket{le="1"})"), 0);
  EXPECT_GE(sample(t, R"(cogumi_completion_tokens_total{model="nano"})"), completion_tokens);
  EXPECT_GT(sample(t, R"(cogumi_prompt_tokens_total{model="nano"})"), 20);
  EXPECT_EQ(sample(t, "cogumi_request_duration_seconds_count{" + chat + "}"), 3);
  EXPECT_GT(sample(t, "cogumi_request_duration_seconds_sum{" + chat + "}"), 0);
  // The stream had a first token (whole answers have one when the engine produced a piece);
  // the refusals had none.
  const double ttft = sample(t, "cogumi_time_to_first_token_seconds_count{" + chat + "}");
  EXPECT_GE(ttft, 1);
  EXPECT_LE(ttft, 3);
  EXPECT_EQ(sample(t, "cogumi_time_to_first_token_seconds_bucket{" + chat + R"(,le="+Inf"})"), ttft);
  EXPECT_EQ(sample(t, R"(cogumi_time_to_first_token_seconds_count{endpoint="/v1/chat/completions",model="gpt-9"})"), -1);
  // The engine's KV cache: its size is known, and between batches nothing is held.
  EXPECT_EQ(sample(t, "cogumi_kv_cache_used_cells"), 0) << t;
  EXPECT_EQ(sample(t, "cogumi_kv_cache_usage_ratio"), 0);
  EXPECT_GT(server_->runtime().kv_cells_total(), 0);
  // Every answered request waited for its batch (refusals never reached the queue).
  EXPECT_EQ(sample(t, R"(cogumi_queue_wait_seconds_count{endpoint="/v1/chat/completions"})"), 3);
  EXPECT_GT(sample(t, "process_resident_memory_bytes"), 1e6);

  // Prometheus' own parser takes the real scrape.
  ASSERT_EQ(system("command -v promtool >/dev/null"), 0)
      << "promtool is missing: install Debian's 'prometheus' package (scripts/deps.sh --test)";
  const fs::path file = test::tmp_dir() / "scrape.txt";
  std::ofstream(file) << t;
  EXPECT_EQ(system(("promtool check metrics < " + file.string()).c_str()), 0) << t;
}

}  // namespace
}  // namespace cogumi::serve
