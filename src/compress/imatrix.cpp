#include "compress/imatrix.h"

#include <ggml-backend.h>
#include <ggml.h>
#include <gguf.h>
#include <llama.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "compress/calib.h"
#include "core/error.h"
#include "core/threads.h"
#include "core/progress.h"

namespace cogumi {

namespace {

// The weight's own name: a backend's copy is named "CUDA0#blk.0.attn_q.weight#0".
std::string weight_name(const char* name) {
  const char* p = std::strchr(name, '#');
  if (!p) return name;
  const char* q = std::strchr(p + 1, '#');
  return q ? std::string(p + 1, q) : std::string(p + 1);
}

struct Collector {
  bool process_output = false;
  Imatrix im;
  std::vector<char> host_copy;  // src1 of a matmul whose buffer is not host memory
  std::mutex mu;
  std::string error;            // set by the callback; thrown after decode returns

  bool wanted(const ggml_tensor* t) const {
    if (t->op != GGML_OP_MUL_MAT) return false;
    const ggml_tensor* w = t->src[0];
    const ggml_tensor* x = t->src[1];
    // Same choice as llama-imatrix: short batches (< 16 rows) are not calibration data.
    if (x->type != GGML_TYPE_F32 || x->ne[1] < 16) return false;
    std::string name = weight_name(w->name);
    return name.rfind("blk.", 0) == 0 || (process_output && name == "output.weight");
  }

  void accumulate(const ggml_tensor* t) {
    const ggml_tensor* w = t->src[0];
    const ggml_tensor* x = t->src[1];
    std::lock_guard<std::mutex> lock(mu);
    const char* data = static_cast<const char*>(x->data);
    if (!ggml_backend_buffer_is_host(x->buffer)) {
      host_copy.resize(ggml_nbytes(x));
      ggml_backend_tensor_get(x, host_copy.data(), 0, host_copy.size());
      data = host_copy.data();
    }
    const int64_t n_mat = w->ne[2] * w->ne[3], n_cols = x->ne[0];
    ImatrixEntry& e = im.entries[weight_name(w->name)];
    if (e.sums.empty()) {
      e.sums.assign(size_t(n_cols * n_mat), 0.0);
      e.counts.assign(1, 0);
    } else if (e.sums.size() != size_t(n_cols * n_mat)) {
      error = fmt::format("imatrix: '{}' changed shape ({} vs {} values)", w->name, e.sums.size(), n_cols * n_mat);
      return;
    }
    for (int64_t i3 = 0; i3 < x->ne[3]; ++i3)
      for (int64_t i2 = 0; i2 < x->ne[2]; ++i2) {
        double* acc = e.sums.data() + ((i3 % w->ne[3]) * w->ne[2] + (i2 % w->ne[2])) * n_cols;
        for (int64_t r = 0; r < x->ne[1]; ++r) {
          const float* row = reinterpret_cast<const float*>(data + r * x->nb[1] + i2 * x->nb[2] + i3 * x->nb[3]);
          for (int64_t j = 0; j < n_cols; ++j) acc[j] += double(row[j]) * double(row[j]);
        }
      }
    e.counts[0] += ggml_nrows(x) / n_mat;
  }
};

bool eval_callback(ggml_tensor* t, bool ask, void* user) {
  auto* c = static_cast<Collector*>(user);
  if (ask) return c->wanted(t);
  if (c->wanted(t)) c->accumulate(t);
  return true;
}

using ContextPtr = std::unique_ptr<llama_context, decltype(&llama_free)>;

ContextPtr collector_context(const Model& model, int n_ctx, int n_threads, Collector* c) {
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = uint32_t(n_ctx);
  cp.n_batch = cp.n_ubatch = uint32_t(n_ctx);
  cp.n_seq_max = 1;
  cp.no_perf = true;
  cp.cb_eval = eval_callback;
  cp.cb_eval_user_data = c;
  int t = compute_threads(n_threads);
  cp.n_threads = cp.n_threads_batch = t;
  llama_context* ctx = llama_init_from_model(model.raw(), cp);
  if (!ctx) fail("imatrix: cannot create a context of {} tokens: {}", n_ctx, engine_last_error());
  return ContextPtr(ctx, llama_free);
}

}  // namespace

std::map<std::string, std::vector<float>> Imatrix::importance() const {
  std::map<std::string, std::vector<float>> out;
  for (const auto& [name, e] : entries) {
    auto& v = out[name];
    v.resize(e.sums.size());
    const size_t n_cols = e.counts.empty() ? 0 : e.sums.size() / e.counts.size();
    for (size_t i = 0; i < v.size(); ++i) {
      const int64_t c = e.counts[i / n_cols];
      v[i] = c > 0 ? float(e.sums[i] / double(c)) : 1.0f;  // unseen: no preference (as llama-quantize)
    }
  }
  return out;
}

void ImatrixOptions::validate() const {
  if (model.empty()) fail("imatrix: --model is required");
  if (data.empty()) fail("imatrix: --file (calibration data) is required");
  if (out.empty()) fail("imatrix: --output is required");
  if (chunk < 16 || chunk > 131072) fail("imatrix: --chunk must be in [16, 131072] tokens (got {})", chunk);
  if (chunks < 0) fail("imatrix: --chunks must be >= 0 (got {})", chunks);
  if (n_threads < 0) fail("imatrix: --threads must be >= 0 (got {})", n_threads);
}

Imatrix collect_imatrix(const Model& model, const std::vector<std::vector<Token>>& chunks, bool process_output,
                        int n_threads, bool progress) {
  if (chunks.empty()) fail("imatrix: no chunks");
  const int n_ctx = int(chunks[0].size());
  Collector c;
  c.process_output = process_output;
  c.im.chunk_size = n_ctx;
  ContextPtr ctx = collector_context(model, n_ctx, n_threads, &c);
  llama_batch batch = llama_batch_init(n_ctx, 0, 1);
  std::unique_ptr<llama_batch, void (*)(llama_batch*)> batch_guard(&batch, [](llama_batch* b) { llama_batch_free(*b); });
  Progress bar("imatrix", int64_t(chunks.size()), progress);
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (int(chunks[i].size()) != n_ctx) fail("imatrix: chunk {} has {} tokens, not {}", i, chunks[i].size(), n_ctx);
    llama_memory_clear(llama_get_memory(ctx.get()), true);
    for (int k = 0; k < n_ctx; ++k) {
      batch.token[k] = chunks[i][size_t(k)];
      batch.pos[k] = k;
      batch.n_seq_id[k] = 1;
      batch.seq_id[k][0] = 0;
      batch.logits[k] = true;  // every row: otherwise the last layer computes only the rows asked for
    }
    batch.n_tokens = n_ctx;
    if (int rc = llama_decode(ctx.get(), batch); rc != 0) fail("imatrix: decode of chunk {} failed ({})", i, rc);
    if (!c.error.empty()) fail("{}", c.error);
    c.im.chunk_count = int32_t(i + 1);
    bar.update(int64_t(i + 1));
  }
  bar.finish();
  for (const auto& [name, e] : c.im.entries)
    for (double s : e.sums)
      if (!std::isfinite(s)) fail("imatrix: non-finite activations in '{}'", name);
  return std::move(c.im);
}

ImatrixResult compute_imatrix(const ImatrixOptions& opts) {
  opts.validate();
  auto t0 = std::chrono::steady_clock::now();
  engine_init();
  std::string text = load_calibration_text(opts.data);
  ModelOptions mo;
  mo.repack = opts.repack;
  auto model = Model::load(opts.model, mo);
  auto chunks = calibration_chunks(*model, text, opts.chunk, opts.chunks, 1, opts.data.string());
  Imatrix im = collect_imatrix(*model, chunks, opts.process_output, opts.n_threads, opts.progress);
  im.datasets = {opts.data.string()};
  write_imatrix(im, opts.out);
  ImatrixResult r;
  r.n_entries = int(im.entries.size());
  r.n_chunks = int(chunks.size());
  r.n_tokens = int64_t(chunks.size()) * opts.chunk;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

using GgufPtr = std::unique_ptr<gguf_context, decltype(&gguf_free)>;
using GgmlPtr = std::unique_ptr<ggml_context, decltype(&ggml_free)>;

void write_imatrix(const Imatrix& im, const fs::path& path) {
  size_t mem = 0;
  for (const auto& [name, e] : im.entries)
    mem += 2 * ggml_tensor_overhead() + sizeof(float) * (e.sums.size() + e.counts.size()) + 2 * GGML_MEM_ALIGN;
  GgmlPtr ctx(ggml_init({mem + 1024, nullptr, false}), ggml_free);
  GgufPtr g(gguf_init_empty(), gguf_free);
  std::vector<const char*> datasets;
  for (const auto& d : im.datasets) datasets.push_back(d.c_str());
  gguf_set_val_str(g.get(), "general.type", "imatrix");
  gguf_set_arr_str(g.get(), "imatrix.datasets", datasets.data(), datasets.size());
  gguf_set_val_u32(g.get(), "imatrix.chunk_count", uint32_t(im.chunk_count));
  gguf_set_val_u32(g.get(), "imatrix.chunk_size", uint32_t(im.chunk_size));
  for (const auto& [name, e] : im.entries) {  // std::map: sorted names, as llama-imatrix writes them
    const int64_t n_mat = int64_t(e.counts.size());
    if (n_mat == 0 || e.sums.empty()) continue;
    ggml_tensor* sums = ggml_new_tensor_2d(ctx.get(), GGML_TYPE_F32, int64_t(e.sums.size()) / n_mat, n_mat);
    ggml_tensor* counts = ggml_new_tensor_2d(ctx.get(), GGML_TYPE_F32, 1, n_mat);
    ggml_format_name(sums, "%s.in_sum2", name.c_str());
    ggml_format_name(counts, "%s.counts", name.c_str());
    for (size_t j = 0; j < e.sums.size(); ++j) static_cast<float*>(sums->data)[j] = float(e.sums[j]);
    for (size_t j = 0; j < e.counts.size(); ++j) static_cast<float*>(counts->data)[j] = float(e.counts[j]);
    gguf_add_tensor(g.get(), sums);
    gguf_add_tensor(g.get(), counts);
  }
  if (!path.parent_path().empty()) fs::create_directories(path.parent_path());
  fs::path tmp = path.string() + ".tmp." + std::to_string(getpid());
  if (!gguf_write_to_file(g.get(), tmp.c_str(), false)) {
    fs::remove(tmp);
    fail("cannot write imatrix '{}'", path.string());
  }
  fs::rename(tmp, path);
}

Imatrix read_imatrix(const fs::path& path) {
  if (!fs::exists(path)) fail("imatrix file not found: '{}'", path.string());
  ggml_context* raw_ctx = nullptr;
  GgufPtr g(gguf_init_from_file(path.c_str(), {false, &raw_ctx}), gguf_free);
  if (!g) fail("'{}' is not a GGUF imatrix (the legacy .dat format is not read; convert it with llama-imatrix)",
               path.string());
  GgmlPtr ctx(raw_ctx, ggml_free);
  Imatrix im;
  if (int64_t k = gguf_find_key(g.get(), "imatrix.datasets"); k >= 0 && gguf_get_kv_type(g.get(), k) == GGUF_TYPE_ARRAY &&
                                                             gguf_get_arr_type(g.get(), k) == GGUF_TYPE_STRING)
    for (size_t i = 0; i < gguf_get_arr_n(g.get(), k); ++i) im.datasets.emplace_back(gguf_get_arr_str(g.get(), k, i));
  if (int64_t k = gguf_find_key(g.get(), "imatrix.chunk_count"); k >= 0) im.chunk_count = int32_t(gguf_get_val_u32(g.get(), k));
  if (int64_t k = gguf_find_key(g.get(), "imatrix.chunk_size"); k >= 0) im.chunk_size = int32_t(gguf_get_val_u32(g.get(), k));
  std::map<std::string, std::pair<const ggml_tensor*, const ggml_tensor*>> parts;
  for (ggml_tensor* t = ggml_get_first_tensor(ctx.get()); t; t = ggml_get_next_tensor(ctx.get(), t)) {
    std::string n = t->name;
    auto strip = [&](const std::string& suffix) {
      return n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0
                 ? n.substr(0, n.size() - suffix.size())
                 : std::string();
    };
    if (auto w = strip(".in_sum2"); !w.empty()) parts[w].first = t;
    else if (auto w2 = strip(".counts"); !w2.empty()) parts[w2].second = t;
  }
  if (parts.empty()) fail("'{}': no imatrix tensors (<weight>.in_sum2 / <weight>.counts)", path.string());
  for (const auto& [name, p] : parts) {
    if (!p.first || !p.second) fail("'{}': '{}' lacks its {} tensor", path.string(), name, p.first ? ".counts" : ".in_sum2");
    if (p.first->type != GGML_TYPE_F32 || p.second->type != GGML_TYPE_F32)
      fail("'{}': '{}' tensors must be F32", path.string(), name);
    ImatrixEntry& e = im.entries[name];
    const auto* s = static_cast<const float*>(p.first->data);
    const auto* c = static_cast<const float*>(p.second->data);
    e.sums.assign(s, s + ggml_nelements(p.first));
    for (int64_t j = 0; j < ggml_nelements(p.second); ++j) e.counts.push_back(std::llround(c[j]));
    if (e.counts.empty() || e.sums.size() % e.counts.size() != 0)
      fail("'{}': '{}' has {} sums for {} counts", path.string(), name, e.sums.size(), e.counts.size());
  }
  return im;
}

}  // namespace cogumi
