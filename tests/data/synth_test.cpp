// The synthetic curriculum: determinism, disjoint splits, counts, and that every file reads
// through the evaluator's own loaders with reference answers that score 100%.
#include "data/synth.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/io.h"
#include "eval/benchmark.h"
#include "eval/sandbox.h"
#include "eval/prompts.h"
#include "eval/score.h"
#include "test_util.h"

namespace cogumi {
namespace {

const char* const kSplits[] = {"train", "dev", "test"};

// The eval kind and file of one domain's split, as `cogumi eval` is given them.
std::pair<std::string, fs::path> bench_of(const fs::path& dir, const std::string& domain,
                                          const std::string& split) {
  if (domain == "math") return {"gsm8k", dir / "math" / (split + ".jsonl")};
  if (domain == "code") return {"humaneval", dir / "code" / (split + ".jsonl")};
  if (domain == "reasoning") return {"mmlu", dir / "reasoning" / ("reasoning_" + split + ".csv")};
  return {"bfcl", dir / "automation" / (split + ".jsonl")};
}

std::vector<EvalItem> load(const fs::path& dir, const std::string& domain,
                           const std::string& split) {
  auto [kind, path] = bench_of(dir, domain, split);
  return load_benchmark(kind, path);
}

// The default curriculum, written once per test binary (seed 1, and seed 2 for the difference).
const fs::path& default_dir(uint64_t seed = 1) {
  static std::map<uint64_t, fs::path> dirs;
  auto it = dirs.find(seed);
  if (it != dirs.end()) return it->second;
  fs::path d = test::tmp_dir() / fmt::format("synth-default-{}", seed);
  SynthOptions o;
  o.seed = seed;
  synth_write(d, o);
  return dirs[seed] = d;
}

std::map<std::string, std::string> read_tree(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) out[fs::relative(e.path(), root).string()] = read_file(e.path());
  return out;
}

// A curriculum written without and with one option's extra items (`add` sets it), and once more with them: the same
// seed gives the same bytes, exactly one file is new (`added`), and every file but the mix and the manifest is byte
// for byte the same. Returns the trees without and with.
std::pair<std::map<std::string, std::string>, std::map<std::string, std::string>> without_and_with(
    SynthOptions o, const std::string& name, const std::function<void(SynthOptions&)>& add, const std::string& added) {
  const fs::path plain = test::tmp_dir() / (name + "-0"), with = test::tmp_dir() / (name + "-with"),
                 again = test::tmp_dir() / (name + "-with-again");
  synth_write(plain, o);
  add(o);
  synth_write(with, o);
  synth_write(again, o);
  auto a = read_tree(plain), b = read_tree(with);
  EXPECT_TRUE(b == read_tree(again)) << "same seed gave different files";
  EXPECT_EQ(b.size(), a.size() + 1);
  EXPECT_TRUE(b.count(added) && !a.count(added)) << added;
  for (const auto& [file, text] : a) {
    if (file == "mix/train.jsonl" || file == "manifest.json") continue;
    EXPECT_EQ(b.at(file), text) << file;  // the domains (and other extra items) draw as before
  }
  return {std::move(a), std::move(b)};
}

// What makes two items the same task: the question, or for code the prompt without its example.
std::string task_key(const EvalItem& it) {
  std::string q =
      it.kind == TaskKind::kCode ? it.question.substr(0, it.question.find(">>>")) : it.question;
  return synth::normalize_key(q);
}

TEST(Synth, SameSeedSameBytesOtherSeedDiffers) {
  fs::path again = test::tmp_dir() / "synth-again";
  synth_write(again, SynthOptions{});
  auto a = read_tree(default_dir(1)), b = read_tree(again), c = read_tree(default_dir(2));
  // 3 splits x 4 domains, 3 BFCL answer files, 4 + 4 + 1 mixes, the manifest, templates.jsonl
  ASSERT_EQ(a.size(), 26u);
  EXPECT_TRUE(a == b) << "same seed gave different files";
  for (auto& [name, text] : a) {
    if (name == "manifest.json") continue;
    EXPECT_NE(text, c[name]) << name << " is the same for seeds 1 and 2";
  }
}

// Domains are made on threads of their own (SynthOptions::threads) and merged in domain order: one thread and three
// write the same files, extra items included.
TEST(Synth, SameBytesAtAnyThreadCount) {
  SynthOptions o;
  o.n_train = 300, o.n_dev = 20, o.n_test = 30, o.n_mix = 100, o.n_copy = 50, o.n_choice = 50;
  o.threads = 1;
  synth_write(test::tmp_dir() / "synth-t1", o);
  o.threads = 3;
  synth_write(test::tmp_dir() / "synth-t3", o);
  auto a = read_tree(test::tmp_dir() / "synth-t1"), b = read_tree(test::tmp_dir() / "synth-t3");
  ASSERT_EQ(a.size(), 28u);
  for (auto& [name, text] : a) EXPECT_TRUE(b.count(name) && b.at(name) == text) << name << " differs";
}

// The shipped base (models/nano-base.json) was trained on this recipe's curriculum, and the main job regenerates it
// (its `data` stage): every file byte for byte as when the base was made. A generator change that moves any item
// fails here; it needs a new base, not a new hash.
TEST(Synth, TheShippedBasesCurriculumIsRegeneratedByteForByte) {
  SynthOptions o;
  o.seed = 1, o.n_train = 12000, o.n_dev = 200, o.n_test = 300, o.n_mix = 3000, o.n_copy = 6000;
  o.set_difficulty("2,math=1");
  const fs::path dir = test::tmp_dir() / "synth-shipped";
  synth_write(dir, o);
  std::string all;
  for (auto& [name, text] : read_tree(dir)) all += name + "\n" + sha256_hex(text) + "\n";
  EXPECT_EQ(sha256_hex(all), "4df48ec8b7da94c2a48a57269fe1314733beb76d217101315820cd38d7343121");
}

// Copying items (SynthOptions::n_copy, issue 13: the nano base rarely carries names and values from its question
// into its answer): every one's answer is made of words of its own prompt, prompts are distinct, all six kinds
// appear, the same seed gives the same bytes; the mix gains exactly those rows, and every other file (the
// benchmark splits, the per-domain mixes) is byte for byte what it is without them.
TEST(Synth, CopyingItemsCarryTheirAnswerFromThePromptAndChangeNothingElse) {
  SynthOptions o;
  o.n_train = 60, o.n_dev = 10, o.n_test = 10;
  const auto [a, b] = without_and_with(o, "synth-copy", [](SynthOptions& x) { x.n_copy = 300; }, "mix/copy.jsonl");
  ASSERT_EQ(b.size(), a.size() + 1);  // + mix/copy.jsonl
  std::set<std::string> prompts, kinds;
  const std::regex word("[A-Za-z0-9_]+");
  auto words = [&](const std::string& t) {
    std::set<std::string> w;
    for (std::sregex_iterator i(t.begin(), t.end(), word), e; i != e; ++i) w.insert(i->str());
    return w;
  };
  size_t rows = 0;
  std::istringstream copies(b.at("mix/copy.jsonl"));
  for (std::string line; std::getline(copies, line); ++rows) {
    const json r = json::parse(line);
    EXPECT_EQ(r.at("category"), "copy");
    const std::string prompt = r.at("prompt"), completion = r.at("completion");
    prompts.insert(prompt);
    kinds.insert(r.at("template").get<std::string>());
    const auto in_prompt = words(prompt);
    for (const auto& w : words(completion)) EXPECT_TRUE(in_prompt.count(w)) << "'" << w << "' of " << line;
  }
  EXPECT_EQ(rows, 300u);
  EXPECT_EQ(prompts.size(), 300u);
  EXPECT_EQ(kinds, (std::set<std::string>{"copy/list", "copy/lookup", "copy/repeat", "copy/variable", "copy/call",
                                          "copy/def"}));
  auto lines = [](const std::string& t) { return size_t(std::count(t.begin(), t.end(), '\n')); };
  EXPECT_EQ(lines(b.at("mix/train.jsonl")), lines(a.at("mix/train.jsonl")) + 300);
  EXPECT_EQ(json::parse(b.at("manifest.json"))["options"]["n_copy"], 300);
  EXPECT_FALSE(json::parse(a.at("manifest.json"))["options"].contains("n_copy"));
  o.n_copy = -1;
  EXPECT_NE(test::error_of([&] { o.validate(); }).find("n_copy must be in 0..1000000"), std::string::npos);
}

// Option-lookup items (SynthOptions::n_choice, issue 13: the copying base names the right option of a reasoning
// item far more often than it gives that option's letter): each is the reasoning benchmark's own prompt (read back
// by eval's MMLU loader it asks the same text), the option it quotes is the one its letter names and the one its
// target names; prompts are distinct, the same seed gives the same bytes, and every other file is as without them.
TEST(Synth, OptionLookupItemsUseTheEvalPromptAndNameTheQuotedOptionsLetter) {
  SynthOptions o;
  o.n_train = 40, o.n_dev = 10, o.n_test = 10, o.n_copy = 50;
  const auto [a, b] =
      without_and_with(o, "synth-choice", [](SynthOptions& x) { x.n_choice = 200; }, "mix/choice.jsonl");
  ASSERT_EQ(b.size(), a.size() + 1);  // + mix/choice.jsonl
  // The reasoning dev split's prompts, as eval asks them: the lookup items must share their frame.
  const auto dev = load_benchmark("mmlu", test::tmp_dir() / "synth-choice-with" / "reasoning" / "reasoning_dev.csv");
  ASSERT_FALSE(dev.empty());
  const std::string frame = build_prompt(dev[0], {}, false).text;
  const std::string head = frame.substr(0, frame.find("\n\n") + 2);
  std::set<std::string> prompts;
  std::map<char, int> letters;
  size_t rows = 0;
  std::istringstream in(b.at("mix/choice.jsonl"));
  const std::regex opt("\n([ABCD])\\. ([^\n]*)");
  for (std::string line; std::getline(in, line); ++rows) {
    const json r = json::parse(line);
    EXPECT_EQ(r.at("category"), "choice");
    const std::string prompt = r.at("prompt"), completion = r.at("completion");
    prompts.insert(prompt);
    EXPECT_EQ(prompt.rfind(head, 0), 0u) << prompt;
    EXPECT_EQ(prompt.substr(prompt.size() - 8), "\nAnswer:") << prompt;
    std::map<std::string, std::string> by_letter;
    for (std::sregex_iterator i(prompt.begin(), prompt.end(), opt), e; i != e; ++i) by_letter[(*i)[1]] = (*i)[2];
    ASSERT_EQ(by_letter.size(), 4u) << prompt;
    const std::string quoted = prompt.substr(head.size() + std::string("Which option says: ").size(),
                                             prompt.find('\n', head.size()) - head.size() - 19);
    std::smatch m;
    ASSERT_TRUE(std::regex_match(completion, m, std::regex(" (.*)\nAnswer: ([ABCD])"))) << completion;
    EXPECT_EQ(m[1].str(), quoted) << line;
    EXPECT_EQ(by_letter.at(m[2].str()), quoted) << line;
    ++letters[m[2].str()[0]];
  }
  EXPECT_EQ(rows, 200u);
  EXPECT_EQ(prompts.size(), 200u);
  EXPECT_EQ(letters.size(), 4u);  // every position asked
  for (const auto& [l, n] : letters) EXPECT_GT(n, 25) << l;
  auto lines = [](const std::string& t) { return size_t(std::count(t.begin(), t.end(), '\n')); };
  EXPECT_EQ(lines(b.at("mix/train.jsonl")), lines(a.at("mix/train.jsonl")) + 200);
  EXPECT_EQ(json::parse(b.at("manifest.json"))["options"]["n_choice"], 200);
  EXPECT_FALSE(json::parse(a.at("manifest.json"))["options"].contains("n_choice"));
  o.n_choice = 1000001;
  EXPECT_NE(test::error_of([&] { o.validate(); }).find("n_choice must be in 0..1000000"), std::string::npos);
}

TEST(Synth, CountsAsRequested) {
  SynthOptions o;
  o.seed = 5;
  o.n_train = 37;
  o.n_dev = 0;
  o.n_test = 11;
  o.difficulty = 3;
  fs::path dir = test::tmp_dir() / "synth-counts";
  SynthStats s = synth_write(dir, o);
  ASSERT_EQ(s.counts.size(), 4u);
  for (const auto& domain : synth_domains()) {
    EXPECT_EQ(s.counts[domain], (std::array<int, 3>{37, 0, 11})) << domain;
    EXPECT_EQ(load(dir, domain, "train").size(), 37u) << domain;
    EXPECT_EQ(load(dir, domain, "test").size(), 11u) << domain;
    // An empty split is an empty file (the loaders refuse it as a benchmark, by design).
    EXPECT_EQ(fs::file_size(bench_of(dir, domain, "dev").second), domain == "reasoning" ? 48u : 0u)
        << domain;
  }
  EXPECT_EQ(load_jsonl(dir / "mix" / "train.jsonl").size(), 4u * 37u);
  json m = json::parse(read_file(dir / "manifest.json"));
  EXPECT_EQ(m["seed"], 5);
  EXPECT_EQ(m["options"]["difficulty"], "3");
  EXPECT_EQ(m["counts"]["code"]["test"], 11);
  EXPECT_EQ(m["eval_kind"]["automation"], "bfcl");
}

TEST(Synth, PerDomainDifficultyAndAPartialMix) {
  // "3,math=1": math problems take one step, the other domains are written at 3; the base's mix
  // holds the first 10 training items of each domain while the domain files hold all 30.
  SynthOptions o;
  o.set_difficulty("3,math=1");
  EXPECT_EQ(o.difficulty_of("math"), 1);
  EXPECT_EQ(o.difficulty_of("code"), 3);
  EXPECT_EQ(o.difficulty_spec(), "3,math=1");
  SynthOptions spaced;
  spaced.set_difficulty(" 3, math = 1 ");
  EXPECT_EQ(spaced.difficulty_spec(), "3,math=1");
  o.n_train = 30, o.n_dev = 5, o.n_test = 5, o.n_mix = 10;
  fs::path dir = test::tmp_dir() / "synth-per-domain";
  synth_write(dir, o);
  for (const auto& it : load(dir, "math", "train"))
    EXPECT_EQ(std::count(it.solution.begin(), it.solution.end(), '='), 1) << it.solution;
  auto mix = load_jsonl(dir / "mix" / "train.jsonl");
  EXPECT_EQ(mix.size(), 40u);
  for (const auto& domain : synth_domains()) {
    auto all = load_jsonl(dir / "mix" / (domain + ".jsonl"));
    ASSERT_EQ(all.size(), 30u) << domain;
    std::set<std::string> first10;
    for (size_t i = 0; i < 10; ++i) first10.insert(all[i]["source_id"].get<std::string>());
    size_t in_mix = 0;
    for (const auto& m : mix)
      if (m["category"] == domain) {
        EXPECT_TRUE(first10.count(m["source_id"].get<std::string>())) << domain << " " << m.dump();
        ++in_mix;
      }
    EXPECT_EQ(in_mix, 10u) << domain;
  }
  json m = json::parse(read_file(dir / "manifest.json"));
  EXPECT_EQ(m["options"]["difficulty"], "3,math=1");
  EXPECT_EQ(m["options"]["n_mix"], 10);
  // A bad spec names the part it cannot read.
  for (const char* bad : {"5", "math=0", "physics=2", "two", "math=1,", "2,3", "math=1,math=2"}) {
    try {
      SynthOptions b;
      b.set_difficulty(bad);
      ADD_FAILURE() << bad << ": no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("difficulty"), std::string::npos) << e.what();
    }
  }
}

TEST(Synth, SplitsShareNoQuestion) {
  for (const auto& domain : synth_domains()) {
    std::map<std::string, std::string> where;  // key -> split
    size_t n = 0;
    for (const char* split : kSplits)
      for (const auto& it : load(default_dir(), domain, split)) {
        ++n;
        auto [pos, fresh] = where.emplace(task_key(it), split);
        EXPECT_TRUE(fresh) << domain << ": '" << it.question << "' is in " << pos->second << " and "
                           << split;
      }
    EXPECT_EQ(n, 2500u) << domain;
  }
}

TEST(Synth, LoadsWithTheRightKind) {
  const fs::path& dir = default_dir();
  auto math = load(dir, "math", "test");
  EXPECT_EQ(math[0].benchmark, "gsm8k");
  EXPECT_EQ(math[0].kind, TaskKind::kNumeric);
  EXPECT_EQ(math[0].id, "test.jsonl:0");
  auto code = load(dir, "code", "dev");
  EXPECT_EQ(code[0].kind, TaskKind::kCode);
  EXPECT_EQ(code[0].id, "SynthCode/dev/0");
  EXPECT_NE(code[0].code_prompt.find("def " + code[0].entry_point + "("), std::string::npos);
  auto mc = load(dir, "reasoning", "test");
  EXPECT_EQ(mc[0].benchmark, "mmlu");
  EXPECT_EQ(mc[0].id, "reasoning_test.csv:0");
  ASSERT_EQ(mc[0].choices.size(), 4u);
  // The MMLU loader strips _test/_dev/_val/_train from a file's name to get its subject.
  EXPECT_EQ(mc[0].category, "reasoning");
  EXPECT_EQ(load(dir, "reasoning", "dev")[0].category, "reasoning");
  auto tools = load(dir, "automation", "test");
  EXPECT_EQ(tools[0].kind, TaskKind::kToolCall);
  EXPECT_EQ(tools[0].id, "automation_test_0");
  EXPECT_FALSE(tools[0].question.empty());
  std::map<std::string, int> per;
  read_jsonl(dir / "mix" / "train.jsonl", [&](const json& j, size_t) { ++per[j.at("category").get<std::string>()]; });
  EXPECT_EQ(per, (std::map<std::string, int>{
                     {"automation", 2000}, {"code", 2000}, {"math", 2000}, {"reasoning", 2000}}));
}

TEST(Synth, MathWorkedAnswersAreRightAndScore) {
  static const std::regex step(R"(^(\d+) ([-+*/]) (\d+) = (\d+)$)");
  for (int difficulty : {1, 4}) {
    SynthOptions o;
    o.difficulty = difficulty;
    o.n_train = 300;
    fs::path dir = test::tmp_dir() / fmt::format("synth-math-{}", difficulty);
    synth_write(dir, o);
    int most_steps = 0;
    for (const char* split : kSplits)
      for (const auto& it : load(dir, "math", split)) {
        ItemScore s = score_output(it, it.solution, "stop");
        ASSERT_TRUE(s.correct && s.correct_strict) << it.id << ": " << it.solution;
        std::istringstream in(it.solution);
        int steps = 0;
        long last = -1;
        for (std::string line; std::getline(in, line) && line.rfind("####", 0) != 0; ++steps) {
          std::smatch m;
          ASSERT_TRUE(std::regex_match(line, m, step)) << it.id << ": '" << line << "'";
          long a = std::stol(m[1]), b = std::stol(m[3]), c = std::stol(m[4]);
          char op = m[2].str()[0];
          long want = op == '+' ? a + b : op == '-' ? a - b : op == '*' ? a * b : a / b;
          ASSERT_EQ(c, want) << it.id << ": " << line;
          if (op == '/') {
            ASSERT_EQ(a % b, 0) << it.id << ": " << line;
          }
          last = c;
        }
        ASSERT_EQ(std::to_string(last), it.reference) << it.id;
        ASSERT_GE(steps, 1);
        ASSERT_LE(steps, difficulty) << it.id;
        most_steps = std::max(most_steps, steps);
      }
    EXPECT_EQ(most_steps, difficulty);
  }
}

TEST(Synth, ReasoningLettersScoreAndOptionsAreDistinct) {
  std::set<std::string> answers;
  for (const char* split : kSplits)
    for (const auto& it : load(default_dir(), "reasoning", split)) {
      ASSERT_TRUE(score_output(it, it.reference, "stop").correct) << it.id;
      ASSERT_TRUE(score_output(it, "The answer is (" + it.reference + ").", "stop").correct_strict)
          << it.id;
      std::string wrong(1, it.reference == "A" ? 'B' : 'A');
      ASSERT_FALSE(score_output(it, wrong, "stop").correct) << it.id;
      ASSERT_EQ(std::set<std::string>(it.choices.begin(), it.choices.end()).size(), 4u) << it.id;
      answers.insert(it.reference);
    }
  EXPECT_EQ(answers, (std::set<std::string>{"A", "B", "C", "D"}));  // shuffled, not always first
}

// The call a model should produce: each argument's first accepted value, "" ones left out.
json canonical_call(const json& ground_truth) {
  auto entry = ground_truth[0].begin();
  json a = json::object();
  for (auto& [k, v] : entry.value().items())
    if (v[0] != "") a[k] = v[0];
  return {{"name", entry.key()}, {"arguments", a}};
}

TEST(Synth, AutomationCanonicalCallsScore) {
  std::set<std::string> called;
  for (int difficulty : {1, 2, 4}) {
    SynthOptions o;
    o.difficulty = difficulty;
    o.n_train = 200;
    fs::path dir = difficulty == 2 ? default_dir()
                                   : test::tmp_dir() / fmt::format("synth-tools-{}", difficulty);
    if (difficulty != 2) synth_write(dir, o);
    for (const char* split : kSplits)
      for (const auto& it : load(dir, "automation", split)) {
        ASSERT_EQ(it.ground_truth.size(), 1u) << it.id;
        json call = canonical_call(it.ground_truth);
        std::string name = call["name"];
        called.insert(name);
        ItemScore s = score_output(it, call.dump(), "stop");
        ASSERT_TRUE(s.correct) << it.id << ": " << s.detail;
        // The called function is offered, with 2-4 functions in all, and its arguments are its own.
        ASSERT_GE(it.functions.size(), 2u);
        ASSERT_LE(it.functions.size(), 4u);
        if (difficulty == 1) {
          ASSERT_EQ(it.functions.size(), 2u);
        }
        if (difficulty == 4) {
          ASSERT_EQ(it.functions.size(), 4u);
        }
        const json* fn = nullptr;
        for (auto& f : it.functions)
          if (f["name"] == name) fn = &f;
        ASSERT_NE(fn, nullptr) << it.id;
        for (auto& [k, v] : call["arguments"].items())
          ASSERT_TRUE((*fn)["parameters"]["properties"].contains(k)) << k;
        for (auto& r : (*fn)["parameters"]["required"])
          ASSERT_TRUE(call["arguments"].contains(r)) << it.id << " " << r;
        // A wrong function or a changed value is refused.
        json wrong = call;
        wrong["name"] =
            name == it.functions[0]["name"] ? it.functions[1]["name"] : it.functions[0]["name"];
        ASSERT_FALSE(score_output(it, wrong.dump(), "stop").correct) << it.id;
        json changed = call;
        auto& first = *changed["arguments"].begin();
        first = first.is_number() ? json(first.get<double>() + 1) : json("zzz");
        ASSERT_FALSE(score_output(it, changed.dump(), "stop").correct) << it.id;
      }
  }
  EXPECT_GE(called.size(), 10u);
}

TEST(Synth, MixIsAskedAsEvalAsksAndItsCompletionsScore) {
  // Every train item is in the mix exactly once, with eval's zero-shot completion prompt, and
  // the completion, scored as a model output, is correct (code: the canonical body).
  auto mix = load_jsonl(default_dir() / "mix" / "train.jsonl");
  std::map<std::string, json> by_id;
  for (const auto& m : mix) {
    ASSERT_TRUE(m.contains("prompt") && m.contains("completion")) << m.dump();
    ASSERT_TRUE(by_id.emplace(m["category"].get<std::string>() + "/" + m["source_id"].get<std::string>(), m).second);
  }
  size_t n = 0;
  for (const char* domain : {"math", "code", "reasoning", "automation"}) {
    auto items = load(default_dir(), domain, "train");
    auto per_domain = load_jsonl(default_dir() / "mix" / (std::string(domain) + ".jsonl"));
    EXPECT_EQ(per_domain.size(), items.size()) << domain;
    for (const auto& it : items) {
      auto f = by_id.find(std::string(domain) + "/" + it.id);
      ASSERT_NE(f, by_id.end()) << domain << " " << it.id;
      const json& m = f->second;
      EXPECT_EQ(m["prompt"], build_prompt(it, {}, false).text);
      std::string out = m["completion"];
      if (it.kind == TaskKind::kCode)
        EXPECT_EQ(out, it.solution);
      else
        ASSERT_TRUE(score_output(it, out, "stop").correct_strict) << domain << " " << it.id << ": " << out;
      ++n;
    }
  }
  EXPECT_EQ(n, mix.size());
}

TEST(Synth, BadOptionsNameTheField) {
  SynthOptions o;
  o.difficulty = 5;
  try {
    synth_write(test::tmp_dir() / "synth-bad", o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("difficulty"), std::string::npos) << e.what();
  }
  o.difficulty = 2;
  o.threads = 1025;
  EXPECT_THROW(synth_write(test::tmp_dir() / "synth-bad", o), Error);
  o.threads = 0;
  o.n_test = -1;
  EXPECT_THROW(synth_write(test::tmp_dir() / "synth-bad", o), Error);
  EXPECT_FALSE(fs::exists(test::tmp_dir() / "synth-bad"));
}

std::string sandbox_report(const std::vector<EvalItem>& items,
                           const std::vector<std::string>& programs,
                           const std::vector<SandboxResult>& res, bool want_pass) {
  std::string why;
  int shown = 0;
  for (size_t i = 0; i < res.size() && shown < 3; ++i)
    if ((res[i].outcome == SandboxOutcome::kPassed) != want_pass) {
      why += fmt::format("{}: {}\n{}\n{}\n", items[i].id, sandbox_outcome_name(res[i].outcome),
                         programs[i], res[i].stderr_tail);
      ++shown;
    }
  return why;
}

TEST(Synth, CanonicalCodePassesInTheSandbox) {
  std::string why;
  // A missing sandbox is a failure that says why, never a skip.
  ASSERT_TRUE(sandbox_available(&why)) << "the code checks need the bubblewrap sandbox: " << why;
  // Every template tier, one program per item as `cogumi eval` runs them...
  SynthOptions o;
  o.seed = 3;
  o.difficulty = 4;
  o.n_train = 30;
  o.n_dev = 10;
  o.n_test = 20;
  fs::path dir = test::tmp_dir() / "synth-code";
  synth_write(dir, o);
  std::vector<EvalItem> items;
  for (const char* split : kSplits)
    for (auto& it : load(dir, "code", split)) items.push_back(std::move(it));
  std::vector<std::string> good, bad;
  for (const auto& it : items) {
    good.push_back(code_program(it, it.solution));
    bad.push_back(
        code_program(it, "    return None\n"));  // tests that accept anything would pass this
  }
  SandboxOptions so;
  auto res = run_python_batch(good, so, 2);
  for (const auto& r : res)
    EXPECT_EQ(r.outcome, SandboxOutcome::kPassed) << sandbox_report(items, good, res, true);
  auto res_bad = run_python_batch(bad, so, 2);
  for (const auto& r : res_bad)
    EXPECT_NE(r.outcome, SandboxOutcome::kPassed) << sandbox_report(items, bad, res_bad, false);

  // ...and the whole default curriculum in one interpreter (each program in a fresh namespace),
  // which is far quicker than 2,500 sandboxes.
  std::vector<std::string> all;
  for (const char* split : kSplits)
    for (const auto& it : load(default_dir(), "code", split))
      all.push_back(code_program(it, it.solution));
  std::string program =
      "import json\nprograms = json.loads(" + json(json(all).dump()).dump() +
      ")\nfailed = 0\nfor i, p in enumerate(programs):\n    try:\n        exec(p, {'__name__': "
      "'c'})\n"
      "    except BaseException as e:\n        failed += 1\n        print(i, repr(e))\n"
      "print(len(programs), 'programs', failed, 'failed')\nassert failed == 0\n";
  SandboxResult r = run_python_sandboxed(program, so);
  EXPECT_EQ(r.outcome, SandboxOutcome::kPassed) << r.stdout_tail << r.stderr_tail;
  EXPECT_NE(r.stdout_tail.find("2500 programs 0 failed"), std::string::npos) << r.stdout_tail;
}

}  // namespace
}  // namespace cogumi
