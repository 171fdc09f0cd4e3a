#include "data/decontam.h"

#include "core/error.h"
#include "eval/benchmark.h"

namespace cogumi {

void DecontamOptions::validate() const {
  if (ngram < 1 || ngram > 64) fail("--ngram must be in 1..64, got {}", ngram);
  if (min_words < 1 || min_words > ngram) fail("--min-words must be in 1..--ngram ({}), got {}", ngram, min_words);
}

ContaminationIndex::ContaminationIndex(const DecontamOptions& opts) : opts_(opts) {
  opts_.validate();
  short_.resize(opts_.ngram);
  for (uint32_t b = 0; b < opts_.benches.size(); ++b) {
    const BenchSpec& spec = opts_.benches[b];
    std::vector<EvalItem> items = load_benchmark(spec.kind, spec.path);
    size_t n_ngrams = 0, unchecked = 0;
    for (const EvalItem& it : items) {
      uint32_t idx = uint32_t(items_.size());
      items_.push_back({b, it.id, it.question});
      bool checked = false;
      add_text(it.question, idx, n_ngrams, checked);
      add_text(it.solution, idx, n_ngrams, checked);
      if (!checked) unchecked++;
    }
    summary_.push_back({{"kind", spec.kind},
                        {"path", spec.path.string()},
                        {"items", items.size()},
                        {"ngrams", n_ngrams},
                        {"items_unchecked", unchecked}});
  }
}

void ContaminationIndex::add_text(const std::string& text, uint32_t item, size_t& n_ngrams, bool& checked) {
  std::vector<uint64_t> words;
  word_hashes(text, words);
  const int n = opts_.ngram;
  if (words.size() >= size_t(n)) {
    NgramHasher(n).each(words, [&](size_t, uint64_t h) {
      if (ngrams_.emplace(h, item).second) n_ngrams++;
    });
    checked = true;
  } else if (words.size() >= size_t(opts_.min_words)) {
    uint64_t h = 0;
    NgramHasher(int(words.size())).each(words, [&](size_t, uint64_t v) { h = v; });
    if (short_[words.size()].emplace(h, item).second) n_ngrams++;
    checked = true;
  }
}

std::optional<ContaminationMatch> ContaminationIndex::find(const std::vector<uint64_t>& words) const {
  std::optional<ContaminationMatch> best;
  const int n = opts_.ngram;
  if (!ngrams_.empty())
    NgramHasher(n).each(words, [&](size_t pos, uint64_t h) {
      if (best && best->position <= pos) return;
      auto it = ngrams_.find(h);
      if (it != ngrams_.end()) best = ContaminationMatch{it->second, uint32_t(pos), uint32_t(n)};
    });
  for (int len = opts_.min_words; len < n; ++len) {
    const auto& table = short_[len];
    if (table.empty()) continue;
    NgramHasher(len).each(words, [&](size_t pos, uint64_t h) {
      if (best && best->position <= pos) return;
      auto it = table.find(h);
      if (it != table.end()) best = ContaminationMatch{it->second, uint32_t(pos), uint32_t(len)};
    });
  }
  return best;
}

}  // namespace cogumi
