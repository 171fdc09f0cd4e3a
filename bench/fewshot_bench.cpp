// Few-shot retrieval benchmark (runtime/fewshot.h). Two measurements:
//
//  latency: the prompts of a bank JSONL (all domains pooled) as one index of N examples for each
//    N in --sizes; queries are the prompts of --queries (a JSONL the bank does not hold). Per
//    query: the hashed embedding, then exact search and HNSW search (p50/p99), the HNSW build
//    time, and recall@k of HNSW against exact.
//  neighbours (--templates): which embedding retrieves better neighbours. For the queries and the
//    bank examples, the curriculum's template ids (templates.jsonl of `cogumi nano data`); per
//    domain, the share of each query's k nearest (exact search) that come from the query's own
//    template, for hashed n-gram embeddings and for the model's embeddings (--model).
//
//   cogumi-bench-fewshot --bank BANK.jsonl --queries DEV.jsonl [--sizes 1000,10000,100000]
// (--queries may repeat; --n-queries is per domain.)
//   cogumi-bench-fewshot --bank BANK.jsonl --queries DEV.jsonl --templates T.jsonl --model M.gguf
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/io.h"
#include "engine/model.h"
#include "runtime/fewshot.h"

namespace {

using namespace cogumi;
using Clock = std::chrono::steady_clock;

double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(p * double(v.size())))];
}

struct Example {
  std::string domain, id, prompt;
};

std::vector<Example> read_examples(const std::string& path) {
  std::vector<Example> out;
  read_jsonl(path, [&](const nlohmann::json& o, size_t line) {
    const std::string at = path + ":" + std::to_string(line);
    Example e;
    e.prompt = get_string(o, "prompt", at);
    e.domain = o.value("domain", o.value("category", std::string()));
    e.id = o.value("id", o.value("source_id", std::string()));
    out.push_back(std::move(e));
  });
  return out;
}

void latency(const std::vector<Example>& bank, const std::vector<Example>& queries,
             const std::vector<size_t>& sizes, int k, int dim, const IndexOptions& base) {
  std::printf(
      "| examples | embed p50 us | exact p50 ms | exact p99 ms | HNSW p50 ms | HNSW p99 ms | "
      "HNSW build s | recall@%d |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n",
      k);
  std::vector<float> qv;
  std::vector<double> embed_us;
  for (auto& q : queries) {
    const auto t0 = Clock::now();
    auto v = hashed_embedding(q.prompt, dim);
    embed_us.push_back(us_since(t0));
    qv.insert(qv.end(), v.begin(), v.end());
  }
  std::vector<float> all;
  for (auto& e : bank) {
    auto v = hashed_embedding(e.prompt, dim);
    all.insert(all.end(), v.begin(), v.end());
  }
  for (size_t n : sizes) {
    if (n > bank.size()) {
      std::printf("| %zu | (the bank has only %zu examples) |\n", n, bank.size());
      continue;
    }
    IndexOptions o = base;
    o.exact_below = 0;  // always build the graph here, to compare it with exact search
    VectorIndex ix(dim, o);
    ix.add(all.data(), n);  // the first n examples
    const auto tb = Clock::now();
    ix.build();
    const double build_s = us_since(tb) / 1e6;
    std::vector<double> ex_ms, hn_ms;
    double recall = 0;
    for (size_t i = 0; i < queries.size(); ++i) {
      const float* q = qv.data() + i * size_t(dim);
      auto t0 = Clock::now();
      auto exact = ix.search_exact(q, size_t(k));
      ex_ms.push_back(us_since(t0) / 1000);
      t0 = Clock::now();
      auto approx = ix.search(q, size_t(k));
      hn_ms.push_back(us_since(t0) / 1000);
      recall += recall_at_k(exact, approx);
    }
    std::printf("| %zu | %.0f | %.3f | %.3f | %.3f | %.3f | %.1f | %.4f |\n", n, pct(embed_us, 0.5),
                pct(ex_ms, 0.5), pct(ex_ms, 0.99), pct(hn_ms, 0.5), pct(hn_ms, 0.99), build_s,
                recall / double(queries.size()));
    std::fflush(stdout);
  }
}

// domain -> share of the k nearest (same domain) that share the query's template.
std::map<std::string, double> template_match(const std::vector<Example>& bank,
                                             const std::vector<Example>& queries,
                                             const std::map<std::string, std::string>& tmpl,
                                             const TextEmbedder& emb, int k) {
  auto key = [](const Example& e) { return e.domain + "/" + e.id; };
  std::map<std::string, std::vector<const Example*>> by_domain;
  for (auto& e : bank) by_domain[e.domain].push_back(&e);
  std::map<std::string, double> out;
  for (auto& [domain, rows] : by_domain) {
    std::vector<std::string> texts;
    for (auto* e : rows) texts.push_back(e->prompt);
    VectorIndex ix(emb.dim());
    const auto vecs = emb.embed_many(texts);
    ix.add(vecs.data(), rows.size());
    std::vector<std::string> qt;
    std::vector<const Example*> qs;
    for (auto& q : queries)
      if (q.domain == domain && tmpl.count(key(q))) qt.push_back(q.prompt), qs.push_back(&q);
    if (qs.empty()) continue;
    const auto qv = emb.embed_many(qt);
    size_t same = 0, total = 0;
    for (size_t i = 0; i < qs.size(); ++i)
      for (auto& h : ix.search_exact(qv.data() + i * size_t(emb.dim()), size_t(k))) {
        auto t = tmpl.find(key(*rows[h.row]));
        same += t != tmpl.end() && t->second == tmpl.at(key(*qs[i]));
        ++total;
      }
    out[domain] = double(same) / double(std::max<size_t>(1, total));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Few-shot retrieval: latency (exact vs HNSW) and neighbour quality (hashed vs model)"};
  std::vector<std::string> queries_paths;
  std::string bank_path, templates_path, model_path, sizes_s = "1000,10000,100000";
  int k = 3, dim = 256, n_queries = 500;
  IndexOptions io;
  app.add_option("--bank", bank_path, "Bank JSONL (prompt, domain, id)")->required();
  app.add_option("--queries", queries_paths,
                 "JSONL of query prompts (prompt, category or domain, source_id)")
      ->required();
  app.add_option("--sizes", sizes_s, "Index sizes for the latency table");
  app.add_option("--n-queries", n_queries, "Queries per domain (spread over the file)")
      ->check(CLI::Range(1, 1000000));
  app.add_option("-k", k, "Neighbours")->check(CLI::Range(1, 100));
  app.add_option("--dim", dim, "Hashed embedding dimension")->check(CLI::Range(16, 4096));
  app.add_option("--ef-search", io.ef_search, "HNSW query beam")->check(CLI::Range(1, 10000));
  app.add_option("--ef-construction", io.ef_construction, "HNSW build beam")
      ->check(CLI::Range(8, 2000));
  app.add_option("--hnsw-m", io.M, "HNSW links per node")->check(CLI::Range(2, 128));
  app.add_option("--templates", templates_path,
                 "templates.jsonl (id, domain, template): the neighbour table");
  app.add_option("--model", model_path, "GGUF whose embeddings the neighbour table compares");
  CLI11_PARSE(app, argc, argv);
  try {
    std::vector<Example> bank = read_examples(bank_path), all_q;
    for (auto& p : queries_paths) {
      auto part = read_examples(p);
      all_q.insert(all_q.end(), part.begin(), part.end());
    }
    std::map<std::string, std::vector<Example>> qd;
    for (auto& q : all_q) qd[q.domain].push_back(q);
    std::vector<Example> queries;
    for (auto& [d, v] : qd) {
      const size_t step = std::max<size_t>(1, v.size() / size_t(n_queries));
      for (size_t i = 0, taken = 0; i < v.size() && taken < size_t(n_queries); i += step, ++taken)
        queries.push_back(v[i]);
    }
    if (templates_path.empty()) {
      std::vector<size_t> sizes;
      for (size_t a = 0; a < sizes_s.size();) {
        size_t b = sizes_s.find(',', a);
        if (b == std::string::npos) b = sizes_s.size();
        sizes.push_back(std::stoul(sizes_s.substr(a, b - a)));
        a = b + 1;
      }
      std::printf(
          "# %zu queries, k %d, hashed dim %d, HNSW M %d ef_construction %d ef_search %d, 1 thread "
          "per query\n\n",
          queries.size(), k, dim, io.M, io.ef_construction, io.ef_search);
      latency(bank, queries, sizes, k, dim, io);
      return 0;
    }
    std::map<std::string, std::string> tmpl;
    read_jsonl(templates_path, [&](const nlohmann::json& o, size_t) {
      tmpl[o.at("domain").get<std::string>() + "/" + o.at("id").get<std::string>()] =
          o.at("template");
    });
    std::printf(
        "| domain | hashed: same template in top-%d | model embeddings: same template in top-%d "
        "|\n|---|---:|---:|\n",
        k, k);
    TextEmbedder hashed(Embedding::hashed, dim);
    auto h = template_match(bank, queries, tmpl, hashed, k);
    std::map<std::string, double> m;
    if (!model_path.empty()) {
      engine_init();
      TextEmbedder me(Embedding::model, 0, Model::load(model_path));
      m = template_match(bank, queries, tmpl, me, k);
    }
    for (auto& [d, v] : h)
      std::printf("| %s | %.3f | %s |\n", d.c_str(), v,
                  m.count(d) ? std::to_string(m[d]).substr(0, 5).c_str() : "-");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
