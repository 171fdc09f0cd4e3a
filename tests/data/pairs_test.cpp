// cogumi data pairs: forward and reverse pairs and self-critique records, and that the trainer's
// own loader (load_sft, what `cogumi train -d FILE:WEIGHT` reads) accepts every file written.
#include "data/pairs.h"

#include <gtest/gtest.h>

#include <fstream>

#include "core/io.h"
#include "engine/model.h"
#include "test_util.h"
#include "train/sft_data.h"

namespace cogumi {
namespace {

fs::path dir_for(const std::string& name) {
  fs::path d = test::tmp_dir() / "pairs" / name;
  fs::create_directories(d);
  return d;
}

void write_lines(const fs::path& p, const std::vector<json>& rows) {
  std::ofstream f(p);
  for (const auto& r : rows) f << r.dump() << "\n";
}

size_t sft_examples(const fs::path& p) {
  auto tok = Model::load(test::tiny_model(), [] { ModelOptions m; m.vocab_only = true; return m; }());
  SftOptions so;
  so.max_len = 512;
  SftStats st;
  load_sft(p, *tok, so, &st);
  return st.n_examples;
}

TEST(Pairs, ForwardAndReverseFromEveryFormatLoadForTraining) {
  fs::path d = dir_for("fr");
  write_lines(d / "in.jsonl",
              {{{"question", "What is 3 + 4?"}, {"answer", "3 + 4 = 7\n#### 7"}},
               {{"instruction", "Name a prime."}, {"input", "Below 5."}, {"output", "3"}},
               {{"prompt", "def f():\n"}, {"completion", "    return 1\n"}},
               {{"messages", json::array({{{"role", "system"}, {"content", "Be brief."}},
                                          {{"role", "user"}, {"content", "Capital of France?"}},
                                          {{"role", "assistant"}, {"content", "Paris"}}})}}});
  PairsOptions o;
  o.reverse = true;
  auto st = write_pairs(d / "in.jsonl", d / "out.jsonl", o);
  EXPECT_EQ(st.n_records, 4u);
  auto rows = load_jsonl(d / "out.jsonl");
  ASSERT_EQ(rows.size(), 8u);
  EXPECT_EQ(rows[0]["direction"], "forward");
  EXPECT_EQ(rows[0]["instruction"], "What is 3 + 4?");
  EXPECT_EQ(rows[0]["output"], "3 + 4 = 7\n#### 7");
  EXPECT_EQ(rows[1]["direction"], "reverse");
  EXPECT_NE(rows[1]["instruction"].get<std::string>().find("3 + 4 = 7\n#### 7"), std::string::npos);
  EXPECT_EQ(rows[1]["output"], "What is 3 + 4?");
  EXPECT_EQ(rows[3]["output"], "Name a prime.\n\nBelow 5.");
  EXPECT_EQ(rows[7]["output"], "Capital of France?");
  EXPECT_EQ(rows[7]["source"], (d / "in.jsonl").string() + ":4");
  EXPECT_EQ(sft_examples(d / "out.jsonl"), 8u);

  o.format = "messages";
  o.forward = false;
  write_pairs(d / "in.jsonl", d / "rev.jsonl", o);
  rows = load_jsonl(d / "rev.jsonl");
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0]["messages"][1]["content"], "What is 3 + 4?");
  EXPECT_EQ(sft_examples(d / "rev.jsonl"), 4u);
}

TEST(Pairs, BadRecordNamesFileAndLine) {
  fs::path d = dir_for("bad");
  write_lines(d / "in.jsonl", {{{"question", "q"}, {"answer", "a"}}, {{"question", "q2"}}});
  std::string err = test::error_of([&] { write_pairs(d / "in.jsonl", d / "out.jsonl", PairsOptions{}); });
  EXPECT_NE(err.find("in.jsonl:2: missing field 'answer'"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(d / "out.jsonl"));
}

TEST(Pairs, CritiqueRecordsFromEvalFailures) {
  fs::path run = dir_for("critique_run");
  write_lines(run / "items.jsonl",
              {{{"id", "test.jsonl:0"}, {"kind", "numeric"}, {"question", "What is 6 * 7?"}, {"output", "6 * 7 = 48"},
                {"extracted", "48"}, {"reference", "42"}, {"solution", "6 * 7 = 42\n#### 42"}, {"correct", false},
                {"failure_type", "arithmetic"}},
               {{"id", "test.jsonl:1"}, {"kind", "numeric"}, {"question", "1+1?"}, {"output", "2"}, {"extracted", "2"},
                {"reference", "2"}, {"solution", "#### 2"}, {"correct", true}},
               {{"id", "HumanEval/0"}, {"kind", "code"}, {"question", "def add(a, b):"}, {"output", "    return a - b"},
                {"extracted", nullptr}, {"reference", ""}, {"solution", "    return a + b\n"}, {"correct", false},
                {"failure_type", "test_failed"}, {"detail", "AssertionError"}}});
  auto st = write_critique(run, run / "critique.jsonl", CritiqueOptions{});
  EXPECT_EQ(st.n_items, 3u);
  EXPECT_EQ(st.n_records, 2u);
  auto rows = load_jsonl(run / "critique.jsonl");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["task"], "What is 6 * 7?");
  EXPECT_EQ(rows[0]["bad_output"], "6 * 7 = 48");
  EXPECT_EQ(rows[0]["corrected_output"], "6 * 7 = 42\n#### 42");
  EXPECT_NE(rows[0]["critique"].get<std::string>().find("concludes 48, but the correct answer is 42"), std::string::npos);
  EXPECT_NE(rows[0]["instruction"].get<std::string>().find("6 * 7 = 48"), std::string::npos);
  EXPECT_NE(rows[0]["output"].get<std::string>().find("Corrected answer:\n6 * 7 = 42"), std::string::npos);
  EXPECT_NE(rows[1]["critique"].get<std::string>().find("AssertionError"), std::string::npos);
  EXPECT_EQ(sft_examples(run / "critique.jsonl"), 2u);

  // Records that already hold the four parts get their training view.
  fs::path d = dir_for("critique_records");
  write_lines(d / "in.jsonl", {{{"task", "t"}, {"bad_output", "b"}, {"corrected_output", "c"}, {"critique", "why"}}});
  CritiqueOptions co;
  co.format = "messages";
  EXPECT_EQ(write_critique(d / "in.jsonl", d / "out.jsonl", co).n_records, 1u);
  EXPECT_EQ(load_jsonl(d / "out.jsonl")[0]["messages"][1]["content"], "why\n\nCorrected answer:\nc");
  EXPECT_EQ(sft_examples(d / "out.jsonl"), 1u);

  // A task that mentions a placeholder keeps its own words: the template is filled in one pass.
  write_lines(d / "braces.jsonl",
              {{{"task", "Print the text {answer} literally."}, {"bad_output", "print(42)"}, {"corrected_output", "c"},
                {"critique", "why"}}});
  ASSERT_EQ(write_critique(d / "braces.jsonl", d / "braces-out.jsonl", CritiqueOptions{}).n_records, 1u);
  const std::string prompt = load_jsonl(d / "braces-out.jsonl")[0]["instruction"];
  EXPECT_NE(prompt.find("Task:\nPrint the text {answer} literally."), std::string::npos) << prompt;
  EXPECT_NE(prompt.find("Answer:\nprint(42)"), std::string::npos) << prompt;
}

}  // namespace
}  // namespace cogumi
