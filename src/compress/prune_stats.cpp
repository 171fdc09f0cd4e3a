#include "compress/prune_stats.h"

#include <ggml-backend.h>
#include <llama.h>

#include <cmath>
#include <cstring>
#include <string>
#include <thread>

#include "core/error.h"
#include "core/threads.h"

namespace cogumi {

namespace {

enum class Proj { none, attn_q, attn_output, ffn_gate, ffn_down };

// "blk.N.attn_q.weight" -> (N, attn_q); anything else -> (-1, none).
std::pair<int, Proj> weight_of(const ggml_tensor* w) {
  if (!w || std::strncmp(w->name, "blk.", 4) != 0) return {-1, Proj::none};
  char* end = nullptr;
  const long il = std::strtol(w->name + 4, &end, 10);
  if (!end || *end != '.') return {-1, Proj::none};
  const std::string rest = end + 1;
  if (rest == "attn_q.weight") return {int(il), Proj::attn_q};
  if (rest == "attn_output.weight") return {int(il), Proj::attn_output};
  if (rest == "ffn_gate.weight") return {int(il), Proj::ffn_gate};
  if (rest == "ffn_down.weight") return {int(il), Proj::ffn_down};
  return {-1, Proj::none};
}

// "l_out-N" -> N; the token embeddings (get_rows of token_embd: the input of layer 0) -> -1;
// anything else -> -2.
int hidden_of(const ggml_tensor* t) {
  if (t->op == GGML_OP_GET_ROWS && t->src[0] && std::strcmp(t->src[0]->name, "token_embd.weight") == 0) return -1;
  if (std::strncmp(t->name, "l_out-", 6) == 0) return int(std::strtol(t->name + 6, nullptr, 10));
  return -2;
}

struct Collector {
  PruneActs* acts = nullptr;
  std::vector<float> buf, prev;  // prev: the last hidden state seen (input of layer prev_layer + 1)
  int prev_layer = -2;
  std::string error;

  // The tensor's values as float32 rows of ne0 (copied off the device when not in host memory).
  const float* values(const ggml_tensor* t) {
    if (t->type != GGML_TYPE_F32 || !ggml_is_contiguous(t)) {
      error = std::string("tensor '") + t->name + "' is not contiguous float32";
      return nullptr;
    }
    if (t->buffer && ggml_backend_buffer_is_host(t->buffer)) return static_cast<const float*>(t->data);
    buf.resize(size_t(ggml_nelements(t)));
    ggml_backend_tensor_get(t, buf.data(), 0, ggml_nbytes(t));
    return buf.data();
  }

  void add_columns(std::vector<double>& acc, const ggml_tensor* x) {
    const float* v = values(x);
    if (!v) return;
    const int64_t n_in = x->ne[0], rows = ggml_nrows(x);
    if (acc.empty()) acc.assign(size_t(n_in), 0.0);
    if (int64_t(acc.size()) != n_in) {
      error = std::string("input of '") + x->name + "' changed width";
      return;
    }
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < n_in; ++i) acc[size_t(i)] += double(v[r * n_in + i]) * v[r * n_in + i];
  }

  void add_hidden(int il, const ggml_tensor* t) {
    const float* v = values(t);
    if (!v) return;
    const int64_t n = t->ne[0], rows = ggml_nrows(t);
    if (il >= 0 && prev_layer == il - 1 && int64_t(prev.size()) == n * rows && il < int(acts->layers.size())) {
      auto& L = acts->layers[size_t(il)];
      for (int64_t r = 0; r < rows; ++r) {
        double dot = 0, a = 0, b = 0;
        for (int64_t i = 0; i < n; ++i) {
          const double x = prev[size_t(r * n + i)], y = v[r * n + i];
          dot += x * y, a += x * x, b += y * y;
        }
        L.influence_sum += 1.0 - (a > 0 && b > 0 ? dot / std::sqrt(a * b) : 1.0);
        L.n_influence++;
      }
    }
    prev.assign(v, v + n * rows);
    prev_layer = il;
  }

  bool on_tensor(ggml_tensor* t, bool ask) {
    if (t->op == GGML_OP_MUL_MAT) {
      auto [il, proj] = weight_of(t->src[0]);
      if (proj == Proj::none || il < 0 || il >= int(acts->layers.size())) return ask ? false : true;
      if (ask) return true;
      auto& L = acts->layers[size_t(il)];
      std::vector<double>& acc = proj == Proj::attn_q        ? L.attn_in
                                 : proj == Proj::attn_output ? L.attn_out_in
                                 : proj == Proj::ffn_gate    ? L.ffn_in
                                                             : L.ffn_down_in;
      add_columns(acc, t->src[1]);
      return error.empty();
    }
    const int h = hidden_of(t);
    if (h == -2) return ask ? false : true;
    if (ask) return true;
    add_hidden(h, t);
    return error.empty();
  }
};

bool eval_cb(ggml_tensor* t, bool ask, void* user) { return static_cast<Collector*>(user)->on_tensor(t, ask); }

}  // namespace

PruneActs collect_prune_acts(const Model& model, const std::vector<std::vector<Token>>& chunks, int n_threads) {
  if (chunks.empty()) fail("pruning: no calibration chunks");
  PruneActs acts;
  acts.layers.resize(size_t(model.info().n_layer));
  Collector col;
  col.acts = &acts;
  const size_t n_ctx = chunks[0].size();
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = uint32_t((n_ctx + 255) / 256 * 256);
  cp.n_batch = cp.n_ubatch = uint32_t(n_ctx);
  cp.n_seq_max = 1;
  cp.no_perf = true;
  const int t = compute_threads(n_threads);
  cp.n_threads = cp.n_threads_batch = t;
  cp.cb_eval = eval_cb;
  cp.cb_eval_user_data = &col;
  std::unique_ptr<llama_context, decltype(&llama_free)> ctx(llama_init_from_model(model.raw(), cp), llama_free);
  if (!ctx) fail("pruning: cannot create a context: {}", engine_last_error());
  llama_batch batch = llama_batch_init(int32_t(n_ctx), 0, 1);
  std::unique_ptr<llama_batch, void (*)(llama_batch*)> guard(&batch, [](llama_batch* b) { llama_batch_free(*b); });
  for (const auto& chunk : chunks) {
    llama_memory_clear(llama_get_memory(ctx.get()), true);
    col.prev_layer = -2;
    for (size_t i = 0; i < chunk.size(); ++i) {
      batch.token[i] = chunk[i];
      batch.pos[i] = llama_pos(i);
      batch.n_seq_id[i] = 1;
      batch.seq_id[i][0] = 0;
      batch.logits[i] = true;  // every position: the last layer's output keeps all rows
    }
    batch.n_tokens = int32_t(chunk.size());
    const int rc = llama_decode(ctx.get(), batch);
    if (!col.error.empty()) fail("pruning: collecting activations: {}", col.error);
    if (rc != 0) fail("pruning: decode failed ({})", rc);
    acts.n_tokens += int64_t(chunk.size());
  }
  for (size_t il = 0; il < acts.layers.size(); ++il) {
    const auto& L = acts.layers[il];
    if (L.attn_in.empty() || L.attn_out_in.empty() || L.ffn_in.empty() || L.ffn_down_in.empty() || L.n_influence == 0)
      fail("pruning: layer {}'s activations never reached the eval callback (unexpected graph: attn_q {}, attn_output "
           "{}, ffn_gate {}, ffn_down {}, hidden states {})", il, !L.attn_in.empty(), !L.attn_out_in.empty(),
           !L.ffn_in.empty(), !L.ffn_down_in.empty(), L.n_influence);
  }
  return acts;
}

namespace {

// sum over rows r in [r0, r1) of sum_i |W[r,i]| * x_i (W row-major with ne0 columns).
double rows_score(const std::vector<float>& w, int64_t ne0, int64_t r0, int64_t r1, const std::vector<double>& x) {
  double s = 0;
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t i = 0; i < ne0; ++i) s += std::fabs(w[size_t(r * ne0 + i)]) * x[size_t(i)];
  return s;
}

// Per column c: h_c * sum_o |W[o,c]|.
std::vector<double> cols_score(const std::vector<float>& w, int64_t ne0, const std::vector<double>& h) {
  std::vector<double> s(size_t(ne0), 0.0);
  const int64_t ne1 = int64_t(w.size()) / ne0;
  for (int64_t o = 0; o < ne1; ++o)
    for (int64_t c = 0; c < ne0; ++c) s[size_t(c)] += std::fabs(w[size_t(o * ne0 + c)]);
  for (int64_t c = 0; c < ne0; ++c) s[size_t(c)] *= h[size_t(c)];
  return s;
}

std::vector<double> norms(const std::vector<double>& sq) {
  std::vector<double> n(sq.size());
  for (size_t i = 0; i < sq.size(); ++i) n[i] = std::sqrt(sq[i]);
  return n;
}

void normalise(std::vector<double>& v) {
  double m = 0;
  for (double x : v) m += x;
  m /= double(std::max<size_t>(1, v.size()));
  if (m > 0)
    for (double& x : v) x /= m;
}

}  // namespace

PruneScores prune_scores(const PruneSource& src, const PruneActs& acts) {
  if (int(acts.layers.size()) != src.n_layer()) fail("pruning: activations for {} layers, model has {}", acts.layers.size(), src.n_layer());
  PruneScores s;
  const int64_t e = src.n_embd(), hd = src.head_dim();
  for (int il = 0; il < src.n_layer(); ++il) {
    const auto& L = acts.layers[size_t(il)];
    const std::string b = "blk." + std::to_string(il) + ".";
    const int64_t n_ff = src.n_ff(il), n_kv = src.n_head_kv(il), per = src.n_head(il) / n_kv;
    if (int64_t(L.ffn_in.size()) != e || int64_t(L.ffn_down_in.size()) != n_ff || int64_t(L.attn_in.size()) != e ||
        int64_t(L.attn_out_in.size()) != src.n_head(il) * hd)
      fail("pruning: layer {}'s activation widths do not match '{}'", il, src.path().string());
    const std::vector<double> x = norms(L.ffn_in), a = norms(L.attn_in);
    // FFN neurons.
    std::vector<double> neuron = cols_score(src.read(b + "ffn_down.weight"), n_ff, norms(L.ffn_down_in));
    for (const char* m : {"ffn_gate.weight", "ffn_up.weight"}) {
      const std::vector<float> w = src.read(b + m);
      for (int64_t j = 0; j < n_ff; ++j) neuron[size_t(j)] += rows_score(w, e, j, j + 1, x);
    }
    // KV groups: their rows of q/k/v, their columns of the output projection.
    std::vector<double> group(size_t(n_kv), 0.0);
    const std::vector<double> out_cols = cols_score(src.read(b + "attn_output.weight"), src.n_head(il) * hd, norms(L.attn_out_in));
    const std::vector<float> wq = src.read(b + "attn_q.weight"), wk = src.read(b + "attn_k.weight"),
                             wv = src.read(b + "attn_v.weight");
    for (int64_t g = 0; g < n_kv; ++g) {
      double sg = rows_score(wq, e, g * per * hd, (g + 1) * per * hd, a) + rows_score(wk, e, g * hd, (g + 1) * hd, a) +
                  rows_score(wv, e, g * hd, (g + 1) * hd, a);
      for (int64_t c = g * per * hd; c < (g + 1) * per * hd; ++c) sg += out_cols[size_t(c)];
      group[size_t(g)] = sg;
    }
    normalise(neuron);
    normalise(group);
    s.neuron.push_back(std::move(neuron));
    s.group.push_back(std::move(group));
    s.influence.push_back(L.n_influence > 0 ? L.influence_sum / double(L.n_influence) : 0.0);
  }
  return s;
}

}  // namespace cogumi
