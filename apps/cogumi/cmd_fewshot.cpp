// cogumi fewshot build|query: banks of solved examples for few-shot retrieval
// (runtime/fewshot.h, runtime/fewshot_build.h).
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/error.h"
#include "engine/model.h"
#include "eval/prompts.h"
#include "runtime/fewshot_build.h"
#include "runtime/runtime.h"

namespace cogumi::cli {

namespace {

void add_embedding_flags(CLI::App& a, FewshotOptions& f, std::string& embedding) {
  a.add_option("--embedding", embedding,
               "hashed (router n-grams) or model (the base's hidden states)")
      ->check(CLI::IsMember({"hashed", "model"}))
      ->capture_default_str();
  a.add_option("--dim", f.dim, "Hashed embedding dimension")
      ->check(CLI::Range(16, 4096))
      ->capture_default_str();
  a.add_option("--exact-below", f.index.exact_below,
               "Domains with fewer examples are searched exactly")
      ->check(CLI::Range(0, 1 << 30))
      ->capture_default_str();
  a.add_option("--hnsw-m", f.index.M, "HNSW links per node")
      ->check(CLI::Range(2, 128))
      ->capture_default_str();
  a.add_option("--ef-construction", f.index.ef_construction, "HNSW build beam")
      ->check(CLI::Range(8, 2000))
      ->capture_default_str();
  a.add_option("--ef-search", f.index.ef_search, "HNSW query beam")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
}

Embedding embedding_of(const std::string& s) {
  return s == "model" ? Embedding::model : Embedding::hashed;
}

void add_build(CLI::App& sub) {
  static FewshotBuildOptions o;
  static std::string embedding = "hashed";
  auto* b = sub.add_subcommand(
      "build", "Write a bank (JSONL) from training data and good answers, and index it");
  b->add_option("-o,--out", o.out, "Bank JSONL to write (its index goes to OUT.index/)")
      ->required();
  b->add_option("--data", o.sources,
                "DOMAIN=KIND:PATH (a benchmark file) or DOMAIN=PATH.jsonl ({prompt,completion} or "
                "{instruction,output})");
  b->add_option("--memory", o.memory, "Session store: answers users rated thumbs-up");
  b->add_option(
      "--system", o.system,
      "System file: how each choice asks (for --memory) and the base (--embedding model)");
  b->add_option("--limit", o.limit, "Examples per source (0 = all)")
      ->check(CLI::Range(0, 100000000));
  add_embedding_flags(*b, o.fewshot, embedding);
  b->callback([&] {
    engine_set_verbose(globals().verbose);
    o.fewshot.embedding = embedding_of(embedding);
    FewshotBuildResult r = build_fewshot_bank(o);
    for (auto& [d, n] : r.per_domain) fmt::print("{:<16} {:>8} examples\n", d, n);
    if (r.from_memory) fmt::print("from session memory: {}\n", r.from_memory);
    fmt::print("wrote {} and its index {} ({:.1f} s)\n", o.out.string(),
               bank_index_dir(o.out).string(), r.index_seconds);
  });
}

void add_query(CLI::App& sub) {
  static FewshotOptions f;
  static std::string embedding = "hashed", domain, prompt, ask_as = "raw", system;
  static bool exact = false, as_json = false, show = false;
  auto* q = sub.add_subcommand("query", "The nearest examples of a domain to one request");
  q->add_option("bank", f.bank, "Bank JSONL")->required();
  q->add_option("--domain", domain, "The domain to search")->required();
  q->add_option("-p,--prompt", prompt, "The request")->required();
  q->add_option(
       "--ask-as", ask_as,
       "Put the request in this form first: raw (as is), gsm8k, mmlu, humaneval, bfcl, ...")
      ->capture_default_str();
  q->add_option("-k", f.k, "Neighbours")->check(CLI::Range(1, 32))->capture_default_str();
  q->add_option("--system", system, "System file whose base embeds (--embedding model)");
  q->add_flag("--exact", exact, "Score every example (no HNSW graph)");
  q->add_flag("--show-prompt", show, "Print the prompt with the demonstrations");
  q->add_flag("--json", as_json, "JSON output");
  add_embedding_flags(*q, f, embedding);
  q->callback([&] {
    engine_set_verbose(globals().verbose);
    f.embedding = embedding_of(embedding);
    std::shared_ptr<Model> model;
    if (f.embedding == Embedding::model) {
      if (system.empty()) fail("fewshot query: --embedding model needs --system (its base model)");
      engine_init();
      model = Model::load(SystemConfig::load(system).base);
    }
    FewshotBank bank = FewshotBank::open(f, model);
    if (!bank.index(domain)) fail("fewshot query: the bank has no domain '{}'", domain);
    const std::string p =
        ask_as == "raw"
            ? prompt
            : build_prompt(item_from_request(prompt, ask_as, json::array()), {}, false).text;
    const std::vector<Retrieved> hits = bank.retrieve(domain, p, size_t(f.k), exact);
    if (as_json) {
      json out = json::array();
      for (auto& h : hits)
        out.push_back({{"id", h.entry->id},
                       {"score", h.score},
                       {"prompt", h.entry->prompt},
                       {"completion", h.entry->completion},
                       {"line", h.entry->line}});
      fmt::print("{}\n", out.dump(2));
    } else {
      for (auto& h : hits)
        fmt::print("{:.4f}  {} (line {})\n        {}\n", h.score, h.entry->id, h.entry->line,
                   h.entry->prompt.substr(0, 160));
    }
    if (show) fmt::print("\n--- prompt ---\n{}{}\n", demonstration_text(hits), p);
  });
}

}  // namespace

void setup_fewshot(CLI::App& sub) {
  sub.require_subcommand(1);
  add_build(sub);
  add_query(sub);
}

}  // namespace cogumi::cli
