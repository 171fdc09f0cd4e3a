// cogumi/train: few-shot evaluation of a MAML adapter against a multitask adapter and few-shot
// retrieval (maml.h), the exact-match argmax graph, and the nano curriculum's task families.
#include <ggml-alloc.h>

#include <algorithm>
#include <climits>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <thread>

#include "core/error.h"
#include "core/threads.h"
#include "core/io.h"
#include "core/progress.h"
#include "engine/model.h"
#include "eval/benchmark.h"
#include "eval/prompts.h"
#include "runtime/fewshot.h"
#include "train/batches.h"
#include "train/maml.h"
#include "train/maml_core.h"
#include "train/model_graph.h"
#include "train/trainer.h"

namespace cogumi {

namespace maml {

namespace {
constexpr size_t kGraphSize = 16384;
}

ArgmaxGraph::ArgmaxGraph(const ModelGraph& mg, const std::vector<ggml_backend_t>& backends, int T, int S) : T_(T), S_(S) {
  if (int64_t(mg.hparams().n_vocab) * T * S > int64_t(INT32_MAX)) fail("internal: {} x {} rows of logits are too many", S, T);
  ggml_init_params ip{8 * ggml_tensor_overhead(), nullptr, true};
  ctx_in_ = ggml_init(ip);
  tokens_ = ggml_new_tensor_2d(ctx_in_, GGML_TYPE_I32, T, S);
  pos_ = ggml_new_tensor_1d(ctx_in_, GGML_TYPE_I32, int64_t(T) * S);
  mask_ = ggml_new_tensor_4d(ctx_in_, GGML_TYPE_F32, T, T, 1, S);
  for (ggml_tensor* t : {tokens_, pos_, mask_}) ggml_set_input(t);
  buf_in_ = ggml_backend_alloc_ctx_tensors(ctx_in_, backends.front());
  if (!buf_in_) fail("cannot allocate the evaluation graph's inputs");
  ggml_init_params gp{kGraphSize * ggml_tensor_overhead() + ggml_graph_overhead_custom(kGraphSize, false), nullptr, true};
  ctx_g_ = ggml_init(gp);
  out_ = ggml_argmax(ctx_g_, mg.build_logits(ctx_g_, tokens_, pos_, mask_));
  ggml_set_output(out_);
  gf_ = ggml_new_graph_custom(ctx_g_, kGraphSize, false);
  ggml_build_forward_expand(gf_, out_);
  std::vector<ggml_backend_t> bs = backends;
  std::vector<ggml_backend_buffer_type_t> bufts;
  for (auto* b : bs) bufts.push_back(ggml_backend_get_default_buffer_type(b));
  sched_ = ggml_backend_sched_new(bs.data(), bufts.data(), int(bs.size()), kGraphSize, false, true);
  if (!sched_ || !ggml_backend_sched_alloc_graph(sched_, gf_)) fail("cannot allocate the evaluation graph");
}

ArgmaxGraph::~ArgmaxGraph() {
  if (sched_) ggml_backend_sched_free(sched_);
  if (ctx_g_) ggml_free(ctx_g_);
  if (buf_in_) ggml_backend_buffer_free(buf_in_);
  if (ctx_in_) ggml_free(ctx_in_);
}

void ArgmaxGraph::run(std::vector<int32_t>& out) {
  ggml_backend_tensor_set(tokens_, batch_.tokens.data(), 0, batch_.tokens.size() * sizeof(int32_t));
  ggml_backend_tensor_set(pos_, batch_.pos.data(), 0, batch_.pos.size() * sizeof(int32_t));
  ggml_backend_tensor_set(mask_, batch_.mask.data(), 0, batch_.mask.size() * sizeof(float));
  if (ggml_backend_sched_graph_compute(sched_, gf_) != GGML_STATUS_SUCCESS) fail("ggml failed computing the evaluation graph");
  out.resize(size_t(T_) * S_);
  ggml_backend_tensor_get(out_, out.data(), 0, out.size() * sizeof(int32_t));
}

std::vector<int32_t> ArgmaxGraph::argmax(const SftExample& ex) {
  const std::vector<SftExample> one{ex};
  fill_batch(one, {Row{0}}, 0, 1, S_, T_, 0, batch_);
  std::vector<int32_t> out;
  run(out);
  out.resize(size_t(T_));
  return out;
}

size_t ArgmaxGraph::exact_matches(const std::vector<SftExample>& ex, Token pad, Token end, std::vector<uint8_t>* per) {
  std::vector<size_t> order(ex.size());
  std::iota(order.begin(), order.end(), 0);
  const auto rows = make_rows(ex, order, T_, false);
  std::vector<int32_t> arg(size_t(T_) * S_);
  size_t right = 0;
  if (per) per->assign(ex.size(), 0);
  for (size_t first = 0; first < rows.size(); first += size_t(S_)) {
    const size_t n_rows = std::min<size_t>(size_t(S_), rows.size() - first);
    fill_batch(ex, rows, first, n_rows, S_, T_, pad, batch_);
    run(arg);
    for (size_t s = 0; s < n_rows; ++s) {
      const SftExample& e = ex[rows[first + s][0]];
      const size_t n = e.tokens.size();
      bool ok = n <= size_t(T_);
      size_t checked = 0;
      for (size_t i = 0; ok && i + 1 < n; ++i) {
        if (!e.target[i + 1] || (i + 2 == n && e.tokens[i + 1] == end)) continue;
        ok = arg[s * size_t(T_) + i] == e.tokens[i + 1];
        ++checked;
      }
      if (ok && checked > 0) {
        ++right;
        if (per) (*per)[rows[first + s][0]] = 1;
      }
    }
  }
  return right;
}

}  // namespace maml

namespace {

using maml::Params;

struct TaskItem {
  SftExample ex;
  std::string prompt, completion;
};

// The held-out records by task, with their prompt and completion text (retrieval needs it).
std::map<std::string, std::vector<TaskItem>> load_items(const FewshotEvalOptions& o, const Model& tok) {
  SftOptions sft;
  sft.max_len = 1 << 20;  // nothing truncated here: rows that do not fit count as wrong
  std::map<std::string, std::pair<std::string, std::string>> text;
  for (const auto& f : o.data)
    read_jsonl(f, [&](const json& j, size_t line) {
      const std::string at = fmt::format("{}:{}", f.string(), line);
      text[at] = {get_string(j, "prompt", at), get_string(j, "completion", at)};
    });
  std::map<std::string, std::vector<TaskItem>> out;
  for (auto& [task, exs] : maml::load_tasks(o.data, o.task_field, tok, sft))
    for (auto& e : exs) {
      const auto& [p, c] = text.at(e.source);
      out[task].push_back({std::move(e), p, c});
    }
  return out;
}

// An SFT example of {prompt, completion} as load_sft makes it (no chat template).
SftExample make_example(const Model& tok, const std::string& prompt, const std::string& completion, Token end) {
  SftExample ex;
  ex.tokens = tok.tokenize(prompt, true, false);
  ex.target.assign(ex.tokens.size(), 0);
  for (Token t : tok.tokenize(completion, false, false)) ex.tokens.push_back(t), ex.target.push_back(1);
  ex.tokens.push_back(end);
  ex.target.push_back(1);
  return ex;
}

Params adapter_params(const FewshotEvalOptions& o, const std::filesystem::path& adapter, ggml_backend_t backend) {
  ModelGraph tmp(o.model, backend, true);
  tmp.add_lora(o.lora, 0, adapter);
  Params p;
  for (ggml_tensor* t : tmp.trainable()) {
    p.emplace_back(size_t(ggml_nelements(t)));
    ggml_backend_tensor_get(t, p.back().data(), 0, ggml_nbytes(t));
  }
  return p;
}

struct Evaluator {
  const FewshotEvalOptions& o;
  const Model& tok;
  const ModelGraph& mg;
  const std::vector<ggml_backend_t>& backends;
  maml::Runner& runner;
  maml::ArgmaxGraph& ag;
  Token pad, end;
  std::map<int, std::unique_ptr<maml::ArgmaxGraph>> long_graphs;  // retrieval rows by length

  std::vector<uint8_t> score(const std::vector<SftExample>& q) {
    std::vector<uint8_t> per;
    size_t longest = 0;
    for (const auto& e : q) longest = std::max(longest, e.tokens.size());
    if (longest <= size_t(ag.seq_len())) {
      ag.exact_matches(q, pad, end, &per);
      return per;
    }
    const int T = int((longest + 63) / 64 * 64);
    auto& g = long_graphs[T];
    if (!g) g = std::make_unique<maml::ArgmaxGraph>(mg, backends, T, 4);
    g->exact_matches(q, pad, end, &per);
    return per;
  }
  std::vector<uint8_t> adapted(const Params& theta, const std::vector<SftExample>& support, const InnerOptions& inner,
                               const std::vector<SftExample>& q) {
    maml::write_params(runner.graph(), theta);
    if (!support.empty()) runner.adapt(support, inner);
    return score(q);
  }
  std::vector<uint8_t> retrieval(const std::vector<TaskItem>& support, const std::vector<TaskItem>& query) {
    std::vector<BankEntry> bank;
    for (const auto& s : support) bank.push_back({"task", s.prompt, s.completion, s.ex.source, "support"});
    std::vector<Retrieved> demos;
    for (auto it = bank.rbegin(); it != bank.rend(); ++it) demos.push_back({&*it, 1.0f});  // first drawn nearest
    const std::string prefix = demonstration_text(demos);
    std::vector<SftExample> q;
    for (const auto& item : query) q.push_back(make_example(tok, prefix + item.prompt, item.completion, end));
    return score(q);
  }
};

json line_of(const std::string& task, int k, int episode, const std::string& method, const std::vector<uint8_t>& per,
             const std::vector<TaskItem>& query) {
  json ids = json::array();
  for (const auto& q : query) ids.push_back(q.ex.source);
  const int right = int(std::count(per.begin(), per.end(), uint8_t(1)));
  return {{"task", task}, {"k", k}, {"episode", episode}, {"method", method}, {"correct", right},
          {"total", per.size()}, {"items", per}, {"ids", ids}};
}

}  // namespace

size_t maml_fewshot_eval(const FewshotEvalOptions& o) {
  o.validate();
  engine_init();
  ModelOptions mo;
  mo.vocab_only = true;
  auto tok = Model::load(o.model, mo);
  auto tasks = load_items(o, *tok);
  const int threads = compute_threads(o.n_threads);
  auto backends = train_backends(true, threads);
  struct Free {
    std::vector<ggml_backend_t>& b;
    ~Free() {
      for (auto* x : b) ggml_backend_free(x);
    }
  } free_backends{backends};
  const Params theta_maml = adapter_params(o, o.maml_adapter, backends.front());
  const Params theta_mt = o.multitask_adapter.empty() ? Params{} : adapter_params(o, o.multitask_adapter, backends.front());
  ModelGraph mg(o.model, backends.front(), true);
  mg.add_lora(o.lora, o.seed);  // B = 0: exactly the base
  const int S = *std::max_element(o.shots.begin(), o.shots.end());
  TrainGraph tg(mg, backends, o.seq_len, S, TrainOptions{}.graph_options(backends.front(), mg.hparams().head_dim()));  // as in maml.cpp
  const Params theta_base = maml::read_params(tg);
  const Token pad = tok->info().eos >= 0 ? tok->info().eos : 0;
  const Token end = tok->info().eot >= 0 ? tok->info().eot : tok->info().eos;
  maml::Runner runner(tg, o.seq_len, S, pad);
  maml::ArgmaxGraph ag(mg, backends, o.seq_len, 16);
  Evaluator ev{o, *tok, mg, backends, runner, ag, pad, end, {}};

  JsonlWriter out(o.out);
  size_t lines = 0;
  Progress progress("fewshot", int64_t(tasks.size() * o.shots.size() * size_t(o.episodes)), o.progress);
  int64_t done = 0;
  for (const auto& [task, items] : tasks) {
    for (int k : o.shots) {
      if (items.size() < size_t(k) + 1) {
        fmt::print(stderr, "warning: task '{}' has {} items, too few for {} shots and a query; skipped\n", task,
                   items.size(), k);
        continue;
      }
      for (int e = 0; e < o.episodes; ++e) {
        std::mt19937_64 rng(o.seed * 1000003ULL + std::hash<std::string>{}(task) + uint64_t(k) * 7919 + uint64_t(e));
        std::vector<size_t> idx(items.size());
        std::iota(idx.begin(), idx.end(), 0);
        std::shuffle(idx.begin(), idx.end(), rng);
        std::vector<TaskItem> sup, qry;
        for (size_t i = 0; i < idx.size() && int(qry.size()) < o.query; ++i)
          (i < size_t(k) ? sup : qry).push_back(items[idx[i]]);
        std::vector<SftExample> sup_ex, q_ex;
        for (auto& s : sup) sup_ex.push_back(s.ex);
        for (auto& q : qry) q_ex.push_back(q.ex);
        auto emit = [&](const std::string& m, const std::vector<uint8_t>& per) {
          out.write(line_of(task, k, e, m, per, qry));
          ++lines;
        };
        emit("base-0", ev.adapted(theta_base, {}, o.maml_inner, q_ex));
        emit("maml-0", ev.adapted(theta_maml, {}, o.maml_inner, q_ex));
        emit("maml", ev.adapted(theta_maml, sup_ex, o.maml_inner, q_ex));
        if (!theta_mt.empty()) {
          emit("multitask-0", ev.adapted(theta_mt, {}, o.multitask_inner, q_ex));
          emit("multitask", ev.adapted(theta_mt, sup_ex, o.multitask_inner, q_ex));
        }
        if (o.retrieval) {
          maml::write_params(tg, theta_base);
          emit("retrieval", ev.retrieval(sup, qry));
        }
        progress.update(++done, task);
      }
    }
  }
  progress.finish(fmt::format("{} lines", lines));
  return lines;
}

size_t write_nano_family_tasks(const std::filesystem::path& dir, const std::string& split,
                               const std::vector<std::string>& families, const std::vector<std::string>& exclude,
                               const std::filesystem::path& out) {
  if (split != "train" && split != "dev" && split != "test") fail("split must be train, dev or test, got '{}'", split);
  const json manifest = json::parse(read_file(dir / "manifest.json"), nullptr, false);
  if (manifest.is_discarded() || !manifest.contains("files") || !manifest.contains("eval_kind"))
    fail("'{}' is not a nano curriculum manifest (cogumi nano data)", (dir / "manifest.json").string());
  std::map<std::pair<std::string, std::string>, std::string> tmpl;
  read_jsonl(dir / "templates.jsonl", [&](const json& j, size_t line) {
    const std::string at = fmt::format("{}:{}", (dir / "templates.jsonl").string(), line);
    if (get_string(j, "split", at) == split) tmpl[{get_string(j, "domain", at), get_string(j, "id", at)}] = get_string(j, "template", at);
  });
  const std::set<std::string> keep(families.begin(), families.end()), drop(exclude.begin(), exclude.end());
  std::string text;
  size_t n = 0;
  for (auto& [domain, kind] : manifest["eval_kind"].items()) {
    const auto rel = manifest["files"].value(domain, json::object()).value(split, std::string());
    if (rel.empty()) fail("'{}': no {} file for domain '{}'", (dir / "manifest.json").string(), split, domain);
    for (const auto& it : load_benchmark(kind.get<std::string>(), dir / rel)) {
      auto t = tmpl.find({domain, it.id});
      if (t == tmpl.end()) fail("'{}': item '{}' of {} has no template line", (dir / "templates.jsonl").string(), it.id, domain);
      if ((!keep.empty() && !keep.count(t->second)) || drop.count(t->second)) continue;
      json r = training_record(it, false);
      r["category"] = domain;
      r["task"] = t->second;
      text += r.dump() + "\n";
      ++n;
    }
  }
  if (n == 0) fail("no {} items of the families asked for in '{}'", split, dir.string());
  write_file_atomic(out, text);
  return n;
}

}  // namespace cogumi
