#include "train/trainer.h"

#include <ggml-alloc.h>
#include <ggml-cpu.h>
#include <ggml-opt.h>

#include <chrono>
#include <cmath>
#include <numeric>
#include <random>
#include <thread>

#include "core/error.h"
#include "core/io.h"
#include "core/progress.h"
#include "engine/gguf_writer.h"
#include "train/model_graph.h"

namespace cogumi {

DataSource parse_data_source(const std::string& spec) {
  auto colon = spec.rfind(':');
  if (colon == std::string::npos || colon == 0) return {spec, 1.0};
  std::string w = spec.substr(colon + 1);
  char* end = nullptr;
  double weight = std::strtod(w.c_str(), &end);
  if (w.empty() || end != w.c_str() + w.size()) return {spec, 1.0};  // a ':' in the path itself
  if (!(weight > 0)) fail("data weight must be > 0 in '{}'", spec);
  return {spec.substr(0, colon), weight};
}

void TrainOptions::validate() const {
  if (data.empty()) fail("give training data (-d FILE[:WEIGHT])");
  if (batch < 1) fail("--batch must be >= 1");
  if (grad_accum < 1) fail("--grad-accum must be >= 1");
  if (epochs < 1 && max_steps < 1) fail("give --epochs or --max-steps");
  if (!(lr > 0)) fail("--lr must be > 0");
  if (sft.max_len < 8) fail("--seq-len must be >= 8");
  if (schedule != "cosine" && schedule != "linear" && schedule != "constant")
    fail("unknown schedule '{}' (cosine, linear, constant)", schedule);
  if (out.empty()) fail("give an output path (-o)");
  if (val_split < 0 || val_split >= 1) fail("--val-split must be in [0, 1)");
  if (patience > 0 && val_split <= 0) fail("--patience needs a validation split (--val-split)");
}

size_t make_labels(const std::vector<std::vector<Token>>& tokens, const std::vector<std::vector<uint8_t>>& target,
                   int T, int n_vocab, std::vector<float>& labels) {
  labels.assign(size_t(n_vocab) * T * tokens.size(), 0.0f);
  size_t n = 0;
  for (size_t s = 0; s < tokens.size(); ++s)
    for (int i = 0; i + 1 < int(tokens[s].size()) && i < T; ++i)
      if (target[s][i + 1]) {
        labels[(s * T + i) * size_t(n_vocab) + tokens[s][i + 1]] = 1.0f;
        ++n;
      }
  return n;
}

namespace {

struct State {
  const TrainOptions* o;
  int step = 0;      // optimizer steps done
  int total = 1;
  float lr = 0.0f;
};

float lr_at(const TrainOptions& o, int step, int total) {
  if (o.warmup > 0 && step < o.warmup) return o.lr * float(step + 1) / float(o.warmup);
  float p = total > o.warmup ? float(step - o.warmup) / float(std::max(1, total - o.warmup)) : 1.0f;
  p = std::min(1.0f, std::max(0.0f, p));
  if (o.schedule == "cosine") return o.lr * (0.1f + 0.9f * 0.5f * (1.0f + std::cos(float(M_PI) * p)));
  if (o.schedule == "linear") return o.lr * (1.0f - 0.9f * p);
  return o.lr;
}

ggml_opt_optimizer_params opt_pars(void* ud) {
  State* st = static_cast<State*>(ud);
  ggml_opt_optimizer_params p = ggml_opt_get_default_optimizer_params(nullptr);
  st->lr = lr_at(*st->o, st->step, st->total);
  p.adamw.alpha = st->lr;
  p.adamw.beta1 = st->o->beta1;
  p.adamw.beta2 = st->o->beta2;
  p.adamw.wd = st->o->weight_decay;
  return p;
}

void save_lora(const ModelGraph& mg, const std::filesystem::path& out) {
  GgufWriter w;
  gguf_set_val_str(w.kv(), "general.type", "adapter");
  gguf_set_val_str(w.kv(), "general.architecture", "llama");
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

}  // namespace

TrainResult train(const TrainOptions& o, const std::function<void(const TrainStep&)>& on_step) {
  o.validate();
  engine_init();
  ModelOptions mo;
  mo.vocab_only = true;
  auto tok = Model::load(o.model, mo);
  TrainResult res;
  std::vector<SftExample> examples;
  std::mt19937_64 mix_rng(o.seed ^ 0x6d1fULL);
  for (const auto& src : o.data) {
    SftStats st;
    auto ex = load_sft(src.path, *tok, o.sft, &st);
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
  std::vector<SftExample> val;
  if (o.val_split > 0) {
    std::mt19937_64 split_rng(o.seed ^ 0x5eedULL);
    std::shuffle(examples.begin(), examples.end(), split_rng);
    size_t n_val = std::max<size_t>(1, size_t(double(examples.size()) * o.val_split + 0.5));
    if (n_val >= examples.size()) fail("--val-split {} leaves no training examples ({} in all)", o.val_split, examples.size());
    val.assign(examples.end() - long(n_val), examples.end());
    examples.resize(examples.size() - n_val);
  }
  res.n_train = examples.size();
  res.n_val = val.size();

  const int threads = o.n_threads > 0 ? o.n_threads : int(std::max(1u, std::thread::hardware_concurrency()));
  ggml_backend_t be = ggml_backend_cpu_init();
  ggml_backend_cpu_set_n_threads(be, threads);
  std::unique_ptr<ggml_backend, decltype(&ggml_backend_free)> be_guard(be, ggml_backend_free);
  ModelGraph mg(o.model, be);
  if (o.lora.rank > 0) mg.add_lora(o.lora, o.seed);
  for (ggml_tensor* t : mg.trainable()) {
    if (t->type != GGML_TYPE_F32)
      fail("full-parameter training needs F32 weights, but '{}' is {} (convert with 'cogumi model quantize IN OUT "
           "--type f32', or train a LoRA)",
           t->name, ggml_type_name(t->type));
    ggml_set_param(t);
  }
  const int T = o.sft.max_len, S = o.batch, V = mg.hparams().n_vocab;

  // Inputs live in their own buffer: ggml-opt's static graphs need them allocated up front.
  ggml_init_params ipi{4 * ggml_tensor_overhead(), nullptr, true};
  std::unique_ptr<ggml_context, decltype(&ggml_free)> ctx_in(ggml_init(ipi), ggml_free);
  ggml_tensor* tokens = ggml_new_tensor_2d(ctx_in.get(), GGML_TYPE_I32, T, S);
  ggml_tensor* pos = ggml_new_tensor_1d(ctx_in.get(), GGML_TYPE_I32, T);
  ggml_set_input(tokens);
  ggml_set_input(pos);
  ggml_backend_buffer_t buf_in = ggml_backend_alloc_ctx_tensors(ctx_in.get(), be);
  std::unique_ptr<ggml_backend_buffer, decltype(&ggml_backend_buffer_free)> buf_guard(buf_in, ggml_backend_buffer_free);
  std::vector<int32_t> p(T);
  std::iota(p.begin(), p.end(), 0);
  ggml_backend_tensor_set(pos, p.data(), 0, T * sizeof(int32_t));

  const size_t graph_size = GGML_DEFAULT_GRAPH_SIZE;
  ggml_init_params ipc{8 * graph_size * ggml_tensor_overhead() + 4 * ggml_graph_overhead_custom(graph_size, true), nullptr,
                       true};
  std::unique_ptr<ggml_context, decltype(&ggml_free)> ctx_c(ggml_init(ipc), ggml_free);
  ggml_tensor* logits = mg.build_logits(ctx_c.get(), tokens, pos);

  ggml_backend_sched_t sched = ggml_backend_sched_new(&be, nullptr, 1, graph_size * 4, false, false);
  std::unique_ptr<ggml_backend_sched, decltype(&ggml_backend_sched_free)> sched_guard(sched, ggml_backend_sched_free);
  State st{&o};
  const int micro_per_epoch = int((examples.size() + S - 1) / S);
  st.total = o.max_steps > 0 ? o.max_steps : std::max(1, micro_per_epoch * o.epochs / o.grad_accum);
  ggml_opt_params op = ggml_opt_default_params(sched, GGML_OPT_LOSS_TYPE_CROSS_ENTROPY);
  op.ctx_compute = ctx_c.get();
  op.inputs = tokens;
  op.outputs = logits;
  op.opt_period = o.grad_accum;
  op.get_opt_pars = opt_pars;
  op.get_opt_pars_ud = &st;
  op.optimizer = GGML_OPT_OPTIMIZER_TYPE_ADAMW;
  ggml_opt_context_t opt = ggml_opt_init(op);
  std::unique_ptr<std::remove_pointer_t<ggml_opt_context_t>, decltype(&ggml_opt_free)> opt_guard(opt, ggml_opt_free);
  ggml_opt_result_t result = ggml_opt_result_init();
  std::unique_ptr<std::remove_pointer_t<ggml_opt_result_t>, decltype(&ggml_opt_result_free)> result_guard(
      result, ggml_opt_result_free);

  std::unique_ptr<JsonlWriter> log;
  if (!o.log.empty()) log = std::make_unique<JsonlWriter>(o.log);
  std::mt19937_64 rng(o.seed);
  std::vector<size_t> order(examples.size());
  std::iota(order.begin(), order.end(), 0);
  const Token pad = tok->info().eos >= 0 ? tok->info().eos : 0;
  Progress progress("train", st.total, o.progress);
  auto t0 = std::chrono::steady_clock::now();
  double acc_loss = 0.0;
  size_t acc_targets = 0, tokens_done = 0;
  int micro = 0;
  std::vector<int32_t> tok_buf(size_t(T) * S);
  std::vector<float> labels;
  // Fills the input and label buffers from examples[idx...]; returns the target count.
  auto fill = [&](const std::vector<SftExample>& set, const std::vector<size_t>& idx, size_t first) {
    std::vector<std::vector<Token>> bt;
    std::vector<std::vector<uint8_t>> bm;
    for (int s = 0; s < S; ++s) {
      const SftExample& ex = set[idx[(first + s) % idx.size()]];
      bt.push_back(ex.tokens);
      bm.push_back(ex.target);
      for (int i = 0; i < T; ++i) tok_buf[size_t(s) * T + i] = i < int(ex.tokens.size()) ? ex.tokens[i] : pad;
    }
    return make_labels(bt, bm, T, V, labels);
  };
  auto run = [&](bool backward, size_t n_targets) {
    ggml_opt_alloc(opt, backward);
    ggml_backend_tensor_set(tokens, tok_buf.data(), 0, tok_buf.size() * sizeof(int32_t));
    ggml_backend_tensor_set(ggml_opt_labels(opt), labels.data(), 0, labels.size() * sizeof(float));
    ggml_opt_result_reset(result);
    ggml_opt_eval(opt, result);
    double loss = 0, unc = 0;
    ggml_opt_result_loss(result, &loss, &unc);
    // ggml averages over every row; report the mean over target tokens only.
    return n_targets ? loss * double(T) * S / double(n_targets) : 0.0;
  };
  std::vector<size_t> val_idx(val.size());
  std::iota(val_idx.begin(), val_idx.end(), 0);
  auto validate = [&]() {
    double sum = 0;
    size_t targets = 0;
    for (size_t first = 0; first < val.size(); first += S) {
      // The last partial batch wraps around; count each example once by masking repeats.
      size_t n = fill(val, val_idx, first);
      size_t n_real = std::min<size_t>(S, val.size() - first);
      if (n_real < size_t(S)) {
        for (size_t s = n_real; s < size_t(S); ++s)
          std::fill(labels.begin() + long(s * T * size_t(V)), labels.begin() + long((s + 1) * T * size_t(V)), 0.0f);
        n = 0;
        for (float x : labels) n += x != 0.0f;
      }
      sum += run(false, n) * double(n);
      targets += n;
    }
    return targets ? sum / double(targets) : 0.0;
  };
  // The best validated weights, kept on the host.
  std::vector<std::vector<char>> best;
  auto snapshot = [&] {
    auto params = mg.trainable();
    best.resize(params.size());
    for (size_t i = 0; i < params.size(); ++i) {
      best[i].resize(ggml_nbytes(params[i]));
      ggml_backend_tensor_get(params[i], best[i].data(), 0, best[i].size());
    }
  };
  int since_best = 0;
  for (int epoch = 0; st.step < st.total && !res.stopped_early; ++epoch) {
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t first = 0; first < order.size() && st.step < st.total; first += S) {
      size_t n_targets = fill(examples, order, first);
      for (int s = 0; s < S; ++s) tokens_done += examples[order[(first + s) % order.size()]].tokens.size();
      double batch_loss = run(true, n_targets);
      if (!std::isfinite(batch_loss))
        fail("loss became {} at step {}: stopping (lower --lr?); nothing was written to '{}'", batch_loss, st.step,
             o.out.string());
      acc_loss += batch_loss * double(n_targets);
      acc_targets += n_targets;
      if (++micro % o.grad_accum != 0) continue;
      ++st.step;
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      TrainStep ts{st.step, acc_targets ? acc_loss / double(acc_targets) : 0.0, st.lr, tokens_done / secs};
      if (st.step == 1) res.first_loss = ts.loss;
      res.last_loss = ts.loss;
      acc_loss = 0;
      acc_targets = 0;
      const bool end_of_epoch = first + S >= order.size();
      if (!val.empty() && (o.eval_steps > 0 ? st.step % o.eval_steps == 0 : end_of_epoch)) {
        ts.val_loss = validate();
        if (res.best_val_loss < 0 || ts.val_loss < res.best_val_loss) {
          res.best_val_loss = ts.val_loss;
          res.best_step = st.step;
          since_best = 0;
          snapshot();
        } else {
          ++since_best;
        }
      }
      json line = {{"step", ts.step}, {"epoch", epoch}, {"loss", ts.loss}, {"lr", ts.lr}, {"tokens_per_s", ts.tokens_per_s}};
      if (ts.val_loss >= 0) line["val_loss"] = ts.val_loss;
      if (log) log->write(line);
      if (on_step) on_step(ts);
      progress.update(st.step, fmt::format("loss {:.4f}", ts.loss));
      if (o.patience > 0 && since_best >= o.patience) {
        res.stopped_early = true;
        break;
      }
    }
  }
  progress.finish(fmt::format("loss {:.4f} -> {:.4f}", res.first_loss, res.last_loss));
  res.steps = st.step;
  if (!best.empty()) {  // write the best validated weights, not the last
    auto params = mg.trainable();
    for (size_t i = 0; i < params.size(); ++i) ggml_backend_tensor_set(params[i], best[i].data(), 0, best[i].size());
  }
  res.tokens_per_s = tokens_done / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (o.lora.rank > 0)
    save_lora(mg, o.out);
  else
    save_model(mg, o.out);
  return res;
}

}  // namespace cogumi
