// The teacher request pool (data/teacher.h) against real loopback servers that misbehave: replies
// that are not completions, a server that accepts and closes every connection, one too slow for
// the timeout, and a reply check that throws on a worker thread. Each must end as a per-request
// error in the log or as an Error from ask_all naming the cause, never as std::terminate.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "core/error.h"
#include "data/teacher.h"
#include "test_util.h"

namespace cogumi {
namespace {

using json = nlohmann::json;

std::string completion(const std::string& text) {
  return json{{"choices", {{{"message", {{"role", "assistant"}, {"content", text}}}, {"finish_reason", "stop"}}}},
              {"usage", {{"prompt_tokens", 3}, {"completion_tokens", 2}}}}
      .dump();
}

// An OpenAI-style chat endpoint whose reply depends on the prompt's first word: "good" answers,
// "garbage" sends text that is not JSON, "empty" a completion without choices, "slow" sleeps past
// the client's timeout, "boom" answers normally (the test's check throws on it).
class MisbehavingServer {
 public:
  MisbehavingServer() {
    srv_.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      ++requests_;
      const std::string prompt = json::parse(req.body)["messages"][0]["content"].get<std::string>();
      const std::string kind = prompt.substr(0, prompt.find(' '));
      if (kind == "garbage") return res.set_content("<html>502 upstream hiccup", "text/html");
      if (kind == "empty") return res.set_content(R"({"choices": []})", "application/json");
      if (kind == "slow") std::this_thread::sleep_for(std::chrono::milliseconds(600));
      res.set_content(completion("reply to " + prompt), "application/json");
    });
    port_ = srv_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { srv_.listen_after_bind(); });
    while (!srv_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ~MisbehavingServer() {
    srv_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  int requests() const { return requests_; }

 private:
  httplib::Server srv_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<int> requests_{0};
};

// Accepts every connection and closes it at once, before any HTTP reply.
class ClosingServer {
 public:
  ClosingServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("ClosingServer: cannot listen on loopback");
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      for (int c; (c = ::accept(fd_, nullptr, nullptr)) >= 0;) {
        ++accepted_;
        ::close(c);
      }
    });
  }
  ~ClosingServer() {
    ::shutdown(fd_, SHUT_RDWR);  // wakes accept()
    ::close(fd_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  int accepted() const { return accepted_; }

 private:
  int fd_ = -1, port_ = 0;
  std::thread thread_;
  std::atomic<int> accepted_{0};
};

TeacherEndpoint endpoint(const std::string& url) {
  TeacherEndpoint ep;
  ep.base_url = url;
  ep.concurrency = 4;
  ep.max_retries = 1;
  ep.backoff_s = 0.01;
  ep.backoff_max_s = 0.02;
  ep.timeout_s = 0.3;
  ep.validate("test");
  return ep;
}

std::vector<TeacherRequest> requests(const std::vector<std::string>& kinds, int each) {
  std::vector<TeacherRequest> r;
  for (int i = 0; i < each; ++i)
    for (const auto& k : kinds) r.push_back({k + " question " + std::to_string(i), json::object()});
  return r;
}

int lines_of(const fs::path& p) {
  std::ifstream in(p);
  int n = 0;
  for (std::string line; std::getline(in, line);) n += !line.empty();
  return n;
}

// Replies that are not completions and replies after the timeout are retried, then recorded as
// that request's error; the run goes on and answers the rest.
TEST(TeacherPoolFaults, GarbageAndSlowRepliesBecomeErrorsAndTheRunGoesOn) {
  MisbehavingServer srv;
  const fs::path p = test::tmp_dir() / "teacher-faults" / "garbage.jsonl";
  fs::create_directories(p.parent_path());
  fs::remove(p);
  RequestLog log(p);
  SpendMeter spend;
  const auto reqs = requests({"good", "garbage", "empty", "slow"}, 3);
  std::vector<json> out;
  ASSERT_NO_THROW(out = ask_all(endpoint(srv.url()), reqs, log, spend, {}, false));
  ASSERT_EQ(out.size(), reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    SCOPED_TRACE(reqs[i].prompt);
    if (reqs[i].prompt.starts_with("good")) {
      ASSERT_TRUE(out[i].is_object());
      EXPECT_EQ(out[i]["reply"], "reply to " + reqs[i].prompt);
    } else {
      EXPECT_TRUE(out[i].is_null());
    }
  }
  EXPECT_EQ(lines_of(p), 12);  // every request, answered or failed, is in the log once
  RequestLog again(p);
  EXPECT_EQ(again.size(), 3u);  // only the good ones count as done: a rerun asks the rest again
  EXPECT_EQ(srv.requests(), 3 + 3 * 3 * 2);  // each failing request: the first try and one retry
}

// A server that drops every connection: transport errors after the retries, no exception.
TEST(TeacherPoolFaults, DroppedConnectionsAreRetriedThenRecorded) {
  ClosingServer srv;
  const fs::path p = test::tmp_dir() / "teacher-faults" / "closed.jsonl";
  fs::create_directories(p.parent_path());
  fs::remove(p);
  RequestLog log(p);
  SpendMeter spend;
  std::vector<json> out;
  ASSERT_NO_THROW(out = ask_all(endpoint(srv.url()), requests({"good"}, 5), log, spend, {}, false));
  for (const auto& o : out) EXPECT_TRUE(o.is_null());
  EXPECT_EQ(srv.accepted(), 10);
  std::ifstream in(p);
  int errors = 0;
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line);
    // status 0: no HTTP answer; both attempts (the first and the one retry) are in "retried"
    errors += j.contains("error") && j["status"] == 0 && j["retried"].size() == 2 && j["retried"][0].is_string();
  }
  EXPECT_EQ(errors, 5);
}

// The reply check runs on the pool's worker threads. When it throws (a sandbox that cannot start,
// a full disk), the exception used to escape the thread and std::terminate the process with no
// message; now the pool stops and ask_all throws an Error carrying the check's message, after the
// replies already received are in the log (a rerun resumes from them).
TEST(TeacherPoolFaults, AThrowingCheckOnAWorkerStopsTheRunWithItsMessage) {
  MisbehavingServer srv;
  const fs::path p = test::tmp_dir() / "teacher-faults" / "throwing.jsonl";
  fs::create_directories(p.parent_path());
  fs::remove(p);
  const auto reqs = requests({"good", "fine", "okay", "boom"}, 4);
  auto check = [](json& line) {
    if (line["prompt"].get<std::string>().starts_with("boom")) throw std::runtime_error("the check's sandbox died");
    line["checked"] = true;
  };
  for (int concurrency : {1, 4}) {
    SCOPED_TRACE(concurrency);
    fs::remove(p);
    RequestLog log(p);
    SpendMeter spend;
    TeacherEndpoint ep = endpoint(srv.url());
    ep.concurrency = concurrency;
    const std::string why = test::error_of([&] { ask_all(ep, reqs, log, spend, check, false); });
    EXPECT_NE(why.find("the check's sandbox died"), std::string::npos) << why;
  }
  // The first "boom" is the 4th request: with one worker the three before it were answered and logged.
  fs::remove(p);
  RequestLog fresh(p);
  SpendMeter spend;
  TeacherEndpoint ep = endpoint(srv.url());
  ep.concurrency = 1;
  (void)test::error_of([&] { ask_all(ep, reqs, fresh, spend, check, false); });
  RequestLog resumed(p);
  EXPECT_EQ(resumed.size(), 3u);
  for (const auto& r : std::vector<std::string>{reqs[0].prompt, reqs[1].prompt, reqs[2].prompt})
    EXPECT_NE(resumed.find(request_key(ep, r)), nullptr) << r;
}

}  // namespace
}  // namespace cogumi
