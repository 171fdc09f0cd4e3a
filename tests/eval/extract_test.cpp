// Data-driven extraction cases: tests/data/extract/*.jsonl (input and expected extraction).
#include "eval/extract.h"

#include <gtest/gtest.h>

#include "core/io.h"

namespace cogumi {
namespace {

fs::path data(const char* name) { return fs::path(COGUMI_TEST_DATA) / "extract" / name; }

std::string show(const std::optional<std::string>& s) { return s ? *s : "<none>"; }
std::string show(const json& j) { return j.is_null() ? "<none>" : j.get<std::string>(); }

TEST(Extract, NumericCases) {
  size_t n = 0;
  read_jsonl(data("numeric.jsonl"), [&](const json& c, size_t line) {
    Extraction e = extract_numeric(c["output"].get<std::string>());
    EXPECT_EQ(show(e.strict), show(c["strict"])) << "numeric.jsonl:" << line;
    EXPECT_EQ(show(e.flexible), show(c["flexible"])) << "numeric.jsonl:" << line;
    ++n;
  });
  EXPECT_GE(n, 8u);
}

TEST(Extract, ChoiceCases) {
  read_jsonl(data("choice.jsonl"), [&](const json& c, size_t line) {
    Extraction e = extract_choice(c["output"].get<std::string>(), 4);
    EXPECT_EQ(show(e.strict), show(c["strict"])) << "choice.jsonl:" << line;
    EXPECT_EQ(show(e.flexible), show(c["flexible"])) << "choice.jsonl:" << line;
  });
}

TEST(Extract, CodeCases) {
  read_jsonl(data("code.jsonl"), [&](const json& c, size_t line) {
    EXPECT_EQ(extract_code(c["output"].get<std::string>()), c["code"].get<std::string>()) << "code.jsonl:" << line;
  });
}

TEST(Extract, JsonCases) {
  read_jsonl(data("json.jsonl"), [&](const json& c, size_t line) {
    auto j = extract_json(c["output"].get<std::string>());
    if (c["json"].is_null())
      EXPECT_FALSE(j.has_value()) << "json.jsonl:" << line;
    else
      EXPECT_EQ(j.value_or(json()), c["json"]) << "json.jsonl:" << line;
  });
}

TEST(Extract, NumbersNormalise) {
  EXPECT_EQ(normalize_number("1,000"), "1000");
  EXPECT_EQ(normalize_number("$18.00"), "18");
  EXPECT_EQ(normalize_number("-0.50"), "-0.5");
  EXPECT_EQ(normalize_number("abc"), "");
  // Negative zero with leading zeros is zero (fuzz corpus extract/crash-negative_zero_leading_zeros).
  EXPECT_EQ(normalize_number("-00."), "0");
  EXPECT_EQ(normalize_number("-000.000"), "0");
  EXPECT_EQ(normalize_number("-007"), "-7");
  EXPECT_EQ(normalize_number("-00.5"), "-0.5");
  EXPECT_EQ(extract_numeric("Th5-00.").flexible, "0");
  // A zero with only a fraction (fuzz corpus extract/crash-negative_zero_fraction_only).
  EXPECT_EQ(normalize_number("-.0"), "0");
  EXPECT_EQ(normalize_number(".000"), "0");
  EXPECT_EQ(normalize_number("+.0"), "0");
  EXPECT_EQ(normalize_number("-.50"), "-.5");
  EXPECT_EQ(normalize_text("The  Answer, is: YES!"), "answer is yes");
}

}  // namespace
}  // namespace cogumi
