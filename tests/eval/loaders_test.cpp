// Loaders: upstream formats load, and every malformed input is an Error that names the
// file:line and the field (never a json exception, never a crash).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "data/csv.h"
#include "eval/benchmark.h"
#include "test_util.h"

namespace cogumi {
namespace {

const fs::path kTestData = fs::path(COGUMI_TEST_DATA);

fs::path write(const std::string& name, const std::string& text) {
  fs::path p = test::tmp_dir() / "loaders" / name;
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

// The Error load_benchmark throws; fails the test if it throws anything else or nothing.
std::string load_error(const std::string& kind, const fs::path& p) {
  try {
    load_benchmark(kind, p);
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << kind << " " << p << ": not an Error: " << e.what();
    return "";
  }
  ADD_FAILURE() << kind << " " << p << ": loaded without an error";
  return "";
}

#define EXPECT_HAS(haystack, needle) EXPECT_NE((haystack).find(needle), std::string::npos) << (haystack)

TEST(Loaders, FixturesInUpstreamFormats) {
  auto bbh = load_benchmark("bbh", kTestData / "bbh");
  EXPECT_GE(bbh.size(), 12u);
  auto bfcl = load_benchmark("bfcl", kTestData / "bfcl" / "BFCL_v3_simple.json");
  ASSERT_EQ(bfcl.size(), 4u);
  EXPECT_EQ(bfcl[1].id, "simple_1");
  EXPECT_EQ(bfcl[1].functions[0]["name"], "poker.evaluate_hand");
  EXPECT_NE(bfcl[0].question.find("triangle"), std::string::npos);
  auto mbpp = load_benchmark("mbpp", kTestData / "mbpp/mbpp.jsonl");
  ASSERT_EQ(mbpp.size(), 3u);
  EXPECT_EQ(mbpp[2].id, "mbpp/927");
  EXPECT_NE(mbpp[2].test_setup.find("root = Node(1)"), std::string::npos);
}

// skip drops items at the head before limit takes its share (mining past what a base trained on); a skip that
// leaves nothing is an error naming the file, not an empty run.
TEST(Loaders, SkipDropsTheHeadBeforeTheLimit) {
  std::string text;
  for (int i = 0; i < 5; ++i) text += fmt::format(R"({{"question": "q{}", "answer": "#### {}"}})" "\n", i, i);
  const fs::path f = write("skip/train.jsonl", text);
  LoadOptions lo;
  lo.skip = 2;
  auto items = load_benchmark("gsm8k", f, lo);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].id, "train.jsonl:2");
  EXPECT_EQ(items[0].question, "q2");
  lo.limit = 2;
  items = load_benchmark("gsm8k", f, lo);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[1].id, "train.jsonl:3");
  lo.skip = 5;
  try {
    load_benchmark("gsm8k", f, lo);
    ADD_FAILURE() << "a skip past the end was accepted";
  } catch (const Error& e) {
    EXPECT_HAS(std::string(e.what()), "skip 5 leaves no items of the 5 in '" + f.string() + "'");
  }
}

TEST(Loaders, BfclErrorsNameFileLineAndField) {
  const std::string fn = R"("function": [{"name": "f", "parameters": {"type": "dict", "properties": {}}}])";
  auto answers = [](const std::string& name, const std::string& text) {
    write("bfcl/possible_answer/" + name, text);
    return test::tmp_dir() / "loaders" / "bfcl" / name;
  };
  answers("turns.json", R"({"id": "a", "ground_truth": [{"f": {}}]})" "\n" R"({"id": "b", "ground_truth": [{"f": {}}]})" "\n");
  auto q = write("bfcl/turns.json", R"({"id": "a", "question": [[{"role": "user", "content": "hi"}]], )" + fn + "}\n" +
                                        R"({"id": "b", "question": [["hello"]], )" + fn + "}\n");
  std::string e = load_error("bfcl", q);
  EXPECT_HAS(e, "turns.json:2");
  EXPECT_HAS(e, "question[0][0]");

  answers("nouser.json", R"({"id": "a", "ground_truth": [{"f": {}}]})" "\n");
  q = write("bfcl/nouser.json", R"({"id": "a", "question": [[{"role": "system", "content": "x"}]], )" + fn + "}\n");
  EXPECT_HAS(load_error("bfcl", q), "nouser.json:1: field 'question[0]' has no user message");

  answers("content.json", R"({"id": "a", "ground_truth": [{"f": {}}]})" "\n");
  q = write("bfcl/content.json", R"({"id": "a", "question": [[{"role": "user", "content": 5}]], )" + fn + "}\n");
  EXPECT_HAS(load_error("bfcl", q), "content.json:1: field 'question[0][0]'");

  answers("fn.json", R"({"id": "a", "ground_truth": [{"f": {}}]})" "\n");
  q = write("bfcl/fn.json", R"({"id": "a", "question": "hi", "function": [{"description": "no name"}]})" "\n");
  EXPECT_HAS(load_error("bfcl", q), "fn.json:1: field 'function[0]'");

  answers("gt.json", R"({"id": "a", "ground_truth": [{"f": {}}]})" "\n" R"({"id": "b", "ground_truth": [{"f": [1]}]})" "\n");
  q = write("bfcl/gt.json", R"({"id": "a", "question": "hi", )" + fn + "}\n");
  e = load_error("bfcl", q);
  EXPECT_HAS(e, "possible_answer/gt.json:2: field 'ground_truth[0]'");

  answers("gtlist.json", R"({"id": "a", "ground_truth": {"f": {}}})" "\n");
  q = write("bfcl/gtlist.json", R"({"id": "a", "question": "hi", )" + fn + "}\n");
  EXPECT_HAS(load_error("bfcl", q), "gtlist.json:1: field 'ground_truth' must be a list");
}

TEST(Loaders, MbppErrorsNameFileLineAndField) {
  auto p = write("mbpp/bad.jsonl",
                 R"({"task_id": 1, "text": "t", "code": "c", "test_list": ["assert 1"], "test_setup_code": ""})" "\n"
                 R"({"task_id": 2, "text": "t", "code": "c", "test_list": ["assert 1", 7], "test_setup_code": ""})" "\n");
  EXPECT_HAS(load_error("mbpp", p), "bad.jsonl:2: field 'test_list[1]' must be a string");
  p = write("mbpp/notlist.jsonl", R"({"task_id": 1, "text": "t", "code": "c", "test_list": "assert 1"})" "\n");
  EXPECT_HAS(load_error("mbpp", p), "notlist.jsonl:1: field 'test_list' must be a list");
  // sanitized-mbpp.json: a JSON list; errors name the element's line.
  p = write("mbpp/sanitized-mbpp.json",
            "[\n  {\"task_id\": 1, \"prompt\": \"p\", \"code\": \"c\", \"test_imports\": [], \"test_list\": [\"assert 1\"]},\n"
            "  {\"task_id\": 2, \"prompt\": \"p\", \"code\": \"c\",\n   \"test_imports\": [3], \"test_list\": []},\n  4\n]\n");
  EXPECT_HAS(load_error("mbpp", p), "sanitized-mbpp.json:3: [1]: field 'test_imports[0]' must be a string");
  p = write("mbpp/sanitized2.json", "[\n  {\"task_id\": 1, \"prompt\": \"p\", \"code\": \"c\", \"test_list\": []},\n  4\n]\n");
  EXPECT_HAS(load_error("mbpp", p), "sanitized2.json:3: [1]: expected a JSON object");
}

TEST(Loaders, BbhErrorsNameFileLineAndField) {
  auto p = write("bbh/navigate.json",
                 "{\n  \"canary\": \"x\",\n  \"examples\": [\n    {\"input\": \"a\", \"target\": \"Yes\"},\n"
                 "    \"not an example\",\n    {\"input\": \"b\"}\n  ]\n}\n");
  EXPECT_HAS(load_error("bbh", p), "navigate.json:5: examples[1]: expected a JSON object");
  p = write("bbh/navigate2.json",
            "{\"examples\": [\n  {\"input\": \"a\", \"target\": \"Yes\"},\n  {\"input\": \"b\", \"target\": [1]}\n]}\n");
  EXPECT_HAS(load_error("bbh", p), "navigate2.json:3: examples[1]: field 'target' must be a string");
  p = write("bbh/navigate3.json", "{\"examples\": {\"input\": \"a\"}}");
  EXPECT_HAS(load_error("bbh", p), "navigate3.json: field 'examples' must be a list");
  // A number beyond a double is invalid JSON here, not an escaping nlohmann out_of_range.
  p = write("bbh/overflow.json", "{\"examples\": [{\"input\": \"a\", \"target\": 1e400}]}");
  EXPECT_HAS(load_error("bbh", p), "overflow.json: invalid JSON");
  p = write("mbpp/overflow.json", "[{\"task_id\": 1e400}]");
  EXPECT_HAS(load_error("mbpp", p), "overflow.json: invalid JSON");
  p = write("bbh/navigate4.json", "[1, 2]");
  EXPECT_HAS(load_error("bbh", p), "navigate4.json: expected a JSON object");
}

TEST(Loaders, CsvByteOrderMarkIsSkipped) {
  const std::string bom = "\xEF\xBB\xBF";
  auto rows = parse_csv(bom + "question,choice0\nq,a\n", "x.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0][0], "question");
  auto p = write("mmlu/astronomy_test.csv", bom + "question,choice0,choice1,choice2,choice3,answer\n"
                                                  "Which is a planet?,Mars,Sun,Moon,Comet,0\n"
                                                  "\"Which, of these\nis a star?\",Mars,Sun,Moon,Comet,1\n");
  auto items = load_benchmark("mmlu", p);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].reference, "A");
  EXPECT_EQ(items[1].reference, "B");
  EXPECT_EQ(items[1].id, "astronomy_test.csv:1");
  // A bad row's error names its line (the quoted field above spans two).
  p = write("mmlu/anatomy_test.csv", bom + "question,choice0,choice1,choice2,choice3,answer\n"
                                           "\"Two\nlines\",a,b,c,d,0\nBad,a,b,c,d,7\n");
  EXPECT_HAS(load_error("mmlu", p), "anatomy_test.csv:4: 'answer' must be an index 0-3");
}

}  // namespace
}  // namespace cogumi
