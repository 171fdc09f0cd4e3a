#include "train/trainer.h"

#include <ggml-backend.h>
#include <gguf.h>

#include <chrono>
#include <cmath>
#include <numeric>
#include <random>
#include <regex>
#include <sstream>
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
}  // namespace

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
  if (patience > 0 && val_split <= 0 && val_data.empty()) fail("--patience needs validation data (--val-split or --val-data)");
  if (val_split > 0 && !val_data.empty()) fail("give --val-split or --val-data, not both");
  static const std::regex kDevice("auto|cpu|gpu(:[0-9]{1,3})?");
  if (!device.empty() && !std::regex_match(device, kDevice)) fail("--device must be cpu, gpu or gpu:N, got '{}'", device);
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

namespace {

float lr_at(const TrainOptions& o, int step, int total) {
  if (o.warmup > 0 && step < o.warmup) return o.lr * float(step + 1) / float(o.warmup);
  float p = total > o.warmup ? float(step - o.warmup) / float(std::max(1, total - o.warmup)) : 1.0f;
  p = std::min(1.0f, std::max(0.0f, p));
  if (o.schedule == "cosine") return o.lr * (0.1f + 0.9f * 0.5f * (1.0f + std::cos(float(M_PI) * p)));
  if (o.schedule == "linear") return o.lr * (1.0f - 0.9f * p);
  return o.lr;
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

std::filesystem::path beside(const std::filesystem::path& out, const std::string& suffix) {
  return std::filesystem::path(out.string() + suffix);
}

// What must match for a checkpoint to be resumed: everything that shapes the loss curve. Data
// files are hashed (an edited file under the same name is another run); the base model only by
// path and size, since hashing tens of GB on every start costs minutes.
json fingerprint(const TrainOptions& o, size_t n_train) {
  json data = json::array(), val = json::array();
  for (auto& d : o.data) data.push_back({d.path.string(), d.weight, sha256_file(d.path)});
  for (auto& f : o.val_data) val.push_back({f.string(), sha256_file(f)});
  std::error_code ec;
  const auto model_bytes = std::filesystem::file_size(o.model, ec);
  json lora = o.full ? json(nullptr) : json{{"rank", o.lora.rank}, {"alpha", o.lora.alpha}, {"targets", o.lora.targets}};
  return {{"model", o.model.string()}, {"model_bytes", ec ? 0 : model_bytes}, {"data", data}, {"val_data", val},
          {"val_split", o.val_split}, {"full", o.full}, {"lora", lora}, {"seq_len", o.sft.max_len},
          {"drop_long", o.sft.drop_long}, {"train_on_inputs", o.sft.train_on_inputs}, {"batch", o.batch},
          {"grad_accum", o.grad_accum}, {"epochs", o.epochs}, {"max_steps", o.max_steps}, {"lr", o.lr},
          {"schedule", o.schedule}, {"warmup", o.warmup}, {"weight_decay", o.weight_decay}, {"beta1", o.beta1},
          {"beta2", o.beta2}, {"clip", o.clip}, {"seed", o.seed}, {"pack", o.pack}, {"n_train", n_train}};
}

std::string fingerprint_diff(const json& a, const json& b) {
  std::string keys;
  for (auto& [k, v] : b.items())
    if (!a.contains(k) || a[k] != v) keys += (keys.empty() ? "" : ", ") + k;
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

TrainResult train(const TrainOptions& o, const std::function<void(const TrainStep&)>& on_step) {
  o.validate();
  engine_init();
  std::vector<ggml_backend_t> backends = train_devices(o);
  struct BackendsFree {
    std::vector<ggml_backend_t>* b;
    ~BackendsFree() {
      for (auto* x : *b) ggml_backend_free(x);
    }
  } backends_free{&backends};
  // Before the data or the weights are read: a run that cannot fit stops here, saying what would.
  const TrainMemory memory = estimate_train_memory(o, backends);
  if (o.progress) fmt::print(stderr, "{}\n", memory.report(o));
  check_train_memory(memory, o, backends);
  ModelOptions mo;
  mo.vocab_only = true;
  auto tok = Model::load(o.model, mo);
  TrainResult res;
  std::vector<SftExample> examples, val;
  load_examples(o, *tok, res, examples, val);
  res.n_train = examples.size();
  res.n_val = val.size();

  ModelGraph mg(o.model, backends.front(), /*keep_file_types=*/!o.full);
  if (!o.full) mg.add_lora(o.lora, o.seed);
  const int T = o.sft.max_len, S = o.batch;
  TrainGraph tg(mg, backends, T, S);

  const Token pad = tok->info().eos >= 0 ? tok->info().eos : 0;
  std::mt19937_64 rng(o.seed);
  std::vector<size_t> order(examples.size());
  std::iota(order.begin(), order.end(), 0);
  // Packing makes fewer rows; the unshuffled packing sets the count used by the schedule.
  const int epoch_steps = steps_per_epoch(make_rows(examples, order, T, o.pack).size(), S, o.grad_accum);
  const int total = o.max_steps > 0 ? o.max_steps : std::max(1, epoch_steps * o.epochs);

  const std::filesystem::path ckpt = beside(o.out, ".ckpt.gguf");
  const std::filesystem::path log_path = o.log.empty() ? beside(o.out, ".log.jsonl") : o.log;
  const json fp = fingerprint(o, examples.size());
  std::vector<std::vector<char>> best;  // the best validated weights, on the host
  CheckpointTensors ct;
  auto params = mg.trainable();
  auto moments = tg.moments();
  best.resize(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    ct.device["p." + std::string(params[i]->name)] = params[i];
    ct.device["m." + std::string(params[i]->name)] = moments[2 * i];
    ct.device["v." + std::string(params[i]->name)] = moments[2 * i + 1];
  }

  int step = 0, epoch = 0, since_best = 0;
  size_t next_row = 0, tokens_done = 0;
  double secs_before = 0;
  bool fresh_epoch = true;
  std::vector<json> log_lines;
  if (o.resume) {
    // The best weights are in the checkpoint only once a validation happened (host tensors are optional).
    CheckpointTensors with_best = ct;
    for (size_t i = 0; i < params.size(); ++i) with_best.host["b." + std::string(params[i]->name)] = &best[i];
    const json saved = checkpoint_state(ckpt).value("fingerprint", json::object());
    if (saved != fp)
      fail("--resume: '{}' was written by a different run (differing: {}); start afresh without --resume or "
           "restore that run's options and data", ckpt.string(), fingerprint_diff(saved, fp));
    json st = load_checkpoint(ckpt, with_best);
    try {
      step = st.at("step"), epoch = st.at("epoch"), next_row = st.at("next_row"), since_best = st.at("since_best");
      tokens_done = st.at("tokens_done"), secs_before = st.at("seconds");
      order = st.at("order").get<std::vector<size_t>>();
      std::istringstream(st.at("rng").get<std::string>()) >> rng;
      res.best_val_loss = st.at("best_val_loss"), res.best_step = st.at("best_step"), res.first_loss = st.at("first_loss");
      res.diverged_at = st.at("diverged_at");
      tg.set_steps_done(st.value("adam_steps", int64_t(step)));  // fewer than `step` when updates were skipped
      res.n_skipped = st.value("skipped", 0);
    } catch (const json::exception& e) {
      fail("--resume: '{}' holds a malformed state: {}", ckpt.string(), e.what());
    }
    if (order.size() != examples.size() || next_row > order.size() || step < 0 || step > total)
      fail("--resume: '{}' holds a state that does not fit this run (step {}, {} examples)", ckpt.string(), step,
           order.size());
    for (size_t i : order)
      if (i >= examples.size()) fail("--resume: '{}' holds a data order outside the examples", ckpt.string());
    res.resumed_from = step;
    fresh_epoch = false;
    if (std::filesystem::exists(log_path)) {  // keep the log up to the checkpoint
      read_jsonl(log_path, [&](const json& j, size_t) {
        if (j.value("step", 0) <= step) log_lines.push_back(j);
      });
    }
  }
  auto save = [&] {
    json st = {{"fingerprint", fp},         {"step", step},
               {"epoch", epoch},            {"next_row", next_row},
               {"since_best", since_best},  {"tokens_done", tokens_done},
               {"order", order},            {"best_val_loss", res.best_val_loss},
               {"best_step", res.best_step}, {"first_loss", res.first_loss},
               {"diverged_at", res.diverged_at}};
    std::ostringstream r;
    r << rng;
    st["rng"] = r.str();
    st["seconds"] = secs_before;
    st["adam_steps"] = tg.steps_done();
    st["skipped"] = res.n_skipped;
    CheckpointTensors c = ct;
    if (!best.empty() && !best[0].empty())
      for (size_t i = 0; i < params.size(); ++i) c.host["b." + std::string(params[i]->name)] = &best[i];
    save_checkpoint(ckpt, c, st);
  };

  std::string log_text;
  for (auto& j : log_lines) log_text += j.dump() + "\n";
  write_file_atomic(log_path, log_text);
  JsonlWriter log(log_path, /*append=*/true);

  const size_t tokens_at_start = tokens_done;
  Progress progress("train", total, o.progress);
  const auto proc_t0 = std::chrono::steady_clock::now();
  auto rate = [&] {
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - proc_t0).count();
    return double(tokens_done - tokens_at_start) / std::max(1e-9, secs);
  };
  auto t0 = proc_t0;
  auto elapsed = [&] { return secs_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  HostBatch batch;
  std::vector<Row> val_rows;
  {
    std::vector<size_t> vo(val.size());
    std::iota(vo.begin(), vo.end(), 0);
    val_rows = make_rows(val, vo, T, o.pack);
  }
  auto validate = [&]() {
    double sum = 0;
    size_t targets = 0;
    for (size_t first = 0; first < val_rows.size(); first += S) {
      fill_batch(val, val_rows, first, std::min<size_t>(S, val_rows.size() - first), S, T, pad, batch);
      sum += tg.evaluate(batch) * double(batch.n_targets);
      targets += batch.n_targets;
    }
    return targets ? sum / double(targets) : 0.0;
  };
  DivergenceWatch watch(o.warmup);
  std::vector<Row> rows;
  int skips_in_row = 0;
  auto last_good = [&] {
    return std::filesystem::exists(ckpt) ? "The last good checkpoint is '" + ckpt.string() + "' (--resume)."
                                         : std::string("No checkpoint was written (--save-steps).");
  };
  while (step < total && !res.stopped_early) {
    if (fresh_epoch) {
      std::shuffle(order.begin(), order.end(), rng);
      next_row = 0;
    }
    fresh_epoch = true;
    rows = make_rows(examples, order, T, o.pack);
    while (next_row < rows.size() && step < total) {
      double acc_loss = 0;
      size_t acc_targets = 0;
      int n_micro = 0;
      for (; n_micro < o.grad_accum && next_row < rows.size(); ++n_micro) {
        const size_t n_rows = std::min<size_t>(size_t(S), rows.size() - next_row);
        fill_batch(examples, rows, next_row, n_rows, S, T, pad, batch);
        next_row += n_rows;
        tokens_done += batch.n_tokens;
        double l = tg.accumulate(batch);
        if (!std::isfinite(l))
          fail("loss became {} at step {}: stopping (lower --lr or --clip?). {}", l, step + 1, last_good());
        acc_loss += l * double(batch.n_targets);
        acc_targets += batch.n_targets;
      }
      AdamWParams ap{lr_at(o, step, total), o.beta1, o.beta2, 1e-8f, o.weight_decay, o.clip};
      double norm = tg.step(ap, n_micro);
      ++step;
      TrainStep ts{step, acc_targets ? acc_loss / double(acc_targets) : 0.0, ap.lr, rate()};
      ts.grad_norm = norm;
      ts.skipped = !std::isfinite(norm);
      if (ts.skipped) {
        ++res.n_skipped;
        if (++skips_in_row >= kMaxSkips)
          fail("the gradient norm was {} for {} steps in a row (to step {}, loss {:.4f}): stopping (lower --lr?). {}",
               norm, skips_in_row, step, ts.loss, last_good());
        fmt::print(stderr, "warning: step {}: gradient norm {} with loss {:.4f}; update skipped\n", step, norm, ts.loss);
      } else {
        skips_in_row = 0;
      }
      if (step == 1) res.first_loss = ts.loss;
      res.last_loss = ts.loss;
      res.losses.push_back(ts.loss);
      if (watch.update(step, ts.loss) && !res.diverged_at) {
        res.diverged_at = step;
        fmt::print(stderr, "warning: the loss is diverging at step {} (loss {:.4f}); lower --lr?\n", step, ts.loss);
      }
      const bool end_of_epoch = next_row >= rows.size();
      if (!val.empty() && (o.eval_steps > 0 ? step % o.eval_steps == 0 : end_of_epoch)) {
        ts.val_loss = validate();
        if (res.best_val_loss < 0 || ts.val_loss < res.best_val_loss) {
          res.best_val_loss = ts.val_loss;
          res.best_step = step;
          since_best = 0;
          for (size_t i = 0; i < params.size(); ++i) {
            best[i].resize(ggml_nbytes(params[i]));
            ggml_backend_tensor_get(params[i], best[i].data(), 0, best[i].size());
          }
        } else {
          ++since_best;
        }
      }
      json line = {{"step", ts.step},   {"epoch", epoch}, {"loss", ts.loss}, {"ppl", std::exp(std::min(ts.loss, 50.0))},
                   {"lr", ts.lr},       {"grad_norm", norm}, {"tokens_per_s", ts.tokens_per_s},
                   {"tokens", tokens_done}};
      if (ts.skipped) line["skipped"] = true;
      if (ts.val_loss >= 0) line["val_loss"] = ts.val_loss, line["val_ppl"] = std::exp(std::min(ts.val_loss, 50.0));
      log.write(line);
      if (on_step) on_step(ts);
      progress.update(step, fmt::format("loss {:.4f}", ts.loss));
      const bool cancelled = o.cancel && o.cancel->load();
      // A skipped step's checkpoint would hold the same weights under a later step: wait for a good one.
      if ((o.save_steps > 0 && step % o.save_steps == 0 && !ts.skipped) || cancelled) {
        secs_before = elapsed(), t0 = std::chrono::steady_clock::now();
        save();
      }
      if (cancelled) {
        res.interrupted = true;
        res.steps = step;
        progress.finish("interrupted: checkpoint " + ckpt.string());
        return res;
      }
      if (o.patience > 0 && since_best >= o.patience) {
        res.stopped_early = true;
        break;
      }
    }
    if (next_row >= rows.size()) ++epoch;
  }
  progress.finish(fmt::format("loss {:.4f} -> {:.4f}", res.first_loss, res.last_loss));
  res.steps = step;
  if (!best.empty() && !best[0].empty())  // write the best validated weights, not the last
    for (size_t i = 0; i < params.size(); ++i) ggml_backend_tensor_set(params[i], best[i].data(), 0, best[i].size());
  res.tokens_per_s = rate();
  if (!o.full)
    save_lora(mg, o.out);
  else
    save_model(mg, o.out);
  write_train_report(log_path, beside(o.out, ".loss.svg"), beside(o.out, ".summary.json"), res, o);
  return res;
}

}  // namespace cogumi
