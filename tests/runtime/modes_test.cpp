// The runtime's modes through the shipped nano system: a session's last turns in the next
// prompt, and `eval --system --mode accurate` (samples, vote and verification per item).
#include <gtest/gtest.h>

#include <map>

#include "core/io.h"
#include "data/synth.h"
#include "runtime/eval_system.h"
#include "runtime/memory.h"
#include "runtime/runtime.h"
#include "test_util.h"

namespace cogumi {
namespace {

const fs::path kModels = fs::path(COGUMI_REPO_DIR) / "models";

SystemConfig session_system(const std::string& name, int history) {
  const fs::path dir = test::tmp_dir() / "modes" / name;
  fs::create_directories(dir);
  const fs::path file = dir / "system.yaml";
  write_file_atomic(
      file, "base: " + (kModels / "nano-base.gguf").string() +
                "\nrouter: " + (kModels / "nano-router.json").string() +
                "\ndefault: math\nchoices:\n  math: {ask_as: gsm8k}\n  code: {ask_as: humaneval}\n"
                "  reasoning: {ask_as: mmlu}\n  automation: {ask_as: bfcl}\n"
                "generation: {max_tokens: 24, threads: 0}\nmemory: sessions.db\nhistory: " +
                std::to_string(history) + "\n");
  return SystemConfig::load(file);
}

TEST(RuntimeHistory, TheSecondTurnsPromptHoldsTheFirstTurn) {
  Runtime rt(session_system("history", 2));
  const std::string s = rt.memory().create_session();
  AskRequest q;
  q.session = s;
  q.text = "Sam has 30 cards. He gives 11 away. How many cards does Sam have now?";
  const AskResponse first = rt.ask({q})[0];
  EXPECT_EQ(first.prompt.find("Sam has 30 cards"), first.prompt.rfind("Sam has 30 cards"));
  q.text = "Kim has 3 packs of 11 cars. How many cars does Kim have?";
  const AskResponse second = rt.ask({q})[0];
  // The first exchange, asked as this request is, with the answer it got, then this request.
  const std::string first_turn =
      "Question: Sam has 30 cards. He gives 11 away. How many cards does Sam have now?\nAnswer:" +
      first.text + "\n\n";
  EXPECT_EQ(second.prompt.find(first_turn), 0u) << second.prompt;
  EXPECT_NE(second.prompt.find("Question: Kim has 3 packs of 11 cars."), std::string::npos);
  // A request outside the session has no history.
  q.session.clear();
  EXPECT_EQ(rt.ask({q})[0].prompt.find("Sam"), std::string::npos);

  // history: 0 keeps sessions apart from prompts.
  Runtime none(session_system("no-history", 0));
  const std::string s2 = none.memory().create_session();
  q.session = s2;
  q.text = "Sam has 30 cards. He gives 11 away. How many cards does Sam have now?";
  none.ask({q});
  q.text = "Kim has 3 packs of 11 cars. How many cars does Kim have?";
  EXPECT_EQ(none.ask({q})[0].prompt.find("Sam"), std::string::npos);
}

TEST(RuntimeHistory, TheSettingIsChecked) {
  const fs::path f = test::tmp_dir() / "modes" / "bad-history.yaml";
  fs::create_directories(f.parent_path());
  write_file_atomic(f,
                    "base: b.gguf\nchoices: {math: {ask_as: gsm8k}}\ndefault: math\nhistory: 65\n");
  EXPECT_NE(test::error_of([&] { SystemConfig::load(f); }).find("'history' must be 0..64"),
            std::string::npos);
}

// Five nano test items per domain through eval --system in accurate mode: each line records
// the vote and the verifier of its kind; --no-verify leaves verification out.
TEST(SystemEvalModes, AccurateModeVotesAndVerifiesEachItem) {
  const fs::path d = test::tmp_dir() / "modes-eval";
  SynthOptions so;
  so.n_train = 100, so.n_dev = 10, so.n_test = 5, so.n_mix = 10;
  synth_write(d / "data", so);
  EvalOptions o;
  o.benches = {{"gsm8k", d / "data/math/test.jsonl"},
               {"humaneval", d / "data/code/test.jsonl"},
               {"mmlu", d / "data/reasoning/reasoning_test.csv"},
               {"bfcl", d / "data/automation/test.jsonl"}};
  o.max_tokens = 64;
  o.gen.n_parallel = 32;
  o.gen.n_threads = 0;
  o.progress = false;
  o.out_dir = d / "accurate";
  const SystemConfig cfg = SystemConfig::load(kModels / "nano-system.yaml");
  const json fast_sum = [&] {
    EvalOptions f = o;
    f.out_dir = d / "fast";
    return eval_system(cfg, f, "fast");
  }();
  const json acc_sum = eval_system(cfg, o, "accurate");
  const std::map<std::string, std::string> verifier = {
      {"gsm8k", "agreement"}, {"humaneval", "tests"}, {"mmlu", "agreement"}, {"bfcl", "schema"}};
  size_t n = 0, code_items = 0, code_verified = 0;
  read_jsonl(o.out_dir / "items.jsonl", [&](const json& j, size_t) {
    ++n;
    EXPECT_EQ(j["mode"], "accurate");
    EXPECT_EQ(j["samples"], cfg.samples);
    EXPECT_GE(j["votes"].get<int>(), 1);
    EXPECT_EQ(j["verifier"], verifier.at(j["benchmark"].get<std::string>())) << j["benchmark"];
    if (j["benchmark"] == "humaneval") {
      // The vote prefers samples that pass the visible tests: the answer is verified exactly when
      // one of the samples passed.
      ++code_items;
      code_verified += j["verified"].get<bool>();
      EXPECT_EQ(j["verified"].get<bool>(), j["verify_passed"].get<int>() > 0) << j.dump();
      EXPECT_LE(j["verify_passed"].get<int>(), cfg.samples);
    }
    // A passing code answer is what the vote gave; the eval's own hidden tests score it.
    if (j["benchmark"] == "bfcl" && j["verified"].get<bool>()) {
      EXPECT_NE(j["failure_type"], "malformed_json");
    }
  });
  EXPECT_EQ(n, 20u);
  EXPECT_EQ(code_items, 5u);
  // The code modifier solves most nano code tasks: the sandbox must have passed some samples.
  EXPECT_GE(code_verified, 1u);
  // Five samples per item cost more than one.
  EXPECT_GT(acc_sum["run"]["gen_tokens"].get<int64_t>(),
            2 * fast_sum["run"]["gen_tokens"].get<int64_t>());

  SystemConfig off = cfg;
  off.verify = false;
  o.out_dir = d / "accurate-no-verify";
  eval_system(off, o, "accurate");
  read_jsonl(o.out_dir / "items.jsonl",
             [&](const json& j, size_t) { EXPECT_EQ(j["verifier"], ""); });
  EXPECT_NE(
      test::error_of([&] { eval_system(cfg, o, "slow"); }).find("--mode must be fast or accurate"),
      std::string::npos);
}

}  // namespace
}  // namespace cogumi
