// cogumi/analysis: what a failure is clustered on. Three blocks, each scaled to unit length and
// then by a weight the user sets, so no block wins by its dimension alone:
//   embed  mean-pooled hidden states, centred and whitened in their top principal components
//          (a causal LM's pooled states share a few dominant directions that say "this is
//          text", not what went wrong; whitening takes their weight away);
//   text   hashed TF-IDF of word and symbol unigrams and bigrams of the question, the model's
//          output and the reference, each token marked with its field, in one bag;
//   type   the failure type, one-hot.
#pragma once

#include <string>
#include <vector>

namespace cogumi {

struct FailureFeatureOptions {
  double w_embed = 0.5;  // 0 leaves the embeddings out (and then no model is needed)
  double w_text = 1.0;
  double w_type = 0.5;
  bool whiten = true;       // false: embeddings as the model gives them (today's behaviour)
  int whiten_dims = 32;     // principal components kept by whitening, 2..1024
  int text_buckets = 4096;  // hash buckets of the text bag, 64..1<<20
  // Exponent of the text IDF: 1 is classic TF-IDF, 0 plain (sublinear) term frequency. Failures
  // of one template share its wording and differ in fillers (names, numbers), so full IDF can
  // weigh the fillers above the template.
  double idf_power = 1.0;
  int text_dims = 64;     // text block reduced to this many principal components; 0 keeps all
  void validate() const;  // throws Error naming the option
  bool needs_embeddings() const { return w_embed > 0; }
};

struct FailureText {
  std::string question, output, reference, failure_type;
};

// One feature row per failure. `embeddings` holds one vector per failure, or is empty when
// w_embed is 0. Deterministic. Throws Error on a size mismatch or ragged embeddings.
std::vector<std::vector<float>> failure_features(const std::vector<FailureText>& items,
                                                 const std::vector<std::vector<float>>& embeddings,
                                                 const FailureFeatureOptions& opts);

// Centres the rows, keeps their top `dims` principal directions and whitens them (covariance
// shrunk towards a multiple of the identity, so near-empty directions are not blown up), then
// L2-normalises each row. Fewer rows than dims keep rows - 1 directions.
std::vector<std::vector<float>> whiten_rows(const std::vector<std::vector<float>>& rows, int dims);

// Rows projected onto their top `dims` principal directions (centred, not rescaled), in some orthonormal basis of
// them. Rows that are mostly zeros (the hashed TF-IDF bag) take the centred Gram matrix implicitly, n x nnz per
// product instead of n x n x d; `sparse_ok` false makes it whole (the same coordinates up to rounding, tests).
std::vector<std::vector<float>> project_rows(const std::vector<std::vector<float>>& rows, int dims,
                                             bool sparse_ok = true);

// Lowercased runs of letters and '_' (identifiers stay whole), numbers as "0", and every other
// visible character as a token of its own ("*", "(", "\""), so arithmetic and code keep their
// operators. Exposed for tests.
std::vector<std::string> feature_tokens(const std::string& text);

}  // namespace cogumi
