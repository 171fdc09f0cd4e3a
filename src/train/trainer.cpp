#include "train/trainer.h"

#include <ggml-backend.h>
#include <ggml-cpu.h>
#include <gguf.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <random>
#include <regex>
#include <sstream>
#include <string_view>
#include <thread>

#include "core/error.h"
#include "core/io.h"
#include "core/progress.h"
#include "engine/gguf_writer.h"
#include "train/batches.h"
#include "train/checkpoint.h"
#include "train/memory.h"
#include "train/model_graph.h"
#include "train/report.h"
#include "train/step.h"

namespace cogumi {

DataSource parse_data_source(const std::string& spec) {
  auto colon = spec.rfind(':');
  if (colon == std::string::npos || colon == 0) return {spec, 1.0};
  std::string w = spec.substr(colon + 1);
  char* end = nullptr;
  double weight = std::strtod(w.c_str(), &end);
  if (w.empty() || end != w.c_str() + w.size()) return {spec, 1.0};  // a ':' in the path itself
  if (!(weight > 0) || !std::isfinite(weight)) fail("data weight must be > 0 in '{}'", spec);
  return {spec.substr(0, colon), weight};
}

namespace {
// Fails naming `option` unless lo <= v <= hi (NaN fails too).
void check_range(const char* option, double v, double lo, double hi) {
  if (!(v >= lo && v <= hi)) fail("{} must be in [{}, {}], got {}", option, lo, hi, v);
}
// An auto|on|off option resolved for a run on `dev`: auto is on for a GPU, off on the CPU.
bool on_unless_cpu(const std::string& v, ggml_backend* dev) {
  if (v != "auto") return v == "on";
  return ggml_backend_dev_type(ggml_backend_get_device(dev)) != GGML_BACKEND_DEVICE_TYPE_CPU;
}
}  // namespace

bool TrainOptions::dequant_forward_on(ggml_backend* dev) const { return on_unless_cpu(dequant_forward, dev); }

bool TrainOptions::out_prod_grads_on(ggml_backend* dev) const { return on_unless_cpu(out_prod_grads, dev); }

BaseWeights TrainOptions::base_weights_on(ggml_backend* dev) const {
  if (full || base_weights == "file") return BaseWeights::file;
  const size_t widened = ModelGraph::widened_16bit_bytes(model);
  if (widened == 0) return BaseWeights::file;  // no 16-bit matrix: nothing to hold otherwise
  if (base_weights == "f32") return BaseWeights::f32;
  if (base_weights == "bf16") return BaseWeights::bf16;
  ggml_backend_dev_t d = ggml_backend_get_device(dev);
  if (ggml_backend_dev_type(d) != GGML_BACKEND_DEVICE_TYPE_CPU) return BaseWeights::file;
  if (ggml_cpu_has_avx512_bf16()) return BaseWeights::bf16;
  if (max_memory_gib > 0) return BaseWeights::file;  // a run held to a memory limit keeps the file's types
  size_t free = 0, total = 0;
  ggml_backend_dev_memory(d, &free, &total);
  return widened <= free / 4 ? BaseWeights::f32 : BaseWeights::file;
}

TrainGraphOptions TrainOptions::graph_options(ggml_backend* dev, int head_dim) const {
  TrainGraphOptions go;
  go.checkpoint_activations = checkpoint_activations;
  go.checkpoint_blocks = checkpoint_blocks;
  go.flash_attn = flash_attn_on(dev);
  go.fused_attention = go.flash_attn && fused_attention_on(dev, head_dim);
  go.dequant_forward = dequant_forward_on(dev);
  go.out_prod_grads = out_prod_grads_on(dev);
  go.split_lora_groups = lora_forward_split_switch();
  return go;
}

std::string backward_weight_type_switch() {
  const char* e = std::getenv("GGML_COGUMI_BACKWARD_WEIGHT_TYPE");
  const std::string_view v = e ? e : "";
  if (!v.empty() && v != "auto" && v != "f32" && v != "bf16")
    fail("GGML_COGUMI_BACKWARD_WEIGHT_TYPE is '{}': use auto, f32 or bf16", v);
  return v == "auto" ? "" : std::string(v);
}

bool lora_forward_split_switch() {
  const char* e = std::getenv("COGUMI_LORA_GROUP_FORWARD");
  const std::string_view split = e ? e : "";
  if (!split.empty() && split != "group" && split != "split")
    fail("COGUMI_LORA_GROUP_FORWARD is '{}': use group or split", split);
  return split == "split";
}

bool TrainOptions::flash_attn_on(ggml_backend* dev) const { return on_unless_cpu(flash_attn, dev); }

bool TrainOptions::fused_attention_on(ggml_backend* dev, int head_dim) const {
  const bool gpu = on_unless_cpu("auto", dev);
  if (flash_attn_backward == "recompute" || (flash_attn_backward == "auto" && !gpu)) return false;
  if (!gpu) return true;  // fused on the CPU: the plain loop (tests)
  const bool kernels = backend_runs_fused_attention_back(dev, head_dim);
  if (flash_attn_backward == "fused" && !kernels)
    fail("--flash-attn-backward fused: {} cannot run the fused kernels for this model (head size {}; they need an "
         "NVIDIA GPU of compute capability 8.0 or later and head size 64 or 128); use recompute (auto picks it)",
         ggml_backend_name(dev), head_dim);
  return kernels;
}

void TrainOptions::validate() const {
  if (model.empty()) fail("give a base model (-m)");
  if (data.empty()) fail("give training data (-d FILE[:WEIGHT])");
  for (const auto& d : data)
    if (!(d.weight > 0 && d.weight <= 1000)) fail("-d {}: the weight must be in (0, 1000], got {}", d.path.string(), d.weight);
  if (out.empty()) fail("give an output path (-o)");
  if (!full) {
    check_range("--lora-rank", lora.rank, 1, 4096);
    // llama.cpp reads an adapter's alpha 0 as scale 1, not 0: one meaning only, so 0 is refused.
    if (!(lora.alpha > 0) || !std::isfinite(lora.alpha))
      fail("--lora-alpha must be > 0, got {} (the LoRA scale is alpha / rank)", lora.alpha);
    if (lora.targets.empty()) fail("--targets: give at least one LoRA target module");
  }
  check_range("--seq-len", sft.max_len, 8, 1 << 20);
  check_range("--batch", batch, 1, 1 << 16);
  check_range("--grad-accum", grad_accum, 1, 1 << 16);
  check_range("--epochs", epochs, 0, 1e6);
  check_range("--max-steps", max_steps, 0, 1e9);
  if (epochs < 1 && max_steps < 1) fail("give --epochs or --max-steps");
  if (!(lr > 0 && lr <= 10)) fail("--lr must be in (0, 10], got {}", lr);
  check_range("--weight-decay", weight_decay, 0, 10);
  if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) fail("AdamW betas must be in [0, 1), got {} and {}", beta1, beta2);
  check_range("--warmup", warmup, 0, 1e9);
  if (schedule != "cosine" && schedule != "linear" && schedule != "constant")
    fail("unknown --schedule '{}' (cosine, linear, constant)", schedule);
  if (!(val_split >= 0 && val_split < 1)) fail("--val-split must be in [0, 1), got {}", val_split);
  check_range("--eval-steps", eval_steps, 0, 1e9);
  check_range("--patience", patience, 0, 1e9);
  check_range("--clip", clip, 0, 1e30);
  check_range("--save-steps", save_steps, 0, 1e9);
  check_range("--threads", n_threads, 0, 4096);
  check_range("--max-memory-gib", max_memory_gib, 0, 1 << 20);
  if (checkpoint_blocks != kCheckpointBlocksAuto) check_range("--checkpoint-blocks", checkpoint_blocks, 0, 65536);
  if (checkpoint_activations && checkpoint_blocks == kCheckpointBlocksAuto)
    fail("--checkpoint-activations checkpoints every block and --checkpoint-blocks auto the fewest that fit; give one");
  if (checkpoint_activations && checkpoint_blocks > 0)
    fail("--checkpoint-activations checkpoints every block and --checkpoint-blocks {} only some; give one",
         checkpoint_blocks);
  if (patience > 0 && val_split <= 0 && val_data.empty()) fail("--patience needs validation data (--val-split or --val-data)");
  if (val_split > 0 && !val_data.empty()) fail("give --val-split or --val-data, not both");
  static const std::regex kDevice("auto|cpu|gpu(:[0-9]{1,3})?");
  if (!device.empty() && !std::regex_match(device, kDevice)) fail("--device must be cpu, gpu or gpu:N, got '{}'", device);
  if (flash_attn != "auto" && flash_attn != "on" && flash_attn != "off")
    fail("--flash-attn must be auto, on or off, got '{}'", flash_attn);
  if (flash_attn_backward != "auto" && flash_attn_backward != "fused" && flash_attn_backward != "recompute")
    fail("--flash-attn-backward must be auto, fused or recompute, got '{}'", flash_attn_backward);
  if (flash_attn_backward == "fused" && flash_attn == "off")
    fail("--flash-attn-backward fused differentiates flash attention, and --flash-attn is off; give one");
  if (dequant_forward != "auto" && dequant_forward != "on" && dequant_forward != "off")
    fail("--dequant-forward must be auto, on or off, got '{}'", dequant_forward);
  if (out_prod_grads != "auto" && out_prod_grads != "on" && out_prod_grads != "off")
    fail("--out-prod-grads must be auto, on or off, got '{}'", out_prod_grads);
  if (base_weights != "auto" && base_weights != "file" && base_weights != "f32" && base_weights != "bf16")
    fail("--base-weights must be auto, file, f32 or bf16, got '{}'", base_weights);
  if (full && base_weights != "auto")
    fail("--base-weights {} holds a LoRA's frozen base; --full trains every weight, in F32: drop one", base_weights);
  if (cpu_only && device.rfind("gpu", 0) == 0) fail("--cpu and --device {} contradict each other; give one", device);
}

size_t make_labels(const std::vector<std::vector<Token>>& tokens, const std::vector<std::vector<uint8_t>>& target,
                   int T, std::vector<int32_t>& labels) {
  labels.assign(size_t(T) * tokens.size(), -1);
  size_t n = 0;
  for (size_t s = 0; s < tokens.size(); ++s)
    for (int i = 0; i + 1 < int(tokens[s].size()) && i < T; ++i)
      if (target[s][i + 1]) {
        labels[s * T + size_t(i)] = tokens[s][i + 1];
        ++n;
      }
  return n;
}

bool DivergenceWatch::update(int step, double loss) {
  ema_ = ema_ < 0 ? loss : 0.9 * ema_ + 0.1 * loss;
  if (step <= warmup_) return false;
  best_ = best_ < 0 ? ema_ : std::min(best_, ema_);
  rising_ = ema_ > 1.3 * best_ + 0.05 ? rising_ + 1 : 0;
  if (rising_ < 20 || fired_) return false;
  fired_ = true;
  return true;
}

void save_lora(const ModelGraph& mg, const std::filesystem::path& out) {
  GgufWriter w;
  gguf_set_val_str(w.kv(), "general.type", "adapter");
  gguf_set_val_str(w.kv(), "general.architecture", mg.arch().c_str());  // llama.cpp checks it against the base
  gguf_set_val_str(w.kv(), "adapter.type", "lora");
  gguf_set_val_f32(w.kv(), "adapter.lora.alpha", mg.lora().alpha);
  auto ts = mg.lora_tensors();
  for (auto& [name, t] : ts) w.add_tensor(name, GGML_TYPE_F32, t->ne[0], t->ne[1]);
  w.write(out, [&](const std::string& name, float* buf, int64_t n) {
    ggml_tensor* t = ts.at(name);
    if (n != ggml_nelements(t)) fail("internal: size mismatch writing '{}'", name);
    ggml_backend_tensor_get(t, buf, 0, ggml_nbytes(t));
  });
}

void save_model(const ModelGraph& mg, const std::filesystem::path& out) {
  GgufWriter w;
  gguf_init_params gp{true, nullptr};
  gguf_context* src = gguf_init_from_file(mg.path().c_str(), gp);
  if (!src) fail("cannot reread '{}'", mg.path().string());
  gguf_set_kv(w.kv(), src);
  gguf_free(src);
  gguf_set_val_u32(w.kv(), "general.file_type", 0);
  for (auto& [name, t] : mg.tensors()) w.add_tensor(name, GGML_TYPE_F32, t->ne[0], t->ne[1]);
  w.write(out, [&](const std::string& name, float* buf, int64_t) {
    ggml_tensor* t = mg.tensors().at(name);
    ggml_backend_tensor_get(t, buf, 0, ggml_nbytes(t));
  });
}

namespace {

float lr_at(const TrainOptions& o, int step, int total) {
  if (o.warmup > 0 && step < o.warmup) return o.lr * float(step + 1) / float(o.warmup);
  float p = total > o.warmup ? float(step - o.warmup) / float(std::max(1, total - o.warmup)) : 1.0f;
  p = std::min(1.0f, std::max(0.0f, p));
  if (o.schedule == "cosine") return o.lr * (0.1f + 0.9f * 0.5f * (1.0f + std::cos(float(M_PI) * p)));
  if (o.schedule == "linear") return o.lr * (1.0f - 0.9f * p);
  return o.lr;
}


std::filesystem::path beside(const std::filesystem::path& out, const std::string& suffix) {
  return std::filesystem::path(out.string() + suffix);
}

// What must match for a checkpoint to be resumed: everything that shapes the loss curve. Data
// files are hashed (an edited file under the same name is another run); the base model only by
// path and size, since hashing tens of GB on every start costs minutes. How the base is held and the
// attention and matmul forms auto picks per device are as resolved for this run (they change the floats'
// rounding and order), and so do the benchmark switches COGUMI_LORA_GROUP_FORWARD=split and
// GGML_COGUMI_BACKWARD_WEIGHT_TYPE=f32|bf16. Those two are recorded only when set off their defaults, so that a
// checkpoint written before they were recorded still resumes, and as given, not as resolved: one that changes
// nothing here (f32 where auto picks f32, split for a full fine-tune) still refuses a resume without it, which is
// safe.
json fingerprint(const TrainOptions& o, size_t n_train, BaseWeights base_weights, const TrainGraphOptions& go) {
  json data = json::array(), val = json::array();
  for (auto& d : o.data) data.push_back({d.path.string(), d.weight, sha256_file(d.path)});
  for (auto& f : o.val_data) val.push_back({f.string(), sha256_file(f)});
  std::error_code ec;
  const auto model_bytes = std::filesystem::file_size(o.model, ec);
  json lora = o.full ? json(nullptr) : json{{"rank", o.lora.rank}, {"alpha", o.lora.alpha}, {"targets", o.lora.targets}};
  json fp = {{"model", o.model.string()}, {"model_bytes", ec ? 0 : model_bytes}, {"data", data}, {"val_data", val},
             {"val_split", o.val_split}, {"full", o.full}, {"lora", lora}, {"seq_len", o.sft.max_len},
             {"drop_long", o.sft.drop_long}, {"train_on_inputs", o.sft.train_on_inputs}, {"batch", o.batch},
             {"grad_accum", o.grad_accum}, {"epochs", o.epochs}, {"max_steps", o.max_steps}, {"lr", o.lr},
             {"schedule", o.schedule}, {"warmup", o.warmup}, {"weight_decay", o.weight_decay}, {"beta1", o.beta1},
             {"beta2", o.beta2}, {"clip", o.clip}, {"seed", o.seed}, {"pack", o.pack}, {"n_train", n_train},
             {"base_weights", to_string(base_weights)}, {"flash_attn", go.flash_attn},
             {"fused_attention", go.fused_attention}, {"dequant_forward", go.dequant_forward},
             {"out_prod_grads", go.out_prod_grads}};
  if (go.split_lora_groups) fp["lora_forward"] = "split";
  if (const std::string t = backward_weight_type_switch(); !t.empty()) fp["backward_weight_type"] = t;
  return fp;
}

// How a run holds its base: as --base-weights resolves on this device, except that a resumed run with "auto"
// keeps what its checkpoint started with (auto may choose otherwise on another CPU, or with less free memory),
// when the checkpoint's other per-device forms are this device's too: a checkpoint of another kind of device
// cannot be continued anyway (resume() refuses it), and its choice could make this run not fit.
BaseWeights resolved_base_weights(const TrainOptions& o, ggml_backend* dev, const std::filesystem::path& ckpt) {
  const BaseWeights here = o.base_weights_on(dev);
  if (!o.resume || o.base_weights != "auto" || !std::filesystem::exists(ckpt)) return here;
  const json fp = checkpoint_state(ckpt).value("fingerprint", json::object());
  if (!fp.is_object() || fp.value("flash_attn", json()) != o.flash_attn_on(dev) ||
      fp.value("dequant_forward", json()) != o.dequant_forward_on(dev) ||
      fp.value("out_prod_grads", json()) != o.out_prod_grads_on(dev))
    return here;
  const json saved = fp.value("base_weights", json());
  for (BaseWeights w : {BaseWeights::file, BaseWeights::f32, BaseWeights::bf16})
    if (saved == to_string(w) && w != here) {
      if (o.progress)
        fmt::print(stderr, "{}train: --resume keeps the checkpoint's base weights ({}; here auto would hold {})\n",
                   progress_prefix(), to_string(w), to_string(here));
      return w;
    }
  return here;
}

// The keys whose values differ, or that only one of the two holds.
std::string fingerprint_diff(const json& a, const json& b) {
  std::string keys;
  for (auto& [k, v] : b.items())
    if (!a.contains(k) || a[k] != v) keys += (keys.empty() ? "" : ", ") + k;
  for (auto& [k, v] : a.items())
    if (!b.contains(k)) keys += (keys.empty() ? "" : ", ") + k;
  return keys.empty() ? "format" : keys;
}

// Optimizer steps in one epoch of `rows` rows: an epoch ends with a short micro-batch, and a step
// with fewer micro-batches, rather than wrapping to its first rows.
int steps_per_epoch(size_t rows, int S, int grad_accum) {
  const size_t micro = (rows + size_t(S) - 1) / size_t(S);
  return int((micro + size_t(grad_accum) - 1) / size_t(grad_accum));
}

// Non-finite gradient norms in a row that stop the run (each skips its update).
constexpr int kMaxSkips = 5;

// The training examples (files mixed by weight) and the validation ones (a seeded split or
// --val-data); counts go to res.data.
void load_examples(const TrainOptions& o, const Model& tok, TrainResult& res, std::vector<SftExample>& examples,
                   std::vector<SftExample>& val) {
  std::mt19937_64 mix_rng(o.seed ^ 0x6d1fULL);
  for (const auto& src : o.data) {
    SftStats st;
    auto ex = load_sft(src.path, tok, o.sft, &st);
    res.data.n_examples += st.n_examples;
    res.data.n_truncated += st.n_truncated;
    res.data.n_dropped += st.n_dropped;
    res.data.n_target_tokens += st.n_target_tokens;
    const size_t whole = size_t(src.weight);
    for (size_t k = 0; k < whole; ++k) examples.insert(examples.end(), ex.begin(), ex.end());
    size_t part = size_t((src.weight - double(whole)) * double(ex.size()) + 0.5);
    if (part > 0) {
      std::shuffle(ex.begin(), ex.end(), mix_rng);
      examples.insert(examples.end(), ex.begin(), ex.begin() + long(part));
    }
  }
  if (examples.empty()) fail("the data weights leave no training examples");
  if (o.val_split > 0) {
    std::mt19937_64 split_rng(o.seed ^ 0x5eedULL);
    std::shuffle(examples.begin(), examples.end(), split_rng);
    size_t n_val = std::max<size_t>(1, size_t(double(examples.size()) * o.val_split + 0.5));
    if (n_val >= examples.size()) fail("--val-split {} leaves no training examples ({} in all)", o.val_split, examples.size());
    val.assign(examples.end() - long(n_val), examples.end());
    examples.resize(examples.size() - n_val);
  }
  for (const auto& f : o.val_data) {
    auto ex = load_sft(f, tok, o.sft);
    val.insert(val.end(), ex.begin(), ex.end());
  }
}

}  // namespace

namespace {

// One call of train(): the state its loop carries from step to step (and through checkpoints),
// and the loop's phases as named steps: prepare (data, model, graphs), resume, the optimizer step,
// what follows a step (validation, log, checkpoint), finish (best weights, output, report).
class TrainRun {
 public:
  TrainRun(const TrainOptions& o, const std::function<void(const TrainStep&)>& on_step)
      : o_(o), on_step_(on_step), T_(o.sft.max_len), S_(o.batch), rng_(o.seed), watch_(o.warmup) {}
  TrainResult run(const std::vector<ggml_backend_t>& backends, size_t memory_estimate);

 private:
  void prepare(const std::vector<ggml_backend_t>& backends);
  void follow_threads(const std::vector<ggml_backend_t>& backends);
  int64_t most_targets_in_run() const;
  void resume();
  void save();
  void open_log();
  double validation_loss();
  TrainStep optimizer_step(const std::vector<Row>& rows);
  void record(TrainStep& ts, bool end_of_epoch);
  bool after_step(const TrainStep& ts);  // true: cancelled (a checkpoint was written)
  void finish();
  double rate() const;
  double elapsed() const;
  std::string last_good() const;

  const TrainOptions& o_;
  const std::function<void(const TrainStep&)>& on_step_;
  const int T_, S_;
  TrainResult res_;
  std::vector<SftExample> examples_, val_;
  std::vector<Row> val_rows_;
  Token pad_ = 0;
  std::unique_ptr<ModelGraph> mg_;
  std::unique_ptr<TrainGraph> tg_;
  std::vector<ggml_tensor*> params_;
  CheckpointTensors ct_;
  std::vector<std::vector<char>> best_;  // the best validated weights, on the host
  std::filesystem::path ckpt_, log_path_;
  json fp_;
  int total_ = 0, step_ = 0, epoch_ = 0, since_best_ = 0, skips_in_row_ = 0;
  size_t next_row_ = 0, tokens_done_ = 0, tokens_at_start_ = 0;
  double secs_before_ = 0;
  bool fresh_epoch_ = true;
  std::vector<size_t> order_;
  std::mt19937_64 rng_;
  std::vector<json> log_lines_;  // the log up to the checkpoint, when resumed
  std::unique_ptr<JsonlWriter> log_;
  std::unique_ptr<Progress> progress_;
  std::chrono::steady_clock::time_point proc_t0_, t0_;
  HostBatch batch_;
  DivergenceWatch watch_;
  int threads_now_ = 0;  // the CPU threads follow_threads last set (0: as the backends were made)
};

// The most target positions in any batch the run will fill: validation's, and every epoch's in the order the
// training loop shuffles them (rng_ shuffles nothing else, and a resumed run continues the same sequence), until
// total_ steps. A few milliseconds per epoch of a 20,000-example set.
int64_t TrainRun::most_targets_in_run() const {
  std::vector<size_t> order(val_.size());
  std::iota(order.begin(), order.end(), 0);
  int64_t most = cogumi::most_batch_targets(val_, make_rows(val_, order, T_, o_.pack), T_, S_);
  std::mt19937_64 rng = rng_;
  order = order_;
  for (int64_t steps = 0, epochs = 0; steps < total_ && epochs < 10000; ++epochs) {
    std::shuffle(order.begin(), order.end(), rng);
    const std::vector<Row> rows = make_rows(examples_, order, T_, o_.pack);
    most = std::max(most, cogumi::most_batch_targets(examples_, rows, T_, S_));
    steps += std::max(1, steps_per_epoch(rows.size(), S_, o_.grad_accum));
  }
  return most;
}

// Data, model, LoRA, training graph, schedule length and the tensors a checkpoint holds.
void TrainRun::prepare(const std::vector<ggml_backend_t>& backends) {
  ModelOptions mo;
  mo.vocab_only = true;
  auto tok = Model::load(o_.model, mo);
  load_examples(o_, *tok, res_, examples_, val_);
  res_.n_train = examples_.size();
  res_.n_val = val_.size();
  ckpt_ = beside(o_.out, ".ckpt.gguf");
  res_.base_weights = o_.base_weights_on(backends.front());  // as train() resolved it
  mg_ = std::make_unique<ModelGraph>(o_.model, backends.front(), /*keep_file_types=*/!o_.full, /*load_data=*/true,
                                     res_.base_weights);
  if (!o_.full) mg_->add_lora(o_.lora, o_.seed);
  pad_ = tok->info().eos >= 0 ? tok->info().eos : 0;
  order_.resize(examples_.size());
  std::iota(order_.begin(), order_.end(), 0);
  // Packing makes fewer rows; the unshuffled packing sets the count used by the schedule.
  const int epoch_steps = steps_per_epoch(make_rows(examples_, order_, T_, o_.pack).size(), S_, o_.grad_accum);
  total_ = o_.max_steps > 0 ? o_.max_steps : std::max(1, epoch_steps * o_.epochs);
  TrainGraphOptions go = o_.graph_options(backends.front(), mg_->hparams().head_dim());
  if (ggml_backend_is_cpu(backends.front())) {
    // Logits only for positions with a target (prompt masking leaves most of a row without), as many as the
    // run's largest batch holds. Measured on the CPU only so far (bench/RESULTS.md, "Two more CPU fixes").
    const int64_t rows = int64_t(T_) * S_, want = most_targets_in_run();
    if (4 * want <= 3 * rows) go.loss_rows = int(std::max<int64_t>(1, want));
    res_.loss_rows = go.loss_rows;
    if (go.loss_rows > 0 && o_.progress)
      fmt::print(stderr, "{}train: logits for up to {} of a batch's {} positions (the most targets in any of the run's batches)\n",
                 progress_prefix(), go.loss_rows, rows);
  }
  tg_ = std::make_unique<TrainGraph>(*mg_, backends, T_, S_, go);
  log_path_ = o_.log.empty() ? beside(o_.out, ".log.jsonl") : o_.log;
  fp_ = fingerprint(o_, examples_.size(), res_.base_weights, go);
  params_ = mg_->trainable();
  auto moments = tg_->moments();
  best_.resize(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    ct_.device["p." + std::string(params_[i]->name)] = params_[i];
    ct_.device["m." + std::string(params_[i]->name)] = moments[2 * i];
    ct_.device["v." + std::string(params_[i]->name)] = moments[2 * i + 1];
  }
  std::vector<size_t> vo(val_.size());
  std::iota(vo.begin(), vo.end(), 0);
  val_rows_ = make_rows(val_, vo, T_, o_.pack);
}

// The state, weights and moments of the checkpoint, after checking it is this run's.
void TrainRun::resume() {
  // The best weights are in the checkpoint only once a validation happened (host tensors are optional).
  CheckpointTensors with_best = ct_;
  for (size_t i = 0; i < params_.size(); ++i) with_best.host["b." + std::string(params_[i]->name)] = &best_[i];
  const json saved = checkpoint_state(ckpt_).value("fingerprint", json::object());
  if (saved != fp_)
    throw CheckpointMismatch(fmt::format("--resume: '{}' was written by a different run (differing: {}); start afresh "
                                         "without --resume or restore that run's options and data",
                                         ckpt_.string(), fingerprint_diff(saved, fp_)));
  json st = load_checkpoint(ckpt_, with_best);
  try {
    step_ = st.at("step"), epoch_ = st.at("epoch"), next_row_ = st.at("next_row"), since_best_ = st.at("since_best");
    tokens_done_ = st.at("tokens_done"), secs_before_ = st.at("seconds");
    order_ = st.at("order").get<std::vector<size_t>>();
    std::istringstream(st.at("rng").get<std::string>()) >> rng_;
    res_.best_val_loss = st.at("best_val_loss"), res_.best_step = st.at("best_step"), res_.first_loss = st.at("first_loss");
    res_.diverged_at = st.at("diverged_at");
    tg_->set_steps_done(st.value("adam_steps", int64_t(step_)));  // fewer than `step` when updates were skipped
    res_.n_skipped = st.value("skipped", 0);
  } catch (const json::exception& e) {
    fail("--resume: '{}' holds a malformed state: {}", ckpt_.string(), e.what());
  }
  if (order_.size() != examples_.size() || next_row_ > order_.size() || step_ < 0 || step_ > total_)
    fail("--resume: '{}' holds a state that does not fit this run (step {}, {} examples)", ckpt_.string(), step_,
         order_.size());
  for (size_t i : order_)
    if (i >= examples_.size()) fail("--resume: '{}' holds a data order outside the examples", ckpt_.string());
  res_.resumed_from = step_;
  fresh_epoch_ = false;
  if (std::filesystem::exists(log_path_)) {  // keep the log up to the checkpoint
    read_jsonl(log_path_, [&](const json& j, size_t) {
      if (j.value("step", 0) <= step_) log_lines_.push_back(j);
    });
  }
}

void TrainRun::save() {
  json st = {{"fingerprint", fp_},          {"step", step_},
             {"epoch", epoch_},             {"next_row", next_row_},
             {"since_best", since_best_},   {"tokens_done", tokens_done_},
             {"order", order_},             {"best_val_loss", res_.best_val_loss},
             {"best_step", res_.best_step}, {"first_loss", res_.first_loss},
             {"diverged_at", res_.diverged_at}};
  std::ostringstream r;
  r << rng_;
  st["rng"] = r.str();
  st["seconds"] = secs_before_;
  st["adam_steps"] = tg_->steps_done();
  st["skipped"] = res_.n_skipped;
  CheckpointTensors c = ct_;
  if (!best_.empty() && !best_[0].empty())
    for (size_t i = 0; i < params_.size(); ++i) c.host["b." + std::string(params_[i]->name)] = &best_[i];
  save_checkpoint(ckpt_, c, st);
}

// The log file: rewritten with the lines up to the checkpoint (none when fresh), then appended to.
void TrainRun::open_log() {
  std::string log_text;
  for (auto& j : log_lines_) log_text += j.dump() + "\n";
  write_file_atomic(log_path_, log_text);
  log_ = std::make_unique<JsonlWriter>(log_path_, /*append=*/true);
}

double TrainRun::rate() const {
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - proc_t0_).count();
  return double(tokens_done_ - tokens_at_start_) / std::max(1e-9, secs);
}

double TrainRun::elapsed() const {
  return secs_before_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}

std::string TrainRun::last_good() const {
  return std::filesystem::exists(ckpt_) ? "The last good checkpoint is '" + ckpt_.string() + "' (--resume)."
                                        : std::string("No checkpoint was written (--save-steps).");
}

double TrainRun::validation_loss() {
  double sum = 0;
  size_t targets = 0;
  for (size_t first = 0; first < val_rows_.size(); first += size_t(S_)) {
    fill_batch(val_, val_rows_, first, std::min<size_t>(size_t(S_), val_rows_.size() - first), S_, T_, pad_, batch_);
    sum += tg_->evaluate(batch_) * double(batch_.n_targets);
    targets += batch_.n_targets;
  }
  return targets ? sum / double(targets) : 0.0;
}

// Up to --grad-accum micro-batches from `rows` (fewer at the epoch's end), then AdamW.
TrainStep TrainRun::optimizer_step(const std::vector<Row>& rows) {
  double acc_loss = 0;
  size_t acc_targets = 0;
  int n_micro = 0;
  for (; n_micro < o_.grad_accum && next_row_ < rows.size(); ++n_micro) {
    const size_t n_rows = std::min<size_t>(size_t(S_), rows.size() - next_row_);
    fill_batch(examples_, rows, next_row_, n_rows, S_, T_, pad_, batch_);
    next_row_ += n_rows;
    tokens_done_ += batch_.n_tokens;
    double l = tg_->accumulate(batch_);
    if (!std::isfinite(l))
      fail("loss became {} at step {}: stopping (lower --lr or --clip?). {}", l, step_ + 1, last_good());
    acc_loss += l * double(batch_.n_targets);
    acc_targets += batch_.n_targets;
  }
  AdamWParams ap{lr_at(o_, step_, total_), o_.beta1, o_.beta2, 1e-8f, o_.weight_decay, o_.clip};
  const double norm = tg_->step(ap, n_micro);
  ++step_;
  TrainStep ts{step_, acc_targets ? acc_loss / double(acc_targets) : 0.0, ap.lr, rate()};
  ts.grad_norm = norm;
  ts.skipped = !std::isfinite(norm);
  return ts;
}

// Skipped updates, the loss history, divergence, and validation with the best weights kept.
void TrainRun::record(TrainStep& ts, bool end_of_epoch) {
  if (ts.skipped) {
    ++res_.n_skipped;
    if (++skips_in_row_ >= kMaxSkips)
      fail("the gradient norm was {} for {} steps in a row (to step {}, loss {:.4f}): stopping (lower --lr?). {}",
           ts.grad_norm, skips_in_row_, step_, ts.loss, last_good());
    fmt::print(stderr, "{}warning: step {}: gradient norm {} with loss {:.4f}; update skipped\n", progress_prefix(), step_,
               ts.grad_norm, ts.loss);
  } else {
    skips_in_row_ = 0;
  }
  if (step_ == 1) res_.first_loss = ts.loss;
  res_.last_loss = ts.loss;
  res_.losses.push_back(ts.loss);
  if (watch_.update(step_, ts.loss) && !res_.diverged_at) {
    res_.diverged_at = step_;
    fmt::print(stderr, "{}warning: the loss is diverging at step {} (loss {:.4f}); lower --lr?\n", progress_prefix(), step_, ts.loss);
  }
  if (val_.empty() || !(o_.eval_steps > 0 ? step_ % o_.eval_steps == 0 : end_of_epoch)) return;
  ts.val_loss = validation_loss();
  if (!(res_.best_val_loss < 0 || ts.val_loss < res_.best_val_loss)) {  // a NaN loss is no improvement
    ++since_best_;
    return;
  }
  res_.best_val_loss = ts.val_loss;
  res_.best_step = step_;
  since_best_ = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    best_[i].resize(ggml_nbytes(params_[i]));
    ggml_backend_tensor_get(params_[i], best_[i].data(), 0, best_[i].size());
  }
}

// The log line, the callback, progress and checkpoints. Returns true when cancelled.
bool TrainRun::after_step(const TrainStep& ts) {
  json line = {{"step", ts.step},  {"epoch", epoch_},          {"loss", ts.loss}, {"ppl", std::exp(std::min(ts.loss, 50.0))},
               {"lr", ts.lr},      {"grad_norm", ts.grad_norm}, {"tokens_per_s", ts.tokens_per_s},
               {"tokens", tokens_done_}};
  if (ts.skipped) line["skipped"] = true;
  if (ts.val_loss >= 0) line["val_loss"] = ts.val_loss, line["val_ppl"] = std::exp(std::min(ts.val_loss, 50.0));
  if (ts.threads > 0) line["threads"] = ts.threads;
  log_->write(line);
  if (on_step_) on_step_(ts);
  progress_->update(step_, fmt::format("loss {:.4f}", ts.loss));
  const bool cancelled = o_.cancel && o_.cancel->load();
  // A skipped step's checkpoint would hold the same weights under a later step: wait for a good one.
  if ((o_.save_steps > 0 && step_ % o_.save_steps == 0 && !ts.skipped) || cancelled) {
    secs_before_ = elapsed(), t0_ = std::chrono::steady_clock::now();
    save();
  }
  if (!cancelled) return false;
  res_.interrupted = true;
  res_.steps = step_;
  progress_->finish("interrupted: checkpoint " + ckpt_.string());
  return true;
}

// The best validated weights (not the last) written, with the report.
void TrainRun::finish() {
  progress_->finish(fmt::format("loss {:.4f} -> {:.4f}", res_.first_loss, res_.last_loss));
  res_.steps = step_;
  if (!best_.empty() && !best_[0].empty())
    for (size_t i = 0; i < params_.size(); ++i) ggml_backend_tensor_set(params_[i], best_[i].data(), 0, best_[i].size());
  res_.tokens_per_s = rate();
  res_.loss_extra_passes = tg_->extra_passes();
  const TrainGraphBytes got = tg_->reserved();
  res_.memory_reserved = mg_->weight_bytes() + got.static_bytes + got.compute.front();
  for (auto& [_, t] : mg_->lora_tensors()) res_.memory_reserved += ggml_nbytes(t);
  if (!o_.full)
    save_lora(*mg_, o_.out);
  else
    save_model(*mg_, o_.out);
  write_train_report(log_path_, beside(o_.out, ".loss.svg"), beside(o_.out, ".summary.json"), res_, o_);
}

void TrainRun::follow_threads(const std::vector<ggml_backend_t>& backends) {
  const int want = o_.threads_live ? o_.threads_live->load() : 0;
  if (want < 1 || want == threads_now_) return;
  for (ggml_backend_t b : backends)
    if (ggml_backend_is_cpu(b)) ggml_backend_cpu_set_n_threads(b, want);
  threads_now_ = want;
}

TrainResult TrainRun::run(const std::vector<ggml_backend_t>& backends, size_t memory_estimate) {
  res_.memory_estimate = memory_estimate;
  prepare(backends);
  if (o_.resume) resume();
  open_log();
  tokens_at_start_ = tokens_done_;
  progress_ = std::make_unique<Progress>("train", total_, o_.progress);
  proc_t0_ = t0_ = std::chrono::steady_clock::now();
  std::vector<Row> rows;
  while (step_ < total_ && !res_.stopped_early) {
    if (fresh_epoch_) {
      std::shuffle(order_.begin(), order_.end(), rng_);
      next_row_ = 0;
    }
    fresh_epoch_ = true;
    rows = make_rows(examples_, order_, T_, o_.pack);
    while (next_row_ < rows.size() && step_ < total_) {
      follow_threads(backends);
      TrainStep ts = optimizer_step(rows);
      ts.threads = threads_now_;
      record(ts, next_row_ >= rows.size());
      if (after_step(ts)) return res_;
      if (o_.patience > 0 && since_best_ >= o_.patience) {
        res_.stopped_early = true;
        break;
      }
    }
    if (next_row_ >= rows.size()) ++epoch_;
  }
  finish();
  return res_;
}

}  // namespace

TrainResult train(const TrainOptions& opts, const std::function<void(const TrainStep&)>& on_step) {
  opts.validate();
  engine_init();
  TrainOptions o = opts;
  std::vector<ggml_backend_t> backends = train_devices(o);
  struct BackendsFree {
    std::vector<ggml_backend_t>* b;
    ~BackendsFree() {
      for (auto* x : *b) ggml_backend_free(x);
    }
  } backends_free{&backends};
  // How the base is held, settled once, before the memory estimate: a resumed run keeps its checkpoint's choice.
  if (!o.full) o.base_weights = to_string(resolved_base_weights(o, backends.front(), beside(o.out, ".ckpt.gguf")));
  // Before the data or the weights are read: a run that cannot fit stops here, saying what would.
  if (const std::string chose = resolve_checkpoint_blocks(o, backends); !chose.empty() && o.progress)
    fmt::print(stderr, "{}train: {}\n", progress_prefix(), chose);
  const TrainMemory memory = estimate_train_memory(o, backends);
  if (o.progress) fmt::print(stderr, "{}{}\n", progress_prefix(), memory.report(o));
  check_train_memory(memory, o, backends);
  TrainRun run(o, on_step);
  return run.run(backends, memory.weights + memory.lora + memory.optimizer + memory.activations);
}

}  // namespace cogumi
