#include "compress/lora_shrink.h"

#include <Eigen/Dense>

#include <cmath>
#include <map>
#include <queue>

#include "compress/gguf_file.h"
#include "core/eigen_setup.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/threads.h"
#include "engine/gguf_writer.h"

namespace cogumi {

using MatD = Eigen::MatrixXd;

void LoraShrinkOptions::validate() const {
  const int set = (rank != 0) + (energy != 0.0) + (size_mb != 0.0);
  if (set != 1) fail("lora shrink: give exactly one of --rank, --energy, --size-mb ({} given)", set);
  if (rank < 0) fail("lora shrink: --rank must be >= 1, got {}", rank);
  if (!(std::isfinite(energy) && energy >= 0.0 && energy <= 1.0))
    fail("lora shrink: --energy must be in (0, 1], got {}", energy);
  if (!(std::isfinite(size_mb) && size_mb >= 0.0)) fail("lora shrink: --size-mb must be > 0, got {}", size_mb);
  if (n_threads < 0 || n_threads > 4096) fail("lora shrink: --threads must be in [0, 4096], got {}", n_threads);
}

namespace {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() > suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// One adapted weight: its A/B tensors and the SVD of its applied delta (left * diag(sigma) * right^T).
struct Pair {
  std::string weight;
  int64_t a_id = -1, b_id = -1, n_in = 0, n_out = 0;
  int rank = 0;
  MatD left, right;  // n_out x p, n_in x p; orthonormal columns
  Eigen::VectorXd sigma;
  int keep = 0;
};

float delta_scale(float alpha, int rank) { return alpha != 0.0f ? alpha / float(rank) : 1.0f; }

void check_adapter(const GgufFile& f) {
  if (f.str("general.type") != "adapter" || f.str("adapter.type") != "lora")
    fail("'{}' is not a LoRA adapter (general.type='{}', adapter.type='{}')", f.path().string(), f.str("general.type"),
         f.str("adapter.type"));
}

// A (ggml [n_in, r]: r rows of n_in) and B (ggml [r, n_out]: n_out rows of r) as matrices.
void load_ab(const GgufFile& f, Pair& p, MatD& A, MatD& B) {
  const int64_t* na = f.ne(p.a_id);
  const int64_t* nb = f.ne(p.b_id);
  p.n_in = na[0];
  p.rank = int(na[1]);
  p.n_out = nb[1];
  if (nb[0] != na[1] || na[2] != 1 || nb[2] != 1 || p.rank < 1)
    fail("'{}': '{}' has lora_a {}x{} and lora_b {}x{}: ranks differ", f.path().string(), p.weight, na[0], na[1],
         nb[0], nb[1]);
  const std::vector<float> a = f.floats(p.a_id), b = f.floats(p.b_id);
  A.resize(p.rank, p.n_in);
  B.resize(p.n_out, p.rank);
  for (int64_t k = 0; k < p.rank; ++k)
    for (int64_t i = 0; i < p.n_in; ++i) A(k, i) = a[size_t(k * p.n_in + i)];
  for (int64_t j = 0; j < p.n_out; ++j)
    for (int64_t k = 0; k < p.rank; ++k) B(j, k) = b[size_t(j * p.rank + k)];
}

// Thin QR of an m x r matrix: Q (m x min(m, r)) and R (min(m, r) x r).
void thin_qr(const MatD& X, MatD& Q, MatD& R) {
  Eigen::HouseholderQR<MatD> qr(X);
  const Eigen::Index k = std::min(X.rows(), X.cols());
  Q = qr.householderQ() * MatD::Identity(X.rows(), k);
  R = qr.matrixQR().topRows(k).triangularView<Eigen::Upper>();
}

// s B A = Qb Rb (Qa Ra)^T = Qb (s Rb Ra^T) Qa^T: only the small core needs an SVD.
void factor(const GgufFile& f, float alpha, Pair& p) {
  MatD A, B, Qa, Ra, Qb, Rb;
  load_ab(f, p, A, B);
  thin_qr(B, Qb, Rb);
  thin_qr(A.transpose(), Qa, Ra);
  const MatD core = double(delta_scale(alpha, p.rank)) * Rb * Ra.transpose();
  Eigen::JacobiSVD<MatD> svd(core, Eigen::ComputeThinU | Eigen::ComputeThinV);
  p.left = Qb * svd.matrixU();
  p.right = Qa * svd.matrixV();
  p.sigma = svd.singularValues();
}

std::vector<Pair> read_pairs(const GgufFile& f) {
  std::vector<Pair> pairs;
  for (int64_t i = 0; i < gguf_get_n_tensors(f.get()); ++i) {
    const std::string name = gguf_get_tensor_name(f.get(), i);
    if (!ends_with(name, ".lora_a")) continue;
    Pair p;
    p.weight = name.substr(0, name.size() - 7);
    p.a_id = i;
    p.b_id = f.tensor_id(p.weight + ".lora_b");
    pairs.push_back(std::move(p));
  }
  if (pairs.empty()) fail("'{}': no lora_a/lora_b tensor pairs", f.path().string());
  return pairs;
}

uint64_t rank_cost(const GgufFile& f, const Pair& p) {
  return uint64_t(p.n_in) * ggml_type_size(f.type(p.a_id)) + uint64_t(p.n_out) * ggml_type_size(f.type(p.b_id));
}

int keep_for_energy(const Eigen::VectorXd& s, double energy) {
  const double total = s.squaredNorm();
  double cum = 0.0;
  for (Eigen::Index k = 0; k < s.size(); ++k) {
    cum += s[k] * s[k];
    if (cum >= energy * total * (1.0 - 1e-12)) return int(k + 1);
  }
  return int(s.size());
}

// Rank 1 each, then the next singular value with the most energy per byte while it fits.
void keep_for_size(const GgufFile& f, std::vector<Pair>& pairs, double size_mb) {
  const double budget = size_mb * 1e6;
  double used = 0.0;
  for (auto& p : pairs) {
    p.keep = 1;
    used += double(rank_cost(f, p));
  }
  if (used > budget)
    fail("lora shrink: --size-mb {} is below the smallest adapter (rank 1 for every tensor: {:.3f} MB)", size_mb,
         used / 1e6);
  using Item = std::pair<double, size_t>;  // energy per byte of the next singular value, pair index
  std::priority_queue<Item> q;
  auto push = [&](size_t i) {
    const Pair& p = pairs[i];
    if (p.keep < p.sigma.size()) q.push({p.sigma[p.keep] * p.sigma[p.keep] / double(rank_cost(f, p)), i});
  };
  for (size_t i = 0; i < pairs.size(); ++i) push(i);
  while (!q.empty()) {
    const size_t i = q.top().second;
    q.pop();
    const double c = double(rank_cost(f, pairs[i]));
    if (used + c > budget) continue;  // this tensor is full; cheaper ones may still fit
    used += c;
    ++pairs[i].keep;
    push(i);
  }
}

void choose_ranks(const GgufFile& f, std::vector<Pair>& pairs, const LoraShrinkOptions& o) {
  if (o.size_mb > 0) return keep_for_size(f, pairs, o.size_mb);
  for (auto& p : pairs) {
    const int avail = int(p.sigma.size());
    p.keep = o.rank > 0 ? std::min(o.rank, avail) : keep_for_energy(p.sigma, o.energy);
    p.keep = std::max(1, std::min(p.keep, avail));
  }
}

// New factors: alpha / k * B' A' == left_k diag(sigma_k) right_k^T, split evenly between B' and A'.
void new_factors(const Pair& p, float alpha, std::vector<float>& a, std::vector<float>& b) {
  const int k = p.keep;
  const double c = alpha != 0.0f ? double(k) / double(alpha) : 1.0;
  a.assign(size_t(k * p.n_in), 0.0f);
  b.assign(size_t(p.n_out * k), 0.0f);
  for (int r = 0; r < k; ++r) {
    const double v = c * p.sigma[r];
    const double half = std::sqrt(std::abs(v)), sign = v < 0 ? -1.0 : 1.0;
    for (int64_t i = 0; i < p.n_in; ++i) a[size_t(r * p.n_in + i)] = float(half * p.right(i, r));
    for (int64_t j = 0; j < p.n_out; ++j) b[size_t(j * k + r)] = float(sign * half * p.left(j, r));
  }
}

void write_adapter(const GgufFile& f, const std::vector<Pair>& pairs, float alpha, const std::filesystem::path& out) {
  std::map<std::string, const Pair*> by_tensor;
  for (const auto& p : pairs) {
    by_tensor[p.weight + ".lora_a"] = &p;
    by_tensor[p.weight + ".lora_b"] = &p;
  }
  GgufWriter w;
  gguf_set_kv(w.kv(), f.get());
  for (int64_t i = 0; i < gguf_get_n_tensors(f.get()); ++i) {
    const std::string name = gguf_get_tensor_name(f.get(), i);
    const ggml_type t = f.type(i);
    if (t != GGML_TYPE_F32 && t != GGML_TYPE_F16 && t != GGML_TYPE_BF16)
      fail("'{}': tensor '{}' is {}; lora shrink writes F32, F16 or BF16", f.path().string(), name, ggml_type_name(t));
    auto it = by_tensor.find(name);
    if (it == by_tensor.end())
      w.add_tensor(name, t, f.ne(i)[0], f.ne(i)[1]);
    else if (ends_with(name, ".lora_a"))
      w.add_tensor(name, t, it->second->n_in, it->second->keep);
    else
      w.add_tensor(name, t, it->second->keep, it->second->n_out);
  }
  w.write(out, [&](const std::string& name, float* buf, int64_t n) {
    auto it = by_tensor.find(name);
    std::vector<float> a, b;
    if (it == by_tensor.end())
      a = f.floats(f.tensor_id(name));
    else
      new_factors(*it->second, alpha, a, b);
    const std::vector<float>& src = (it == by_tensor.end() || ends_with(name, ".lora_a")) ? a : b;
    if (int64_t(src.size()) != n) fail("internal: size mismatch writing '{}'", name);
    std::copy(src.begin(), src.end(), buf);
  });
}

}  // namespace

LoraShrinkResult lora_shrink(const std::filesystem::path& in, const std::filesystem::path& out,
                             const LoraShrinkOptions& opts) {
  opts.validate();
  GgufFile f(in);
  check_adapter(f);
  const float alpha = f.f32("adapter.lora.alpha", 0.0f);
  std::vector<Pair> pairs = read_pairs(f);
  // Each tensor's QR and SVD are independent: the four 8B modifiers of bench/pipeline8b.sh (224 tensors each,
  // rank 64-128) took 139 s on one thread of the GPU machine's 16 (session 33).
  eigen_setup();  // Eigen's blocking fixed: the same bits on any CPU
  parallel_for(pairs.size(), compute_threads(opts.n_threads), [&](size_t i) { factor(f, alpha, pairs[i]); });
  choose_ranks(f, pairs, opts);
  write_adapter(f, pairs, alpha, out);

  LoraShrinkResult r;
  for (int64_t i = 0; i < gguf_get_n_tensors(f.get()); ++i) r.bytes_in += gguf_get_tensor_size(f.get(), i);
  r.bytes_out = r.bytes_in;
  for (const auto& p : pairs) {
    LoraShrinkTensor t{p.weight, p.n_in, p.n_out, p.rank, p.keep};
    t.sigma.assign(p.sigma.data(), p.sigma.data() + p.sigma.size());
    const double total = p.sigma.squaredNorm(), kept = p.sigma.head(p.keep).squaredNorm();
    t.energy_kept = total > 0 ? kept / total : 1.0;
    t.frob_error = std::sqrt(std::max(0.0, total - kept));
    const uint64_t cost = rank_cost(f, p);
    r.bytes_out = r.bytes_out - cost * uint64_t(p.rank) + cost * uint64_t(p.keep);
    r.params_in += uint64_t(p.rank) * uint64_t(p.n_in + p.n_out);
    r.params_out += uint64_t(p.keep) * uint64_t(p.n_in + p.n_out);
    r.tensors.push_back(std::move(t));
  }
  r.file_bytes_out = std::filesystem::file_size(out);
  return r;
}

std::vector<float> lora_delta(const std::filesystem::path& adapter, const std::string& weight, int64_t* n_in,
                              int64_t* n_out) {
  GgufFile f(adapter);
  check_adapter(f);
  Pair p;
  p.weight = weight;
  p.a_id = f.tensor_id(weight + ".lora_a");
  p.b_id = f.tensor_id(weight + ".lora_b");
  MatD A, B;
  load_ab(f, p, A, B);
  const MatD d = double(delta_scale(f.f32("adapter.lora.alpha", 0.0f), p.rank)) * B * A;
  std::vector<float> out(size_t(p.n_out * p.n_in));
  for (int64_t j = 0; j < p.n_out; ++j)
    for (int64_t i = 0; i < p.n_in; ++i) out[size_t(j * p.n_in + i)] = float(d(j, i));
  if (n_in) *n_in = p.n_in;
  if (n_out) *n_out = p.n_out;
  return out;
}

}  // namespace cogumi
