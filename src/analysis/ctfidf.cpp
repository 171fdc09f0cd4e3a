// c-TF-IDF cluster terms and the tokenizer they share with the text features.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

#include "analysis/cluster_detail.h"
#include "core/error.h"

namespace cogumi::cluster_detail {

// ---- c-TF-IDF -----------------------------------------------------------------------------

namespace {

const std::unordered_set<std::string_view>& stopwords() {
  static const std::unordered_set<std::string_view> words = {
      "about",   "above",   "after", "again",   "against",   "all",    "also",       "and",
      "any",     "are",     "aren",  "because", "been",      "before", "being",      "below",
      "between", "both",    "but",   "can",     "cannot",    "could",  "couldn",     "did",
      "didn",    "does",    "doesn", "doing",   "don",       "down",   "during",     "each",
      "either",  "else",    "etc",   "even",    "ever",      "every",  "few",        "for",
      "from",    "further", "get",   "gets",    "got",       "had",    "has",        "have",
      "having",  "her",     "here",  "hers",    "herself",   "him",    "himself",    "his",
      "how",     "however", "into",  "isn",     "its",       "itself", "just",       "let",
      "like",    "may",     "might", "more",    "most",      "much",   "must",       "myself",
      "neither", "nor",     "not",   "now",     "off",       "once",   "one",        "only",
      "other",   "others",  "our",   "ours",    "ourselves", "out",    "over",       "own",
      "same",    "shall",   "she",   "should",  "shouldn",   "since",  "some",       "such",
      "than",    "that",    "the",   "their",   "theirs",    "them",   "themselves", "then",
      "there",   "these",   "they",  "this",    "those",     "though", "through",    "too",
      "under",   "until",   "upon",  "very",    "was",       "wasn",   "way",        "were",
      "weren",   "what",    "when",  "where",   "whether",   "which",  "while",      "who",
      "whom",    "whose",   "why",   "will",    "with",      "within", "without",    "won",
      "would",   "wouldn",  "yet",   "you",     "your",      "yours",  "yourself",   "yourselves"};
  return words;
}

}  // namespace

void tokenize(std::string_view text, std::vector<std::string>& out) {
  std::string tok;
  auto flush = [&] {
    bool digits =
        std::all_of(tok.begin(), tok.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
    if (tok.size() >= 3 && !digits && !stopwords().count(tok)) out.push_back(tok);
    tok.clear();
  };
  for (char ch : text) {
    auto u = static_cast<unsigned char>(ch);
    if ((u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || u >= 0x80) {
      tok += ch;
    } else if (u >= 'A' && u <= 'Z') {
      tok += static_cast<char>(u - 'A' + 'a');
    } else if (!tok.empty()) {
      flush();
    }
  }
  if (!tok.empty()) flush();
}
}  // namespace cogumi::cluster_detail

namespace cogumi {

using namespace cluster_detail;

std::vector<std::vector<std::pair<std::string, double>>> ctfidf_terms(
    const std::vector<std::string>& texts, const std::vector<int>& assignment, int k, int n_terms) {
  if (texts.size() != assignment.size()) {
    fail("ctfidf_terms: {} texts but {} assignments", texts.size(), assignment.size());
  }
  if (k < 0) fail("ctfidf_terms: k must not be negative (got {})", k);
  std::vector<std::unordered_map<std::string, double>> tf(k);
  std::vector<double> words(k, 0.0);
  std::unordered_map<std::string, double> freq;  // f(t): count over all clusters
  std::vector<std::string> tokens;
  for (size_t i = 0; i < texts.size(); ++i) {
    int c = assignment[i];
    if (c < 0 || c >= k) fail("ctfidf_terms: assignment {} of item {} is outside [0, {})", c, i, k);
    tokens.clear();
    tokenize(texts[i], tokens);
    for (auto& t : tokens) {
      tf[c][t] += 1;
      freq[t] += 1;
    }
    words[c] += static_cast<double>(tokens.size());
  }
  double avg_words = k > 0 ? std::accumulate(words.begin(), words.end(), 0.0) / k : 0.0;
  std::vector<std::vector<std::pair<std::string, double>>> out(k);
  for (int c = 0; c < k; ++c) {
    auto& terms = out[c];
    for (const auto& [t, count] : tf[c]) {
      terms.emplace_back(t, count / words[c] * std::log(1.0 + avg_words / freq[t]));
    }
    std::sort(terms.begin(), terms.end(), [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    if (terms.size() > static_cast<size_t>(std::max(0, n_terms)))
      terms.resize(std::max(0, n_terms));
  }
  return out;
}
}  // namespace cogumi
