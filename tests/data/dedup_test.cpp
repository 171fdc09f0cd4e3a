// cogumi data dedup: near duplicates planted at known Jaccard levels are found (recall) and
// dissimilar records are not merged (precision); exact duplicates after normalization; benchmark
// contamination; errors naming file and line; the output is written atomically.
#include "data/dedup.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "core/io.h"
#include "data/minhash.h"
#include "eval/benchmark.h"
#include "test_util.h"

namespace cogumi {
namespace {

fs::path dir_for(const std::string& name) {
  fs::path d = test::tmp_dir() / "dedup" / name;
  fs::create_directories(d);
  return d;
}

void write_lines(const fs::path& p, const std::vector<std::string>& lines) {
  std::ofstream f(p);
  for (const auto& l : lines) f << l << "\n";
}

std::vector<std::string> text_records(const std::vector<std::string>& texts) {
  std::vector<std::string> lines;
  for (const auto& t : texts) lines.push_back(json{{"text", t}}.dump());
  return lines;
}

std::vector<std::string> read_texts(const fs::path& p) {
  std::vector<std::string> out;
  for (const auto& j : load_jsonl(p)) out.push_back(j.value("text", ""));
  return out;
}

// Exact Jaccard of the word 5-gram shingle sets.
double true_jaccard(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  auto shingles = [](const std::vector<std::string>& w) {
    std::set<std::string> s;
    for (size_t i = 0; i + 5 <= w.size(); ++i) s.insert(w[i] + " " + w[i + 1] + " " + w[i + 2] + " " + w[i + 3] + " " + w[i + 4]);
    return s;
  };
  auto sa = shingles(a), sb = shingles(b);
  size_t inter = 0;
  for (const auto& s : sa) inter += sb.count(s);
  return double(inter) / double(sa.size() + sb.size() - inter);
}

std::string join(const std::vector<std::string>& w) {
  std::string s;
  for (const auto& x : w) s += (s.empty() ? "" : " ") + x;
  return s;
}

struct Planted {
  std::vector<std::string> texts;
  std::vector<int> twin;        // index of the base a variant copies, -1 for bases
  std::vector<double> jaccard;  // true Jaccard to its base
};

// 200 random 120-word documents; 60 get a variant with 2 words replaced (Jaccard ~0.85), 60 a
// variant with 14 words replaced (Jaccard ~0.3), spread through the file after their bases.
Planted planted_set() {
  std::mt19937_64 rng(11);
  std::vector<std::string> vocab;
  for (int i = 0; i < 3000; ++i) vocab.push_back("w" + std::to_string(rng() % 1000000));
  Planted p;
  std::vector<std::vector<std::string>> docs;
  for (int d = 0; d < 200; ++d) {
    std::vector<std::string> w;
    for (int i = 0; i < 120; ++i) w.push_back(vocab[rng() % vocab.size()]);
    docs.push_back(w);
    p.texts.push_back(join(w));
    p.twin.push_back(-1);
    p.jaccard.push_back(1);
  }
  for (int d = 0; d < 120; ++d) {
    int edits = d < 60 ? 2 : 14;
    std::vector<std::string> w = docs[d];
    for (int e = 0; e < edits; ++e) w[size_t(4 + e * 8 + (rng() % 3))] = "edit" + std::to_string(rng());
    p.texts.push_back(join(w));
    p.twin.push_back(d);
    p.jaccard.push_back(true_jaccard(docs[d], w));
  }
  return p;
}

TEST(Dedup, FindsPlantedNearDuplicatesAboveThresholdAndKeepsDissimilar) {
  Planted p = planted_set();
  for (size_t i = 200; i < 260; ++i) ASSERT_GT(p.jaccard[i], 0.8) << i;
  for (size_t i = 260; i < 320; ++i) ASSERT_LT(p.jaccard[i], 0.45) << i;
  fs::path d = dir_for("planted");
  write_lines(d / "in.jsonl", text_records(p.texts));
  DedupOptions o;
  o.inputs = {d / "in.jsonl"};
  o.output = d / "out.jsonl";
  o.report = d / "report.json";
  o.removed = d / "removed.jsonl";
  o.progress = false;
  DedupResult r = run_dedup(o);
  std::vector<std::string> kept = read_texts(o.output);
  std::set<std::string> kept_set(kept.begin(), kept.end());
  size_t found = 0;
  for (size_t i = 200; i < 260; ++i) found += !kept_set.count(p.texts[i]);
  EXPECT_GE(found, 57u) << "recall of near duplicates at Jaccard > 0.8 below 95%";
  for (size_t i = 0; i < 200; ++i) EXPECT_TRUE(kept_set.count(p.texts[i])) << "base " << i << " removed";
  for (size_t i = 260; i < 320; ++i) EXPECT_TRUE(kept_set.count(p.texts[i])) << "Jaccard " << p.jaccard[i] << " merged";
  EXPECT_EQ(r.n_near, found);
  EXPECT_EQ(r.n_in, 320u);
  // Every removed record names its kept twin: the base it was made from.
  json rep = json::parse(read_file(o.report));
  auto removed = load_jsonl(o.removed);
  ASSERT_EQ(removed.size(), found);
  for (const auto& row : removed) {
    EXPECT_EQ(row["reason"], "near_duplicate");
    size_t line = std::stoul(row["record"].get<std::string>().substr(row["record"].get<std::string>().rfind(':') + 1));
    size_t kept_line = std::stoul(row["kept"].get<std::string>().substr(row["kept"].get<std::string>().rfind(':') + 1));
    EXPECT_EQ(int(kept_line) - 1, p.twin[line - 1]);
    EXPECT_GE(row["jaccard"].get<double>(), 0.75);
  }
  EXPECT_GT(rep["minhash"]["candidate_probability_at_threshold"].get<double>(), 0.5);
  EXPECT_EQ(rep["examples"]["near_duplicate"].size(), 5u);
}

TEST(Dedup, MinHashEstimatesTrueJaccard) {
  Planted p = planted_set();
  MinHasher h(256, 5, 3);
  std::vector<uint64_t> wa, wb, scratch;
  std::vector<uint16_t> sa(256), sb(256);
  double err = 0;
  for (size_t i = 200; i < 320; ++i) {
    word_hashes(p.texts[size_t(p.twin[i])], wa);
    word_hashes(p.texts[i], wb);
    h.signature(wa, sa.data(), scratch);
    h.signature(wb, sb.data(), scratch);
    err += std::abs(estimated_jaccard(sa.data(), sb.data(), 256) - p.jaccard[i]);
  }
  EXPECT_LT(err / 120, 0.04);  // the standard error at 256 permutations is about 0.03
}

TEST(Dedup, LshBandsAreTunedToTheThreshold) {
  LshParams p = choose_lsh(0.75, 112);
  EXPECT_LE(p.bands * p.rows, 112);
  EXPECT_GT(p.probability(0.85), 0.95);
  EXPECT_LT(p.probability(0.4), 0.2);
}

TEST(Dedup, ExactDuplicatesAfterNormalizationAcrossFormats) {
  fs::path d = dir_for("exact");
  write_lines(d / "a.jsonl", {R"({"text": "Hello,   World! How are you?"})",
                              R"({"messages": [{"role": "user", "content": "what is 2+2"}, {"role": "assistant", "content": "4"}]})",
                              ""});
  write_lines(d / "b.jsonl", {R"({"text": "hello world how are you"})", R"({"prompt": "What is 2 + 2?", "completion": "4."})",
                              R"({"text": "hello world how are you today"})"});
  DedupOptions o;
  o.inputs = {d / "a.jsonl", d / "b.jsonl"};
  o.output = d / "out.jsonl";
  o.removed = d / "removed.jsonl";
  o.progress = false;
  DedupResult r = run_dedup(o);
  EXPECT_EQ(r.n_in, 5u);
  EXPECT_EQ(r.n_exact, 2u);
  auto out = load_jsonl(o.output);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0]["text"], "Hello,   World! How are you?");  // lines copied unchanged, first kept
  EXPECT_TRUE(out[1].contains("messages"));
  EXPECT_EQ(out[2]["text"], "hello world how are you today");
  auto removed = load_jsonl(o.removed);
  ASSERT_EQ(removed.size(), 2u);
  EXPECT_EQ(removed[0]["reason"], "exact");
  EXPECT_EQ(removed[0]["record"], (d / "b.jsonl").string() + ":1");
  EXPECT_EQ(removed[0]["kept"], (d / "a.jsonl").string() + ":1");
}

TEST(Dedup, DecontaminationCatchesPlantedTestItemsOnly) {
  const fs::path gsm = fs::path(COGUMI_DATASETS) / "gsm8k" / "test.jsonl";
  auto items = load_benchmark("gsm8k", gsm);
  fs::path d = dir_for("decontam");
  std::vector<std::string> texts = {
      "Solve this one carefully. " + items[5].question + " Show your work.",  // embedded test question
      "Tom has 3 apples and buys 4 more. How many apples does Tom have now? He has 7.",
      "The quick brown fox jumps over the lazy dog while the farmer sells eggs at the market every day.",
      items[100].solution,  // a test solution, verbatim
  };
  // Twelve words of a test question (below the 13-gram) are not contamination.
  std::vector<std::pair<uint32_t, uint32_t>> spans;
  word_spans(items[7].question, spans);
  ASSERT_GT(spans.size(), 14u);
  texts.push_back("Note: " + items[7].question.substr(0, spans[11].second) + " is how it starts.");
  write_lines(d / "in.jsonl", text_records(texts));
  DedupOptions o;
  o.inputs = {d / "in.jsonl"};
  o.output = d / "out.jsonl";
  o.progress = false;
  o.decontam.benches = {{"gsm8k", gsm}};
  DedupResult r = run_dedup(o);
  EXPECT_EQ(r.n_contaminated, 2u);
  auto kept = read_texts(o.output);
  EXPECT_EQ(kept, (std::vector<std::string>{texts[1], texts[2], texts[4]}));
  const json& rows = r.report["decontamination"]["records"];
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["item"], items[5].id);
  EXPECT_EQ(rows[0]["benchmark"], "gsm8k=" + gsm.string());
  EXPECT_EQ(rows[1]["item"], items[100].id);
  EXPECT_EQ(r.report["decontamination"]["benchmarks"][0]["items"], items.size());
}

TEST(Dedup, MalformedLineNamesFileAndLineAndLeavesOutputUntouched) {
  fs::path d = dir_for("malformed");
  write_lines(d / "good.jsonl", {R"({"text": "one two three"})"});
  write_lines(d / "bad.jsonl", {R"({"text": "four five six"})", "", R"({"text": "seven)"});
  write_lines(d / "out.jsonl", {"previous output"});
  DedupOptions o;
  o.inputs = {d / "good.jsonl", d / "bad.jsonl"};
  o.output = d / "out.jsonl";
  o.progress = false;
  std::string err = test::error_of([&] { run_dedup(o); });
  EXPECT_NE(err.find((d / "bad.jsonl").string() + ":3"), std::string::npos) << err;
  EXPECT_EQ(read_file(d / "out.jsonl"), "previous output\n");
  for (const auto& e : fs::directory_iterator(d)) EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos);
  // Interrupted (Ctrl-C sets the flag): an error, the old output kept, no temp file left.
  std::atomic<bool> cancel{true};
  o.inputs = {d / "good.jsonl"};
  o.cancel = &cancel;
  err = test::error_of([&] { run_dedup(o); });
  EXPECT_NE(err.find("interrupted"), std::string::npos) << err;
  EXPECT_EQ(read_file(d / "out.jsonl"), "previous output\n");
  for (const auto& e : fs::directory_iterator(d)) EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos);
  o.cancel = nullptr;
  // A missing field names the field and the line.
  write_lines(d / "nofield.jsonl", {R"({"text": "a b"})", R"({"body": "c d"})"});
  o.inputs = {d / "nofield.jsonl"};
  o.field = "text";
  err = test::error_of([&] { run_dedup(o); });
  EXPECT_NE(err.find("nofield.jsonl:2: missing field 'text'"), std::string::npos) << err;
}

TEST(Dedup, CommandLine) {
  fs::path d = dir_for("cli");
  write_lines(d / "in.jsonl", text_records({"alpha beta gamma delta", "Alpha, beta; gamma delta!", "something else entirely"}));
  std::string cmd = fmt::format("{} data dedup {} -o {} --report {} -q > {} 2>&1", COGUMI_BIN, (d / "in.jsonl").string(),
                                (d / "out.jsonl").string(), (d / "rep.json").string(), (d / "log").string());
  ASSERT_EQ(std::system(cmd.c_str()), 0) << read_file(d / "log");
  EXPECT_EQ(load_jsonl(d / "out.jsonl").size(), 2u);
  EXPECT_EQ(json::parse(read_file(d / "rep.json"))["removed"]["exact"], 1);
  cmd = fmt::format("{} data dedup {} -o {} --threshold 1.5 > {} 2>&1", COGUMI_BIN, (d / "in.jsonl").string(),
                    (d / "out2.jsonl").string(), (d / "log").string());
  EXPECT_NE(std::system(cmd.c_str()), 0);
  EXPECT_NE(read_file(d / "log").find("--threshold"), std::string::npos) << read_file(d / "log");
  // decontaminate: only the benchmark check (the exact duplicate stays).
  const auto gsm = load_benchmark("gsm8k", fs::path(COGUMI_DATASETS) / "gsm8k" / "test.jsonl");
  write_lines(d / "mixed.jsonl", text_records({"alpha beta gamma delta", "alpha beta gamma delta", "Q: " + gsm[3].question}));
  cmd = fmt::format("{} data decontaminate {} -o {} -b gsm8k={}/gsm8k/test.jsonl -q > {} 2>&1", COGUMI_BIN,
                    (d / "mixed.jsonl").string(), (d / "clean.jsonl").string(), COGUMI_DATASETS, (d / "log").string());
  ASSERT_EQ(std::system(cmd.c_str()), 0) << read_file(d / "log");
  EXPECT_EQ(load_jsonl(d / "clean.jsonl").size(), 2u);
  EXPECT_NE(read_file(d / "log").find("1 contaminated"), std::string::npos) << read_file(d / "log");
  // pairs: forward and reverse; an input and --critique together is refused.
  write_lines(d / "qa.jsonl", {R"({"question": "q1", "answer": "a1"})", R"({"question": "q2", "answer": "a2"})"});
  cmd = fmt::format("{} data pairs {} -o {} --reverse > {} 2>&1", COGUMI_BIN, (d / "qa.jsonl").string(),
                    (d / "pairs.jsonl").string(), (d / "log").string());
  ASSERT_EQ(std::system(cmd.c_str()), 0) << read_file(d / "log");
  EXPECT_EQ(load_jsonl(d / "pairs.jsonl").size(), 4u);
  cmd = fmt::format("{} data pairs {} -o {} --critique {} > {} 2>&1", COGUMI_BIN, (d / "qa.jsonl").string(),
                    (d / "c.jsonl").string(), d.string(), (d / "log").string());
  EXPECT_NE(std::system(cmd.c_str()), 0);
  EXPECT_NE(read_file(d / "log").find("one of them"), std::string::npos) << read_file(d / "log");
}

}  // namespace
}  // namespace cogumi
