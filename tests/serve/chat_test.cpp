// cogumi chat: the conversation loop over the nano system (commands, override, feedback,
// sessions), and the real binary with two lines piped in.
#include "serve/chat.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "runtime/memory.h"
#include "runtime/runtime.h"
#include "test_util.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace cogumi {
namespace {

const fs::path kSystem = fs::path(COGUMI_REPO_DIR) / "models" / "nano-system.yaml";

std::string run_cmd(const std::string& cmd, int* rc) {
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "";
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int st = pclose(p);
  *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

int count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

TEST(ChatCli, TwoLinesPipedInAnswerWithTheDecisionAndGoToSessionMemory) {
  const fs::path dir = test::tmp_dir() / "chat-cli";
  fs::create_directories(dir);
  const fs::path db = dir / "sessions.db";
  std::ofstream(dir / "in.txt") << "Sam has 30 cards. He gives 11 away. How many cards does Sam "
                                   "have now?\nThat's wrong. 30 - 11 isn't that, try again.\n";
  int rc = -1;
  const std::string out =
      run_cmd(std::string(COGUMI_BIN) + " chat -s " + kSystem.string() + " --memory " +
                  db.string() + " -n 24 < " + (dir / "in.txt").string() + " 2>" +
                  (dir / "err.txt").string(),
              &rc);
  const std::string err = slurp(dir / "err.txt");
  ASSERT_EQ(rc, 0) << out << err;
  EXPECT_EQ(count(out, "\n-- choice "), 2) << out;
  // The first question goes to the math modifier in fast mode; the complaint escalates.
  const size_t first = out.find("-- choice math [");
  ASSERT_NE(first, std::string::npos) << out;
  EXPECT_NE(out.find("| mode fast |", first), std::string::npos) << out;
  const size_t second = out.find("-- choice math", first + 1);
  ASSERT_NE(second, std::string::npos) << out;
  EXPECT_NE(out.find("| mode accurate |", second), std::string::npos) << out;
  EXPECT_NE(out.find("escalated by detector", second), std::string::npos) << out;
  // The second turn's prompt starts with the first turn and its answer, which the engine kept in its cache.
  EXPECT_EQ(out.find("cached)"), out.find(" cached)", second) + 1) << out;
  EXPECT_NE(err.find("2 answered, 0 failed"), std::string::npos) << err;
  // The session id printed on stderr names the session both turns went to.
  const size_t at = err.find("session ");
  ASSERT_NE(at, std::string::npos) << err;
  const std::string session = err.substr(at + 8, err.find('\n', at) - at - 8);
  SessionStore store = SessionStore::open(db);
  const auto turns = store.last_turns(session, 10);
  ASSERT_EQ(turns.size(), 4u);
  EXPECT_EQ(turns[0].role, "user");
  EXPECT_EQ(turns[1].role, "assistant");
  EXPECT_EQ(turns[1].choice, "math");
  EXPECT_TRUE(turns[3].escalated);

  // A bad option is refused naming it, before any model loads.
  run_cmd(std::string(COGUMI_BIN) + " chat -s " + kSystem.string() + " --max-tokens 99999 </dev/null 2>" +
              (dir / "err2.txt").string(),
          &rc);
  EXPECT_NE(rc, 0);
  EXPECT_NE(slurp(dir / "err2.txt").find("--max-tokens"), std::string::npos);
}

// A bare model (-m): its chat template, a session in a store of its own that is gone after the chat, and the
// second turn's prompt (the first exchange, then the new question) mostly from the cache the first turn left.
TEST(ChatCli, ABareModelKeepsTheConversationForThisChatOnly) {
  const fs::path dir = test::tmp_dir() / "chat-bare";
  fs::create_directories(dir);
  std::ofstream(dir / "in.txt") << "How many apples are in the basket?\nAnd how many pears?\n";
  auto scratch_dirs = [] {
    int n = 0;
    for (auto& e : fs::directory_iterator(fs::temp_directory_path()))
      n += e.path().filename().string().rfind("cogumi-chat-", 0) == 0;
    return n;
  };
  const int before = scratch_dirs();
  int rc = -1;
  const std::string out = run_cmd(std::string(COGUMI_BIN) + " chat -m " + test::tiny_model().string() +
                                      " -n 8 --json < " + (dir / "in.txt").string() + " 2>" + (dir / "err.txt").string(),
                                  &rc);
  const std::string err = slurp(dir / "err.txt");
  ASSERT_EQ(rc, 0) << out << err;
  EXPECT_NE(err.find("2 answered, 0 failed"), std::string::npos) << err;
  EXPECT_EQ(err.find("(none: the system has no memory)"), std::string::npos) << err;
  std::vector<json> answers;
  std::istringstream lines(out);
  for (std::string l; std::getline(lines, l);) answers.push_back(json::parse(l));
  ASSERT_EQ(answers.size(), 2u) << out;
  EXPECT_EQ(answers[0]["cached_tokens"], 0);
  // The second prompt holds the first exchange: longer than the first, and most of it from the cache.
  EXPECT_GT(answers[1]["prompt_tokens"].get<int>(), answers[0]["prompt_tokens"].get<int>() + 4) << out;
  EXPECT_GE(answers[1]["cached_tokens"].get<int>(), answers[0]["prompt_tokens"].get<int>()) << out;
  EXPECT_EQ(scratch_dirs(), before);
  // -m and -s are one or the other.
  run_cmd(std::string(COGUMI_BIN) + " chat -m " + test::tiny_model().string() + " -s " + kSystem.string() +
              " </dev/null 2>" + (dir / "err2.txt").string(),
          &rc);
  EXPECT_NE(rc, 0);
  EXPECT_NE(slurp(dir / "err2.txt").find("excludes"), std::string::npos) << slurp(dir / "err2.txt");
}

TEST(Chat, CommandsOverrideRateAndReportErrorsWithoutEndingTheChat) {
  SystemConfig cfg = SystemConfig::load(kSystem);
  const fs::path dir = test::tmp_dir() / "chat-lib";
  fs::create_directories(dir);
  cfg.memory = dir / "sessions.db";
  cfg.threads = 0;
  Runtime rt(cfg);
  std::istringstream in(
      "/choice code\n"
      "Sam has 30 cards. He gives 11 away. How many cards does Sam have now?\n"
      "/up\n"
      "/choice nonsense\n"
      "/mode slow\n"
      "/frobnicate\n"
      "/choice auto\n"
      "\n"
      "Sam has 30 cards. He gives 11 away. How many cards does Sam have now?\n"
      "/quit\n"
      "this line is never read\n");
  std::ostringstream out, info;
  ChatOptions opts;
  opts.max_tokens = 16;
  const ChatStats st = run_chat(rt, in, out, info, opts);
  EXPECT_EQ(st.answered, 2) << out.str() << info.str();
  EXPECT_EQ(st.failed, 3) << info.str();
  EXPECT_NE(out.str().find("-- choice code (override)"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("-- choice math ["), std::string::npos) << out.str();
  EXPECT_NE(info.str().find("unknown choice 'nonsense' (the system has: math, code"),
            std::string::npos)
      << info.str();
  EXPECT_NE(info.str().find("/mode takes fast, accurate or auto (got 'slow')"), std::string::npos);
  EXPECT_NE(info.str().find("unknown command '/frobnicate'"), std::string::npos);
  // /up rated the override's answer in session memory.
  const auto fb = rt.memory().feedback({.session = st.session});
  ASSERT_EQ(fb.size(), 1u);
  EXPECT_EQ(fb[0].thumbs, 1);

  // Options are checked; an unknown session is refused naming the store.
  ChatOptions bad;
  bad.max_tokens = -1;
  std::istringstream none("");
  EXPECT_NE(test::error_of([&] { run_chat(rt, none, out, info, bad); }).find("--max-tokens"),
            std::string::npos);
  bad = {};
  bad.session = "no-such-session";
  EXPECT_NE(test::error_of([&] { run_chat(rt, none, out, info, bad); }).find("no such session"),
            std::string::npos);
}

}  // namespace
}  // namespace cogumi
