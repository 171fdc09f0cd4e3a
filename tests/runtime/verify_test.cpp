// Verification with real signals (runtime/verify.h): code against the request's own visible
// tests in the sandbox, tool calls against the functions' schema, and the vote that prefers
// samples that passed.
#include "runtime/verify.h"

#include <gtest/gtest.h>

#include <mutex>

#include "core/error.h"
#include "core/io.h"
#include "eval/score.h"
#include "runtime/runtime.h"
#include "test_util.h"

namespace cogumi {
namespace {

const char* kAddPrompt =
    "def add(a: int, b: int) -> int:\n"
    "    \"\"\"Return the sum of a and b.\n"
    "    >>> add(2, 2)\n"
    "    4\n"
    "    >>> add(\n"
    "    ...     1, 0)\n"
    "    1\n"
    "    \"\"\"\n";

EvalItem code_item(const std::string& prompt) {
  EvalItem it = item_from_request(prompt, "humaneval", nullptr);
  it.test = "def check(candidate):\n    assert candidate(20, 22) == 42\n";  // hidden: never run
  return it;
}

TEST(Verify, DoctestsAreReadFromTheCodePrompt) {
  EXPECT_EQ(prompt_doctests(kAddPrompt), ">>> add(2, 2)\n4\n>>> add(\n...     1, 0)\n1\n");
  EXPECT_EQ(prompt_doctests("def f(x):\n    \"\"\"Return x.\"\"\"\n"), "");
  const EvalItem it = code_item(kAddPrompt);
  EXPECT_EQ(it.entry_point, "add");
  EXPECT_EQ(verifier_for(it), "tests");
  EXPECT_EQ(verifier_for(code_item("def f(x):\n    \"\"\"Return x.\"\"\"\n")), "");
}

void require_sandbox() {
  std::string why;
  ASSERT_TRUE(sandbox_available(&why))
      << "verification runs code in the bubblewrap sandbox: " << why;
}

TEST(Verify, CodeRunsAgainstTheVisibleTestsOnly) {
  require_sandbox();
  const EvalItem it = code_item(kAddPrompt);
  const std::vector<std::pair<const EvalItem*, std::string>> outs = {
      {&it, "    return a + b\n"},                   // right
      {&it, "    return a - b\n"},                   // fails add(2, 2)
      {&it, "    return a + b if a < 10 else 0\n"},  // passes the doctests, fails the hidden test
      {&it, "    return (a +\n"},                    // a syntax error
      {&it, "def add(a, b):\n    return b + a\n"},   // a whole function replacing the stub
  };
  const std::vector<Verdict> v = verify_outputs(outs, SandboxOptions{}, 2);
  ASSERT_EQ(v.size(), outs.size());
  EXPECT_EQ(v[0], Verdict::kPassed);
  EXPECT_EQ(v[1], Verdict::kFailed);
  EXPECT_EQ(v[2], Verdict::kPassed);  // the hidden check(candidate) was not what ran
  EXPECT_EQ(v[3], Verdict::kFailed);
  EXPECT_EQ(v[4], Verdict::kPassed);
}

TEST(Verify, MbppRunsTheAssertsItsPromptLists) {
  require_sandbox();
  EvalItem it;
  it.benchmark = "mbpp";
  it.kind = TaskKind::kCode;
  it.question = "Write a function to double a number.";
  it.test_list = {"assert double(2) == 4", "assert double(0) == 0"};
  ASSERT_EQ(verifier_for(it), "tests");
  const auto v = verify_outputs(
      {{&it, "def double(x):\n    return 2 * x\n"}, {&it, "def double(x):\n    return x + 2\n"}},
      SandboxOptions{}, 2);
  EXPECT_EQ(v[0], Verdict::kPassed);
  EXPECT_EQ(v[1], Verdict::kFailed);
}

TEST(Verify, ToolCallsAreCheckedAgainstTheFunctionSchema) {
  const json tools = json::parse(R"([
    {"name": "book_taxi", "parameters": {"type": "dict", "properties": {
       "destination": {"type": "string"}, "passengers": {"type": "integer"}}, "required": ["destination"]}},
    {"name": "math.factorial", "parameters": {"type": "dict", "properties": {"n": {"type": "integer"}},
       "required": ["n"]}}])");
  const EvalItem it = item_from_request("Book a taxi to the beach for 5 people.", "bfcl", tools);
  ASSERT_EQ(verifier_for(it), "schema");
  const std::vector<std::string> outputs = {
      R"({"name": "book_taxi", "arguments": {"destination": "beach", "passengers": 5}})",  // ok
      R"({"name": "book_taxi", "arguments": {"destination": "beach"}})",  // ok: optional left out
      R"({"name": "math_factorial", "arguments": {"n": 5}})",             // ok: BFCL's dotted name
      R"({"name": "call_taxi", "arguments": {"destination": "beach"}})",  // unknown function
      R"({"name": "book_taxi", "arguments": {"passengers": 5}})",         // required missing
      R"({"name": "book_taxi", "arguments": {"destination": "beach", "passengers": "5"}})",  // wrong
                                                                                             // type
      R"({"name": "book_taxi", "arguments": {"destination": "beach", "when": "now"}})",  // undeclared
      "I would book a taxi.",                                                            // no call
  };
  std::vector<std::pair<const EvalItem*, std::string>> outs;
  for (const auto& o : outputs) outs.emplace_back(&it, o);
  const auto v = verify_outputs(outs, SandboxOptions{}, 1);
  const std::vector<Verdict> want = {Verdict::kPassed, Verdict::kPassed, Verdict::kPassed,
                                     Verdict::kFailed, Verdict::kFailed, Verdict::kFailed,
                                     Verdict::kFailed, Verdict::kFailed};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(v[i], want[i]) << outputs[i];
  std::string why;
  EXPECT_FALSE(check_call_schema(json::parse(outputs[4]), tools, &why));
  EXPECT_NE(why.find("missing required argument 'destination'"), std::string::npos) << why;
  EXPECT_FALSE(check_call_schema(json::parse(outputs[3]), tools, &why));
  EXPECT_NE(why.find("no function named 'call_taxi'"), std::string::npos) << why;
}

TEST(Verify, ThePassingAnswerWinsOverAMoreFrequentFailingOne) {
  using V = Verdict;
  // Three samples agree on an answer that fails its tests; one passing sample wins.
  VerifiedVote w =
      verified_vote({"a", "a", "a", "b", "c"}, {-0.1, -0.1, -0.1, -0.9, -0.5},
                    {V::kFailed, V::kFailed, V::kFailed, V::kPassed, V::kFailed}, "tests");
  EXPECT_EQ(w.index, 3u);
  EXPECT_EQ(w.passed, 1);
  EXPECT_TRUE(w.verified);
  // Nothing passed: the plain majority, not verified.
  w = verified_vote({"a", "a", "b"}, {-1, -1, -0.1}, {V::kFailed, V::kFailed, V::kFailed}, "tests");
  EXPECT_EQ(w.index, 0u);
  EXPECT_EQ(w.votes, 2);
  EXPECT_FALSE(w.verified);
  // Agreement: verified when most samples agree.
  w = verified_vote({"7", "7", "7", "8", ""}, {-1, -1, -1, -1, -1}, std::vector<V>(5), "agreement");
  EXPECT_EQ(w.votes, 3);
  EXPECT_TRUE(w.verified);
  w = verified_vote({"7", "7", "9", "8", ""}, {-1, -1, -1, -1, -1}, std::vector<V>(5), "agreement");
  EXPECT_FALSE(w.verified);
  EXPECT_THROW(verified_vote({"a"}, {-1}, {}, "tests"), Error);
}

// A server finishes each request on a thread of its own, each checking its samples in the
// sandbox: the system's modes.accurate.sandboxes caps the sandboxes of all of them together
// (before, every request's checks took as many as the CPU has cores). Six accurate code requests
// of three samples each, served together through the nano base with a cap of 1.
TEST(Verify, ServedRequestsShareTheSandboxCap) {
  const fs::path dir = test::tmp_dir() / "verify-slots";
  fs::create_directories(dir);
  write_file_atomic(dir / "system.yaml",
                    "base: " + (fs::path(COGUMI_REPO_DIR) / "models/nano-base.gguf").string() +
                        "\ndefault: code\nchoices:\n  code: {ask_as: humaneval}\n"
                        "modes: {default: accurate, accurate: {samples: 3, sandboxes: 1}}\n"
                        "generation: {max_tokens: 24, parallel: 8}\n");
  Runtime rt(SystemConfig::load(dir / "system.yaml"));
  std::mutex mu;
  std::vector<AskResponse> answers;
  bool given = false;
  AskFeed feed;
  feed.poll = [&](std::vector<AskJob>& admit, bool) {
    if (given) return false;
    for (uint64_t i = 0; i < 6; ++i) admit.push_back(AskJob{i, AskRequest{kAddPrompt}, std::nullopt});
    given = true;
    return true;
  };
  feed.on_done = [&](uint64_t, AskResponse a, const std::string& error) {
    EXPECT_EQ(error, "");
    std::lock_guard lk(mu);
    answers.push_back(std::move(a));
  };
  rt.serve(feed);
  ASSERT_EQ(answers.size(), 6u);
  for (const auto& a : answers) {
    EXPECT_EQ(a.mode, "accurate");
    EXPECT_EQ(a.samples, 3);
    EXPECT_EQ(a.verifier, "tests");  // checked in the sandbox
  }
  EXPECT_EQ(rt.sandbox_peak(), 1);
  write_file_atomic(dir / "bad.yaml", "base: " + (fs::path(COGUMI_REPO_DIR) / "models/nano-base.gguf").string() +
                                          "\ndefault: code\nchoices: {code: {ask_as: humaneval}}\nmodes: {accurate: {sandboxes: -1}}\n");
  const std::string e = test::error_of([&] { Runtime bad(SystemConfig::load(dir / "bad.yaml")); });
  EXPECT_NE(e.find("modes.accurate.sandboxes must be 0"), std::string::npos) << e;
}

}  // namespace
}  // namespace cogumi
