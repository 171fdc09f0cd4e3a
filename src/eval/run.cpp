#include "eval/run.h"

#include "eval/exec_cache.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "core/error.h"
#include "core/parallel.h"
#include "core/io.h"
#include "core/progress.h"
#include "eval/prompts.h"
#include "eval/score.h"

namespace cogumi {

BenchSpec parse_bench_spec(const std::string& spec) {
  auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    fail("benchmark spec must be KIND=PATH (kinds: gsm8k, mmlu, humaneval, mbpp, bbh, bfcl, jsonl), got '{}'", spec);
  return {spec.substr(0, eq), spec.substr(eq + 1)};
}

void EvalOptions::validate() const {
  if (benches.empty()) fail("no benchmarks given (use --bench KIND=PATH)");
  if (model.empty() && responses.empty() && !answer) fail("give a model (-m) or pre-generated outputs (--responses)");
  if (shots < 0 || shots > 1000) fail("--shots must be in 0..1000, got {}", shots);
  if (max_tokens < 1) fail("-n/--max-tokens must be >= 1, got {}", max_tokens);
  if (samples < 1 || samples > 100000) fail("--samples must be in 1..100000, got {}", samples);
  for (int k : pass_k)
    if (k < 1 || k > samples)
      fail("--pass-k {} needs 1 <= k <= --samples ({}): pass@k takes k of the samples of each item", k, samples);
  if (chunk < 1) fail("--chunk must be >= 1 (items per batch), got {}", chunk);
  if (workers < 0 || workers > 1024) fail("--workers must be in 0..1024 (0 = cores), got {}", workers);
  if (!(sandbox.limits.timeout_s > 0 && sandbox.limits.timeout_s <= 86400))
    fail("--timeout must be in (0, 86400] seconds, got {}", sandbox.limits.timeout_s);
  if (n_gpu_layers < -1) fail("--ngl must be >= -1 (-1 = all), got {}", n_gpu_layers);
  if (judge_concurrency < 1) fail("judge_concurrency must be >= 1, got {}", judge_concurrency);
  if (!std::isfinite(adapter_scale)) fail("--adapter-scale must be finite, got {}", adapter_scale);
  if (!adapter.empty() && std::none_of(adapters.begin(), adapters.end(), [&](const auto& a) { return a.first == adapter; }))
    fail("--adapter '{}' is not among the loaded adapters (--lora NAME=PATH)", adapter);
  sampling.validate();
  gen.validate();
}

namespace {

using Clock = std::chrono::steady_clock;

// Name, size and content hash: a moved model is the same model, a retrained one is not.
json file_identity(const fs::path& p) {
  if (!fs::exists(p)) fail("file not found: '{}'", p.string());
  return {{"name", p.filename().string()}, {"bytes", fs::file_size(p)}, {"sha256", sha256_file(p)}};
}

// Everything an item's answer depends on; a resumed run must match it (run.json).
json run_settings(const EvalOptions& o) {
  json adapters = json::object();
  for (const auto& [name, path] : o.adapters) adapters[name] = file_identity(path);
  const SamplingParams& sp = o.sampling;
  return {{"model", o.model.empty() ? json(nullptr) : file_identity(o.model)},
          {"responses", o.responses.empty() ? json(nullptr) : file_identity(o.responses)},
          {"adapters", adapters},
          {"adapter", o.adapter},
          {"adapter_scale", o.adapter_scale},
          {"route", o.route_id},
          {"chat", o.chat},
          {"system", o.system},
          {"chat_template", o.chat_template},
          {"shots", o.shots},
          {"max_tokens", o.max_tokens},
          {"ignore_eos", o.ignore_eos},
          {"sampling", {{"temperature", sp.temperature}, {"top_k", sp.top_k}, {"top_p", sp.top_p}, {"min_p", sp.min_p},
                        {"repeat_penalty", sp.repeat_penalty}, {"repeat_last_n", sp.repeat_last_n}, {"seed", sp.seed}}},
          {"samples", o.samples},
          {"scoring", o.scoring},
          {"judge_model", o.scoring == "judge" ? json(o.judge.model) : json(nullptr)}};
}

// A file identity compares by content: the same bytes under another path or mtime are the same.
bool same_setting(const json& a, const json& b) {
  if (a.is_object() && b.is_object() && a.contains("sha256") && b.contains("sha256")) return a["sha256"] == b["sha256"];
  if (a.is_object() && b.is_object() && a.size() == b.size()) {
    for (auto& [k, v] : a.items())
      if (!b.contains(k) || !same_setting(v, b[k])) return false;
    return true;
  }
  return a == b;
}

// Resuming: the run directory must have been made with these settings.
void check_run_record(const fs::path& dir, const json& now) {
  const fs::path f = dir / "run.json";
  if (!fs::exists(f))
    fail("--resume: '{}' has items but no run.json recording what made them (an older cogumi, or not a run "
         "directory); start a new run directory",
         dir.string());
  json was = json::parse(read_file(f), nullptr, false);
  if (was.is_discarded() || !was.is_object()) fail("--resume: '{}' is not valid JSON", f.string());
  std::string diff;
  for (auto& [k, v] : now.items()) {
    json old = was.contains(k) ? was[k] : json(nullptr);
    if (same_setting(old, v)) continue;
    diff += fmt::format("\n  {}: the run has {}, this call {}", k, old.dump(), v.dump());
  }
  if (!diff.empty())
    fail("--resume: '{}' was made with other settings, so its items can't be mixed with new ones:{}\nuse a new "
         "run directory (or drop --resume to start this one afresh)",
         dir.string(), diff);
}

// The keys of the items already scored. A last line without its newline that isn't a JSON object
// is what a kill mid-write leaves: it is cut off (with a warning) and that item is redone. Damage
// anywhere else is an error naming the line.
std::set<std::string> read_done(const fs::path& items_path, const std::function<std::string(const json&)>& key) {
  std::set<std::string> done;
  const std::string text = read_file(items_path);
  size_t pos = 0, line = 0;
  while (pos < text.size()) {
    ++line;
    size_t nl = text.find('\n', pos);
    const bool last = nl == std::string::npos;
    const std::string_view l = std::string_view(text).substr(pos, last ? std::string::npos : nl - pos);
    json j = l.find_first_not_of(" \t\r") == std::string::npos ? json() : json::parse(l, nullptr, false);
    if (last && !l.empty() && (j.is_discarded() || !j.is_object())) {
      fmt::print(stderr, "warning: {}:{}: dropping a torn last line ({} bytes, an interrupted write); its item is redone\n",
                 items_path.string(), line, l.size());
      fs::resize_file(items_path, pos);
      break;
    }
    if (j.is_discarded() || (!j.is_null() && !j.is_object()))
      fail("{}:{}: not a JSON object; the run directory is damaged (start a new one)", items_path.string(), line);
    if (j.is_object()) done.insert(key(j));
    if (last) {  // a whole object without its newline: the next append must start a new line
      std::FILE* f = std::fopen(items_path.c_str(), "ab");
      if (!f || std::fputc('\n', f) == EOF || std::fclose(f) != 0) fail("cannot append to '{}'", items_path.string());
      break;
    }
    pos = nl + 1;
  }
  return done;
}

// Default n-shot pool: GSM8K test.jsonl -> train.jsonl beside it; MMLU test/ -> dev/.
fs::path default_shot_path(const BenchSpec& b) {
  if (b.kind == "gsm8k" && b.path.filename() == "test.jsonl") return b.path.parent_path() / "train.jsonl";
  if (b.kind == "mmlu") {
    fs::path dir = fs::is_directory(b.path) ? b.path : b.path.parent_path();
    if (dir.filename() == "test") return dir.parent_path() / "dev";
  }
  return {};
}

struct Responses {
  std::map<std::string, std::vector<std::string>> by_id;
};

Responses load_responses(const fs::path& p) {
  Responses r;
  read_jsonl(p, [&](const json& o, size_t line) {
    std::string at = fmt::format("{}:{}", p.string(), line);
    std::string id, out;
    if (o.contains("task_id") && o.contains("completion")) {
      id = o["task_id"].is_string() ? o["task_id"].get<std::string>() : o["task_id"].dump();
      out = get_string(o, "completion", at);
    } else {
      if (!o.contains("id")) fail("{}: missing field 'id' (or 'task_id')", at);
      id = o["id"].is_string() ? o["id"].get<std::string>() : o["id"].dump();
      out = get_string(o, "output", at);
    }
    r.by_id[id].push_back(out);
  });
  return r;
}

struct Job {
  const EvalItem* item;
  int sample;
  std::string prompt;
  std::vector<Token> tokens;  // chat prompts: markup special, content plain (Model::tokenize_chat)
  std::vector<std::string> stops;
  std::string route;  // the adapter a routed system picked for this item
};

std::string job_key(const std::string& bench, const std::string& id, int sample) {
  return bench + "\x1f" + id + "\x1f" + std::to_string(sample);
}

// The benchmarks' items and, with --shots, each one's pool of examples.
struct ItemSets {
  std::vector<std::vector<EvalItem>> sets, pools;
};

ItemSets load_sets(const EvalOptions& o) {
  ItemSets out;
  LoadOptions lo;
  lo.skip = o.skip;
  lo.limit = o.limit;
  lo.scoring = o.scoring;
  for (const auto& b : o.benches) {
    out.sets.push_back(load_benchmark(b.kind, b.path, lo));
    std::vector<EvalItem> pool;
    if (o.shots > 0) {
      fs::path sp;
      for (const auto& s : o.shots_from)
        if (s.kind == b.kind) sp = s.path;
      if (sp.empty()) sp = default_shot_path(b);
      if (sp.empty() || !fs::exists(sp))
        fail("--shots {} for {} needs a pool of examples: give --shots-from {}=PATH", o.shots, b.kind, b.kind);
      LoadOptions plo;
      plo.scoring = o.scoring;
      pool = load_benchmark(b.kind, sp, plo);
    }
    out.pools.push_back(std::move(pool));
  }
  return out;
}

// Code is scored by running it: without a sandbox every such item would fail as a setup error,
// so say so now, before the model loads and generation spends its time.
void require_sandbox(const EvalOptions& o, const ItemSets& is) {
  if (!o.sandbox.require_isolation) return;
  bool code = false;
  for (const auto& set : is.sets)
    for (const auto& it : set) code = code || it.kind == TaskKind::kCode;
  std::string why;
  if (code && !sandbox_available(&why))
    fail("this evaluation runs code, and the sandbox can't run here: {}", why.empty() ? "unknown reason" : why);
}

// A fresh run records its settings; a resumed one must match them and skips what items.jsonl holds.
std::set<std::string> prepare_run_dir(const EvalOptions& o, const fs::path& items_path) {
  const json settings = run_settings(o);
  if (o.resume && fs::exists(items_path)) {
    check_run_record(o.out_dir, settings);
    return read_done(items_path, [](const json& j) {
      return job_key(j.value("benchmark", ""), j.value("id", ""), j.value("sample", 0));
    });
  }
  if (fs::exists(items_path)) fs::remove(items_path);
  write_file_atomic(o.out_dir / "run.json", settings.dump(2) + "\n");
  return {};
}

// One job per item and sample not done yet. With a model and --chat, the prompt is tokenized
// here (template markup special, the item's text not).
std::vector<Job> make_jobs(const EvalOptions& o, const ItemSets& is, const Model* model,
                           const std::set<std::string>& done, const Responses& responses) {
  std::vector<Job> jobs;
  for (size_t b = 0; b < is.sets.size(); ++b)
    for (const auto& it : is.sets[b]) {
      auto shots = pick_shots(it, is.pools[b], o.shots);
      PromptParts pp = build_prompt(it, shots, o.chat);
      if (o.prompt_prefix) pp.text = o.prompt_prefix(it, pp.text) + pp.text;
      std::string prompt = pp.text;
      std::vector<Token> tokens;
      if (model && o.chat) {
        std::vector<ChatMessage> msgs;
        if (!o.system.empty()) msgs.push_back({"system", o.system});
        msgs.push_back({"user", pp.text});
        auto ct = model->tokenize_chat(msgs, true, o.chat_template);
        prompt = std::move(ct.text);
        tokens = std::move(ct.tokens);
      }
      for (int s = 0; s < o.samples; ++s) {
        if (done.count(job_key(it.benchmark, it.id, s))) continue;
        if (!o.responses.empty()) {
          auto r = responses.by_id.find(it.id);
          if (r == responses.by_id.end() || int(r->second.size()) <= s)
            fail("'{}' has no output for item '{}' (sample {})", o.responses.string(), it.id, s);
        }
        jobs.push_back({&it, s, prompt, tokens, pp.stops, o.route ? o.route(it) : std::string()});
      }
    }
  return jobs;
}

// Judge-scored items of jobs[start, end): concurrent requests to the judge endpoint.
std::map<size_t, ItemScore> judge_chunk(const EvalOptions& o, const std::vector<Job>& jobs,
                                        const std::vector<GenResult>& results, size_t start, size_t end) {
  std::map<size_t, ItemScore> judged;
  std::vector<size_t> idx;
  for (size_t i = start; i < end; ++i)
    if (jobs[i].item->scoring == "judge" && results[i - start].finish != FinishReason::kError &&
        results[i - start].finish != FinishReason::kCancelled)
      idx.push_back(i);
  if (!idx.empty() && o.judge.base_url.empty()) fail("--scoring judge needs --judge URL");
  std::vector<ItemScore> js(idx.size());
  // the first item (in order) whose judging fails names itself in the error; the rest are not asked
  parallel_for(idx.size(), o.judge_concurrency, [&](size_t k) {
    try {
      js[k] = score_with_judge(*jobs[idx[k]].item, results[idx[k] - start].text,
                               finish_reason_name(results[idx[k] - start].finish), o.judge);
    } catch (const Error& e) {
      fail("judging item '{}': {}", jobs[idx[k]].item->id, e.what());
    }
  });
  for (size_t k = 0; k < idx.size(); ++k) judged[idx[k]] = js[k];
  return judged;
}

}  // namespace

json run_eval(const EvalOptions& o) {
  o.validate();
  fs::create_directories(o.out_dir);
  const fs::path items_path = o.out_dir / "items.jsonl";

  const ItemSets is = load_sets(o);
  require_sandbox(o, is);
  const std::set<std::string> done = prepare_run_dir(o, items_path);

  std::shared_ptr<Model> model;
  std::unique_ptr<Generator> gen;
  Responses responses;
  if (!o.responses.empty()) {
    responses = load_responses(o.responses);
  } else if (!o.answer) {
    ModelOptions mo;
    mo.n_gpu_layers = o.n_gpu_layers;
    model = Model::load(o.model, mo);
    for (const auto& [name, path] : o.adapters) model->load_adapter(name, path);
    if (!o.adapter.empty()) model->raw_adapter(o.adapter);
    gen = std::make_unique<Generator>(model, o.gen);
  }

  std::vector<Job> jobs = make_jobs(o, is, model.get(), done, responses);

  const int workers = o.workers > 0 ? o.workers : int(std::max(1u, std::thread::hardware_concurrency()));
  JsonlWriter writer(items_path, /*append=*/true);
  Progress progress("eval", int64_t(jobs.size()), o.progress);
  auto t0 = Clock::now();
  int64_t gen_tokens = 0, prompt_tokens = 0, n_programs = 0;
  const ExecCache::Stats cache0 = o.exec_cache ? o.exec_cache->stats() : ExecCache::Stats{};
  size_t n_done = 0;
  bool cancelled = false;
  for (size_t start = 0; start < jobs.size() && !cancelled; start += o.chunk) {
    size_t end = std::min(jobs.size(), start + o.chunk);
    std::vector<GenResult> results(end - start);
    std::vector<json> extras;  // fields an answering system records per item
    if (o.answer) {
      std::vector<const EvalItem*> items;
      for (size_t i = start; i < end; ++i) items.push_back(jobs[i].item);
      results = o.answer(items, &extras);
      if (results.size() != items.size() || (!extras.empty() && extras.size() != items.size()))
        fail("eval: the answering system returned {} results for {} items", results.size(), items.size());
      for (const auto& r : results) gen_tokens += r.n_gen_tokens, prompt_tokens += r.n_prompt_tokens;
    } else if (gen) {
      std::vector<GenRequest> reqs;
      for (size_t i = start; i < end; ++i) {
        GenRequest r;
        r.prompt = jobs[i].prompt;
        r.prompt_tokens = jobs[i].tokens;
        r.stop = jobs[i].stops;
        r.max_tokens = o.max_tokens;
        r.ignore_eos = o.ignore_eos;
        r.sampling = o.sampling;
        r.sampling.seed = o.sampling.seed + uint32_t(jobs[i].sample);
        r.adapter = o.route ? jobs[i].route : o.adapter;
        if (o.logprobs) r.n_logprobs = 0;
        r.adapter_scale = o.adapter_scale;
        reqs.push_back(std::move(r));
      }
      results = gen->generate(reqs, {}, o.cancel);
      gen_tokens += gen->last_stats().n_gen_tokens;
      prompt_tokens += gen->last_stats().n_prompt_tokens;
    } else {
      for (size_t i = start; i < end; ++i) {
        results[i - start].text = responses.by_id[jobs[i].item->id][jobs[i].sample];
        results[i - start].finish = FinishReason::kStop;
      }
    }
    // Code: every program of the chunk through the sandbox at once.
    std::vector<size_t> code_idx;
    std::vector<std::string> programs, bodies;
    for (size_t i = start; i < end; ++i)
      if (jobs[i].item->kind == TaskKind::kCode && results[i - start].finish != FinishReason::kError) {
        code_idx.push_back(i);
        bodies.push_back(code_program_body(*jobs[i].item, results[i - start].text));
        programs.push_back(bodies.back() + code_program_ending());
      }
    std::map<size_t, ItemScore> judged = judge_chunk(o, jobs, results, start, end);
    std::map<size_t, SandboxResult> runs;
    if (!programs.empty()) {
      n_programs += int64_t(programs.size());
      auto sr = o.exec_cache ? run_python_batch_cached(*o.exec_cache, programs, bodies, code_pass_marker(), o.sandbox, workers)
                             : run_python_batch(programs, o.sandbox, workers);
      for (size_t k = 0; k < code_idx.size(); ++k) runs[code_idx[k]] = sr[k];
    }
    for (size_t i = start; i < end; ++i) {
      const Job& jb = jobs[i];
      const GenResult& r = results[i - start];
      if (r.finish == FinishReason::kCancelled) {
        cancelled = true;
        continue;  // not scored: a resumed run generates it again
      }
      std::string finish = finish_reason_name(r.finish);
      ItemScore sc;
      if (jb.item->kind == TaskKind::kCode) {
        auto it = runs.find(i);
        sc = score_code(*jb.item, r.text, finish, it == runs.end() ? nullptr : &it->second);
      } else if (judged.count(i)) {
        sc = judged[i];
      } else {
        sc = score_output(*jb.item, r.text, finish);
      }
      if (!r.error.empty()) sc.detail = r.error;
      json line = {{"id", jb.item->id},
                   {"benchmark", jb.item->benchmark},
                   {"category", jb.item->category},
                   {"kind", task_kind_name(jb.item->kind)},
                   {"sample", jb.sample},
                   {"question", jb.item->question},
                   {"route", o.route ? json(jb.route) : json(nullptr)},
                   {"prompt", jb.prompt},
                   {"output", r.text},
                   {"extracted", sc.flexible ? json(*sc.flexible) : json(nullptr)},
                   {"extracted_strict", sc.strict ? json(*sc.strict) : json(nullptr)},
                   {"reference", jb.item->reference.empty() ? jb.item->solution : jb.item->reference},
                   {"solution", jb.item->solution},
                   {"sft", training_record(*jb.item, o.chat)},
                   {"correct", sc.correct},
                   {"correct_strict", sc.correct_strict},
                   {"failure_type", sc.failure_type},
                   {"detail", sc.detail},
                   {"finish_reason", finish},
                   {"n_prompt_tokens", r.n_prompt_tokens},
                   {"n_gen_tokens", r.n_gen_tokens},
                   {"latency_ms", r.latency_ms}};
      if (o.logprobs && !r.logprobs.empty()) {
        double sum = 0, lo = 0;
        for (const auto& t : r.logprobs) sum += t.logprob, lo = std::min<double>(lo, t.logprob);
        line["logprob_mean"] = sum / double(r.logprobs.size());
        line["logprob_min"] = lo;
      }
      if (o.route_signals) line.update(o.route_signals(*jb.item));
      if (!extras.empty()) line.update(extras[i - start]);
      writer.write(line);
      progress.update(int64_t(++n_done));
    }
    if (o.cancel && o.cancel->load()) cancelled = true;
  }
  progress.finish();
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();

  json summary = summarize_items(load_jsonl(items_path), o.pass_k);
  summary["run"] = {{"model", o.model.string()},
                    {"responses", o.responses.string()},
                    {"items_this_run", n_done},
                    {"seconds", secs},
                    {"items_per_s", secs > 0 ? n_done / secs : 0.0},
                    {"gen_tokens", gen_tokens},
                    {"prompt_tokens", prompt_tokens},
                    {"gen_tokens_per_s", secs > 0 ? gen_tokens / secs : 0.0},
                    {"shots", o.shots},
                    {"chat", o.chat},
                    {"max_tokens", o.max_tokens},
                    {"samples", o.samples},
                    {"adapter", o.adapter},
                    {"complete", !cancelled}};
  if (o.exec_cache) {  // programs of this call: found in the cache, run now (the rest repeat one of these)
    const ExecCache::Stats c = o.exec_cache->stats();
    summary["run"]["sandbox"] = {{"programs", n_programs}, {"cached", c.hits - cache0.hits},
                                 {"ran", c.misses - cache0.misses}, {"cache", o.exec_cache->path().string()}};
  }
  write_file_atomic(o.out_dir / "summary.json", summary.dump(2));
  if (cancelled) fail("interrupted: {} items scored and kept in {}; rerun with --resume", n_done, items_path.string());
  return summary;
}

json summarize_items(const std::vector<json>& items, const std::vector<int>& pass_k) {
  struct Acc {
    int n = 0, correct = 0, strict = 0;
    std::map<std::string, int> failures;
  };
  std::map<std::string, Acc> by_bench;
  std::map<std::string, std::map<std::string, Acc>> by_cat;
  // pass@k: per (benchmark, id) the samples and successes.
  std::map<std::string, std::map<std::string, std::pair<int, int>>> per_task;
  for (const auto& j : items) {
    std::string b = j.value("benchmark", ""), c = j.value("category", "");
    bool ok = j.value("correct", false), st = j.value("correct_strict", false);
    for (Acc* a : {&by_bench[b], &by_cat[b][c]}) {
      a->n++;
      a->correct += ok;
      a->strict += st;
      std::string ft = j.value("failure_type", "");
      if (!ft.empty()) a->failures[ft]++;
    }
    auto& t = per_task[b][j.value("id", "")];
    t.first++;
    t.second += ok;
  }
  auto acc_json = [](const Acc& a) {
    auto [lo, hi] = wilson_interval(a.correct, a.n);
    return json{{"n", a.n},          {"correct", a.correct},
                {"accuracy", a.n ? double(a.correct) / a.n : 0.0},
                {"ci95", {lo, hi}},  {"strict_accuracy", a.n ? double(a.strict) / a.n : 0.0},
                {"failures", a.failures}};
  };
  json out = {{"benchmarks", json::object()}};
  int total_n = 0, total_c = 0;
  for (auto& [b, a] : by_bench) {
    json jb = acc_json(a);
    json cats = json::object();
    for (auto& [c, ca] : by_cat[b]) cats[c] = acc_json(ca);
    jb["categories"] = cats;
    json pk = json::object();
    for (int k : pass_k) {
      double sum = 0;
      int tasks = 0;
      for (auto& [id, nc] : per_task[b]) {
        if (nc.first < k) continue;
        sum += pass_at_k(nc.first, nc.second, k);
        ++tasks;
      }
      if (tasks > 0) pk[fmt::format("pass@{}", k)] = sum / tasks;
    }
    jb["pass_at_k"] = pk;
    out["benchmarks"][b] = jb;
    total_n += a.n;
    total_c += a.correct;
  }
  out["total"] = {{"n", total_n}, {"correct", total_c}, {"accuracy", total_n ? double(total_c) / total_n : 0.0}};
  return out;
}

std::string summary_table(const json& s) {
  std::string t = fmt::format("{:<12} {:>6} {:>9} {:>9} {:>17}  {}\n", "benchmark", "items", "accuracy", "strict",
                              "95% CI", "failures");
  for (auto& [b, j] : s["benchmarks"].items()) {
    std::string f;
    for (auto& [ft, n] : j["failures"].items()) f += fmt::format("{}={} ", ft, n.get<int>());
    t += fmt::format("{:<12} {:>6} {:>8.1f}% {:>8.1f}% [{:>5.1f}%, {:>5.1f}%]  {}\n", b, j["n"].get<int>(),
                     100 * j["accuracy"].get<double>(), 100 * j["strict_accuracy"].get<double>(),
                     100 * j["ci95"][0].get<double>(), 100 * j["ci95"][1].get<double>(), f);
    for (auto& [k, v] : j["pass_at_k"].items()) t += fmt::format("{:<12} {}: {:.3f}\n", "", k, v.get<double>());
  }
  if (s.contains("run") && s["run"].value("items_this_run", 0) > 0)
    t += fmt::format("{} items in {:.1f}s ({:.2f} items/s, {:.0f} generated tokens/s)\n", s["run"]["items_this_run"].get<size_t>(),
                     s["run"]["seconds"].get<double>(), s["run"]["items_per_s"].get<double>(),
                     s["run"]["gen_tokens_per_s"].get<double>());
  return t;
}

}  // namespace cogumi
