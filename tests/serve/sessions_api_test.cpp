// The session and feedback endpoints and the embedded web UI, over real HTTP: an httplib server
// on a loopback port with the routes registered, a SQLite session store in a temporary file,
// and httplib's client.
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <thread>

#include "runtime/memory.h"
#include "serve/sessions_api.h"
#include "serve/ui.h"
#include "test_util.h"

namespace cogumi {
namespace {

using json = nlohmann::json;

class SessionsApi : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = test::tmp_dir() / (std::string("sessions_api_") + info->name() + ".db");
    std::filesystem::remove(path_);
    store_ = std::make_unique<SessionStore>(SessionStore::open(path_));
    SessionsApiOptions opts;
    opts.on_feedback = [this](int score) { feedback_seen_.push_back(score); };
    add_session_routes(
        server_, [this]() -> SessionStore& { return *store_; }, opts);
    add_ui_routes(server_);
    port_ = server_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
  }
  void TearDown() override {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }

  // A user question and a routed answer, as the runtime records them.
  std::pair<int64_t, int64_t> ask(const std::string& session, const std::string& q,
                                  const std::string& a, const std::string& choice) {
    Turn u;
    u.role = "user";
    u.content = q;
    Turn t;
    t.role = "assistant";
    t.content = a;
    t.choice = choice;
    t.mode = "fast";
    t.confidence = 0.75;
    t.decision = {{"choice", choice},
                  {"mode", "fast"},
                  {"overridden", false},
                  {"escalated", false},
                  {"escalated_by", ""},
                  {"turn_id", 0},
                  {"confidence", 0.75},
                  {"probabilities", {{choice, 0.75}, {"base", 0.25}}}};
    return {store_->append_turn(session, u), store_->append_turn(session, t)};
  }

  json get(const std::string& path, int expect_status) {
    auto res = client_->Get(path.c_str());
    EXPECT_TRUE(res) << path;
    if (!res) return {};
    EXPECT_EQ(res->status, expect_status) << path << ": " << res->body;
    return json::parse(res->body);
  }
  json post(const std::string& path, const std::string& body, int expect_status) {
    auto res = client_->Post(path.c_str(), body, "application/json");
    EXPECT_TRUE(res) << path;
    if (!res) return {};
    EXPECT_EQ(res->status, expect_status) << path << " " << body << ": " << res->body;
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
    return json::parse(res->body);
  }

  std::filesystem::path path_;
  std::unique_ptr<SessionStore> store_;
  std::vector<int> feedback_seen_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(SessionsApi, CreatedSessionListsItsTurnsWithDecisions) {
  json created = post("/v1/sessions", R"({"metadata": {"client": "test"}})", 200);
  const std::string id = created["id"];
  ASSERT_FALSE(id.empty());
  ask(id, "What is 2+3?", "5", "math");
  auto [q2, a2] = ask(id, "Write add(a, b)", "def add(a, b): return a + b", "code");

  json s = get("/v1/sessions/" + id, 200);
  EXPECT_EQ(s["id"], id);
  EXPECT_EQ(s["metadata"]["client"], "test");
  EXPECT_EQ(s["n_turns"], 4);
  ASSERT_EQ(s["turns"].size(), 4u);
  EXPECT_EQ(s["turns"][0]["role"], "user");
  EXPECT_EQ(s["turns"][0]["content"], "What is 2+3?");
  EXPECT_FALSE(s["turns"][0].contains("cogumi"));  // nothing routed a user turn
  const json& ans = s["turns"][3];
  EXPECT_EQ(ans["id"], a2);
  EXPECT_EQ(ans["content"], "def add(a, b): return a + b");
  EXPECT_TRUE(ans["feedback"].is_null());
  EXPECT_EQ(ans["cogumi"]["choice"], "code");
  EXPECT_EQ(ans["cogumi"]["turn_id"], a2);  // the id the store gave, not the 0 recorded
  EXPECT_EQ(ans["cogumi"]["session"], id);
  EXPECT_DOUBLE_EQ(ans["cogumi"]["probabilities"]["code"].get<double>(), 0.75);

  // ?limit= gives the latest turns, oldest first.
  json last = get("/v1/sessions/" + id + "?limit=2", 200);
  ASSERT_EQ(last["turns"].size(), 2u);
  EXPECT_EQ(last["turns"][0]["id"], q2);
  EXPECT_EQ(last["turns"][1]["id"], a2);
}

TEST_F(SessionsApi, FeedbackIsStoredAndTheLatestScoreShows) {
  const std::string id = store_->create_session();
  const std::string other = store_->create_session();
  auto [q, a] = ask(id, "What is 2+3?", "6", "math");
  auto [oq, oa] = ask(other, "What is 1+1?", "2", "math");

  json r = post("/v1/feedback", json({{"turn_id", a}, {"score", -1}}).dump(), 200);
  EXPECT_EQ(r["turn_id"], a);
  EXPECT_EQ(r["session"], id);
  EXPECT_EQ(r["score"], -1);
  post("/v1/feedback", json({{"turn_id", oa}, {"score", 1}}).dump(), 200);

  auto rows = store_->feedback({});
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].turn_id, a);
  EXPECT_EQ(rows[0].thumbs, -1);
  EXPECT_EQ(rows[0].choice, "math");
  EXPECT_EQ(get("/v1/sessions/" + id, 200)["turns"][1]["feedback"], -1);

  // The user changes their mind: the session shows the latest score, the store keeps both.
  post("/v1/feedback", json({{"turn_id", a}, {"score", 1}, {"note", "fine after all"}}).dump(),
       200);
  EXPECT_EQ(get("/v1/sessions/" + id, 200)["turns"][1]["feedback"], 1);
  FeedbackQuery all;
  all.latest_per_turn = false;
  all.session = id;
  EXPECT_EQ(store_->feedback(all).size(), 2u);
  EXPECT_EQ(feedback_seen_, (std::vector<int>{-1, 1, 1}));
}

TEST_F(SessionsApi, BadRequestsNameTheField) {
  const std::string id = store_->create_session();
  auto [q, a] = ask(id, "What is 2+3?", "5", "math");
  auto error = [&](const std::string& body, int status) {
    json e = post("/v1/feedback", body, status)["error"];
    EXPECT_TRUE(e["message"].is_string());
    return e;
  };
  EXPECT_EQ(error("{not json", 400)["code"], "invalid_json");
  EXPECT_EQ(error("[1]", 400)["code"], "invalid_json");
  EXPECT_EQ(error(R"({"score": 1})", 400)["param"], "turn_id");
  EXPECT_EQ(error(R"({"turn_id": "7", "score": 1})", 400)["param"], "turn_id");
  EXPECT_EQ(error(json({{"turn_id", a}}).dump(), 400)["param"], "score");
  json e = error(json({{"turn_id", a}, {"score", 2}}).dump(), 400);
  EXPECT_EQ(e["param"], "score");
  EXPECT_NE(e["message"].get<std::string>().find("+1 or -1"), std::string::npos);
  EXPECT_EQ(error(json({{"turn_id", a}, {"score", 1}, {"note", 5}}).dump(), 400)["param"], "note");
  e = error(json({{"turn_id", a + 100}, {"score", 1}}).dump(), 404);
  EXPECT_EQ(e["code"], "turn_not_found");
  EXPECT_EQ(e["type"], "not_found_error");
  e = error(json({{"turn_id", q}, {"score", 1}}).dump(), 400);  // a question, not an answer
  EXPECT_NE(e["message"].get<std::string>().find("user turn"), std::string::npos);
  EXPECT_TRUE(store_->feedback({}).empty());  // nothing bad was stored

  e = get("/v1/sessions/no-such-session", 404)["error"];
  EXPECT_EQ(e["param"], "session");
  EXPECT_NE(e["message"].get<std::string>().find("no-such-session"), std::string::npos);
  EXPECT_EQ(get("/v1/sessions/bad%20id", 400)["error"]["param"], "session");
  EXPECT_EQ(get("/v1/sessions/" + id + "?limit=x", 400)["error"]["param"], "limit");
  EXPECT_EQ(post("/v1/sessions", R"({"metadata": 3})", 400)["error"]["param"], "metadata");
}

TEST(SessionsApiNoMemory, AnswersServiceUnavailableWithTheReason) {
  httplib::Server server;
  add_session_routes(server, []() -> SessionStore& {
    throw Error("system nano.yaml names no memory");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread t([&] { server.listen_after_bind(); });
  httplib::Client c("127.0.0.1", port);
  auto res = c.Post("/v1/sessions", "{}", "application/json");
  server.stop();
  t.join();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_NE(res->body.find("names no memory"), std::string::npos) << res->body;
}

TEST_F(SessionsApi, ServesTheEmbeddedWebUi) {
  for (const char* name : {"index.html", "dashboard.html", "chat.js", "dashboard.js", "style.css"})
    EXPECT_NE(find_web_asset(name), nullptr) << name << " is not embedded";
  auto page = client_->Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(page->body, std::string(find_web_asset("index.html")->body));
  EXPECT_NE(page->body.find("<script type=\"module\" src=\"/chat.js\">"), std::string::npos);
  EXPECT_NE(page->get_header_value("Content-Security-Policy").find("default-src 'self'"),
            std::string::npos);

  auto js = client_->Get("/chat.js");
  ASSERT_TRUE(js);
  EXPECT_EQ(js->status, 200);
  EXPECT_EQ(js->get_header_value("Content-Type"), "text/javascript; charset=utf-8");
  auto css = client_->Get("/style.css");
  ASSERT_TRUE(css);
  EXPECT_EQ(css->get_header_value("Content-Type"), "text/css; charset=utf-8");
  auto dash = client_->Get("/dashboard");
  ASSERT_TRUE(dash);
  EXPECT_EQ(dash->status, 200);
  EXPECT_NE(dash->body.find("/dashboard.js"), std::string::npos);

  // A reload with the ETag it was given costs no body.
  const std::string etag = js->get_header_value("ETag");
  ASSERT_FALSE(etag.empty());
  auto again = client_->Get("/chat.js", {{"If-None-Match", etag}});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 304);
  EXPECT_TRUE(again->body.empty());

  auto missing = client_->Get("/nope.js");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  auto dotted = client_->Get("/chatXjs");  // the route's '.' is literal, not any character
  ASSERT_TRUE(dotted);
  EXPECT_EQ(dotted->status, 404);
}

}  // namespace
}  // namespace cogumi
