// cogumi data generate|judge: training data from teacher endpoints, filtered by a judge and by
// real checks (src/data/cascade.h, judge.h). Registered by setup_data (cmd_data.cpp).
#include <fmt/format.h>

#include "commands.h"
#include "core/error.h"
#include "data/cascade.h"
#include "data/judge.h"

namespace cogumi::cli {

namespace {

// Flags for one endpoint (a single tier, or the judge) when no config file gives them.
struct EndpointFlags {
  TeacherEndpoint ep;
  std::string config, ca_file, template_path;
};

void add_endpoint_options(CLI::App* app, EndpointFlags& f, const char* section) {
  app->add_option("--config", f.config,
                  fmt::format("YAML with the endpoints ('{}:'; see configs/teachers-nano.yaml); replaces the endpoint flags",
                              section));
  app->add_option("--endpoint", f.ep.base_url, "OpenAI-compatible base URL (http:// or https://), e.g. http://127.0.0.1:8080/v1");
  app->add_option("--model", f.ep.model, "Model name sent to the endpoint")->capture_default_str();
  app->add_option("--api", f.ep.api, "chat (/chat/completions) or completions (/completions, a raw prompt)")
      ->check(CLI::IsMember({"chat", "completions"}))
      ->capture_default_str();
  app->add_option("--api-key-env", f.ep.api_key_env, "Environment variable holding the API key");
  app->add_option("--ca-file", f.ca_file, "PEM CA certificates trusted for https:// (all endpoints)");
  app->add_option("--template", f.template_path, "Prompt template file (configs/prompts/; placeholders in its README)");
  app->add_option("--concurrency", f.ep.concurrency, "Requests in flight")->check(CLI::Range(1, 256))->capture_default_str();
  app->add_option("--rate-limit", f.ep.rate_limit, "Requests per minute (0 = off)")->check(finite_number())->check(CLI::Range(0.0, 1e6))->capture_default_str();
  app->add_option("--max-retries", f.ep.max_retries, "Retries per request on 429, 5xx and timeouts")->check(CLI::Range(0, 100))->capture_default_str();
  app->add_option("--backoff", f.ep.backoff_s, "First retry delay in seconds (doubles per attempt, jittered)")->check(finite_number())->check(CLI::Range(0.0, 3600.0))->capture_default_str();
  app->add_option("--timeout", f.ep.timeout_s, "Seconds per attempt")->check(positive_number())->check(CLI::Range(0.0, 86400.0))->capture_default_str();
  app->add_option("--max-tokens", f.ep.max_tokens, "Tokens per reply")->check(CLI::Range(1, 1000000))->capture_default_str();
  app->add_option("--temperature", f.ep.temperature, "Sampling temperature")->check(CLI::Range(0.0, 2.0))->capture_default_str();
}

// The endpoints: the config's section, or the flags' one endpoint; --ca-file and --template
// apply to every endpoint.
std::vector<TeacherEndpoint> endpoints(EndpointFlags& f, const char* section, int64_t* spend_cap) {
  std::vector<TeacherEndpoint> eps;
  if (!f.config.empty()) {
    eps = load_teacher_config(f.config, section, spend_cap);
  } else {
    if (f.ep.base_url.empty()) fail("no endpoint given: --endpoint URL or --config FILE");
    f.ep.name = f.ep.model;
    eps.push_back(f.ep);
  }
  for (auto& ep : eps) {
    if (!f.ca_file.empty()) ep.ca_file = f.ca_file;
    if (!f.template_path.empty()) ep.prompt_template = f.template_path;
  }
  return eps;
}

void setup_generate_cmd(CLI::App& data) {
  static EndpointFlags f;
  static GenerateOptions o;
  static std::string clusters, run, out;
  static std::vector<std::string> benches;
  static bool quiet = false;
  auto* g = data.add_subcommand("generate", "Answers for a domain's failures from a cascade of teacher endpoints, checked, resumable");
  add_endpoint_options(g, f, "tiers");
  g->add_option("--failures", clusters, "clusters.jsonl of `cogumi failures cluster` (or its directory)")->required();
  g->add_option("--run", run, "The eval run whose failures were clustered (items.jsonl)")->required();
  g->add_option("--domain", o.domain, "math, code, reasoning, automation, or a benchmark name")->required();
  g->add_option("--bench", benches, "KIND=PATH benchmark file whose items give checks their tests/functions (repeatable)");
  g->add_option("-o,--out", out, "Reply log (JSONL, appended; a rerun resumes); beside it .kept.jsonl and .report.json")->required();
  g->add_option("--spend-cap", o.spend_cap_tokens, "Stop asking after this many tokens in all (0 = no cap; overrides the config's)")
      ->check(CLI::Range(int64_t(0), int64_t(1e15)));
  g->add_option("--limit", o.limit, "Only the first N failures (0 = all)")->check(CLI::Range(0, 100000000))->capture_default_str();
  g->add_flag("--quiet", quiet, "No progress lines");
  g->callback([&] {
    int64_t cap = 0;
    o.tiers = endpoints(f, "tiers", &cap);
    if (o.spend_cap_tokens == 0) o.spend_cap_tokens = cap;
    o.clusters = clusters;
    o.run = run;
    o.out = out;
    for (auto& b : benches) o.benches.push_back(parse_bench_spec(b));
    o.progress = !quiet;
    CascadeResult r = run_cascade(o);
    fmt::print("{}", cascade_table(r));
    fmt::print("wrote {} (replies), {}, {}\n", out, sibling_path(out, ".kept.jsonl").string(),
               sibling_path(out, ".report.json").string());
  });
}

void setup_judge_cmd(CLI::App& data) {
  static EndpointFlags f;
  static JudgeOptions o;
  static std::string in, out;
  static std::vector<std::string> benches;
  static bool quiet = false, no_checks = false;
  auto* j = data.add_subcommand("judge", "Score examples 1-10 with an LLM judge; real checks decide where they exist");
  add_endpoint_options(j, f, "judge");
  j->add_option("in", in, "Examples (JSONL: {instruction, output}, {prompt, completion}, {messages}, or generate's .kept.jsonl)")->required();
  j->add_option("-o,--out", out, "Kept examples; beside it .judged.jsonl (all, with scores), .requests.jsonl, .report.json")->required();
  j->add_option("--threshold", o.threshold, "Keep a judged example scoring at least this")->check(CLI::Range(1.0, 10.0))->capture_default_str();
  j->add_option("--bench", benches, "KIND=PATH benchmark file whose items give checks their tests/functions (repeatable)");
  j->add_flag("--no-checks", no_checks, "The judge decides everything (no real checks)");
  j->add_option("--spend-cap", o.spend_cap_tokens, "Stop asking after this many tokens (0 = no cap)")->check(CLI::Range(int64_t(0), int64_t(1e15)));
  j->add_flag("--quiet", quiet, "No progress lines");
  j->callback([&] {
    int64_t cap = 0;
    o.endpoint = endpoints(f, "judge", &cap).front();
    if (o.spend_cap_tokens == 0) o.spend_cap_tokens = cap;
    o.in = in;
    o.out = out;
    for (auto& b : benches) o.benches.push_back(parse_bench_spec(b));
    o.use_checks = !no_checks;
    o.progress = !quiet;
    JudgeReport r = run_judge(o);
    fmt::print("{} examples: {} kept (threshold {}), {} scored by the judge, {} without a score, {} unanswered\n", r.n,
               r.kept, o.threshold, r.judged, r.unparsed, r.unanswered);
    fmt::print("{} decided by a real check; judge and check agree on {} of {} both scored{}\n", r.checked, r.agree,
               r.both, r.both ? fmt::format(" ({:.1f}%)", 100.0 * r.agree / r.both) : "");
    fmt::print("wrote {}, {}\n", out, sibling_path(out, ".report.json").string());
  });
}

}  // namespace

void setup_data_teacher(CLI::App& data) {
  setup_generate_cmd(data);
  setup_judge_cmd(data);
}

}  // namespace cogumi::cli
