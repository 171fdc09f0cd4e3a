// cogumi/data: the synthetic curriculum of the nano miniature model. Four domains, each written
// in its upstream benchmark's format so `cogumi eval` reads the files unchanged:
//
//   math/{train,dev,test}.jsonl          GSM8K: {"question","answer"}, answer = worked lines + "#### N"
//   code/{train,dev,test}.jsonl          HumanEval: {"task_id","prompt","entry_point",
//                                        "canonical_solution","test"}
//   reasoning/reasoning_{split}.csv      MMLU with header (0-based answer index); load one file at a
//                                        time (the directory form would merge the splits), category
//                                        "reasoning"
//   automation/{split}.jsonl             BFCL, with possible_answer/{split}.jsonl beside it
//   mix/train.jsonl                      {"instruction","output","category"}: every domain's train split
//   manifest.json                        seed, options, counts, files, the eval kind of each domain
//
// Small vocabularies and short texts, so a tiny model can learn some of it. Everything is a pure
// function of (seed, options): one std::mt19937_64 per domain, and our own uniform/shuffle helpers
// instead of <random>'s distributions (whose output the standard leaves to each library), so one
// seed gives byte-identical files with any compiler. Splits never share an item: every domain
// dedupes on its normalised question text across all three splits and draws again on a collision.
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

namespace cogumi {

struct SynthOptions {
  uint64_t seed = 1;
  int n_train = 2000;  // items per domain and split
  int n_dev = 200;
  int n_test = 300;
  // 1..4. Math: up to this many arithmetic steps. Code, reasoning and automation: templates up to
  // this tier (longer loops, more premises, more tools to choose from, optional arguments).
  int difficulty = 2;

  // Throws Error naming the field that is out of range.
  void validate() const;
};

struct SynthStats {
  std::map<std::string, std::array<int, 3>> counts;  // domain -> {train, dev, test}
};

// Writes the curriculum described above under out_dir (created if missing; files are replaced
// atomically). Throws Error if the options are invalid or a domain runs out of distinct items
// (only possible with very large counts at difficulty 1).
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
  std::string key;     // normalised question text: the dedup key
  ojson record;        // math: {question, answer}; code: HumanEval fields but task_id;
                       // reasoning: [question, c0, c1, c2, c3, "index"]; automation: {question, function}
  ojson answer;        // automation: the ground_truth list; otherwise null
  std::string instruction, output;  // the training-mix form
};

Item math_item(Rng& rng, int difficulty);
Item code_item(Rng& rng, int difficulty);
Item reasoning_item(Rng& rng, int difficulty);
Item automation_item(Rng& rng, int difficulty);

// Lower case, runs of anything but letters and digits become one space, trimmed.
std::string normalize_key(std::string_view s);
// "ann" -> "Ann".
std::string cap(std::string s);
// "a" or "an" for a word.
std::string article(std::string_view word);

}  // namespace synth
}  // namespace cogumi
