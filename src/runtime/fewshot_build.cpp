#include "runtime/fewshot_build.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "core/error.h"
#include "core/io.h"
#include "engine/model.h"
#include "eval/benchmark.h"
#include "eval/prompts.h"
#include "runtime/memory.h"
#include "runtime/runtime.h"
#include "runtime/system.h"

namespace cogumi {

namespace fs = std::filesystem;
using json = nlohmann::json;

void FewshotBuildOptions::validate() const {
  if (out.empty()) fail("fewshot build: --out is required");
  if (sources.empty() && memory.empty())
    fail("fewshot build: give at least one --data DOMAIN=KIND:PATH or --memory FILE");
  if (!memory.empty() && system.empty())
    fail("fewshot build: --memory needs --system (how each choice asks its requests)");
  if (limit > 100000000) fail("fewshot build: --limit must be at most 100000000, got {}", limit);
  FewshotOptions f = fewshot;
  f.bank = out;
  f.validate();
}

std::vector<BankEntry> bank_entries_from_source(const std::string& spec, size_t limit) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    fail("fewshot data '{}': expected DOMAIN=KIND:PATH or DOMAIN=PATH.jsonl", spec);
  const std::string domain = spec.substr(0, eq);
  std::string rest = spec.substr(eq + 1), kind;
  const size_t colon = rest.find(':');
  const auto& kinds = benchmark_kinds();
  if (colon != std::string::npos &&
      std::find(kinds.begin(), kinds.end(), rest.substr(0, colon)) != kinds.end()) {
    kind = rest.substr(0, colon);
    rest = rest.substr(colon + 1);
  }
  const fs::path path = rest;
  if (!fs::exists(path)) fail("fewshot data '{}': no such file or directory '{}'", spec, rest);
  std::vector<BankEntry> out;
  if (!kind.empty()) {
    LoadOptions lo;
    lo.limit = limit;
    for (const EvalItem& it : load_benchmark(kind, path, lo)) {
      BankEntry e;
      e.domain = domain;
      e.prompt = build_prompt(it, {}, false).text;
      e.completion = target_text(it, false);
      e.id = it.id;
      e.source = path.filename().string();
      out.push_back(std::move(e));
    }
    return out;
  }
  read_jsonl(path, [&](const json& o, size_t line) {
    if (limit && out.size() >= limit) return;
    const std::string at = fmt::format("{}:{}", path.string(), line);
    const bool chat = !o.contains("prompt") && (o.contains("instruction") || o.contains("output"));
    BankEntry e;
    e.domain = domain;
    e.prompt = get_string(o, chat ? "instruction" : "prompt", at);
    e.completion = get_string(o, chat ? "output" : "completion", at);
    if (normalize_prompt(e.prompt).empty())
      fail("{}: '{}' is empty", at, chat ? "instruction" : "prompt");
    e.id = o.contains("source_id") && o["source_id"].is_string()
               ? o["source_id"].get<std::string>()
               : fmt::format("{}:{}", path.filename().string(), line);
    e.source = path.filename().string();
    out.push_back(std::move(e));
  });
  return out;
}

std::vector<BankEntry> bank_entries_from_memory(const fs::path& memory, const fs::path& system) {
  const SystemConfig cfg = SystemConfig::load(system);
  if (!fs::exists(memory))
    fail("fewshot build: session memory '{}' does not exist", memory.string());
  SessionStore store = SessionStore::open(memory);
  std::vector<BankEntry> out;
  std::map<std::string, std::vector<Turn>> sessions;  // read each session once
  for (const FeedbackRow& f : store.feedback()) {
    if (f.thumbs <= 0 || !cfg.has_choice(f.choice)) continue;
    auto [it, fresh] = sessions.try_emplace(f.session);
    if (fresh) it->second = store.last_turns(f.session, 1000000000);
    const std::vector<Turn>& turns = it->second;
    auto at =
        std::find_if(turns.begin(), turns.end(), [&](const Turn& t) { return t.id == f.turn_id; });
    if (at == turns.end() || at == turns.begin() || at->role != "assistant") continue;
    const Turn& user = *(at - 1);
    if (user.role != "user") continue;
    const SystemChoice& c = cfg.choice(f.choice);
    BankEntry e;
    e.domain = c.name;
    if (c.ask_as == "chat" || c.ask_as == "raw")
      e.prompt = user.content;
    else
      e.prompt =
          build_prompt(item_from_request(user.content, c.ask_as, json::array()), {}, false).text;
    e.completion = at->content;
    e.id = fmt::format("turn:{}", at->id);
    e.source = "memory";
    out.push_back(std::move(e));
  }
  return out;
}

FewshotBuildResult build_fewshot_bank(FewshotBuildOptions o) {
  o.fewshot.bank = o.out;
  o.validate();
  std::vector<BankEntry> all;
  FewshotBuildResult r;
  for (const auto& spec : o.sources) {
    auto part = bank_entries_from_source(spec, o.limit);
    all.insert(all.end(), std::make_move_iterator(part.begin()),
               std::make_move_iterator(part.end()));
  }
  if (!o.memory.empty()) {
    auto part = bank_entries_from_memory(o.memory, o.system);
    r.from_memory = part.size();
    all.insert(all.end(), std::make_move_iterator(part.begin()),
               std::make_move_iterator(part.end()));
  }
  if (all.empty()) fail("fewshot build: the sources hold no examples");
  std::map<std::string, size_t> counts;
  for (auto& e : all) ++counts[e.domain];
  r.per_domain.assign(counts.begin(), counts.end());
  if (o.out.has_parent_path()) fs::create_directories(o.out.parent_path());
  write_bank(o.out, all);
  std::shared_ptr<Model> model;
  if (o.fewshot.embedding == Embedding::model) {
    if (o.system.empty()) fail("fewshot build: --embedding model needs --system (its base model)");
    engine_init();
    model = Model::load(SystemConfig::load(o.system).base);
  }
  FewshotBank bank = FewshotBank::open(o.fewshot, model);
  r.index_seconds = bank.stats().seconds;
  return r;
}

}  // namespace cogumi
