#include "analysis/failure_features.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <unordered_map>

#include <Eigen/Dense>

#include "analysis/cluster_detail.h"
#include "core/eigen_setup.h"
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

using Dense = Eigen::MatrixXd;  // column-major

// a * b on every core: blocks of kRowBlock rows of a, a fixed partition of the rows, each block one of Eigen's
// products. The blocks depend only on the shapes, never on the thread count, so neither do the sums.
// (Dot products one output at a time, before, read both operands from memory for every output: the failure
// clustering spent most of its time here.)
constexpr Eigen::Index kRowBlock = 64;
Dense times(const Dense& a, const Dense& b) {
  Dense out(a.rows(), b.cols());
  const Eigen::Index blocks = (a.rows() + kRowBlock - 1) / kRowBlock;
  parallel_for(size_t(blocks), double(a.rows()) * double(a.cols()) * double(b.cols()), [&](size_t lo, size_t hi) {
    for (size_t blk = lo; blk < hi; ++blk) {
      const Eigen::Index r0 = Eigen::Index(blk) * kRowBlock, len = std::min(kRowBlock, a.rows() - r0);
      out.middleRows(r0, len).noalias() = a.middleRows(r0, len) * b;
    }
  });
  return out;
}

// Modified Gram-Schmidt over the columns; drops columns that vanish (rank < r).
void orthonormalize(Dense& cols) {
  Eigen::Index kept = 0;
  for (Eigen::Index c = 0; c < cols.cols(); ++c) {
    Eigen::VectorXd v = cols.col(c);
    const double before = v.norm();
    for (Eigen::Index q = 0; q < kept; ++q) v -= cols.col(q).dot(v) * cols.col(q);
    const double norm = v.norm();
    if (before == 0 || norm < 1e-9 * before) continue;
    cols.col(kept++) = v / norm;
  }
  cols.conservativeResize(Eigen::NoChange, kept);
}

// Orthonormal basis (as columns) of the top-r eigenspace of a symmetric PSD n x n matrix A, given as its product
// with a block of columns (`apply`: A U).
using Operator = std::function<Dense(const Dense&)>;
Dense top_eigenspace(const Operator& apply, Eigen::Index n, int r) {
  Rng rng(0xF3A7);
  Dense u(n, std::min<Eigen::Index>(r, n));
  for (Eigen::Index c = 0; c < u.cols(); ++c)
    for (Eigen::Index i = 0; i < u.rows(); ++i) u(i, c) = rng.uniform() - 0.5;
  orthonormalize(u);
  for (int it = 0; it < kSubspaceIter && u.cols() > 0; ++it) {
    u = apply(u);
    orthonormalize(u);
  }
  return u;
}

// Rows with few non-zero values (the hashed TF-IDF bag: ~100 of 4,096), centred implicitly: the Gram matrix of the
// centred rows times U is X (X^T U - m 1^T U) - 1 m^T (...), n x nnz x r instead of n x n x r, and the n x n x d
// Gram matrix itself is never made.
struct SparseRows {
  std::vector<std::vector<std::pair<Eigen::Index, double>>> rows;
  Eigen::VectorXd mean;
};
SparseRows sparse_rows(const Rows& rows, Eigen::Index d) {
  SparseRows s;
  s.rows.resize(rows.size());
  s.mean = Eigen::VectorXd::Zero(d);
  for (size_t i = 0; i < rows.size(); ++i)
    for (Eigen::Index j = 0; j < d; ++j)
      if (const double v = rows[i][size_t(j)]; v != 0) {
        s.rows[i].emplace_back(j, v);
        s.mean(j) += v;
      }
  if (!rows.empty()) s.mean /= double(rows.size());
  return s;
}
Dense centred_gram_times(const SparseRows& x, const Dense& u_in) {
  using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const RowMajor u = u_in;  // rows contiguous: each non-zero value touches one row of r values
  RowMajor w = RowMajor::Zero(x.mean.size(), u.cols());  // X_c^T U
  for (size_t i = 0; i < x.rows.size(); ++i)
    for (const auto& [j, v] : x.rows[i]) w.row(j) += v * u.row(Eigen::Index(i));
  w -= x.mean * u.colwise().sum();
  const Eigen::RowVectorXd shift = x.mean.transpose() * w;
  RowMajor out(u.rows(), u.cols());
  for (size_t i = 0; i < x.rows.size(); ++i) {
    auto row = out.row(Eigen::Index(i));
    row = -shift;
    for (const auto& [j, v] : x.rows[i]) row += v * w.row(j);
  }
  return out;
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

}  // namespace

namespace cluster_detail {

// Coordinates of the centred rows in their top-r principal subspace (some orthonormal basis of
// it): through the n x n Gram matrix when there are fewer rows than dimensions, else through
// the d x d covariance.
std::vector<std::vector<double>> principal_coords(const Points& rows, int r, bool sparse_ok) {
  eigen_setup();  // Eigen's blocking fixed: the same sums on any CPU
  const Eigen::Index n = Eigen::Index(rows.size()), d = n ? Eigen::Index(rows[0].size()) : 0;
  Matrix y(static_cast<size_t>(n));
  size_t nnz = 0;
  for (const auto& row : rows) nnz += size_t(std::count_if(row.begin(), row.end(), [](float v) { return v != 0; }));
  if (n <= d) {
    // Sparse rows: the Gram matrix applied implicitly; dense ones: made once (n x n x d), then applied.
    SparseRows sx;
    Dense gram;
    Operator apply;
    if (sparse_ok && double(nnz) < 0.125 * double(n) * double(d)) {
      sx = sparse_rows(rows, d);
      apply = [&](const Dense& u) { return centred_gram_times(sx, u); };
    } else {
      Dense x(n, d);
      for (Eigen::Index i = 0; i < n; ++i)
        for (Eigen::Index j = 0; j < d; ++j) x(i, j) = rows[size_t(i)][size_t(j)];
      if (n > 0) x.rowwise() -= x.colwise().mean();
      gram = times(x, x.transpose());
      apply = [&](const Dense& u) { return times(gram, u); };
    }
    const Dense u = top_eigenspace(apply, n, r);
    if (u.cols() == 0) return Matrix(static_cast<size_t>(n));
    // K U (U^T K U)^{-1/2 in Cholesky form} has the Gram matrix of the projected rows.
    const Dense ku = apply(u);
    const Eigen::Index k = u.cols();
    const Dense utku = u.transpose() * ku;
    Matrix m(static_cast<size_t>(k), std::vector<double>(static_cast<size_t>(k)));
    for (Eigen::Index a = 0; a < k; ++a)
      for (Eigen::Index b = 0; b < k; ++b) m[size_t(a)][size_t(b)] = utku(a, b);
    Matrix l = cholesky(m);
    for (Eigen::Index i = 0; i < n; ++i) {
      std::vector<double> row(static_cast<size_t>(k));
      for (Eigen::Index c = 0; c < k; ++c) row[size_t(c)] = ku(i, c);
      y[size_t(i)] = solve_lower(l, row);
    }
  } else {
    Dense x(n, d);
    for (Eigen::Index i = 0; i < n; ++i)
      for (Eigen::Index j = 0; j < d; ++j) x(i, j) = rows[size_t(i)][size_t(j)];
    x.rowwise() -= x.colwise().mean();
    const Dense cov = times(x.transpose(), x);
    const Dense v = top_eigenspace([&](const Dense& u) { return times(cov, u); }, d, r);
    const Dense proj = times(x, v);
    for (Eigen::Index i = 0; i < n; ++i) {
      y[size_t(i)].resize(size_t(v.cols()));
      for (Eigen::Index c = 0; c < v.cols(); ++c) y[size_t(i)][size_t(c)] = proj(i, c);
    }
  }
  return y;
}

}  // namespace cluster_detail

namespace {

using cluster_detail::principal_coords;

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

Rows project_rows(const Rows& rows, int dims, bool sparse_ok) {
  Matrix y = principal_coords(rows, dims, sparse_ok);
  Rows out(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) out[i].assign(y[i].begin(), y[i].end());
  return out;
}

Rows whiten_rows(const Rows& rows, int dims) {
  Matrix y = principal_coords(rows, dims, true);
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
