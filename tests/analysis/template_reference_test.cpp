// The nano curriculum's reference labels (templates.jsonl): one per item, under the id that
// `cogumi eval` gives the item, so a run's failures can be scored against the templates that
// made them. The clusterer never reads this file.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <regex>
#include <set>

#include "core/io.h"
#include "data/synth.h"
#include "eval/benchmark.h"

namespace cogumi {
namespace {

TEST(TemplateReference, EveryItemHasItsTemplateUnderItsEvalId) {
  fs::path dir = fs::temp_directory_path() / fmt::format("cogumi-templates-{}", ::getpid());
  SynthOptions o;
  o.n_train = 40;
  o.n_dev = 10;
  o.n_test = 30;
  o.set_difficulty("2,math=1");
  synth_write(dir, o);
  std::map<std::string, std::string> tmpl;
  std::map<std::string, std::set<std::string>> kinds;
  read_jsonl(dir / "templates.jsonl", [&](const json& j, size_t) {
    EXPECT_TRUE(tmpl.emplace(j["id"].get<std::string>(), j["template"].get<std::string>()).second)
        << j.dump();
    kinds[j["domain"].get<std::string>()].insert(j["template"].get<std::string>());
  });
  EXPECT_EQ(tmpl.size(), 4u * (40 + 10 + 30));
  const std::map<std::string, std::pair<std::string, std::string>> files = {
      {"math", {"gsm8k", "math/test.jsonl"}},
      {"code", {"humaneval", "code/test.jsonl"}},
      {"reasoning", {"mmlu", "reasoning/reasoning_test.csv"}},
      {"automation", {"bfcl", "automation/test.jsonl"}}};
  for (const auto& [domain, kf] : files) {
    auto items = load_benchmark(kf.first, dir / kf.second);
    ASSERT_EQ(items.size(), 30u);
    for (const auto& it : items) {
      auto f = tmpl.find(it.id);
      ASSERT_NE(f, tmpl.end()) << domain << " item " << it.id << " has no template";
      EXPECT_EQ(f->second.rfind(domain + "/", 0), 0u) << f->second;
    }
  }
  // Math at difficulty 1 is one step: an opening of packs, or a count and one operation.
  std::regex math1(R"(math/1-step/(packs|count\+(add|sub|sell|share)))");
  for (const auto& t : kinds["math"]) EXPECT_TRUE(std::regex_match(t, math1)) << t;
  EXPECT_GE(kinds["math"].size(), 4u);
  for (const auto& t : kinds["reasoning"])
    EXPECT_TRUE(
        std::regex_match(t, std::regex("reasoning/(comparison|ordering|syllogism|conditional)")))
        << t;
  for (const auto& t : kinds["code"])
    EXPECT_TRUE(std::regex_match(t, std::regex(R"(code/t[12]-\d\d)"))) << t;
  EXPECT_GE(kinds["automation"].size(), 4u);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace cogumi
