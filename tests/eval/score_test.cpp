// Scoring: answers compared as the benchmarks mean them, tool calls by BFCL's rules, code only
// passing when its tests ran to the end (through the real sandbox), bad outputs and judge
// replies failing only their own item.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <thread>

#include "core/error.h"
#include "core/io.h"
#include "eval/extract.h"
#include "eval/run.h"
#include "eval/score.h"
#include "test_util.h"

namespace cogumi {
namespace {

const fs::path kData = fs::path(COGUMI_DATASETS);
const fs::path kTestData = fs::path(COGUMI_TEST_DATA);

// The real sandbox or a failure that says why it is missing (never a silent skip).
void require_sandbox() {
  std::string why;
  ASSERT_TRUE(sandbox_available(&why)) << "the code tests need the bubblewrap sandbox: " << why;
}

EvalItem text_item(const std::string& reference) {
  EvalItem it;
  it.benchmark = "bbh";
  it.kind = TaskKind::kText;
  it.reference = reference;
  return it;
}

TEST(Score, BbhTargetsNeverMatchPunctuationOrArticles) {
  auto items = load_benchmark("bbh", kTestData / "bbh");
  ASSERT_GE(items.size(), 12u);
  for (const auto& it : items) {
    for (const char* junk : {"---", "The", "A", "the", ".", "", "()", "an"})
      EXPECT_FALSE(score_output(it, junk, "stop").correct) << it.id << " target " << it.reference << " output '" << junk << "'";
    EXPECT_TRUE(score_output(it, " " + it.reference + "\n", "stop").correct) << it.id;
    EXPECT_TRUE(score_output(it, "Let's think step by step. So the answer is " + it.reference + ".", "stop").correct_strict)
        << it.id;
  }
}

TEST(Score, AnswersMatchAsTheTargetMeans) {
  // Multiple choice targets are letters.
  EXPECT_TRUE(answers_match("(D)", "(D)"));
  EXPECT_TRUE(answers_match("D", "(D)"));
  EXPECT_TRUE(answers_match("(d) 12/14/1937", "(D)"));
  EXPECT_TRUE(answers_match("D.", "(D)"));
  EXPECT_FALSE(answers_match("(A)", "(D)"));
  EXPECT_FALSE(answers_match("A dog", "(A)"));  // an article, not option A
  EXPECT_TRUE(answers_match("A", "(A)"));
  // Numbers keep their sign.
  EXPECT_FALSE(answers_match("60", "-60"));
  EXPECT_TRUE(answers_match("-60.", "-60"));
  // References that SQuAD normalization erases compare with their punctuation.
  EXPECT_TRUE(answers_match("] } ]", "] } ]"));
  EXPECT_FALSE(answers_match("] ]", "] } ]"));
  EXPECT_FALSE(answers_match("---", "] } ]"));
  EXPECT_TRUE(answers_match("a", "A"));
  EXPECT_FALSE(answers_match("The", "A"));
  // Ordinary text as before.
  EXPECT_TRUE(answers_match("Paris.", "paris"));
  EXPECT_TRUE(answers_match("the Eiffel tower", "Eiffel Tower"));
}

TEST(Score, StatedAnswerIsTheHeadline) {
  EvalItem gsm;
  gsm.benchmark = "gsm8k";
  gsm.kind = TaskKind::kNumeric;
  gsm.reference = "12";
  // The last number is 3, but the output stated 12.
  auto s = score_output(gsm, "She buys 4 packs of 3.\n#### 12\n(3 steps)", "stop");
  EXPECT_TRUE(s.correct_strict);
  EXPECT_TRUE(s.correct);
  s = score_output(gsm, "The answer is 7. Check: 5 + 7 = 12", "stop");
  EXPECT_FALSE(s.correct) << "a stated wrong answer is wrong, whatever the last number";
  EXPECT_EQ(s.failure_type, "wrong_answer");
  EXPECT_TRUE(score_output(gsm, "5 + 7 = 12", "stop").correct);  // no stated answer: flexible
  // Text items the same way.
  EvalItem bbh = text_item("(B)");
  EXPECT_FALSE(score_output(bbh, "(B) looks tempting.\nSo the answer is (C).", "stop").correct);
  EXPECT_TRUE(score_output(bbh, "(A) is out.\nSo the answer is (B).", "stop").correct);
}

TEST(Score, LongOutputsAreScoredNotCrashedOn) {
  // libstdc++'s regex recursed once per character: a 50,000-character line overflowed the stack.
  const size_t n = 300000;
  EvalItem gsm, mc, text = text_item("(B)");
  gsm.kind = TaskKind::kNumeric;
  gsm.reference = "12";
  mc.kind = TaskKind::kMultipleChoice;
  mc.reference = "B";
  mc.choices = {"a", "b", "c", "d"};
  for (const std::string& out : {"The answer is " + std::string(n, 'x') + "\n", std::string(n, '1'),
                                 "#### " + std::string(n, '7'), std::string(n, ' ') + "I'm sorry",
                                 std::string(n, 'x') + " Answer: B", "Answer:" + std::string(n, ' ') + "B"})
    for (const EvalItem* it : {&gsm, &mc, &text}) {
      ItemScore s;
      EXPECT_NO_THROW(s = score_output(*it, out, "stop"));
    }
  EXPECT_TRUE(score_output(mc, std::string(n, 'x') + " Answer: B", "stop").correct);
  EXPECT_TRUE(score_output(gsm, std::string(n, 'x') + "\n#### 12", "stop").correct);
}

// ---- tool calls ---------------------------------------------------------------------------

EvalItem bfcl_item(const std::string& id) {
  for (const char* file : {"BFCL_v3_simple.json", "BFCL_v3_parallel.json"})
    for (auto& it : load_benchmark("bfcl", kTestData / "bfcl" / file))
      if (it.id == id) return it;
  ADD_FAILURE() << "no BFCL fixture item " << id;
  return {};
}

TEST(Score, RegexReferencesMatchInLinearTime) {
  // A user-supplied pattern with stacked quantifiers made std::regex_search backtrack for over
  // 30 s (fuzz corpus load_jsonl/crash-regex_reference_hang); RE2 matches in linear time.
  EvalItem it;
  it.id = "q7";
  it.benchmark = "jsonl";
  it.kind = TaskKind::kText;
  it.scoring = "regex";
  it.reference = "(a*)*(b+)*(a|aa)*c";
  const std::string out = std::string(100000, 'a') + "!";
  const auto t0 = std::chrono::steady_clock::now();
  ItemScore s = score_output(it, out, "stop");
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_FALSE(s.correct);
  EXPECT_LT(secs, 2.0) << "regex scoring of a catastrophic pattern took " << secs << " s";
  EXPECT_TRUE(score_output(it, std::string(5000, 'a') + "c", "stop").correct);
  it.reference = R"(^\s*(\d+)\s*apples$)";
  EXPECT_TRUE(score_output(it, "  12 apples", "stop").correct);
  EXPECT_FALSE(score_output(it, "12 pears", "stop").correct);
  // An invalid pattern is an error naming the item, not a silent "wrong".
  it.reference = "(unclosed";
  try {
    score_output(it, "(unclosed", "stop");
    ADD_FAILURE() << "an invalid regex reference was scored";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'q7'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("invalid regex"), std::string::npos) << e.what();
  }
  // The loader refuses it first, naming the file's line and the item.
  const fs::path f = test::tmp_dir() / "bad_regex.jsonl";
  {
    std::ofstream o(f);
    o << R"({"id": "ok", "instruction": "q", "output": "a+b"})" << "\n"
      << R"({"id": "bad", "instruction": "q", "output": "(a"})" << "\n";
  }
  LoadOptions lo;
  lo.scoring = "regex";
  try {
    load_benchmark("jsonl", f, lo);
    ADD_FAILURE() << "a JSONL file with an invalid regex loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(":2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'bad'"), std::string::npos) << e.what();
  }
  // A HumanEval entry_point is spliced into a std::regex: anything but an identifier is refused
  // at load (a "(" threw std::regex_error; "f(a*)*" could backtrack).
  const fs::path he = test::tmp_dir() / "bad_entry.jsonl";
  for (const char* entry : {"f(a*)*", "(", "", "1f", "f g"}) {
    {
      std::ofstream o(he);
      o << json{{"task_id", "T/0"}, {"prompt", "def f(x):\n"}, {"entry_point", entry}, {"test", "pass"}}.dump() << "\n";
    }
    EXPECT_THROW(load_benchmark("humaneval", he), Error) << entry;
  }
  {
    std::ofstream o(he);
    o << json{{"task_id", "T/0"}, {"prompt", "def f_2(x):\n"}, {"entry_point", "f_2"}, {"test", "pass"}}.dump() << "\n";
  }
  EXPECT_EQ(load_benchmark("humaneval", he).at(0).entry_point, "f_2");
}

TEST(Score, ToolCallsFollowBfclRules) {
  auto sc = [](const EvalItem& it, const std::string& out) { return score_output(it, out, "stop"); };
  EvalItem tri = bfcl_item("simple_0");
  EXPECT_TRUE(sc(tri, R"({"name": "calculate_triangle_area", "arguments": {"base": 10, "height": 5}})").correct);
  EXPECT_TRUE(sc(tri, R"({"name": "calculate_triangle_area", "arguments": {"base": 10, "height": 5, "unit": "Units"}})").correct);
  auto typed = sc(tri, R"({"name": "calculate_triangle_area", "arguments": {"base": "10", "height": 5}})");
  EXPECT_FALSE(typed.correct) << "a string where an integer is declared";
  EXPECT_NE(typed.detail.find("wrong type"), std::string::npos) << typed.detail;
  EXPECT_FALSE(sc(tri, R"({"name": "calculate_triangle_area", "arguments": {"base": 10.5, "height": 5}})").correct);

  // A nested dict whose accepted value is itself a list (the cards).
  EvalItem poker = bfcl_item("simple_1");
  auto hand = sc(poker, R"({"name": "poker.evaluate_hand", "arguments": {"player": {"name": "alice", "cards": ["AS", "KS"]}}})");
  EXPECT_TRUE(hand.correct) << hand.detail;
  EXPECT_TRUE(sc(poker, R"({"name": "poker_evaluate_hand", "arguments": {"player": {"name": "Alice", "cards": ["KS", "AS"]}, "game": "Texas Holdem"}})").correct);
  EXPECT_FALSE(sc(poker, R"({"name": "poker.evaluate_hand", "arguments": {"player": {"name": "Alice", "cards": ["AS", "QS"]}}})").correct);
  EXPECT_FALSE(sc(poker, R"({"name": "poker.evaluate_hand", "arguments": {"player": {"name": "Alice"}}})").correct);
  EXPECT_FALSE(sc(poker, R"({"name": "poker.evaluate_hand", "arguments": {"player": {"name": "Alice", "cards": ["AS", "KS"], "seat": 2}}})").correct);

  // An int where a float is declared; a list compares element-wise.
  EvalItem money = bfcl_item("simple_2");
  EXPECT_TRUE(sc(money, R"({"name": "currency_conversion.convert", "arguments": {"amount": 100, "from_currency": "usd", "to_currency": "EUR"}})").correct);
  EvalItem sort = bfcl_item("simple_3");
  EXPECT_TRUE(sc(sort, R"({"name": "array_sort", "arguments": {"list": [5, 2, 9], "order": "ascending"}})").correct);
  EXPECT_FALSE(sc(sort, R"({"name": "array_sort", "arguments": {"list": [2, 5, 9], "order": "ascending"}})").correct);

  // Parallel calls in any order.
  EvalItem par = bfcl_item("parallel_0");
  EXPECT_TRUE(sc(par, R"([{"name": "spotify.play", "arguments": {"artist": "Maroon 5", "duration": 15}},
                          {"name": "spotify.play", "arguments": {"artist": "Taylor Swift", "duration": 20}}])").correct);
  EXPECT_FALSE(sc(par, R"([{"name": "spotify.play", "arguments": {"artist": "Maroon 5", "duration": 20}},
                           {"name": "spotify.play", "arguments": {"artist": "Taylor Swift", "duration": 15}}])").correct);
}

TEST(Score, ParallelCallsAreMatchedAsAnAssignment) {
  // Expected call 0 accepts Paris or Lyon, expected call 1 only Paris. Taking the first fit
  // gives Paris to call 0 and leaves nothing for call 1; the valid pairing is 0-Lyon, 1-Paris.
  json gt = json::parse(R"([{"get_weather": {"city": ["Paris", "Lyon"]}}, {"get_weather": {"city": ["Paris"]}}])");
  json out = json::parse(R"([{"name": "get_weather", "arguments": {"city": "Paris"}},
                             {"name": "get_weather", "arguments": {"city": "Lyon"}}])");
  std::string why;
  EXPECT_TRUE(match_tool_calls(out, gt, json::array(), &why)) << why;
  json bad = json::parse(R"([{"name": "get_weather", "arguments": {"city": "Lyon"}},
                             {"name": "get_weather", "arguments": {"city": "Lyon"}}])");
  EXPECT_FALSE(match_tool_calls(bad, gt, json::array(), &why));
  EXPECT_NE(why.find("expected call 1"), std::string::npos) << why;
}

TEST(Score, MalformedCallsFailOnlyTheirItem) {
  EvalItem tri = bfcl_item("simple_0");
  for (const char* out : {R"({"name": 5})", R"({"name": null, "arguments": {}})", R"([{"name": "x"}, 7])",
                          R"({"name": "calculate_triangle_area", "arguments": "{not json"})",
                          R"({"name": "calculate_triangle_area", "arguments": [1, 2]})", R"({"tool_calls": 3})",
                          R"({"function": {"name": ["a"]}})", R"([])", R"({})"}) {
    ItemScore s;
    EXPECT_NO_THROW(s = score_output(tri, out, "stop")) << out;
    EXPECT_FALSE(s.correct) << out;
    EXPECT_FALSE(s.failure_type.empty()) << out;
  }
  auto s = score_output(tri, R"({"name": 5})", "stop");
  EXPECT_EQ(s.failure_type, "malformed_json");
  EXPECT_NE(s.detail.find("'name' must be a string"), std::string::npos) << s.detail;
}

TEST(Score, BadToolOutputDoesNotAbortTheRunOrItsResume) {
  fs::path q = kTestData / "bfcl" / "BFCL_v3_simple.json";
  fs::path r = test::tmp_dir() / "bfcl_bad_resp.jsonl";
  std::ofstream(r) << R"({"id": "simple_0", "output": "{\"name\": 5}"})" << "\n"
                   << R"({"id": "simple_1", "output": "{\"name\": \"poker.evaluate_hand\", \"arguments\": {\"player\": {\"name\": \"Alice\", \"cards\": [\"AS\", \"KS\"]}}}"})" << "\n"
                   << R"({"id": "simple_2", "output": "[1, {\"name\": {}}]"})" << "\n"
                   << R"({"id": "simple_3", "output": "{\"name\": \"array_sort\", \"arguments\": {\"list\": [5, 2, 9], \"order\": \"ascending\"}}"})" << "\n";
  EvalOptions o;
  o.benches = {{"bfcl", q}};
  o.responses = r;
  o.out_dir = test::tmp_dir() / "bfcl_bad_run";
  o.progress = false;
  json s = run_eval(o);
  EXPECT_EQ(s["benchmarks"]["bfcl"]["n"], 4);
  EXPECT_EQ(s["benchmarks"]["bfcl"]["correct"], 2);
  EXPECT_EQ(s["benchmarks"]["bfcl"]["failures"].value("malformed_json", 0), 2);
  o.resume = true;
  EXPECT_NO_THROW(run_eval(o));
}

// ---- code ---------------------------------------------------------------------------------

std::vector<SandboxResult> run_all(const std::vector<std::string>& programs) {
  SandboxOptions so;
  return run_python_batch(programs, so, 2);
}

TEST(Score, CodePassesOnlyWhenItsTestsRan) {
  require_sandbox();
  auto items = load_benchmark("humaneval", kData / "humaneval/HumanEval.jsonl.gz");
  const EvalItem& it = items[0];
  std::vector<std::string> outs = {
      it.solution,
      "    import sys\n    sys.exit(0)\n",
      "    import os\n    os._exit(0)\n",
      "    raise SystemExit(0)\n",
      "import sys\nsys.exit(0)\n",  // a whole-program exit at import time
      "    print('" + std::string("COGUMI_TESTS_PASSED_") + "0123456789abcdef0123456789abcdef')\n    import os\n    os._exit(0)\n",
  };
  std::vector<std::string> progs;
  for (const auto& o : outs) {
    progs.push_back(code_program(it, o));
    EXPECT_EQ(progs.back().find(code_pass_marker()), std::string::npos) << "the program text holds the marker";
  }
  auto res = run_all(progs);
  for (size_t i = 0; i < outs.size(); ++i) {
    ItemScore s = score_code(it, outs[i], "stop", &res[i]);
    if (i == 0) {
      EXPECT_TRUE(s.correct) << res[i].stdout_tail << res[i].stderr_tail;
    } else {
      EXPECT_FALSE(s.correct) << outs[i];
      EXPECT_EQ(s.failure_type, "test_failure") << outs[i];
    }
  }
  EXPECT_EQ(score_code(it, it.solution, "error", nullptr).failure_type, "error");
}

// The whole function as a chat answer writes it: the entry point's definition and body, without
// the prompt's imports or helpers (HumanEval/10, /38, /50 define helpers the solution calls).
std::string chat_answer(const EvalItem& it) {
  size_t def = it.code_prompt.find("def " + it.entry_point + "(");
  return "Here it is:\n```python\n" + it.code_prompt.substr(def) + it.solution + "```\nIt works.";
}

TEST(Score, HumanEvalCanonicalSolutionsPassInBothAssemblies) {
  require_sandbox();
  auto items = load_benchmark("humaneval", kData / "humaneval/HumanEval.jsonl.gz");
  ASSERT_EQ(items.size(), 164u);
  std::vector<std::string> progs;
  for (const auto& it : items) progs.push_back(code_program(it, it.solution));  // completion
  for (const auto& it : items) progs.push_back(code_program(it, chat_answer(it)));
  auto res = run_all(progs);
  int passed[2] = {0, 0};
  for (size_t i = 0; i < progs.size(); ++i) {
    const EvalItem& it = items[i % items.size()];
    bool chat = i >= items.size();
    ItemScore s = score_code(it, chat ? chat_answer(it) : it.solution, "stop", &res[i]);
    passed[chat] += s.correct;
    EXPECT_TRUE(s.correct) << it.id << (chat ? " (chat)" : " (completion)") << ": " << s.failure_type << " "
                           << res[i].stderr_tail;
  }
  EXPECT_EQ(passed[0], 164);
  EXPECT_EQ(passed[1], 164);
}

TEST(Score, MbppReferenceSolutionsPassWithTheirSetup) {
  require_sandbox();
  auto items = load_benchmark("mbpp", kTestData / "mbpp/mbpp.jsonl");
  ASSERT_EQ(items.size(), 3u);
  bool has_setup = false;
  std::vector<std::string> progs;
  for (const auto& it : items) {
    has_setup |= it.test_setup.find("Node(") != std::string::npos;
    progs.push_back(code_program(it, it.solution + "\n[DONE]"));
    progs.push_back(code_program(it, "def unrelated():\n    return None\n"));
  }
  ASSERT_TRUE(has_setup) << "the sample must hold a setup that builds the solution's classes";
  auto res = run_all(progs);
  for (size_t i = 0; i < items.size(); ++i) {
    EXPECT_TRUE(score_code(items[i], items[i].solution, "stop", &res[2 * i]).correct)
        << items[i].id << ": " << res[2 * i].stderr_tail;
    EXPECT_FALSE(score_code(items[i], "def unrelated()", "stop", &res[2 * i + 1]).correct) << items[i].id;
  }
}

// ---- judge --------------------------------------------------------------------------------

// A one-thread HTTP server on 127.0.0.1 that answers every POST with reply(request body).
class FakeJudge {
 public:
  explicit FakeJudge(std::function<std::string(const std::string&)> reply) : reply_(std::move(reply)) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd_, 16) != 0) throw Error("fake judge: bind");
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeJudge() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }

 private:
  void serve() {
    while (!stop_) {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string req;
      char buf[4096];
      size_t need = std::string::npos;
      while (req.size() < need) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0) break;
        req.append(buf, size_t(n));
        size_t head = req.find("\r\n\r\n");
        if (head != std::string::npos && need == std::string::npos) {
          size_t cl = req.find("Content-Length: ");
          need = head + 4 + (cl == std::string::npos ? 0 : std::stoul(req.substr(cl + 16)));
        }
      }
      std::string body = req.substr(std::min(req.size(), req.find("\r\n\r\n") + 4));
      std::string out = reply_(body);
      std::string resp = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                         std::to_string(out.size()) + "\r\n\r\n" + out;
      (void)!write(c, resp.data(), resp.size());
      close(c);
    }
  }
  std::function<std::string(const std::string&)> reply_;
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::string completion(const json& content) {
  return json{{"choices", {{{"message", {{"role", "assistant"}, {"content", content}}}}}}}.dump();
}

TEST(Score, JudgeWithoutAVerdictFailsOnlyItsItem) {
  FakeJudge judge([](const std::string& body) {
    // Lyon gets a filtered reply (content null), everything else a yes.
    return body.find("Lyon") != std::string::npos ? completion(nullptr) : completion("Yes");
  });
  EvalItem it;
  it.kind = TaskKind::kText;
  it.question = "Capital of France?";
  it.reference = "Paris";
  OpenAIEndpoint ep;
  ep.base_url = judge.url();
  ep.timeout_s = 10;
  ItemScore s;
  ASSERT_NO_THROW(s = score_with_judge(it, "Lyon", "stop", ep));
  EXPECT_FALSE(s.correct);
  EXPECT_EQ(s.failure_type, "error");
  EXPECT_NE(s.detail.find("no verdict"), std::string::npos) << s.detail;
  EXPECT_TRUE(score_with_judge(it, "Paris", "stop", ep).correct);

  // Through a run: its worker threads must not die on the null reply.
  fs::path g = test::tmp_dir() / "judge_null.jsonl", r = test::tmp_dir() / "judge_null_resp.jsonl";
  std::ofstream(g) << R"({"instruction": "Capital of France?", "output": "Paris"})" << "\n"
                   << R"({"instruction": "Capital of France, again?", "output": "Paris"})" << "\n";
  std::ofstream(r) << R"({"id": "judge_null.jsonl:0", "output": "Lyon"})" << "\n"
                   << R"({"id": "judge_null.jsonl:1", "output": "Paris"})" << "\n";
  EvalOptions o;
  o.benches = {{"jsonl", g}};
  o.responses = r;
  o.scoring = "judge";
  o.judge = ep;
  o.out_dir = test::tmp_dir() / "judge_null_run";
  o.progress = false;
  json sum = run_eval(o);
  EXPECT_EQ(sum["benchmarks"]["jsonl"]["n"], 2);
  EXPECT_EQ(sum["benchmarks"]["jsonl"]["correct"], 1);
  EXPECT_EQ(sum["benchmarks"]["jsonl"]["failures"].value("error", 0), 1);
}

TEST(Score, JudgeReplyShapes) {
  FakeJudge judge([](const std::string& body) {
    if (body.find("parts") != std::string::npos) return completion(json::array({{{"type", "text"}, {"text", "yes"}}}));
    if (body.find("number") != std::string::npos) return completion(5);
    return std::string(R"({"choices": [7]})");
  });
  OpenAIEndpoint ep;
  ep.base_url = judge.url();
  ep.timeout_s = 10;
  auto ask = [&](const std::string& text) { return openai_chat(ep, json::array({{{"role", "user"}, {"content", text}}}), 4); };
  EXPECT_EQ(ask("parts"), "yes");
  EXPECT_THROW(ask("number"), Error);  // an Error, never a json exception
  EXPECT_THROW(ask("other"), Error);
  // Invalid UTF-8 in a model's output is sent, not thrown on.
  EXPECT_EQ(ask(std::string("parts \xff\xfe")), "yes");
}

}  // namespace
}  // namespace cogumi
