// cogumi/train: first-order MAML on a LoRA adapter (maml.h), on the trainer's own graph.
#include "train/maml.h"

#include <ggml-alloc.h>
#include <gguf.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>
#include <regex>
#include <thread>

#include "core/error.h"
#include "core/threads.h"
#include "core/io.h"
#include "core/progress.h"
#include "engine/gguf_writer.h"
#include "engine/model.h"
#include "train/batches.h"
#include "train/maml_core.h"
#include "train/model_graph.h"
#include "train/trainer.h"

namespace cogumi {

namespace {
void check_range(const char* option, double v, double lo, double hi) {
  if (!(v >= lo && v <= hi)) fail("{} must be in [{}, {}], got {}", option, lo, hi, v);
}
void check_lr(const char* option, double v, double hi) {
  if (!(v > 0 && v <= hi)) fail("{} must be in (0, {}], got {}", option, hi, v);
}
void check_lora(const LoraSpec& l) {
  check_range("--lora-rank", l.rank, 1, 4096);
  if (!(l.alpha > 0) || !std::isfinite(l.alpha)) fail("--lora-alpha must be > 0, got {}", l.alpha);
  if (l.targets.empty()) fail("--targets: give at least one LoRA target module");
}
void check_inner(const InnerOptions& o, const std::string& prefix) {
  check_range((prefix + "inner-steps").c_str(), o.steps, 1, 100);
  check_lr((prefix + "inner-lr").c_str(), o.lr, 100);
  check_range((prefix + "inner-clip").c_str(), o.clip, 0, 1e6);
}
}  // namespace

void MamlOptions::validate() const {
  if (model.empty()) fail("give a base model (-m)");
  if (data.empty()) fail("give training data (-d FILE) whose records name their task (--task-field)");
  if (out.empty()) fail("give an output path (-o)");
  if (task_field.empty()) fail("--task-field must not be empty");
  check_lora(lora);
  check_inner(inner, "--");
  check_range("--max-steps (meta-steps)", meta_steps, 1, 1e6);
  check_range("--meta-batch", meta_batch, 1, 1024);
  check_range("--shots", shots, 1, 256);
  check_range("--query", query, 1, 1024);
  check_lr("--lr (outer)", outer_lr, 10);
  check_range("--clip (outer)", outer_clip, 0, 1e6);
  check_range("--seq-len", seq_len, 8, 65536);
  check_range("--threads", n_threads, 0, 4096);
  static const std::regex kDevice("auto|cpu|gpu(:[0-9]{1,3})?");
  if (!device.empty() && !std::regex_match(device, kDevice)) fail("--device must be cpu, gpu or gpu:N, got '{}'", device);
}

void FewshotEvalOptions::validate() const {
  if (model.empty()) fail("give a base model (-m)");
  if (maml_adapter.empty()) fail("give the meta-trained adapter (--maml)");
  if (data.empty()) fail("give the held-out tasks' records (-d FILE)");
  if (out.empty()) fail("give an output path (-o)");
  if (task_field.empty()) fail("--task-field must not be empty");
  check_lora(lora);
  if (shots.empty()) fail("--shots: give at least one k");
  for (int k : shots) check_range("--shots", k, 1, 64);
  check_range("--episodes", episodes, 1, 10000);
  check_range("--query", query, 1, 4096);
  check_inner(maml_inner, "--maml-");
  check_inner(multitask_inner, "--multitask-");
  check_range("--seq-len", seq_len, 8, 65536);
  check_range("--threads", n_threads, 0, 4096);
}

namespace maml {

Params read_params(const TrainGraph& tg) {
  Params p;
  for (ggml_tensor* t : tg.params()) {
    p.emplace_back(size_t(ggml_nelements(t)));
    ggml_backend_tensor_get(t, p.back().data(), 0, ggml_nbytes(t));
  }
  return p;
}

void write_params(const TrainGraph& tg, const Params& p) {
  const auto& ts = tg.params();
  if (p.size() != ts.size()) fail("internal: {} host tensors for {} parameters", p.size(), ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    if (p[i].size() != size_t(ggml_nelements(ts[i]))) fail("internal: size mismatch writing '{}'", ts[i]->name);
    ggml_backend_tensor_set(ts[i], p[i].data(), 0, ggml_nbytes(ts[i]));
  }
}

Params read_grads(const TrainGraph& tg) {
  Params g;
  for (ggml_tensor* t : tg.gradients()) {
    g.emplace_back(size_t(ggml_nelements(t)));
    ggml_backend_tensor_get(t, g.back().data(), 0, ggml_nbytes(t));
  }
  return g;
}

void write_grads(const TrainGraph& tg, const Params& g) {
  const auto& ts = tg.gradients();
  if (g.size() != ts.size()) fail("internal: {} host gradients for {} accumulators", g.size(), ts.size());
  for (size_t i = 0; i < ts.size(); ++i) ggml_backend_tensor_set(ts[i], g[i].data(), 0, ggml_nbytes(ts[i]));
}

void zero_grads(const TrainGraph& tg) {
  for (ggml_tensor* t : tg.gradients()) ggml_backend_tensor_memset(t, 0, 0, ggml_nbytes(t));
}

double norm(const Params& p) {
  double s = 0;
  for (const auto& v : p)
    for (float x : v) s += double(x) * x;
  return std::sqrt(s);
}

namespace {
std::vector<Row> one_per_row(const std::vector<SftExample>& ex, int T) {
  std::vector<size_t> order(ex.size());
  std::iota(order.begin(), order.end(), 0);
  return make_rows(ex, order, T, /*pack=*/false);
}
}  // namespace

double Runner::loss(const std::vector<SftExample>& ex) {
  const auto rows = one_per_row(ex, T_);
  double sum = 0;
  size_t targets = 0;
  for (size_t first = 0; first < rows.size(); first += size_t(S_)) {
    fill_batch(ex, rows, first, std::min<size_t>(size_t(S_), rows.size() - first), S_, T_, pad_, batch_);
    sum += tg_.evaluate(batch_) * double(batch_.n_targets);
    targets += batch_.n_targets;
  }
  return targets ? sum / double(targets) : 0.0;
}

Params Runner::gradient(const std::vector<SftExample>& ex, double* loss_out) {
  const auto rows = one_per_row(ex, T_);
  zero_grads(tg_);
  double sum = 0;
  size_t targets = 0, n_micro = 0;
  for (size_t first = 0; first < rows.size(); first += size_t(S_), ++n_micro) {
    fill_batch(ex, rows, first, std::min<size_t>(size_t(S_), rows.size() - first), S_, T_, pad_, batch_);
    const double l = tg_.accumulate(batch_);
    if (!std::isfinite(l)) fail("MAML: the loss became {} (lower --inner-lr or --lr)", l);
    sum += l * double(batch_.n_targets);
    targets += batch_.n_targets;
  }
  Params g = read_grads(tg_);
  zero_grads(tg_);
  if (n_micro > 1)
    for (auto& v : g)
      for (float& x : v) x /= float(n_micro);
  if (loss_out) *loss_out = targets ? sum / double(targets) : 0.0;
  return g;
}

double Runner::adapt(const std::vector<SftExample>& ex, const InnerOptions& o) {
  double first = 0;
  for (int s = 0; s < o.steps; ++s) {
    double l = 0;
    Params g = gradient(ex, &l);
    if (s == 0) first = l;
    const double n = norm(g);
    if (!std::isfinite(n)) fail("MAML: an inner step's gradient norm is {} (lower --inner-lr)", n);
    const float scale = -o.lr * float(o.clip > 0 && n > o.clip ? o.clip / n : 1.0);
    Params w = read_params(tg_);
    for (size_t i = 0; i < w.size(); ++i)
      for (size_t j = 0; j < w[i].size(); ++j) w[i][j] += scale * g[i][j];
    write_params(tg_, w);
  }
  return first;
}

Params task_gradient(Runner& r, const Params& theta, const std::vector<SftExample>& support,
                     const std::vector<SftExample>& query, const InnerOptions& o, TaskLosses* losses) {
  write_params(r.graph(), theta);
  TaskLosses l;
  if (losses) l.query_pre = r.loss(query);
  l.support_pre = r.adapt(support, o);
  if (losses) l.support_post = r.loss(support);
  Params g = r.gradient(query, &l.query_post);
  if (losses) *losses = l;
  return g;
}

double meta_update(TrainGraph& tg, const Params& theta, const Params& grad, const AdamWParams& p) {
  write_params(tg, theta);
  write_grads(tg, grad);
  return tg.step(p, 1);
}

std::map<std::string, std::vector<SftExample>> load_tasks(const std::vector<std::filesystem::path>& files,
                                                          const std::string& field, const Model& tok,
                                                          const SftOptions& sft) {
  std::map<std::string, std::vector<SftExample>> tasks;
  for (const auto& f : files) {
    std::map<size_t, std::string> task_of;
    read_jsonl(f, [&](const json& j, size_t line) {
      auto it = j.find(field);
      if (it == j.end() || !(it->is_string() || it->is_number_integer()))
        fail("{}:{}: field '{}' (the record's task, --task-field) is missing or not a string", f.string(), line, field);
      task_of[line] = it->is_string() ? it->get<std::string>() : it->dump();
    });
    const std::string prefix = f.string() + ":";
    for (auto& ex : load_sft(f, tok, sft)) {
      if (ex.source.rfind(prefix, 0) != 0) fail("internal: example source '{}' outside '{}'", ex.source, f.string());
      const size_t line = std::stoul(ex.source.substr(prefix.size()));
      tasks[task_of.at(line)].push_back(std::move(ex));
    }
  }
  return tasks;
}

}  // namespace maml

namespace {

using maml::Params;

struct TaskPool {
  std::vector<std::string> names;
  std::vector<std::vector<SftExample>> examples;
};

TaskPool usable_tasks(std::map<std::string, std::vector<SftExample>> all, size_t need, MamlResult& res) {
  TaskPool pool;
  for (auto& [name, ex] : all) {
    res.n_examples += ex.size();
    if (ex.size() < need) {
      ++res.n_tasks_skipped;
      continue;
    }
    pool.names.push_back(name);
    pool.examples.push_back(std::move(ex));
  }
  res.n_tasks = pool.names.size();
  if (pool.names.empty())
    fail("MAML: no task has {} examples (--shots + --query); {} tasks in the data", need, all.size());
  return pool;
}

// Distinct support and query examples of one task.
void draw_episode(const std::vector<SftExample>& ex, int shots, int query, std::mt19937_64& rng,
                  std::vector<SftExample>& support, std::vector<SftExample>& q) {
  std::vector<size_t> idx(ex.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::shuffle(idx.begin(), idx.end(), rng);
  support.clear();
  q.clear();
  for (int i = 0; i < shots; ++i) support.push_back(ex[idx[size_t(i)]]);
  for (int i = 0; i < query; ++i) q.push_back(ex[idx[size_t(shots + i)]]);
}

std::vector<ggml_backend_t> backends_for(const std::string& device, int n_threads) {
  const int threads = compute_threads(n_threads);
  int gpu = -1;
  if (device.rfind("gpu", 0) == 0) gpu = device.size() > 4 ? std::stoi(device.substr(4)) : 0;
  return train_backends(device == "cpu", threads, gpu);
}

struct BackendsFree {
  std::vector<ggml_backend_t>& b;
  ~BackendsFree() {
    for (auto* x : b) ggml_backend_free(x);
  }
};

double mean_of(const std::vector<double>& v, size_t from, size_t to) {
  double s = 0;
  for (size_t i = from; i < to; ++i) s += v[i];
  return to > from ? s / double(to - from) : 0.0;
}

}  // namespace

MamlResult train_maml(const MamlOptions& o) {
  o.validate();
  engine_init();
  ModelOptions mo;
  mo.vocab_only = true;
  auto tok = Model::load(o.model, mo);
  SftOptions sft;
  sft.max_len = o.seq_len;
  MamlResult res;
  TaskPool pool = usable_tasks(maml::load_tasks(o.data, o.task_field, *tok, sft), size_t(o.shots + o.query), res);

  auto backends = backends_for(o.device, o.n_threads);
  BackendsFree backends_free{backends};
  ModelGraph mg(o.model, backends.front(), /*keep_file_types=*/true);
  mg.add_lora(o.lora, o.seed, o.init);
  const int S = std::max(o.shots, std::min(o.query, 16));
  // cogumi train's defaults for the device (on a GPU: flash attention, BF16 forward copies of a quantized base,
  // OUT_PROD gradients; on the CPU: none of them)
  TrainGraph tg(mg, backends, o.seq_len, S, TrainOptions{}.graph_options(backends.front(), mg.hparams().head_dim()));
  const Token pad = tok->info().eos >= 0 ? tok->info().eos : 0;
  maml::Runner runner(tg, o.seq_len, S, pad);

  std::mt19937_64 rng(o.seed ^ 0x3a31ULL);
  JsonlWriter log(o.out.string() + ".log.jsonl");
  Progress progress("maml", o.meta_steps, o.progress);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<double> q_pre, q_post;
  std::vector<SftExample> support, query;
  Params theta = maml::read_params(tg);
  for (int step = 1; step <= o.meta_steps; ++step) {
    Params sum;
    maml::TaskLosses mean;
    json tasks = json::array();
    for (int t = 0; t < o.meta_batch; ++t) {
      const size_t k = size_t(rng() % pool.names.size());
      draw_episode(pool.examples[k], o.shots, o.query, rng, support, query);
      maml::TaskLosses l;
      Params g = maml::task_gradient(runner, theta, support, query, o.inner, &l);
      if (sum.empty()) sum = Params(g.size());
      for (size_t i = 0; i < g.size(); ++i) {
        sum[i].resize(g[i].size(), 0.0f);
        for (size_t j = 0; j < g[i].size(); ++j) sum[i][j] += g[i][j] / float(o.meta_batch);
      }
      mean.support_pre += l.support_pre / o.meta_batch, mean.support_post += l.support_post / o.meta_batch;
      mean.query_pre += l.query_pre / o.meta_batch, mean.query_post += l.query_post / o.meta_batch;
      tasks.push_back(pool.names[k]);
    }
    AdamWParams ap{o.outer_lr, 0.9f, 0.999f, 1e-8f, 0.0f, o.outer_clip};
    const double gn = maml::meta_update(tg, theta, sum, ap);
    theta = maml::read_params(tg);
    q_pre.push_back(mean.query_pre);
    q_post.push_back(mean.query_post);
    log.write({{"step", step}, {"support_loss_pre", mean.support_pre}, {"support_loss_post", mean.support_post},
               {"query_loss_pre", mean.query_pre}, {"query_loss_post", mean.query_post}, {"meta_grad_norm", gn},
               {"tasks", tasks}});
    res.steps = step;
    progress.update(step, fmt::format("query loss {:.4f} -> {:.4f}", mean.query_pre, mean.query_post));
    if (o.cancel && o.cancel->load()) {
      res.interrupted = true;
      break;
    }
  }
  maml::write_params(tg, theta);
  const size_t n = q_pre.size(), tenth = std::max<size_t>(1, n / 10);
  res.first_query_loss_pre = mean_of(q_pre, 0, tenth), res.first_query_loss_post = mean_of(q_post, 0, tenth);
  res.last_query_loss_pre = mean_of(q_pre, n - tenth, n), res.last_query_loss_post = mean_of(q_post, n - tenth, n);
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  progress.finish(fmt::format("query loss at theta' {:.4f} -> {:.4f}", res.first_query_loss_post, res.last_query_loss_post));
  save_lora(mg, o.out);  // the base's architecture, as cogumi train writes it (deci bases too)
  json summary = {{"method", "FOMAML"}, {"model", o.model.string()}, {"steps", res.steps}, {"tasks", pool.names},
                  {"n_tasks_skipped", res.n_tasks_skipped}, {"n_examples", res.n_examples},
                  {"lora", {{"rank", o.lora.rank}, {"alpha", o.lora.alpha}, {"targets", o.lora.targets}}},
                  {"inner", {{"steps", o.inner.steps}, {"lr", o.inner.lr}, {"clip", o.inner.clip}}},
                  {"meta_batch", o.meta_batch}, {"shots", o.shots}, {"query", o.query}, {"outer_lr", o.outer_lr},
                  {"seq_len", o.seq_len}, {"seed", o.seed}, {"interrupted", res.interrupted}, {"seconds", res.seconds},
                  {"first_query_loss_pre", res.first_query_loss_pre}, {"first_query_loss_post", res.first_query_loss_post},
                  {"last_query_loss_pre", res.last_query_loss_pre}, {"last_query_loss_post", res.last_query_loss_post}};
  write_file_atomic(o.out.string() + ".summary.json", summary.dump(2) + "\n");
  return res;
}

}  // namespace cogumi
