// Each domain's route chosen on its dev split (pipeline_detail::choose_routes, the `routes` stage): the best
// configuration, the base or any domain's modifier; ties and domains without a dev split keep the default.
#include <gtest/gtest.h>

#include "pipeline/stages_detail.h"

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

}  // namespace
}  // namespace cogumi::pipeline_detail
