// cogumi/data: decontamination against benchmark test sets by n-gram overlap, as the GPT-3 paper
// and lm-evaluation-harness do: a training text that shares one normalized word n-gram (13 by
// default) with a benchmark item's question or reference solution is contaminated. An item
// shorter than n words is matched whole when it has at least min_words words (GPT-3 lowered n
// for short items the same way); shorter ones cannot be told from common phrases and are
// counted as unchecked. Benchmarks are read by the eval loaders (eval/benchmark.h), so any
// benchmark `cogumi eval --bench KIND=PATH` reads can be named.
//
// Thread safety: a built ContaminationIndex is immutable; find() may be called from many threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/minhash.h"
#include "eval/run.h"

namespace cogumi {

struct DecontamOptions {
  std::vector<BenchSpec> benches;  // KIND=PATH, as `cogumi eval --bench`
  int ngram = 13;                  // 1..64
  int min_words = 8;               // shorter items are not checked; 1..ngram
  void validate() const;           // throws Error naming the option
};

struct ContaminationMatch {
  uint32_t item = 0;    // index into ContaminationIndex::items()
  uint32_t position = 0, length = 0;  // the matching words of the training text
};

struct BenchItemRef {
  uint32_t bench = 0;   // index into the specs
  std::string id;       // the benchmark's item id
  std::string question;
};

class ContaminationIndex {
 public:
  explicit ContaminationIndex(const DecontamOptions& opts);  // loads every benchmark
  bool empty() const { return items_.empty(); }
  // The first matching n-gram of a text given as word hashes (word_hashes()).
  std::optional<ContaminationMatch> find(const std::vector<uint64_t>& words) const;
  const std::vector<BenchItemRef>& items() const { return items_; }
  const DecontamOptions& options() const { return opts_; }
  // Per benchmark: {kind, path, items, ngrams, items_unchecked}.
  const std::vector<nlohmann::json>& summary() const { return summary_; }

 private:
  void add_text(const std::string& text, uint32_t item, size_t& n_ngrams, bool& checked);
  DecontamOptions opts_;
  std::vector<BenchItemRef> items_;
  std::unordered_map<uint64_t, uint32_t> ngrams_;                 // n-gram hash -> item
  std::vector<std::unordered_map<uint64_t, uint32_t>> short_;   // [len]: whole short items
  std::vector<nlohmann::json> summary_;
};

}  // namespace cogumi
