#include "core/io.h"

#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "test_util.h"

namespace cogumi {
namespace {

fs::path write_text(const std::string& name, const std::string& text) {
  fs::path p = test::tmp_dir() / name;
  std::ofstream(p) << text;
  return p;
}

TEST(Jsonl, ReadsObjectsAndSkipsBlankLines) {
  auto p = write_text("ok.jsonl", "{\"a\":1}\n\n{\"a\":2}\r\n");
  auto rows = load_jsonl(p);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1]["a"], 2);
}

TEST(Jsonl, MalformedLineNamesFileAndLine) {
  auto p = write_text("bad.jsonl", "{\"a\":1}\n{\"a\": oops}\n");
  try {
    load_jsonl(p);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
  }
}

TEST(Jsonl, NonObjectLineIsAnError) {
  auto p = write_text("arr.jsonl", "[1,2]\n");
  EXPECT_THROW(load_jsonl(p), Error);
}

TEST(Jsonl, MissingFieldNamesField) {
  json o = {{"x", 1}};
  try {
    get_string(o, "prompt", "f.jsonl:3");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "f.jsonl:3: missing field 'prompt'");
  }
}

TEST(Jsonl, ReadsGzip) {
  auto rows = load_jsonl(fs::path(COGUMI_DATASETS) / "humaneval/HumanEval.jsonl.gz");
  EXPECT_EQ(rows.size(), 164u);
  EXPECT_EQ(rows[0]["task_id"], "HumanEval/0");
}

TEST(Files, AtomicWriteReplacesWholeFile) {
  fs::path p = test::tmp_dir() / "atomic.txt";
  write_file_atomic(p, "first version, long");
  write_file_atomic(p, "second");
  EXPECT_EQ(read_file(p), "second");
  for (auto& e : fs::directory_iterator(test::tmp_dir()))
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << "leftover temp file " << e.path();
}

TEST(Files, MissingFileIsAClearError) {
  try {
    read_file("/nonexistent/x.jsonl");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.jsonl"), std::string::npos);
  }
}

TEST(Files, JsonlWriterAppends) {
  fs::path p = test::tmp_dir() / "w.jsonl";
  { JsonlWriter w(p); w.write({{"i", 1}}); }
  { JsonlWriter w(p, true); w.write({{"i", 2}}); }
  EXPECT_EQ(load_jsonl(p).size(), 2u);
}

}  // namespace
}  // namespace cogumi
