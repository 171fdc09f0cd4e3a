// Each domain's route chosen on its dev split (pipeline_detail::choose_routes, the `routes` stage): the best
// configuration, the base or any domain's modifier; ties and domains without a dev split keep the default; with
// route_alpha < 1 a modifier must beat the base significantly on the paired dev items (dev_against_base).
#include <gtest/gtest.h>

#include <fstream>

#include "pipeline/stages_detail.h"
#include "test_util.h"

namespace cogumi::pipeline_detail {
namespace {

DomainFiles domain(const std::string& name, bool modifier, bool dev) {
  DomainFiles d;
  d.name = name;
  d.modifier = modifier;
  if (dev) d.dev = {{"gsm8k", "dev-" + name + ".jsonl"}};
  return d;
}

json acc(double math, double reasoning, double code, double automation) {
  auto a = [](double pct) { return json{{"n", 200}, {"correct", long(pct * 2)}, {"accuracy", pct}}; };
  return {{"math", a(math)}, {"reasoning", a(reasoning)}, {"code", a(code)}, {"automation", a(automation)}};
}

TEST(PipelineRoutes, EachDomainTakesTheBestConfigurationOnItsDevSplit) {
  const std::vector<DomainFiles> domains = {domain("math", true, true), domain("reasoning", false, true),
                                            domain("code", true, true), domain("automation", false, false)};
  // reasoning has no modifier of its own: the math modifier beats the base on its dev split (the nano's case);
  // code's own modifier only ties the base: it keeps its default; automation has no dev split.
  const json dev = {{"base", acc(18, 38.5, 70, 15)}, {"math", acc(22, 40, 67, 15)}, {"code", acc(10, 38.5, 70, 30)}};
  const json routes = choose_routes(domains, dev);
  EXPECT_EQ(routes, (json{{"math", "math"}, {"reasoning", "math"}, {"code", "code"}, {"automation", "base"}}));
  // the base better than a domain's own modifier: the domain goes to the base
  const json worse = {{"base", acc(25, 38.5, 70, 15)}, {"math", acc(22, 38.5, 67, 15)}};
  EXPECT_EQ(choose_routes(domains, worse)["math"], "base");
  EXPECT_EQ(choose_routes(domains, worse)["reasoning"], "base");
  // two alternatives tie above a domain's own modifier: the base first
  const json tie = {{"base", acc(18, 38.5, 70, 15)}, {"automation", acc(18, 38.5, 70, 15)}, {"code", acc(10, 38.5, 60, 30)}};
  EXPECT_EQ(choose_routes(domains, tie)["code"], "base");
  // no measurement at all: the defaults
  EXPECT_EQ(choose_routes(domains, json::object()),
            (json{{"math", "math"}, {"reasoning", "base"}, {"code", "code"}, {"automation", "base"}}));
}

// The nano's dev case (main job, session 27): the automation modifier answered 98.5% of code's dev items against the
// base's 97.5% (3 wins, 1 loss: p 0.63) and took code, then lost 1.7 points on its test set. With route_alpha a modifier
// takes a domain from the base only on a significant paired win; a clear win (math 31/10, p 0.0015) still takes it.
TEST(PipelineRoutes, AModifierTakesADomainFromTheBaseOnlyOnASignificantDevWin) {
  const std::vector<DomainFiles> domains = {domain("math", true, true), domain("code", false, true),
                                            domain("reasoning", true, true)};
  const json dev = {{"base", acc(47, 44, 97.5, 78.5)}, {"math", acc(57.5, 40.5, 98, 77.5)},
                    {"automation", acc(46, 41.5, 98.5, 85)}, {"reasoning", acc(47, 42.5, 98, 79)}};
  auto v = [](int w, int l, double p) { return json{{"wins", w}, {"losses", l}, {"p", p}}; };
  const json vs = {{"math", {{"math", v(31, 10, 0.0015)}, {"code", v(2, 1, 1.0)}, {"reasoning", v(17, 24, 0.35)}}},
                   {"automation", {{"math", v(8, 10, 0.81)}, {"code", v(3, 1, 0.63)}, {"reasoning", v(12, 17, 0.46)}}},
                   {"reasoning", {{"math", v(5, 5, 1.0)}, {"code", v(1, 0, 1.0)}, {"reasoning", v(26, 29, 0.79)}}}};
  // no test (alpha 1, as before): the best dev accuracy, however small the margin
  EXPECT_EQ(choose_routes(domains, dev, vs, 1.0), (json{{"math", "math"}, {"code", "automation"}, {"reasoning", "base"}}));
  EXPECT_EQ(choose_routes(domains, dev, vs, 0.05), (json{{"math", "math"}, {"code", "base"}, {"reasoning", "base"}}));
  // a domain's own modifier, better than the base on dev but not significantly: the base
  json own = dev;
  own["reasoning"]["reasoning"]["accuracy"] = 46.0;
  EXPECT_EQ(choose_routes(domains, own, vs, 0.05)["reasoning"], "base");
  EXPECT_EQ(choose_routes(domains, own, vs, 1.0)["reasoning"], "reasoning");
  // a significant win with more losses than wins is a loss, not a reason to switch; a modifier without paired data
  // cannot take a domain while the test is on
  json lose = vs;
  lose["math"]["math"] = v(10, 31, 0.0015);
  EXPECT_EQ(choose_routes(domains, dev, lose, 0.05)["math"], "base");
  json none = vs;
  none.erase("math");
  EXPECT_EQ(choose_routes(domains, dev, none, 0.05)["math"], "base");
}

// The paired counts come from the two dev runs' items, matched by benchmark and id, per domain (its dev kinds).
TEST(PipelineRoutes, DevAgainstBaseCountsPairedWinsAndLossesPerDomain) {
  const fs::path dir = test::tmp_dir() / "routes-dev-against-base";
  fs::create_directories(dir / "base");
  fs::create_directories(dir / "mod");
  auto write = [](const fs::path& f, const std::vector<std::tuple<std::string, int, bool>>& items) {
    std::ofstream o(f);
    for (auto& [bench, id, ok] : items)
      o << json{{"benchmark", bench}, {"category", bench == "mmlu" ? "reasoning" : bench}, {"id", "dev.jsonl:" + std::to_string(id)},
                {"sample", 0}, {"correct", ok}}.dump() << "\n";
  };
  // gsm8k (math): the modifier wins items 0-3 and loses item 4; mmlu (reasoning): loses items 0 and 1
  write(dir / "base" / "items.jsonl", {{"gsm8k", 0, false}, {"gsm8k", 1, false}, {"gsm8k", 2, false}, {"gsm8k", 3, false},
                                       {"gsm8k", 4, true}, {"gsm8k", 5, true}, {"mmlu", 0, true}, {"mmlu", 1, true}, {"mmlu", 2, false}});
  write(dir / "mod" / "items.jsonl", {{"mmlu", 2, false}, {"mmlu", 1, false}, {"mmlu", 0, false}, {"gsm8k", 5, true}, {"gsm8k", 4, false},
                                      {"gsm8k", 3, true}, {"gsm8k", 2, true}, {"gsm8k", 1, true}, {"gsm8k", 0, true}});
  std::vector<DomainFiles> domains = {domain("math", true, true), domain("reasoning", true, false)};
  domains[1].dev = {{"mmlu", "dev-reasoning.jsonl"}};
  const json v = dev_against_base(domains, dir / "base", dir / "mod");
  EXPECT_EQ(v["math"]["wins"], 4);
  EXPECT_EQ(v["math"]["losses"], 1);
  EXPECT_NEAR(v["math"]["p"].get<double>(), 0.375, 1e-9);  // 2 * P(X <= 1), X ~ Bin(5, 1/2)
  EXPECT_EQ(v["reasoning"]["wins"], 0);
  EXPECT_EQ(v["reasoning"]["losses"], 2);
  // a domain without a dev split has no entry
  domains[1].dev.clear();
  EXPECT_FALSE(dev_against_base(domains, dir / "base", dir / "mod").contains("reasoning"));
}

// The trainer's switches in a training stage's settings (so a run under another one retrains): recorded when set
// off their defaults, and a bad value stops the plan with the trainer's own message, before any stage runs.
TEST(PipelineTrainSwitches, RecordedOffTheirDefaultsAndRefusedWhenBad) {
  auto settings = [] {
    json s = json::object();
    add_backward_type_setting(s);
    return s;
  };
  {
    test::ScopedEnv a("GGML_COGUMI_BACKWARD_WEIGHT_TYPE", "auto"), b("COGUMI_LORA_GROUP_FORWARD", "group");
    EXPECT_EQ(settings(), json::object());
  }
  {
    test::ScopedEnv a("GGML_COGUMI_BACKWARD_WEIGHT_TYPE", "bf16"), b("COGUMI_LORA_GROUP_FORWARD", "split");
    EXPECT_EQ(settings(), (json{{"backward_weight_type", "bf16"}, {"lora_group_forward", "split"}}));
  }
  {
    test::ScopedEnv a("GGML_COGUMI_BACKWARD_WEIGHT_TYPE", "fp8"), b("COGUMI_LORA_GROUP_FORWARD", nullptr);
    EXPECT_NE(test::error_of(settings).find("GGML_COGUMI_BACKWARD_WEIGHT_TYPE is 'fp8': use auto, f32 or bf16"),
              std::string::npos);
  }
  {
    test::ScopedEnv a("GGML_COGUMI_BACKWARD_WEIGHT_TYPE", nullptr), b("COGUMI_LORA_GROUP_FORWARD", "splt");
    EXPECT_NE(test::error_of(settings).find("COGUMI_LORA_GROUP_FORWARD is 'splt': use group or split"), std::string::npos);
  }
}

}  // namespace
}  // namespace cogumi::pipeline_detail
