// cogumi/data: the synthetic curriculum of the nano miniature model. Four domains, each written
// in its upstream benchmark's format so `cogumi eval` reads the files unchanged:
//
//   math/{split}.jsonl               GSM8K: {"question","answer"}, answer = worked lines + "#### N"
//   code/{split}.jsonl               HumanEval: {"task_id","prompt","entry_point",
//                                    "canonical_solution","test"}
//   reasoning/reasoning_{split}.csv  MMLU with header (0-based answer index). Load one file at a
//                                    time: the directory form would merge the splits. The loader
//                                    names dev and test "reasoning"; train keeps "reasoning_train".
//   automation/{split}.jsonl         BFCL, answers in automation/possible_answer/{split}.jsonl
//   mix/{domain}.jsonl               {"prompt","completion","category",...}: the domain's train split
//                                    asked exactly as `cogumi eval` asks it (completion mode)
//   mix/dev/{domain}.jsonl           the dev split in the same form (validation for early stopping)
//   mix/train.jsonl                  all four (the first n_mix items of each), shuffled together: the
//                                    base model's training set (with n_copy > 0, the copying items too)
//   mix/copy.jsonl                   with n_copy > 0: the copying and lookup items alone
//   mix/choice.jsonl                 with n_choice > 0: the option-lookup items alone
//   manifest.json                    seed, options, counts, files, the eval kind of each domain
//   templates.jsonl                  {"id","domain","split","template"}: each item's generator
//                                    template under its eval id (reference labels for clustering)
//
// ({split} is train, dev, test.) Small vocabularies and short texts, so a tiny model can learn some
// of it. Everything is a pure function of (seed, options): one std::mt19937_64 per domain, and our
// own uniform/shuffle helpers instead of <random>'s distributions (whose output the standard leaves
// to each library), so one seed gives byte-identical files with any compiler. Splits never share
// an item: each domain dedupes on its normalised question text, and routes each new item to the
// split its text hashes to (in proportion to the split sizes), drawing again until all are full.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "eval/benchmark.h"

namespace cogumi {

struct SynthOptions {
  uint64_t seed = 1;
  int n_train = 2000;  // items per domain and split
  int n_dev = 200;
  int n_test = 300;
  // 1..4. Math: up to this many arithmetic steps. Code, reasoning and automation: templates up to
  // this tier (longer loops, more premises, more tools to choose from, optional arguments).
  int difficulty = 2;
  std::map<std::string, int> domain_difficulty;  // per-domain overrides of `difficulty`
  // Training items per domain in the base model's mix (mix/train.jsonl): the first n_mix of each
  // domain's train split; 0 takes the whole split. The domain files (mix/{domain}.jsonl) always
  // hold the whole split, so a modifier can see more of its domain than the base did.
  int n_mix = 0;
  // Copying and lookup items (synth::copy_item: a name, number, word run or call carried over from the
  // prompt) added to the base's mix, also written to mix/copy.jsonl (category "copy"); no benchmark
  // split. 0 (the default) leaves every file as without it. 0..10^6.
  int n_copy = 0;
  // Option-lookup items in the multiple-choice prompt format `cogumi eval` uses for MMLU ("Which option
  // says: X" over a reasoning item's four options; the target names X, then its letter), added to the
  // base's mix and written to mix/choice.jsonl (category "choice"). They teach the one step the copying
  // base misses on reasoning: reading the letter off the option it named. Their own stream: 0 (the
  // default) leaves every file as without it. 0..10^6.
  int n_choice = 0;
  int threads = 0;  // domains made at once (0 = all cores), 0..1024: the files are the same at any count

  int difficulty_of(const std::string& domain) const;
  // "2" (every domain) or "math=1,code=3" (those domains; the rest keep `difficulty`), or both
  // ("2,math=1"). Throws Error naming the part it cannot read.
  void set_difficulty(const std::string& spec);
  // The spec back, in the form set_difficulty reads ("2" or "2,math=1").
  std::string difficulty_spec() const;
  // Throws Error naming the field that is out of range.
  void validate() const;
};

struct SynthStats {
  std::map<std::string, std::array<int, 3>> counts;  // domain -> {train, dev, test}
};

// Writes the curriculum described above under out_dir (created if missing; files are replaced
// atomically). Throws Error, before writing anything, if the options are invalid or a domain runs
// out of distinct items (code at difficulty 1 holds about 7,800; the other domains far more).
SynthStats synth_write(const std::filesystem::path& out_dir, const SynthOptions& opts);

// The domains in file order: math, code, reasoning, automation.
const std::vector<std::string>& synth_domains();

// ---- building blocks of the per-domain generators (synth_*.cpp), open to tests ----------------
namespace synth {

using ojson = nlohmann::ordered_json;  // keeps the upstream field order in the files

// Deterministic draws over one mt19937_64. Modulo reduction: the bias is below 2^-50 for the
// small ranges used here and, unlike std::uniform_int_distribution, it is the same everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  uint64_t next() { return gen_(); }
  int uniform(int lo, int hi) { return lo + int(gen_() % uint64_t(hi - lo + 1)); }  // [lo, hi]
  bool percent(int p) { return uniform(0, 99) < p; }
  template <typename C>
  const auto& pick(const C& c) {
    return c[size_t(uniform(0, int(std::size(c)) - 1))];
  }
  template <typename T>
  void shuffle(std::vector<T>& v) {  // Fisher-Yates
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[size_t(uniform(0, int(i) - 1))]);
  }

 private:
  std::mt19937_64 gen_;
};

// One generated item, before ids are given and it is written in its benchmark's format.
struct Item {
  std::string key;  // normalised question text: the dedup key
  // math: {question, answer}; code: the HumanEval fields but task_id; reasoning: the CSV row
  // [question, c0, c1, c2, c3, "index"]; automation: {question, function}.
  ojson record;
  ojson answer;                     // automation: the ground_truth list; otherwise null
  std::string instruction, output;  // the training-mix form
  // The generator's template (e.g. "math/1-step/sell", "automation/get_weather"): a reference
  // label for judging failure clusters, written to templates.jsonl, never into the benchmark
  // files. Set from choices already drawn, so recording it draws nothing.
  std::string template_name;
};

Item math_item(Rng& rng, int difficulty);
Item code_item(Rng& rng, int difficulty);
Item reasoning_item(Rng& rng, int difficulty);
Item automation_item(Rng& rng, int difficulty);
// One copying or lookup item (instruction, output, key, template_name; no benchmark record).
Item copy_item(Rng& rng);
// One option-lookup item as `cogumi eval` asks multiple choice (EvalItem of benchmark "mmlu", subject
// "reasoning"): a reasoning item's four options, the question "Which option says: X" for one of them.
EvalItem choice_lookup_item(Rng& rng, int difficulty);

// n distinct entries of `pool`, in draw order (one shuffle of the whole pool).
std::vector<std::string> distinct(Rng& r, std::vector<std::string> pool, int n);
// n distinct people's names ("Ann", "Bob", ...: the reasoning items' cast).
std::vector<std::string> person_names(Rng& r, int n);
// A city ("Paris", ...: the automation items' weather and travel arguments).
std::string city(Rng& r);

// Lower case, runs of anything but letters and digits become one space, trimmed.
std::string normalize_key(std::string_view s);
// "ann" -> "Ann".
std::string cap(std::string s);
// "a" or "an" for a word.
std::string article(std::string_view word);

}  // namespace synth
}  // namespace cogumi
