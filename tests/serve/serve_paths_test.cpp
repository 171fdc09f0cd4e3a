// The served paths against `cogumi ask`'s, over real HTTP on a loopback port (httplib's client)
// with the shipped nano files:
//  - a fast answer under the calibrated threshold is re-asked on the escalation path by the
//    server too (continuous and static batches, whole and streamed), giving ask()'s answer;
//  - continuous admission counts a job by the engine sequences it takes (accurate mode: one per
//    sample): with N slots the running jobs never take more than N, a job that does not fit waits
//    in the queue, and one that alone takes more than N runs alone instead of hanging;
//  - requests cut by the server's shutdown get 503 shutting_down (an SSE error event once a
//    stream began);
//  - a slow check of a finished answer (code run in the sandbox) does not stall the decoding of
//    another request.
#include <gtest/gtest.h>
#include <httplib.h>

#include <fstream>
#include <regex>
#include <thread>

#include "core/io.h"
#include "runtime/memory.h"
#include "runtime/runtime.h"
#include "serve/server.h"
#include "sse_client.h"
#include "test_util.h"

namespace cogumi::serve {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

const fs::path kModels = fs::path(COGUMI_REPO_DIR) / "models";

// models/nano-system.yaml beside links to every file of models/, its session memory there, and
// its calibration's threshold set to `threshold`: at 1 every fast answer the system chose is
// under it; at 0 (the shipped calibration's) none is.
fs::path unsure_system(double threshold = 1.0) {
  const fs::path dir = test::tmp_dir() / (threshold > 0 ? "serve-paths-system" : "serve-paths-system-0");
  if (!fs::exists(dir)) {
    fs::create_directories(dir);
    for (auto& e : fs::directory_iterator(kModels)) fs::create_symlink(e.path(), dir / e.path().filename());
  }
  json cal = json::parse(read_file(kModels / "nano-calibration.json"));
  cal["threshold"] = threshold;
  std::ofstream(dir / "unsure-calibration.json") << cal.dump();
  std::string yaml = read_file(kModels / "nano-system.yaml");
  yaml = std::regex_replace(yaml, std::regex(R"(\nmemory:[^\n]*)"), "\nmemory: sessions.db");
  yaml = std::regex_replace(yaml, std::regex(R"(\ncalibration:[^\n]*)"), "\ncalibration: unsure-calibration.json");
  const fs::path out = dir / "system.yaml";
  std::ofstream(out) << yaml;
  return out;
}

using test_sse::post_sse;
using Sse = test_sse::SseLog;

json post(int port, const json& body, int* status = nullptr) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(120);
  auto r = c.Post("/v1/chat/completions", body.dump(), "application/json");
  if (status) *status = r ? r->status : -1;
  return r ? json::parse(r->body) : json();
}

json chat(const std::string& model, const std::string& text, bool stream = false) {
  return {{"model", model}, {"messages", {{{"role", "user"}, {"content", text}}}}, {"stream", stream}};
}

class ServePaths : public ::testing::Test {
 protected:
  void start(ServeOptions o) {
    o.port = 0;
    server_ = std::make_unique<Server>(o);
    port_ = server_->bind();
    thread_ = std::thread([this] { server_->listen(); });
  }
  void stop() {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
    server_.reset();
  }
  void TearDown() override { stop(); }
  std::unique_ptr<Server> server_;
  std::thread thread_;
  int port_ = 0;
};

const char* kMath = "Tom has 3 apples and buys 5 more. How many apples does Tom have?";

TEST_F(ServePaths, AServedAnswerUnderTheCalibratedThresholdIsReaskedAsAskDoes) {
  const fs::path sys = unsure_system();
  AskResponse asked;
  {
    Runtime rt(SystemConfig::load(sys));
    AskRequest q;
    q.text = kMath;
    asked = rt.ask({q}).at(0);
  }
  ASSERT_EQ(asked.escalated_by, "confidence") << "the copied system does not take the low-confidence path";
  ASSERT_EQ(asked.mode, "accurate");
  ASSERT_FALSE(asked.text.empty());
  for (bool static_batches : {false, true}) {
    SCOPED_TRACE(static_batches ? "static batches" : "continuous");
    ServeOptions o;
    o.system = sys;
    o.static_batches = static_batches;
    start(o);
    int status = 0;
    const json whole = post(port_, chat("nano", kMath), &status);
    ASSERT_EQ(status, 200) << whole.dump();
    EXPECT_EQ(whole["choices"][0]["message"]["content"], asked.text);
    EXPECT_EQ(whole["cogumi"]["escalated_by"], "confidence");
    EXPECT_EQ(whole["cogumi"]["mode"], "accurate");
    EXPECT_EQ(whole["cogumi"]["choice"], asked.choice);
    // Streamed: the fast answer is held back, the re-asked one streams.
    const Sse streamed = post_sse(port_, chat("nano", kMath, true));
    EXPECT_EQ(streamed.status, 200);
    EXPECT_EQ(streamed.content(), asked.text);
    stop();
  }
}

// A follow-up in a session that is re-asked keeps the session's earlier turns in its prompt (the
// re-ask cleared the session and so lost them: 14 prompt tokens where the first try had 43).
TEST(ServeReask, AReaskedFollowUpKeepsTheSessionsTurns) {
  Runtime rt(SystemConfig::load(unsure_system()));
  AskRequest first;
  first.text = kMath;
  first.session = rt.memory().create_session();
  ASSERT_EQ(rt.ask({first}).at(0).escalated_by, "confidence");
  AskRequest follow = first, alone = first;
  follow.text = alone.text = "And if he buys 2 more?";
  alone.session.clear();
  const AskResponse with_turns = rt.ask({follow}).at(0), without = rt.ask({alone}).at(0);
  ASSERT_EQ(with_turns.escalated_by, "confidence");
  ASSERT_EQ(without.escalated_by, "confidence");
  EXPECT_GT(with_turns.prompt_tokens, without.prompt_tokens + 10) << "the re-ask lost the session's turns";
}

// With a threshold that re-asks nothing (the shipped calibration's 0) a routed fast answer streams
// as it is generated, not held back until its confidence is judged (it was: the first content of a
// 900-token answer came when the whole answer was done).
TEST_F(ServePaths, AFastAnswerStreamsWhileItIsGeneratedWhenNothingIsReasked) {
  ServeOptions o;
  o.system = unsure_system(0.0);
  start(o);
  json body = chat("nano", kMath, true);
  body["max_tokens"] = 300;  // seconds of generation even alone; the first piece comes within milliseconds
  body["ignore_eos"] = true;
  int running_at_first = -1;
  const Sse s = post_sse(port_, body, [&](const json& e) {
    if (running_at_first < 0 && e.is_object() && !e["choices"].empty() &&
        !e["choices"][0]["delta"].value("content", "").empty())
      running_at_first = int(server_->scheduler().running());
  });
  ASSERT_EQ(s.status, 200);
  EXPECT_EQ(running_at_first, 1) << "the first piece came only once the answer was done";
  EXPECT_EQ(s.events.back().first, "[DONE]");
}

// The runtime of a bare nano base and a scheduler over it, no HTTP: jobs submitted in a known order.
SystemConfig bare(int parallel) {
  SystemConfig cfg;
  cfg.name = "nano-base";
  cfg.base = kModels / "nano-base.gguf";
  cfg.choices = {{"base", {}, "chat"}};
  cfg.default_choice = "base";
  cfg.parallel = parallel;
  return cfg;
}

AskRequest job_request(const std::string& mode, int max_tokens) {
  AskRequest q;
  q.text = kMath;
  q.mode = mode;
  q.max_tokens = max_tokens;
  q.ignore_eos = true;
  return q;
}

bool wait_done(Job& j, int seconds) {
  std::unique_lock lk(j.mu);
  return j.cv.wait_for(lk, std::chrono::seconds(seconds), [&] { return j.done; });
}

TEST(ServeAdmission, AnAccurateJobCountsItsSamplesAgainstTheSlotsAndWaitsItsTurn) {
  Runtime rt(bare(6));  // 6 slots; accurate mode takes 5
  Scheduler sched(rt, 64);
  auto a = sched.submit({job_request("fast", 900)});
  auto b = sched.submit({job_request("fast", 900)});
  for (auto until = Clock::now() + std::chrono::seconds(30); sched.running() < 2 && Clock::now() < until;)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ(sched.running(), 2u);
  auto c = sched.submit({job_request("accurate", 8)});  // 2 + 5 > 6: waits for a or b
  auto d = sched.submit({job_request("fast", 8)});      // behind c, in order
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // dozens of engine steps, each admitting what fits
  size_t waiting = 0, running = 0;
  {
    std::scoped_lock lk(a->mu, b->mu);
    ASSERT_FALSE(a->done || b->done) << "the long jobs ended too soon to tell";
    waiting = sched.waiting();
    running = sched.running();
  }
  for (auto* j : {&a, &b, &c, &d}) ASSERT_TRUE(wait_done(**j, 120)) << "a job never finished";
  EXPECT_EQ(waiting, 2u) << "the accurate job ran beside two fast ones: 7 sequences on 6 slots";
  EXPECT_EQ(running, 2u);
  EXPECT_LE(sched.most_sequences(), 6u);
  EXPECT_EQ(c->answers.at(0).samples, 5);
  for (auto* j : {&a, &b, &c, &d}) EXPECT_EQ((*j)->error, "");
  EXPECT_EQ(sched.sequences(), 0u);
}

TEST(ServeAdmission, AJobTakingMoreSequencesThanTheEngineHasRunsAloneThenTheNextRuns) {
  Runtime rt(bare(2));  // 2 slots; accurate mode takes 5
  Scheduler sched(rt, 64);
  auto c = sched.submit({job_request("accurate", 40)});
  auto d = sched.submit({job_request("fast", 8)});
  size_t most_waiting = 0;
  auto done = [](Job& j) {
    std::lock_guard lk(j.mu);
    return j.done;
  };
  for (auto until = Clock::now() + std::chrono::seconds(120); !done(*c) && Clock::now() < until;) {
    if (sched.running() == 1) most_waiting = std::max(most_waiting, sched.waiting());
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_TRUE(wait_done(*c, 120)) << "the accurate job hung";
  ASSERT_TRUE(wait_done(*d, 120)) << "the job behind it hung";
  EXPECT_EQ(most_waiting, 1u) << "the fast job ran beside one that takes every slot";
  EXPECT_EQ(sched.most_sequences(), 5u);
  EXPECT_EQ(c->answers.at(0).samples, 5);
  EXPECT_EQ(c->error, "");
  EXPECT_EQ(d->error, "");
}

TEST_F(ServePaths, RequestsCutByShutdownGet503ShuttingDownStreamedOrWhole) {
  ServeOptions o;
  o.model = kModels / "nano-base.gguf";
  o.timeout_s = 20;
  o.drain_s = 0.05;
  start(o);
  json longer = chat("base", kMath, true);
  longer["max_tokens"] = 30000;
  longer["ignore_eos"] = true;
  json whole = longer;
  whole["stream"] = false;
  std::mutex mu;
  std::condition_variable cv;
  bool streaming = false;
  Sse sse;
  std::thread streamer([&] {
    sse = post_sse(port_, longer, [&](const json& e) {
      if (!e.is_object() || !e.contains("choices") || e["choices"].empty()) return;
      if (e["choices"][0]["delta"].value("content", "").empty()) return;
      std::lock_guard lk(mu);
      streaming = true;
      cv.notify_all();
    });
    std::lock_guard lk(mu);
    streaming = true;  // even if it never streamed: the checks fail, nothing hangs
    cv.notify_all();
  });
  int whole_status = 0;
  json whole_body;
  std::thread waiter([&] { whole_body = post(port_, whole, &whole_status); });
  {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return streaming; });
  }
  for (auto until = Clock::now() + std::chrono::seconds(30); server_->scheduler().running() < 2 && Clock::now() < until;)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  const auto t0 = Clock::now();
  server_->stop();  // drains 0.05 s, then cuts both
  const double stop_s = std::chrono::duration<double>(Clock::now() - t0).count();
  streamer.join();
  waiter.join();
  EXPECT_LT(stop_s, 10.0);
  EXPECT_EQ(whole_status, 503) << whole_body.dump();
  EXPECT_EQ(whole_body["error"]["code"], "shutting_down");
  EXPECT_EQ(whole_body["error"]["type"], "server_error");
  ASSERT_EQ(sse.status, 200);
  ASSERT_FALSE(sse.events.empty());
  const json& last = sse.events.back().first;
  ASSERT_TRUE(last.is_object() && last.contains("error")) << last.dump();
  EXPECT_EQ(last["error"]["code"], "shutting_down");
  EXPECT_EQ(last["error"]["type"], "server_error");
  EXPECT_FALSE(sse.content().empty());  // it was cut mid-answer
}

// A code request whose program sleeps 6 s when its visible tests run: a check of known cost.
const char* kSlowCode =
    "import time\n"
    "time.sleep(6)\n"
    "\n"
    "def add(a, b):\n"
    "    \"\"\"Return the sum of a and b.\n"
    "    >>> add(2, 3)\n"
    "    5\n"
    "    \"\"\"\n";

// With one engine slot too (the answer's sequences are free once it is generated, not once it is
// checked: with --parallel 1 the second request used to wait the check out).
TEST_F(ServePaths, ASlowCheckOfOneAnswerDoesNotStallAnotherRequestsDecoding) {
  for (int parallel : {0, 1}) {
    SCOPED_TRACE("parallel " + std::to_string(parallel));
    ServeOptions o;
    o.system = unsure_system();
    o.parallel = parallel;
    start(o);
    json slow = chat("code", kSlowCode, true);
    slow["max_tokens"] = 48;
    slow["cogumi"] = {{"mode", "fast"}};  // asked for: answered fast, checked, never re-asked
    std::atomic<bool> generating{false};
    Sse slow_sse;
    Clock::time_point slow_done;
    const auto slow_sent = Clock::now();
    std::thread slow_client([&] {
      slow_sse = post_sse(port_, slow, [&](const json&) { generating = true; });
      slow_done = Clock::now();
    });
    // Its answer generated (its first piece came, then the engine holds no sequence): its check runs.
    for (auto until = Clock::now() + std::chrono::seconds(30); !generating.load() && Clock::now() < until;)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    while (generating.load() && server_->runtime().kv_cells_used() > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    json other = chat("base", kMath);
    other["max_tokens"] = 8;  // seconds under ctest -j2 on 2 cores (64 tokens took 8-13 s there), well under 6
    other["ignore_eos"] = true;
    other["cogumi"] = {{"mode", "fast"}};
    int status = 0;
    const auto other_sent = Clock::now();
    const json answer = post(port_, other, &status);
    const auto other_done = Clock::now();
    slow_client.join();
    ASSERT_TRUE(generating.load()) << "the code request never streamed";
    ASSERT_EQ(slow_sse.status, 200);
    ASSERT_EQ(status, 200) << answer.dump();
    const double slow_s = std::chrono::duration<double>(slow_done - slow_sent).count();
    ASSERT_GE(slow_s, 6.0) << "the check did not run the 6 s program: " << slow_sse.content();
    EXPECT_LT(other_done, slow_done) << "the second request was decoded only after the first one's check ("
                                     << std::chrono::duration<double>(other_done - other_sent).count() << " s vs "
                                     << std::chrono::duration<double>(slow_done - other_sent).count() << " s)";
    EXPECT_EQ(answer["usage"]["completion_tokens"], 8);
    stop();
  }
}

}  // namespace
}  // namespace cogumi::serve
