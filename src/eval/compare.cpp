#include "eval/compare.h"

#include <fmt/format.h>

#include <map>

#include "core/error.h"
#include "eval/score.h"

namespace cogumi {

namespace {
fs::path items_file(const fs::path& run) {
  fs::path p = fs::is_directory(run) ? run / "items.jsonl" : run;
  if (!fs::exists(p)) fail("'{}' is not an eval run (no items.jsonl)", run.string());
  return p;
}
struct Tally {
  int wins = 0, ties_right = 0, ties_wrong = 0, losses = 0;
  json to_json() const {
    int n = wins + ties_right + ties_wrong + losses;
    auto pct = [&](int x) { return n ? double(x) / n : 0.0; };
    return {{"n", n},
            {"wins", wins},
            {"ties", ties_right + ties_wrong},
            {"ties_both_right", ties_right},
            {"ties_both_wrong", ties_wrong},
            {"losses", losses},
            {"win_rate", pct(wins)},
            {"tie_rate", pct(ties_right + ties_wrong)},
            {"loss_rate", pct(losses)},
            {"accuracy_a", pct(ties_right + losses)},
            {"accuracy_b", pct(ties_right + wins)},
            {"mcnemar_p", mcnemar_p(wins, losses)}};
  }
};
}  // namespace

json compare_runs(const fs::path& run_a, const fs::path& run_b) {
  std::map<std::string, json> a;
  read_jsonl(items_file(run_a), [&](const json& j, size_t) {
    a[j.value("benchmark", "") + "\x1f" + j.value("id", "") + "\x1f" + std::to_string(j.value("sample", 0))] = j;
  });
  Tally total;
  std::map<std::string, Tally> per_cat;
  int only_b = 0, matched = 0;
  read_jsonl(items_file(run_b), [&](const json& jb, size_t) {
    auto it = a.find(jb.value("benchmark", "") + "\x1f" + jb.value("id", "") + "\x1f" + std::to_string(jb.value("sample", 0)));
    if (it == a.end()) {
      ++only_b;
      return;
    }
    ++matched;
    bool ra = it->second.value("correct", false), rb = jb.value("correct", false);
    std::string cat = jb.value("benchmark", "") + "/" + jb.value("category", "");
    for (Tally* t : {&total, &per_cat[cat]}) {
      if (rb && !ra) t->wins++;
      else if (ra && !rb) t->losses++;
      else if (ra) t->ties_right++;
      else t->ties_wrong++;
    }
    a.erase(it);
  });
  json cats = json::object();
  for (auto& [c, t] : per_cat) cats[c] = t.to_json();
  return {{"run_a", run_a.string()}, {"run_b", run_b.string()}, {"matched", matched}, {"only_in_a", a.size()},
          {"only_in_b", only_b},     {"total", total.to_json()}, {"categories", cats}};
}

std::string compare_table(const json& c) {
  std::string t = fmt::format("B = {}\nA = {}\n{:<32} {:>6} {:>7} {:>7} {:>7} {:>8} {:>8} {:>9}\n", c["run_b"].get<std::string>(),
                              c["run_a"].get<std::string>(), "category", "items", "wins", "ties", "losses", "acc A",
                              "acc B", "McNemar p");
  auto row = [&](const std::string& name, const json& j) {
    t += fmt::format("{:<32} {:>6} {:>6.1f}% {:>6.1f}% {:>6.1f}% {:>7.1f}% {:>7.1f}% {:>9.3g}\n", name, j["n"].get<int>(),
                     100 * j["win_rate"].get<double>(), 100 * j["tie_rate"].get<double>(), 100 * j["loss_rate"].get<double>(),
                     100 * j["accuracy_a"].get<double>(), 100 * j["accuracy_b"].get<double>(), j["mcnemar_p"].get<double>());
  };
  for (auto& [k, v] : c["categories"].items()) row(k, v);
  row("TOTAL", c["total"]);
  if (c["only_in_a"].get<size_t>() + c["only_in_b"].get<int>() > 0)
    t += fmt::format("(not compared: {} items only in A, {} only in B)\n", c["only_in_a"].get<size_t>(), c["only_in_b"].get<int>());
  return t;
}

}  // namespace cogumi
