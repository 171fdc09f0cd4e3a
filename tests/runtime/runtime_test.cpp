// The modular runtime: system files, request formatting, voting, and requests through the
// shipped nano base with a router trained here.
#include "runtime/runtime.h"

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/io.h"
#include "data/synth.h"
#include "engine/model.h"
#include "engine/model_init.h"
#include "route/router_job.h"
#include "runtime/eval_system.h"
#include "runtime/memory.h"
#include "test_util.h"

namespace cogumi {
namespace {

const fs::path kBase = fs::path(COGUMI_REPO_DIR) / "models/nano-base.gguf";

fs::path write(const std::string& name, const std::string& text) {
  const fs::path p = test::tmp_dir() / "runtime" / name;
  fs::create_directories(p.parent_path());
  write_file_atomic(p, text);
  return p;
}

std::string error_of(const fs::path& p) {
  try {
    SystemConfig::load(p);
  } catch (const Error& e) {
    return e.what();
  }
  return "(loaded)";
}

// A router over the four nano domains, trained on a small curriculum.
const fs::path& nano_router() {
  static const fs::path p = [] {
    const fs::path d = test::tmp_dir() / "runtime" / "nano-data";
    SynthOptions o;
    o.n_train = 400, o.n_dev = 20, o.n_test = 20, o.n_mix = 50;
    synth_write(d, o);
    RouterJob j;
    j.data = {"math=gsm8k:" + (d / "math/train.jsonl").string(),
              "code=humaneval:" + (d / "code/train.jsonl").string(),
              "reasoning=mmlu:" + (d / "reasoning/reasoning_train.csv").string(),
              "automation=bfcl:" + (d / "automation/train.jsonl").string()};
    j.holdout = 0;
    j.out = test::tmp_dir() / "runtime" / "router.json";
    train_router_job(j);
    return j.out;
  }();
  return p;
}

std::string nano_system(const std::string& extra = "") {
  return "name: nano-test\nbase: " + kBase.string() + "\nrouter: " + nano_router().string() +
         "\ndefault: math\nchoices:\n  math: {ask_as: gsm8k}\n  code: {ask_as: humaneval}\n"
         "  reasoning: {ask_as: mmlu}\n  automation: {ask_as: bfcl}\ngeneration: {max_tokens: 48, "
         "parallel: 8}\n" +
         extra;
}

TEST(SystemFile, ReadsEverySettingAndResolvesPathsBesideTheFile) {
  const fs::path p =
      write("full.yaml",
            "name: demo\nbase: m.gguf\nrouter: r.json\ndefault: base\nchoices:\n  base:\n"
            "  math: {adapter: math.gguf, ask_as: gsm8k}\nthreshold: 0.8\nescalation: base\n"
            "modes: {default: accurate, accurate: {samples: 7, temperature: 0.5}}\n"
            "generation: {max_tokens: 64, parallel: 4, threads: 0}\nmemory: s.db\n");
  SystemConfig s = SystemConfig::load(p);
  EXPECT_EQ(s.name, "demo");
  EXPECT_EQ(s.base, p.parent_path() / "m.gguf");
  EXPECT_EQ(s.router, p.parent_path() / "r.json");
  ASSERT_EQ(s.choices.size(), 2u);
  EXPECT_TRUE(s.choices[0].adapter.empty());
  EXPECT_EQ(s.choice("math").adapter, p.parent_path() / "math.gguf");
  EXPECT_EQ(s.choice("math").ask_as, "gsm8k");
  EXPECT_DOUBLE_EQ(s.threshold, 0.8);
  EXPECT_EQ(s.escalation, "base");
  EXPECT_EQ(s.mode, "accurate");
  EXPECT_EQ(s.samples, 7);
  EXPECT_EQ(s.max_tokens, 64);
  EXPECT_EQ(s.memory, p.parent_path() / "s.db");
}

TEST(SystemFile, ErrorsNameTheFileLineAndKey) {
  const std::string head = "base: m.gguf\nchoices:\n  base:\n";
  std::string e = error_of(write("unknown.yaml", head + "treshold: 0.5\n"));
  EXPECT_NE(e.find("unknown.yaml:4: 'treshold': unknown key"), std::string::npos) << e;
  e = error_of(write("type.yaml", head + "generation: {max_tokens: lots}\n"));
  EXPECT_NE(e.find("type.yaml:4: 'generation.max_tokens': expected a number"), std::string::npos)
      << e;
  e = error_of(write("range.yaml", head + "threshold: 1.5\n"));
  EXPECT_NE(e.find("'threshold' must be in [0, 1]"), std::string::npos) << e;
  e = error_of(write("nobase.yaml", "choices:\n  base:\n"));
  EXPECT_NE(e.find("'base' is required"), std::string::npos) << e;
  e = error_of(write("default.yaml", head + "default: math\n"));
  EXPECT_NE(e.find("'default' names 'math'"), std::string::npos) << e;
  e = error_of(write("askas.yaml", "base: m.gguf\nchoices:\n  base: {ask_as: poetry}\n"));
  EXPECT_NE(e.find("choices.base.ask_as"), std::string::npos) << e;
  e = error_of(write("broken.yaml", "base: [unclosed\n"));
  EXPECT_NE(e.find("broken.yaml:"), std::string::npos) << e;
  EXPECT_NE(error_of(test::tmp_dir() / "runtime" / "missing.yaml").find("cannot read"),
            std::string::npos);
}

TEST(Runtime, RequestsAreAskedAsTheirChoiceWasTrained) {
  EvalItem mc = item_from_request("Who is the oldest?\nA. Cannot tell\nB) Mia\n(C) Tina\nD. Bob",
                                  "mmlu", json::array());
  EXPECT_EQ(mc.kind, TaskKind::kMultipleChoice);
  EXPECT_EQ(mc.question, "Who is the oldest?");
  EXPECT_EQ(mc.choices, (std::vector<std::string>{"Cannot tell", "Mia", "Tina", "Bob"}));
  EXPECT_EQ(item_from_request("def f(x):\n", "humaneval", json::array()).code_prompt,
            "def f(x):\n");
  EXPECT_EQ(
      item_from_request("call mom", "bfcl", json::array({{{"name", "call"}}})).functions[0]["name"],
      "call");
  EXPECT_EQ(vote_key(item_from_request("q", "gsm8k", {}), " 3 + 4 = 7\n#### 7"), "7");
  EXPECT_EQ(vote_key(mc, " Mia\nAnswer: B"), "B");
  // Equal calls vote together whatever their key order and spacing.
  EvalItem call = item_from_request("q", "bfcl", {});
  EXPECT_EQ(vote_key(call, R"({"name":"f","arguments":{"a":1,"b":2}})"),
            vote_key(call, R"( {"arguments": {"b": 2, "a": 1}, "name": "f"})"));
}

TEST(Runtime, MajorityVoteBreaksTiesByLogProbabilityAndIgnoresEmptyAnswers) {
  int votes = 0;
  EXPECT_EQ(majority_vote({"7", "8", "7", "8", "9"}, {-1.0, -0.2, -0.9, -0.3, -0.1}, &votes),
            1u);  // 8 ties 7, likelier
  EXPECT_EQ(votes, 2);
  EXPECT_EQ(majority_vote({"", "", "", "5"}, {-0.1, -0.1, -0.1, -2.0}, &votes),
            3u);  // nothing extracted never wins
  EXPECT_EQ(votes, 1);
  EXPECT_EQ(majority_vote({"", ""}, {-0.5, -0.1}, &votes), 1u);
  EXPECT_EQ(majority_vote({"4", "4", "4"}, {-0.5, -0.1, -0.3}, &votes),
            1u);  // the likeliest sample of the winner
  EXPECT_EQ(votes, 3);
  EXPECT_THROW(majority_vote({}, {}, &votes), Error);
}

TEST(Runtime, RoutesAsksOverridesAndEscalatesThroughTheNanoBase) {
  SystemConfig cfg = SystemConfig::load(write("nano.yaml", nano_system()));
  cfg.threads = 0;
  Runtime rt(cfg);
  std::vector<AskRequest> reqs(3);
  reqs[0].text = "Gus has 15 stickers. He gives 1 away. How many stickers does Gus have now?";
  reqs[1].text =
      "Mia is older than Bob. Tina is younger than Bob. Who is the oldest?\nA. Cannot tell\nB. "
      "Mia\nC. Tina\nD. Bob";
  reqs[2] = reqs[0];
  reqs[2].choice = "reasoning";
  auto out = rt.ask(reqs);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].choice, "math");
  EXPECT_FALSE(out[0].overridden);
  EXPECT_GT(out[0].confidence, 0.9);
  ASSERT_EQ(out[0].route.probs.size(), 4u);
  // Asked in GSM8K's format, the nano base answers with its worked form.
  EXPECT_NE(out[0].text.find("####"), std::string::npos) << out[0].text;
  EXPECT_EQ(out[1].choice, "reasoning");
  EXPECT_NE(out[1].text.find("Answer:"), std::string::npos) << out[1].text;
  EXPECT_EQ(out[2].choice, "reasoning");
  EXPECT_TRUE(out[2].overridden);
  EXPECT_TRUE(out[2].route.probs.empty());
  EXPECT_GT(out[0].gen_tokens, 0);

  // Accurate mode: five samples in one batch, the vote share is the confidence, and a rerun
  // gives the same answer (seeded samples).
  AskRequest acc = reqs[0];
  acc.mode = "accurate";
  auto a1 = rt.ask({acc}), a2 = rt.ask({acc});
  EXPECT_EQ(a1[0].samples, 5);
  EXPECT_GE(a1[0].votes, 1);
  EXPECT_DOUBLE_EQ(a1[0].confidence, a1[0].votes / 5.0);
  EXPECT_EQ(a1[0].text, a2[0].text);

  AskRequest bad = reqs[0];
  bad.choice = "poetry";
  EXPECT_THROW(rt.ask({bad}), Error);
  bad = reqs[0];
  bad.mode = "slow";
  EXPECT_THROW(rt.ask({bad}), Error);
}

// A domain routed to another domain's modifier (the pipeline's routes chosen on dev) is a choice of its own with
// that adapter file and its own format: the file is loaded once, both choices use it, each in its format.
TEST(Runtime, ChoicesSharingAnAdapterFileShareOneLoadedAdapter) {
  const std::string math = (fs::path(COGUMI_REPO_DIR) / "models/nano-math.gguf").string();
  SystemConfig cfg = SystemConfig::load(write("shared.yaml", nano_system().replace(
      nano_system().find("  math: {ask_as: gsm8k}\n  code: {ask_as: humaneval}\n  reasoning: {ask_as: mmlu}"),
      std::string("  math: {ask_as: gsm8k}\n  code: {ask_as: humaneval}\n  reasoning: {ask_as: mmlu}").size(),
      "  math: {adapter: " + math + ", ask_as: gsm8k}\n  code: {ask_as: humaneval}\n  reasoning: {adapter: " + math +
          ", ask_as: mmlu}")));
  EXPECT_EQ(cfg.adapter_name("math"), "math");
  EXPECT_EQ(cfg.adapter_name("reasoning"), "math");
  EXPECT_EQ(cfg.adapter_name("code"), "");
  cfg.threads = 0;
  Runtime rt(cfg);
  EXPECT_EQ(rt.model()->adapter_names(), std::vector<std::string>{"math"});  // the file loaded once
  std::vector<AskRequest> reqs(2);
  reqs[0].text = "Gus has 15 stickers. He gives 1 away. How many stickers does Gus have now?";
  reqs[0].choice = "math";
  reqs[1].text = "Mia is older than Bob. Tina is younger than Bob. Who is the oldest?\nA. Cannot tell\nB. Mia\nC. Tina\nD. Bob";
  reqs[1].choice = "reasoning";
  auto out = rt.ask(reqs);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_NE(out[0].text.find("####"), std::string::npos) << out[0].text;  // GSM8K's format
  EXPECT_NE(out[1].text.find("Answer:"), std::string::npos) << out[1].text;  // MMLU's format, the math adapter
}

TEST(Runtime, LowRouterConfidenceEscalatesToAccurateOrTheDefault) {
  SystemConfig cfg = SystemConfig::load(write("strict.yaml", nano_system("threshold: 1.0\n")));
  cfg.threads = 0;
  Runtime rt(cfg);
  AskRequest q;
  q.text = "Sam has 30 cards. He gives 11 away. How many cards does Sam have now?";
  auto r = rt.ask({q});
  EXPECT_TRUE(r[0].escalated);
  EXPECT_EQ(r[0].mode, "accurate");
  cfg.escalation = "base";
  cfg.default_choice = "code";
  Runtime rt2(cfg);
  r = rt2.ask({q});
  EXPECT_TRUE(r[0].escalated);
  EXPECT_EQ(r[0].choice, "code");
  EXPECT_EQ(r[0].mode, "fast");
}

TEST(Runtime, ARouterChoiceTheSystemLacksIsRefused) {
  const std::string text = "name: x\nbase: " + kBase.string() +
                           "\nrouter: " + nano_router().string() +
                           "\ndefault: math\nchoices:\n  math: {ask_as: gsm8k}\n";
  try {
    Runtime rt(SystemConfig::load(write("missing-choice.yaml", text)));
    FAIL() << "a router choice without a system choice was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("can choose 'code'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cogumi

namespace cogumi {
namespace {

// The shipped nano system in the eval harness: every nano test item is routed to its own
// domain's modifier, and the routed run answers as that modifier does alone on the same items.
// Each domain's items go to the domain's choice, which answers with the adapter its routes chose on dev (its own
// modifier, another domain's: reasoning is answered by the math modifier, whose file both choices share under the
// first choice's name) or the base alone (code).
TEST(SystemEval, TheShippedNanoSystemRoutesEachItemToItsDomainsChoice) {
  const fs::path d = test::tmp_dir() / "system-eval";
  SynthOptions so;
  so.n_train = 200, so.n_dev = 20, so.n_test = 30, so.n_mix = 20;
  synth_write(d / "data", so);
  const std::vector<std::pair<std::string, std::string>> doms = {
      {"math", "gsm8k"}, {"code", "humaneval"}, {"reasoning", "mmlu"}, {"automation", "bfcl"}};
  EvalOptions o;
  o.benches = {{"gsm8k", d / "data/math/test.jsonl"},
               {"humaneval", d / "data/code/test.jsonl"},
               {"mmlu", d / "data/reasoning/reasoning_test.csv"},
               {"bfcl", d / "data/automation/test.jsonl"}};
  o.max_tokens = 64;
  o.gen.n_parallel = 32;
  o.gen.n_threads = 0;
  o.progress = false;
  o.out_dir = d / "system";
  SystemConfig cfg = SystemConfig::load(fs::path(COGUMI_REPO_DIR) / "models/nano-system.yaml");
  json sys = eval_system(cfg, o);
  std::map<std::string, std::pair<std::string, bool>> routed;  // benchmark/id -> (route, correct)
  read_jsonl(o.out_dir / "items.jsonl", [&](const json& j, size_t) {
    routed[j["benchmark"].get<std::string>() + "/" + j["id"].get<std::string>()] = {j["route"],
                                                                                    j["correct"]};
  });
  ASSERT_EQ(routed.size(), 120u);
  for (const auto& [name, kind] : doms) {
    EvalOptions one = o;
    one.benches.clear();
    for (const auto& b : o.benches)
      if (b.kind == kind) one.benches.push_back(b);
    const std::string adapter = cfg.adapter_name(name);  // "" = the base alone
    one.model = cfg.base;
    if (!adapter.empty()) one.adapters = {{adapter, cfg.choice(name).adapter}};
    one.adapter = adapter;
    one.out_dir = d / name;
    run_eval(one);
    size_t n = 0, same = 0;
    read_jsonl(one.out_dir / "items.jsonl", [&](const json& j, size_t) {
      const auto& [route, correct] = routed.at(kind + "/" + j["id"].get<std::string>());
      EXPECT_EQ(route, adapter) << kind << " item " << j["id"] << " was routed to '" << route << "'";
      ++n;
      same += correct == j["correct"].get<bool>();
    });
    EXPECT_EQ(n, 30u);
    // Same prompts through the same adapter; only the batch composition differs.
    EXPECT_GE(same, n - 2) << name;
  }
  EXPECT_FALSE(sys["run"]["complete"].is_null());
}

}  // namespace
}  // namespace cogumi

namespace cogumi {
namespace {

// Sessions: each request and answer is a turn with its decision; a follow-up that complains
// about the last answer escalates to accurate mode and stays with that answer's choice.
// A bare chat model's session longer than a slot's context (the tiny model's 512 tokens): the oldest exchanges
// leave the prompt until the answer fits, instead of the request being refused.
TEST(RuntimeSession, AHistoryLongerThanTheContextLosesItsOldestExchanges) {
  SystemConfig cfg = SystemConfig::bare_model(test::tiny_model());
  cfg.memory = test::tmp_dir() / "runtime" / "long-session" / "s.db";
  fs::remove(cfg.memory);
  cfg.parallel = 2;
  Runtime rt(cfg);
  const std::string s = rt.memory().create_session();
  std::string para;
  for (int k = 0; k < 3; ++k) para += "The apples in basket " + std::to_string(k) + " are red. ";
  for (int t = 0; t < 4; ++t) {  // 8 turns, all in the history window, together over the context
    Turn u;
    u.role = "user";
    u.content = "Question " + std::to_string(t) + ": " + para;
    rt.memory().append_turn(s, u);
    Turn a = u;
    a.role = "assistant";
    a.content = "Answer " + std::to_string(t) + ": " + para;
    rt.memory().append_turn(s, a);
  }
  AskRequest q;
  q.session = s;
  q.text = "How many baskets were there?";
  q.max_tokens = 16;
  q.ignore_eos = true;
  const AskResponse r = rt.ask({q}).at(0);
  EXPECT_NE(r.finish_reason, "error") << r.text;
  EXPECT_EQ(r.gen_tokens, 16);
  EXPECT_LE(r.prompt_tokens + 16, 512);
  EXPECT_GT(r.prompt_tokens, 512 / 3) << r.prompt;  // the latest exchanges stayed
  EXPECT_NE(r.prompt.find("Answer 3: "), std::string::npos);
  EXPECT_EQ(r.prompt.find("Question 0: "), std::string::npos);
}

// A chat template llama.cpp's builtin list does not know (llama_chat_apply_template refuses it): the model's own
// Jinja text renders the conversation instead of the request failing.
TEST(RuntimeSession, AChatTemplateTheBuiltinListDoesNotKnowIsRenderedAsJinja) {
  ModelInitOptions o;
  o.chat_template =
      "{% for m in messages %}<<turn {{ m.role }}>> {{ m.content }}\n{% endfor %}"
      "{% if add_generation_prompt %}<<turn assistant>> {% endif %}";
  const fs::path path = test::tmp_dir() / "runtime" / "custom-template.gguf";
  fs::create_directories(path.parent_path());
  model_init(path, o);
  EXPECT_NE(test::error_of([&] { Model::load(path)->apply_chat_template({{"user", "x", "", "", ""}}); })
                .find("not supported"),
            std::string::npos);
  SystemConfig cfg = SystemConfig::bare_model(path);
  cfg.parallel = 1;
  Runtime rt(cfg);
  AskRequest q;
  q.text = "Hello there";
  q.history = {{"user", "Hi", "", "", ""}, {"assistant", "Hi!", "", "", ""}};
  q.max_tokens = 4;
  const AskResponse r = rt.ask({q}).at(0);
  EXPECT_EQ(r.prompt, "<<turn user>> Hi\n<<turn assistant>> Hi!\n<<turn user>> Hello there\n<<turn assistant>> ");
  EXPECT_GT(r.gen_tokens, 0);
}

// A tool conversation over the context (Llama 3.1's template, its tools in the prompt): the oldest question leaves
// with its call and the tool's result; a result left alone at the front would read as the first user message.
// A random-weight model with Llama 3 BPE vocabulary and Llama 3.1 Instruct's own template, made once.
fs::path llama31_template_model() {
  const fs::path src(COGUMI_LLAMA_SRC);
  const fs::path path = test::tmp_dir() / "runtime" / "llama31-template.gguf";
  if (fs::exists(path)) return path;
  ModelInitOptions o;
  o.vocab_from = src / "models/ggml-vocab-llama-bpe.gguf";
  o.chat_template = read_file(src / "models/templates/meta-llama-Llama-3.1-8B-Instruct.jinja");
  o.type = "f16";
  fs::create_directories(path.parent_path());
  model_init(path, o);
  return path;
}

TEST(RuntimeSession, TrimmingAToolConversationDropsACallWithItsQuestion) {
  SystemConfig cfg = SystemConfig::bare_model(llama31_template_model());
  cfg.parallel = 1;
  Runtime rt(cfg);
  std::string para;
  for (int k = 0; k < 6; ++k) para += "The apples in basket " + std::to_string(k) + " are red. ";
  const std::string calls =
      R"([{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}])";
  AskRequest q;
  q.tools = nlohmann::json::parse(R"([{"name": "get_weather", "description": "Current weather for a city",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}])");
  q.history = {{"user", "Question 0: " + para + para + para, "", "", ""},
               {"assistant", "", calls, "", ""},
               {"tool", "Result 0: 21 celsius", "", "call_1", "get_weather"},
               {"user", "Question 1: " + para, "", "", ""},
               {"assistant", "Answer 1: " + para, "", "", ""}};
  q.text = "Question 2: and tomorrow?";
  q.max_tokens = 16;
  const AskResponse r = rt.ask({q}).at(0);
  EXPECT_LE(r.prompt_tokens + 16, 512);
  EXPECT_EQ(r.prompt.find("Question 0: "), std::string::npos);
  EXPECT_EQ(r.prompt.find("Result 0: "), std::string::npos) << r.prompt;
  EXPECT_NE(r.prompt.find("Answer 1: "), std::string::npos) << r.prompt;
  EXPECT_NE(r.prompt.find("Given the following functions"), std::string::npos);
}

// A call in the model's format (Llama 3.1's {"name", "parameters"}, written here by a grammar) that the token limit
// cuts short: llama.cpp's parser is lenient and closes what the answer left open, but a cut call stays text (its
// arguments may have lost their end); the same answer given room is a call.
TEST(RuntimeSession, ACallCutByTheTokenLimitStaysText) {
  SystemConfig cfg = SystemConfig::bare_model(llama31_template_model());
  cfg.parallel = 1;
  Runtime rt(cfg);
  AskRequest q;
  q.tools = nlohmann::json::parse(R"([{"name": "get_weather", "description": "Current weather for a city",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}])");
  q.text = "What is the weather in Paris?";
  q.grammar = R"(root ::= "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}")";
  q.max_tokens = 64;
  const std::string call = R"({"name": "get_weather", "parameters": {"city": "Paris"}})";
  const AskResponse whole = rt.ask({q}).at(0);
  ASSERT_EQ(whole.text, "");  // all of it a call
  ASSERT_TRUE(whole.tools_parsed);
  ASSERT_EQ(whole.tool_calls.size(), 1u) << whole.text;
  EXPECT_EQ(nlohmann::json::parse(whole.tool_calls[0].arguments), nlohmann::json({{"city", "Paris"}}));
  ASSERT_GT(whole.gen_tokens, 3);
  for (int cut : {1, 2}) {  // the last token (the end, or the call's closing brace) or the last two
    q.max_tokens = whole.gen_tokens - cut;
    const AskResponse r = rt.ask({q}).at(0);
    EXPECT_EQ(r.finish_reason, "length");
    if (cut == 2) {
      EXPECT_LT(r.text.size(), call.size());
    }
    EXPECT_TRUE(r.tool_calls.empty()) << "cut at " << r.text << " read as a call of " << r.tool_calls[0].arguments;
    EXPECT_GT(r.text.size(), 10u);
    EXPECT_EQ(r.text, call.substr(0, r.text.size()));
  }
}

// A server prepares each request on the thread that received it (Runtime::prepare: the history read, the decision,
// the prompt rendered and tokenized) and hands it to the engine loop ready. Requests prepared on four threads at once
// answer as ask() answers them, tools (the model's Jinja template) and history included, and the loop runs what was
// prepared, not the request beside it; a bad request is refused by prepare itself, before the loop sees it.
TEST(RuntimeServe, RequestsPreparedOnOtherThreadsAnswerAsAskDoes) {
  SystemConfig cfg = SystemConfig::bare_model(fs::path(COGUMI_REPO_DIR) / "models" / "nano-base.gguf");
  cfg.parallel = 4;
  Runtime rt(cfg);
  std::vector<AskRequest> qs(4);
  qs[0].text = "Tom has 3 apples and buys 5 more. How many apples does Tom have?";
  qs[1].text = "And if he buys 2 more?";
  qs[1].history = {{"user", qs[0].text, "", "", ""}, {"assistant", "8", "", "", ""}};
  qs[2].text = "What is the weather in Paris?";
  qs[2].tools = nlohmann::json::parse(R"([{"name": "get_weather", "description": "Current weather for a city",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}])");
  qs[3].text = "Write a function that adds two numbers.";
  for (auto& q : qs) q.max_tokens = 12;
  std::vector<AskResponse> alone;
  for (const auto& q : qs) alone.push_back(rt.ask({q}).at(0));
  std::vector<std::shared_ptr<const PreparedAsk>> prepared(qs.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < qs.size(); ++i) threads.emplace_back([&, i] { prepared[i] = rt.prepare(qs[i]); });
  for (auto& t : threads) t.join();
  // a fifth job: request 3 as handed over, request 0 as prepared: the loop must run what was prepared
  qs.push_back(qs[3]);
  prepared.push_back(prepared[0]);
  std::mutex mu;
  std::map<uint64_t, AskResponse> served;
  size_t given = 0;
  AskFeed feed;
  feed.poll = [&](std::vector<AskJob>& admit, bool) {  // one newcomer per engine step
    if (given == qs.size()) return false;
    admit.push_back(AskJob{given, qs[given], std::nullopt, prepared[given]});
    ++given;
    return true;
  };
  feed.on_done = [&](uint64_t id, AskResponse a, const std::string& error) {
    EXPECT_EQ(error, "");
    std::lock_guard lk(mu);
    served[id] = std::move(a);
  };
  rt.serve(feed);
  ASSERT_EQ(served.size(), qs.size());
  for (size_t i = 0; i < qs.size(); ++i) {
    const AskResponse& want = alone[i < 4 ? i : 0];
    EXPECT_EQ(served[i].prompt, want.prompt) << i;
    EXPECT_EQ(served[i].prompt_tokens, want.prompt_tokens) << i;
    EXPECT_EQ(served[i].text, want.text) << i;
  }
  AskRequest bad;
  bad.text = "x";
  bad.mode = "slow";
  EXPECT_NE(test::error_of([&] { (void)rt.prepare(bad); }).find("mode must be fast or accurate"), std::string::npos);
}

TEST(RuntimeSession, TurnsAreRecordedAndAComplaintEscalates) {
  const fs::path models = fs::path(COGUMI_REPO_DIR) / "models";
  const fs::path db = test::tmp_dir() / "runtime" / "sessions" / "s.db";
  SystemConfig cfg = SystemConfig::load(
      write("session.yaml",
            "base: " + (models / "nano-base.gguf").string() +
                "\nrouter: " + (models / "nano-router.json").string() +
                "\ndefault: math\nchoices:\n  math: {ask_as: gsm8k}\n  code: {ask_as: humaneval}\n"
                "  reasoning: {ask_as: mmlu}\n  automation: {ask_as: bfcl}\ngeneration: "
                "{max_tokens: 32}\n"
                "detector: " +
                (models / "nano-escalation.json").string() + "\nmemory: " + db.string() + "\n"));
  cfg.threads = 0;
  Runtime rt(cfg);
  const std::string s = rt.memory().create_session();
  AskRequest q;
  q.session = s;
  q.text = "Sam has 30 cards. He gives 11 away. How many cards does Sam have now?";
  auto first = rt.ask({q});
  EXPECT_FALSE(first[0].escalated);
  EXPECT_EQ(first[0].mode, "fast");
  EXPECT_GT(first[0].turn_id, 0);
  q.text = "That's wrong. 30 - 11 isn't that, try again.";
  auto second = rt.ask({q});
  EXPECT_TRUE(second[0].escalated);
  EXPECT_EQ(second[0].escalated_by, "detector");
  EXPECT_GT(second[0].escalation_probability, 0.5);
  EXPECT_EQ(second[0].mode, "accurate");
  EXPECT_EQ(second[0].choice, "math");  // the complained-about answer's choice
  q.text = "Thanks! Now a new one: Kim has 3 packs of 11 cars. How many cars?";
  auto third = rt.ask({q});
  EXPECT_FALSE(third[0].escalated);

  auto turns = rt.memory().last_turns(s, 10);
  ASSERT_EQ(turns.size(), 6u);
  EXPECT_EQ(turns[0].role, "user");
  EXPECT_EQ(turns[1].role, "assistant");
  EXPECT_EQ(turns[1].choice, "math");
  EXPECT_EQ(turns[1].mode, "fast");
  EXPECT_TRUE(turns[3].escalated);
  EXPECT_EQ(turns[3].mode, "accurate");
  EXPECT_EQ(turns[3].decision["escalated_by"], "detector");
  EXPECT_EQ(turns[3].id, second[0].turn_id);
  // An unknown session is refused before anything runs.
  q.session = "no-such-session";
  EXPECT_THROW(rt.ask({q}), Error);
}

}  // namespace
}  // namespace cogumi
