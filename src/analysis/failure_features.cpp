#include "analysis/failure_features.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <unordered_map>

#include "analysis/cluster_detail.h"
#include "core/error.h"

namespace cogumi {
namespace {

using cluster_detail::parallel_for;
using cluster_detail::Rng;
using Rows = std::vector<std::vector<float>>;
using Matrix = std::vector<std::vector<double>>;  // row-major, small (m x m or r x r)

// Subspace iterations for the top principal directions. Rotations inside the subspace do not
// matter (projection distances and whitened distances are rotation-invariant), so no
// Rayleigh-Ritz step is needed, only a subspace that has settled.
constexpr int kSubspaceIter = 60;

// Eight partial sums, added pairwise at the end, which the compiler keeps in vector registers: a
// single running sum is one dependent add after another, and the failure clustering (these are its
// principal subspace's Gram and power-iteration products) took twice as long with it.
double dot(const std::vector<double>& a, const std::vector<double>& b) {
  const size_t n = a.size(), n8 = n / 8 * 8;
  const double* x = a.data();
  const double* y = b.data();
  double p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (size_t i = 0; i < n8; i += 8)
    for (int k = 0; k < 8; ++k) p[k] += x[i + k] * y[i + k];
  double s = ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
  for (size_t i = n8; i < n; ++i) s += x[i] * y[i];
  return s;
}

// Modified Gram-Schmidt over columns stored as vectors; drops columns that vanish (rank < r).
void orthonormalize(Matrix& cols) {
  Matrix kept;
  for (auto& c : cols) {
    double before = std::sqrt(dot(c, c));
    for (const auto& q : kept) {
      double p = dot(c, q);
      for (size_t i = 0; i < c.size(); ++i) c[i] -= p * q[i];
    }
    double norm = std::sqrt(dot(c, c));
    if (before == 0 || norm < 1e-9 * before) continue;
    for (double& x : c) x /= norm;
    kept.push_back(std::move(c));
  }
  cols = std::move(kept);
}

// A (m x m, symmetric PSD) times each column.
Matrix times(const Matrix& a, const Matrix& cols) {
  Matrix out(cols.size(), std::vector<double>(a.size(), 0.0));
  parallel_for(a.size(), double(a.size()) * a.size() * cols.size(), [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      for (size_t c = 0; c < cols.size(); ++c) out[c][i] = dot(a[i], cols[c]);
  });
  return out;
}

// Orthonormal basis (as columns) of the top-r eigenspace of a symmetric PSD matrix.
Matrix top_eigenspace(const Matrix& a, int r) {
  Rng rng(0xF3A7);
  Matrix u(size_t(std::min<size_t>(size_t(r), a.size())), std::vector<double>(a.size()));
  for (auto& c : u)
    for (double& x : c) x = rng.uniform() - 0.5;
  orthonormalize(u);
  for (int it = 0; it < kSubspaceIter && !u.empty(); ++it) {
    u = times(a, u);
    orthonormalize(u);
  }
  return u;
}

// Lower Cholesky factor of a small SPD matrix.
Matrix cholesky(const Matrix& m) {
  size_t r = m.size();
  Matrix l(r, std::vector<double>(r, 0.0));
  for (size_t i = 0; i < r; ++i) {
    for (size_t j = 0; j <= i; ++j) {
      double s = m[i][j];
      for (size_t k = 0; k < j; ++k) s -= l[i][k] * l[j][k];
      l[i][j] = i == j ? std::sqrt(std::max(s, 1e-300)) : s / l[j][j];
    }
  }
  return l;
}

// y (length r) times L^{-T}: solves z L^T = y, i.e. L z^T = y^T.
std::vector<double> solve_lower(const Matrix& l, const std::vector<double>& y) {
  std::vector<double> z(y.size());
  for (size_t i = 0; i < y.size(); ++i) {
    double s = y[i];
    for (size_t k = 0; k < i; ++k) s -= l[i][k] * z[k];
    z[i] = s / l[i][i];
  }
  return z;
}

// Coordinates of the centred rows in their top-r principal subspace (some orthonormal basis of
// it): through the n x n Gram matrix when there are fewer rows than dimensions, else through
// the d x d covariance.
Matrix principal_coords(const Rows& rows, int r) {
  size_t n = rows.size(), d = n ? rows[0].size() : 0;
  std::vector<double> mean(d, 0.0);
  for (const auto& x : rows)
    for (size_t j = 0; j < d; ++j) mean[j] += x[j];
  for (double& m : mean) m /= double(std::max<size_t>(n, 1));
  Matrix x(n, std::vector<double>(d));
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < d; ++j) x[i][j] = rows[i][j] - mean[j];
  Matrix y(n);
  if (n <= d) {
    Matrix gram(n, std::vector<double>(n));
    parallel_for(n, double(n) * n * d / 2, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i)
        for (size_t j = 0; j <= i; ++j) gram[i][j] = dot(x[i], x[j]);
    });
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < i; ++j) gram[j][i] = gram[i][j];
    Matrix u = top_eigenspace(gram, r);
    if (u.empty()) return Matrix(n);
    // K U (U^T K U)^{-1/2 in Cholesky form} has the Gram matrix of the projected rows.
    Matrix ku = times(gram, u);
    size_t k = u.size();
    Matrix m(k, std::vector<double>(k));
    for (size_t a = 0; a < k; ++a)
      for (size_t b = 0; b < k; ++b) m[a][b] = dot(u[a], ku[b]);
    Matrix l = cholesky(m);
    for (size_t i = 0; i < n; ++i) {
      std::vector<double> row(k);
      for (size_t c = 0; c < k; ++c) row[c] = ku[c][i];
      y[i] = solve_lower(l, row);
    }
  } else {
    Matrix cov(d, std::vector<double>(d, 0.0));
    parallel_for(d, double(n) * d * d / 2, [&](size_t b, size_t e) {
      for (size_t a = b; a < e; ++a)
        for (size_t c = 0; c <= a; ++c) {
          double s = 0;
          for (size_t i = 0; i < n; ++i) s += x[i][a] * x[i][c];
          cov[a][c] = s;
        }
    });
    for (size_t a = 0; a < d; ++a)
      for (size_t c = 0; c < a; ++c) cov[c][a] = cov[a][c];
    Matrix v = top_eigenspace(cov, r);
    for (size_t i = 0; i < n; ++i) {
      y[i].resize(v.size());
      for (size_t c = 0; c < v.size(); ++c) y[i][c] = dot(x[i], v[c]);
    }
  }
  return y;
}

void normalize(std::vector<float>& v, double scale = 1.0) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  if (s <= 0) return;
  double f = scale / std::sqrt(s);
  for (float& x : v) x = float(x * f);
}

uint64_t fnv1a(const std::string& s, uint64_t h = 0xcbf29ce484222325ULL) {
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

// Hashed TF-IDF of the three text fields as one bag: unigrams and bigrams, each marked with its
// field, sublinear tf, smoothed idf (to the power idf_power) over these rows, signed hashing
// (collisions cancel rather than add up), rows L2-normalised. One bag rather than a block per
// field: a field weighs what it says, so a one-letter multiple-choice reference (a coin toss
// over A-D, nothing about what went wrong) cannot claim a third of the distance.
Rows hashed_tfidf(const std::vector<FailureText>& items, int buckets, double idf_power) {
  size_t n = items.size();
  std::vector<std::map<uint64_t, double>> tf(n);
  std::unordered_map<uint64_t, double> df;
  using Field = std::string FailureText::*;
  const std::pair<Field, uint64_t> fields[] = {{&FailureText::question, 0x51},
                                               {&FailureText::output, 0x0f},
                                               {&FailureText::reference, 0x7e}};
  for (size_t i = 0; i < n; ++i) {
    for (const auto& [field, salt] : fields) {
      auto toks = feature_tokens(items[i].*field);
      for (size_t t = 0; t < toks.size(); ++t) {
        uint64_t h = fnv1a(toks[t], salt * 0x100000001b3ULL);
        tf[i][h] += 1;
        if (t + 1 < toks.size()) tf[i][fnv1a(toks[t + 1], h ^ 0x2f)] += 1;
      }
    }
    for (auto& [h, c] : tf[i]) df[h] += 1;
  }
  Rows out(n, std::vector<float>(size_t(buckets), 0.0f));
  for (size_t i = 0; i < n; ++i) {
    for (auto& [h, c] : tf[i]) {
      double w =
          (1 + std::log(c)) * std::pow(std::log((1.0 + double(n)) / (1.0 + df[h])) + 1, idf_power);
      uint64_t z = h * 0x9E3779B97F4A7C15ULL;
      out[i][size_t(z % uint64_t(buckets))] += float((z >> 63) ? -w : w);
    }
    normalize(out[i]);
  }
  return out;
}

Rows text_block(const std::vector<FailureText>& items, const FailureFeatureOptions& o) {
  Rows out = hashed_tfidf(items, o.text_buckets, o.idf_power);
  if (o.text_dims > 0 && items.size() > 2) out = project_rows(out, o.text_dims);
  return out;
}

}  // namespace

void FailureFeatureOptions::validate() const {
  for (auto [name, w] : {std::pair{"w_embed (--w-embed)", w_embed},
                         {"w_text (--w-text)", w_text},
                         {"w_type (--w-type)", w_type}}) {
    if (!(w >= 0 && w <= 100)) fail("{} must be in 0..100, got {}", name, w);
  }
  if (w_embed + w_text + w_type <= 0) fail("feature weights are all 0: nothing to cluster on");
  if (whiten_dims < 2 || whiten_dims > 1024)
    fail("whiten_dims (--whiten-dims) must be in 2..1024, got {}", whiten_dims);
  if (text_buckets < 64 || text_buckets > (1 << 20))
    fail("text_buckets (--text-buckets) must be in 64..1048576, got {}", text_buckets);
  if (!(idf_power >= 0 && idf_power <= 4))
    fail("idf_power (--idf-power) must be in 0..4, got {}", idf_power);
  if (text_dims < 0 || text_dims > 1024)
    fail("text_dims (--text-dims) must be in 0..1024, got {}", text_dims);
}

std::vector<std::string> feature_tokens(const std::string& text) {
  std::vector<std::string> out;
  std::string word;
  bool number = false;
  auto flush = [&] {
    if (!word.empty()) out.push_back(word);
    if (number) out.push_back("0");
    word.clear();
    number = false;
  };
  for (char ch : text) {
    auto u = static_cast<unsigned char>(ch);
    if (std::isalpha(u) || u == '_' || u >= 0x80) {
      if (number) flush();
      word += char(std::tolower(u));
    } else if (std::isdigit(u)) {
      if (!word.empty()) {
        word += ch;  // identifiers such as x2 stay one token
      } else {
        number = true;
      }
    } else {
      flush();
      if (!std::isspace(u)) out.emplace_back(1, ch);
    }
  }
  flush();
  return out;
}

Rows project_rows(const Rows& rows, int dims) {
  Matrix y = principal_coords(rows, dims);
  Rows out(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) out[i].assign(y[i].begin(), y[i].end());
  return out;
}

Rows whiten_rows(const Rows& rows, int dims) {
  Matrix y = principal_coords(rows, dims);
  size_t n = y.size(), k = n ? y[0].size() : 0;
  Rows out(n, std::vector<float>(k));
  if (k == 0) return out;
  Matrix cov(k, std::vector<double>(k, 0.0));
  for (const auto& row : y)
    for (size_t a = 0; a < k; ++a)
      for (size_t b = 0; b < k; ++b) cov[a][b] += row[a] * row[b] / double(n);
  // Shrinkage: a tenth of the mean variance added on the diagonal keeps directions that carry
  // almost nothing (noise) from being stretched to the size of real ones.
  double trace = 0;
  for (size_t a = 0; a < k; ++a) trace += cov[a][a];
  for (size_t a = 0; a < k; ++a) cov[a][a] += 0.1 * trace / double(k) + 1e-12;
  Matrix l = cholesky(cov);
  for (size_t i = 0; i < n; ++i) {
    auto z = solve_lower(l, y[i]);
    out[i].assign(z.begin(), z.end());
    normalize(out[i]);
  }
  return out;
}

Rows failure_features(const std::vector<FailureText>& items, const Rows& embeddings,
                      const FailureFeatureOptions& o) {
  o.validate();
  size_t n = items.size();
  if (o.needs_embeddings() && embeddings.size() != n)
    fail("failure_features: {} embeddings for {} failures", embeddings.size(), n);
  Rows out(n);
  auto append = [&](Rows block, double weight) {
    for (size_t i = 0; i < n; ++i) {
      normalize(block[i], weight);
      out[i].insert(out[i].end(), block[i].begin(), block[i].end());
    }
  };
  if (o.w_embed > 0) {
    for (size_t i = 0; i < n; ++i)
      if (embeddings[i].size() != embeddings[0].size())
        fail("failure_features: embedding {} has dimension {}, expected {}", i,
             embeddings[i].size(), embeddings[0].size());
    append(o.whiten && n > 2 ? whiten_rows(embeddings, o.whiten_dims) : embeddings, o.w_embed);
  }
  if (o.w_text > 0) append(text_block(items, o), o.w_text);
  if (o.w_type > 0) {
    std::map<std::string, size_t> types;
    for (const auto& it : items) types.emplace(it.failure_type, 0);
    size_t next = 0;
    for (auto& [t, idx] : types) idx = next++;
    Rows block(n, std::vector<float>(types.size(), 0.0f));
    for (size_t i = 0; i < n; ++i) block[i][types[items[i].failure_type]] = 1.0f;
    append(std::move(block), o.w_type);
  }
  return out;
}

}  // namespace cogumi
