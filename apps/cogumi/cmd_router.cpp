// cogumi router train|eval|route: the learned router that picks the base or a modifier per query.
#include <fmt/format.h>

#include "commands.h"
#include "core/io.h"
#include "route/router_job.h"

namespace cogumi::cli {

namespace {

void add_feature_flags(CLI::App* c, FeatureOptions& f) {
  c->add_option("--hash-bits", f.hash_bits, "Feature buckets: 2^N")
      ->check(CLI::Range(10, 24))
      ->capture_default_str();
  c->add_option("--word-ngrams", f.word_ngram_max, "Word n-grams of 1..N words (0 = none)")
      ->check(CLI::Range(0, 4))
      ->capture_default_str();
  c->add_option("--char-min", f.char_ngram_min,
                "Shortest character n-gram (0 with --char-max 0 = none)")
      ->check(CLI::Range(0, 8))
      ->capture_default_str();
  c->add_option("--char-max", f.char_ngram_max, "Longest character n-gram")
      ->check(CLI::Range(0, 8))
      ->capture_default_str();
}

void print_report(const RouterReport& r, const std::vector<std::string>& choices,
                  const std::string& what) {
  fmt::print(
      "{}: {} queries, accuracy {:.2f}%, latency p50 {:.1f} us, p99 {:.1f} us (features + "
      "classifier, one thread)\n",
      what, r.n, 100 * r.accuracy, r.latency_p50_us, r.latency_p99_us);
  fmt::print("{}", r.table(choices));
}

}  // namespace

void setup_router(CLI::App& sub) {
  sub.require_subcommand(1);
  {
    static RouterJob j;
    auto* t = sub.add_subcommand(
        "train", "Train a router from labelled queries; report on a held-out split");
    t->add_option("--data", j.data,
                  "CHOICE=KIND:PATH (gsm8k, mmlu, humaneval, mbpp, bbh, bfcl) or "
                  "CHOICE=REQUESTS.jsonl; repeat");
    t->add_option("--runs", j.runs,
                  "CHOICE=RUN_DIR eval runs of each choice on the same items (base first); repeat");
    t->add_option("-o,--out", j.out, "Router file to write (JSON)")->required();
    t->add_option("--holdout", j.holdout, "Share of queries held out for the report")
        ->check(CLI::Range(0.0, 0.99))
        ->capture_default_str();
    t->add_option("--limit", j.limit, "Queries per source (0 = all)")
        ->check(CLI::Range(size_t(0), size_t(100000000)))
        ->capture_default_str();
    t->add_option("--epochs", j.train.epochs, "Passes over the data")
        ->check(CLI::Range(1, 1000))
        ->capture_default_str();
    t->add_option("--lr", j.train.lr, "AdaGrad step size")
        ->check(CLI::Range(1e-6, 100.0))
        ->capture_default_str();
    t->add_option("--l2", j.train.l2, "Weight decay")
        ->check(CLI::Range(0.0, 0.99))
        ->capture_default_str();
    t->add_option("--seed", j.train.seed, "Example order")->capture_default_str();
    add_feature_flags(t, j.train.features);
    t->callback([&] {
      j.train.progress = true;
      RouterJobResult r = train_router_job(j);
      fmt::print("trained on {} queries -> {} ({} choices: {})\n", r.n_train, j.out.string(),
                 r.router.choices().size(), fmt::join(r.router.choices(), ", "));
      if (r.n_heldout) print_report(r.heldout, r.router.choices(), "held out");
    });
  }
  {
    static std::string router;
    static std::vector<std::string> data;
    static double holdout = 0.2;
    static size_t limit = 0;
    static bool as_json = false;
    auto* e = sub.add_subcommand(
        "eval", "Accuracy, confusion matrix and latency of a router on labelled queries");
    e->add_option("router", router, "Router file")->required();
    e->add_option("--data", data, "CHOICE=KIND:PATH or CHOICE=REQUESTS.jsonl; repeat")->required();
    e->add_option(
         "--holdout", holdout,
         "Evaluate the held-out share chosen by the same hash as training (0 = every query)")
        ->check(CLI::Range(0.0, 0.99))
        ->capture_default_str();
    e->add_option("--limit", limit, "Queries per source (0 = all)")
        ->check(CLI::Range(size_t(0), size_t(100000000)))
        ->capture_default_str();
    e->add_flag("--json", as_json, "Print the report as JSON");
    e->callback([&] {
      RouterReport r = eval_router_job(router, data, holdout, limit);
      auto choices = Router::load(router).choices();
      if (as_json)
        fmt::print("{}\n", r.to_json(choices).dump(2));
      else
        print_report(r, choices, holdout > 0 ? "held out" : "all");
    });
  }
  {
    static std::string router, prompt, prompts;
    auto* r = sub.add_subcommand("route", "Route queries: the choice and the probability of each");
    r->add_option("router", router, "Router file")->required();
    r->add_option("-p,--prompt", prompt, "One query");
    r->add_option("--prompts", prompts,
                  "JSONL of requests (text, question, instruction, prompt or messages)");
    r->callback([&] {
      if (prompt.empty() == prompts.empty())
        throw CLI::ValidationError("give either -p/--prompt or --prompts");
      Router rt = Router::load(router);
      std::vector<std::string> texts;
      if (!prompt.empty())
        texts.push_back(prompt);
      else
        texts = load_route_texts(parse_route_source("x=" + prompts));
      for (auto& t : texts) {
        RouteDecision d = rt.route(t);
        json probs = json::object();
        for (size_t i = 0; i < d.probs.size(); ++i)
          probs[rt.choices()[i]] = std::round(d.probs[i] * 1e4) / 1e4;
        fmt::print("{}\n", json{{"choice", rt.choices()[size_t(d.choice)]},
                                {"probability", d.probability},
                                {"probs", probs}}
                               .dump());
      }
    });
  }
  setup_router_calibration(sub);
}

}  // namespace cogumi::cli
