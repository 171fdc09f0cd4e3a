#include "train/memory.h"

#include <fmt/format.h>
#include <ggml-alloc.h>
#include <ggml-backend.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/threads.h"
#include "train/model_graph.h"
#include "train/step.h"

namespace cogumi {

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

std::string gib(size_t bytes) { return fmt::format("{:.2f} GiB", double(bytes) / kGiB); }
// A part of the total: MiB below a GiB, so small parts do not read as 0.00.
std::string part(size_t bytes) {
  return bytes < size_t(kGiB) ? fmt::format("{:.1f} MiB", double(bytes) / 1048576.0) : gib(bytes);
}

// The bytes a tensor takes in a buffer of `buft` (as ggml_backend_alloc_ctx_tensors places it).
size_t held_bytes(ggml_backend_buffer_type_t buft, const ggml_tensor* t) {
  const size_t align = ggml_backend_buft_get_alignment(buft);
  const size_t n = ggml_backend_buft_get_alloc_size(buft, t);
  return (n + align - 1) / align * align;
}

// /proc/meminfo's MemAvailable (ggml reports the CPU's total memory as free); 0 when unknown.
size_t host_available() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  size_t kib = 0;
  std::string unit;
  while (f >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024;
  return 0;
}

// Weights as Q4_K (matrices whose rows hold whole 256-value blocks; the rest as they are): what a
// Q4_K_M copy of a 16/32-bit base would about take. 0 when the base is quantized already.
size_t q4k_bytes(const ModelGraph& mg, ggml_backend_buffer_type_t buft) {
  size_t out = 0;
  bool wide = false;
  for (auto& [_, t] : mg.tensors()) {
    if (ggml_is_quantized(t->type)) return 0;
    if (ggml_n_dims(t) == 2 && t->ne[0] % 256 == 0) {
      wide = true;
      out += ggml_row_size(GGML_TYPE_Q4_K, t->ne[0]) * size_t(t->ne[1]);
    } else {
      out += held_bytes(buft, t);
    }
  }
  return wide ? out : 0;
}

}  // namespace

size_t TrainMemory::device_total() const {
  const size_t on_device = weights + lora + optimizer + activations;
  return device_is_cpu ? on_device + host_compute + best_copy : on_device + gpu_reserve;
}

std::string TrainMemory::report(const TrainOptions& o) const {
  std::string s = fmt::format(
      "memory on {}: {} = weights {} + {}{} (accumulators, AdamW moments) + activations {} (--batch {} x --seq-len {}{}{})",
      device, gib(device_total()), part(weights), lora ? "LoRA " + part(lora) + " + optimizer " : "optimizer ",
      part(optimizer), part(activations), o.batch, o.sft.max_len,
      o.checkpoint_activations ? ", --checkpoint-activations"
      : o.checkpoint_blocks > 0 ? fmt::format(", --checkpoint-blocks {}", o.checkpoint_blocks)
                                : std::string(),
      flash ? ", flash attention" : "");
  if (gpu_reserve) s += fmt::format(" + {} kept back for cuBLAS and CUDA's pool", part(gpu_reserve));
  if (device_is_cpu && best_copy) s += fmt::format(" + best weights {}", part(best_copy));
  s += fmt::format("; available {} ({})", gib(limit),
                   limit_from_option ? fmt::format("--max-memory-gib {}", o.max_memory_gib) : "the device's free memory");
  if (!device_is_cpu) s += fmt::format("; on the host besides: compute {}, best weights {}", part(host_compute), part(best_copy));
  return s;
}

TrainMemory estimate_train_memory(const TrainOptions& o, const std::vector<ggml_backend*>& backends) {
  if (backends.empty()) fail("internal: no backend to estimate training memory on");
  ggml_backend_t dev = backends.front();
  ggml_backend_buffer_type_t buft = ggml_backend_get_default_buffer_type(dev);
  ModelGraph mg(o.model, dev, /*keep_file_types=*/!o.full, /*load_data=*/false, o.base_weights_on(dev));
  if (!o.full) mg.add_lora(o.lora, o.seed);
  TrainMemory m;
  ggml_backend_dev_t d = ggml_backend_get_device(dev);
  m.device = ggml_backend_dev_name(d);
  m.device_is_cpu = ggml_backend_dev_type(d) == GGML_BACKEND_DEVICE_TYPE_CPU;
  m.gpu_reserve = m.device_is_cpu ? 0 : TrainMemory::kGpuReserve;
  m.flash = o.flash_attn_on(dev);
  for (auto& [_, t] : mg.tensors()) m.weights += held_bytes(buft, t);
  for (auto& [_, t] : mg.lora_tensors()) m.lora += held_bytes(buft, t);
  if (o.val_split > 0 || !o.val_data.empty())
    for (ggml_tensor* p : mg.trainable()) m.best_copy += ggml_nbytes(p);
  if (!o.full) m.q4k_weights = q4k_bytes(mg, buft);
  m.n_layer = mg.hparams().n_layer;
  const TrainGraphOptions go = o.graph_options(dev, mg.hparams().head_dim());
  const TrainGraphBytes g = TrainGraph::measure(mg, backends, o.sft.max_len, o.batch, go);
  m.optimizer = g.static_bytes;
  m.activations = g.compute.front();
  if (backends.size() > 1) m.host_compute = g.compute.back();
  size_t free = 0, total = 0;
  ggml_backend_dev_memory(d, &free, &total);
  if (m.device_is_cpu && host_available() > 0) free = std::min(free, host_available());
  m.device_free = free;
  m.limit = free;
  const double cap = o.max_memory_gib * kGiB;
  if (o.max_memory_gib > 0 && cap < double(free)) m.limit = size_t(cap), m.limit_from_option = true;
  return m;
}

std::vector<ggml_backend*> train_devices(const TrainOptions& o) {
  const int threads = compute_threads(o.n_threads);
  int gpu = -1;  // -1: any (auto), else the index --device asked for
  const bool cpu_only = o.cpu_only || o.device == "cpu";
  if (o.device.rfind("gpu", 0) == 0) gpu = o.device.size() > 4 ? std::stoi(o.device.substr(4)) : 0;
  return train_backends(cpu_only, threads, gpu);
}

namespace {
struct BackendsFree {
  std::vector<ggml_backend_t>& b;
  ~BackendsFree() {
    for (auto* x : b) ggml_backend_free(x);
  }
};
}  // namespace

TrainMemory estimate_train_memory(const TrainOptions& o) {
  o.validate();
  std::vector<ggml_backend_t> backends = train_devices(o);
  BackendsFree free_backends{backends};
  return estimate_train_memory(o, backends);
}

void check_train_memory(const TrainMemory& m, const TrainOptions& o) {
  if (m.fits()) return;
  std::vector<ggml_backend_t> backends = train_devices(o);
  BackendsFree free_backends{backends};
  check_train_memory(m, o, backends);
}

namespace {
// The fewest first blocks K in [lo, n_layer - 1] whose checkpointing fits in `limit` by `bytes_at(K)`, found by
// binary search (the memory falls as K grows: each checkpointed block drops its activations); 0 when none of
// them fits. `*bytes` gets the chosen K's estimate. What --checkpoint-blocks auto and the out-of-memory advice
// both use.
template <class BytesAt>
int fewest_blocks_that_fit(int lo, int n_layer, size_t limit, BytesAt&& bytes_at, size_t* bytes) {
  int hi = n_layer;  // n_layer: "none of [lo, n_layer - 1] fits" until one does
  size_t at_hi = 0;
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    const size_t n = bytes_at(mid);
    if (n <= limit) hi = mid, at_hi = n;
    else lo = mid + 1;
  }
  if (hi >= n_layer) return 0;
  *bytes = at_hi;
  return hi;
}
}  // namespace

std::string resolve_checkpoint_blocks(TrainOptions& o, const std::vector<ggml_backend*>& backends) {
  if (o.checkpoint_blocks != TrainOptions::kCheckpointBlocksAuto) return "";
  o.checkpoint_blocks = 0;
  const TrainMemory none = estimate_train_memory(o, backends);
  if (none.fits()) return fmt::format("--checkpoint-blocks auto: none (the run fits in {} as it is)", gib(none.limit));
  TrainOptions all = o;
  all.checkpoint_activations = true;
  if (!estimate_train_memory(all, backends).fits()) return "--checkpoint-blocks auto: even every block does not fit";
  // the fewest K in [1, n_layer - 1] that fits, else every block (known to fit)
  size_t bytes = 0;
  const int hi = fewest_blocks_that_fit(1, none.n_layer, none.limit, [&](int k) {
    TrainOptions alt = o;
    alt.checkpoint_blocks = k;
    return estimate_train_memory(alt, backends).device_total();
  }, &bytes);
  if (hi == 0) {
    o.checkpoint_activations = true;
    return fmt::format("--checkpoint-blocks auto: every one of the {} blocks (fewer do not fit in {})", none.n_layer,
                       gib(none.limit));
  }
  o.checkpoint_blocks = hi;
  return fmt::format("--checkpoint-blocks auto: the first {} of the {} blocks (the fewest that fit in {})", hi,
                     none.n_layer, gib(none.limit));
}

std::string resolve_checkpoint_blocks(TrainOptions& o) {
  if (o.checkpoint_blocks != TrainOptions::kCheckpointBlocksAuto) return "";
  std::vector<ggml_backend_t> backends = train_devices(o);
  BackendsFree free_backends{backends};
  return resolve_checkpoint_blocks(o, backends);
}

namespace {
// The fewest checkpointed blocks that fit (--checkpoint-blocks K), from one more than the run's own.
template <class Estimate>
void add_partial_checkpointing(std::vector<std::pair<size_t, std::string>>& ways, const TrainMemory& m,
                               const TrainOptions& o, Estimate&& with) {
  const int from = o.checkpoint_blocks;
  if (from >= m.n_layer - 1) return;
  size_t n = 0;
  const int k = fewest_blocks_that_fit(from + 1, m.n_layer, m.limit, [&](int blocks) {
    TrainOptions alt = o;
    alt.checkpoint_blocks = blocks;
    return with(alt);
  }, &n);
  if (k == 0) return;
  ways.push_back({n, fmt::format("--checkpoint-blocks {} (the first {} of the {} blocks recomputed in the backward "
                                 "pass: less extra compute than all of them, the same results{}): {}",
                                 k, k, m.n_layer, m.flash ? " up to flash attention's rounding" : "", gib(n))});
}
}  // namespace

void check_train_memory(const TrainMemory& m, const TrainOptions& o, const std::vector<ggml_backend*>& backends) {
  if (m.fits()) return;
  const size_t total = m.device_total();
  std::vector<std::pair<size_t, std::string>> ways;  // (estimate, advice), the smallest first
  auto with = [&](const TrainOptions& alt) { return estimate_train_memory(alt, backends).device_total(); };
  if (m.q4k_weights > 0 && m.weights - m.q4k_weights > total / 10) {
    const size_t q = total - m.weights + m.q4k_weights;
    ways.push_back({q, fmt::format("a Q4_K_M copy of the base, which LoRA trains on as it is (cogumi model quantize {} "
                                   "BASE-Q4_K_M.gguf --type q4_k_m): about {}", o.model.string(), gib(q))});
  }
  if (o.full) {
    TrainOptions alt = o;
    alt.full = false;
    const size_t n = with(alt);
    ways.push_back({n, "a LoRA instead of --full: " + gib(n)});
  }
  if (o.base_weights_on(backends.front()) == BaseWeights::f32) {
    TrainOptions alt = o;
    alt.base_weights = "file";
    const size_t n = with(alt);
    ways.push_back({n, fmt::format("--base-weights file (the base's 16-bit matrices kept as they are; slower CPU "
                                   "matmuls): {}", gib(n))});
  }
  if (!m.flash) {
    TrainOptions alt = o;
    alt.flash_attn = "on";
    const size_t n = with(alt);
    ways.push_back({n, fmt::format("--flash-attn on (no [T, T] attention probabilities kept: on a GPU a fused backward "
                                   "needs none, elsewhere they are recomputed in the backward pass; K and V rounded to "
                                   "F16): {}",
                                   gib(n))});
  }
  if (!o.checkpoint_activations) {
    TrainOptions alt = o;
    alt.checkpoint_activations = true;
    alt.checkpoint_blocks = 0;
    const size_t n = with(alt);
    ways.push_back({n, fmt::format("--checkpoint-activations (each block's activations recomputed in the backward "
                                   "pass: about a third more compute per step, the same results{}): {}",
                                   m.flash ? " up to flash attention's rounding" : "", gib(n))});
    if (n <= m.limit && m.n_layer > 1) add_partial_checkpointing(ways, m, o, with);
  }
  if (o.sft.max_len >= 16) {
    TrainOptions alt = o;
    alt.sft.max_len = o.sft.max_len / 2;
    const size_t n = with(alt);
    ways.push_back({n, fmt::format("a shorter --seq-len {}: {}", alt.sft.max_len, gib(n))});
  }
  if (o.batch > 1) {
    TrainOptions alt = o;
    alt.batch = o.batch / 2;
    const size_t n = with(alt);
    ways.push_back({n, fmt::format("a smaller --batch {} (--grad-accum {} keeps the tokens per step): {}", alt.batch,
                                   o.grad_accum * 2, gib(n))});
  }
  if (!o.full && m.lora + m.optimizer > total / 10)
    ways.push_back({total - (m.lora + m.optimizer) / 2,
                    fmt::format("fewer --targets or a lower --lora-rank (the LoRA and its optimizer state take {})",
                                part(m.lora + m.optimizer))});
  std::stable_sort(ways.begin(), ways.end(), [](auto& a, auto& b) { return a.first < b.first; });
  std::string list;
  for (auto& w : ways) list += "\n  - " + w.second;
  if (list.empty()) list = "\n  - a smaller model: this run is as small as the options make it";
  fail("the training run needs {} on {} and {} is available ({}); {}.\nTo need less:{}", gib(total), m.device,
       gib(m.limit), m.limit_from_option ? fmt::format("--max-memory-gib {}", o.max_memory_gib) : "the device's free memory",
       m.report(o), list);
}

}  // namespace cogumi
