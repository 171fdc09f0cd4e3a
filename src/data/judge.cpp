// The LLM judge (data/judge.h).
#include "data/judge.h"

#include <cmath>
#include <regex>

#include "core/error.h"
#include "core/io.h"
#include "data/cascade.h"
#include "data/teacher_check.h"
#include "data/teacher_prompt.h"

namespace cogumi {

using json = nlohmann::json;

void JudgeOptions::validate() const {
  endpoint.validate("the judge endpoint");
  if (in.empty()) fail("no examples given (IN.jsonl)");
  if (out.empty()) fail("no output given (-o OUT.jsonl)");
  if (std::filesystem::absolute(in) == std::filesystem::absolute(out)) fail("-o must differ from the input '{}'", in.string());
  if (!std::isfinite(threshold) || threshold < 1 || threshold > 10)
    fail("--threshold must be in 1..10, got {}", threshold);
  if (spend_cap_tokens < 0) fail("--spend-cap must be >= 0 tokens (0 = no cap), got {}", spend_cap_tokens);
  sandbox.validate();
}

json JudgeReport::to_json() const {
  return {{"examples", n},       {"kept", kept},   {"judged", judged},          {"unparsed", unparsed},
          {"unanswered", unanswered}, {"checked", checked}, {"judged_and_checked", both}, {"agree", agree},
          {"agreement", both ? json(double(agree) / both) : json(nullptr)},           {"tokens", tokens}};
}

std::optional<double> parse_judge_score(const std::string& reply) {
  static const std::regex named(R"((?:score|rating|grade)\s*(?:is|of)?\s*[:=]?\s*\**\s*(\d+(?:\.\d+)?))",
                                std::regex::icase);
  static const std::regex out_of(R"((\d+(?:\.\d+)?)\s*\**\s*(?:/|out of)\s*10(?![0-9]))", std::regex::icase);
  auto last = [&](const std::regex& re) -> std::optional<double> {
    std::optional<double> v;
    for (auto it = std::sregex_iterator(reply.begin(), reply.end(), re); it != std::sregex_iterator(); ++it)
      v = std::stod((*it)[1].str());
    return v;
  };
  std::optional<double> v = last(named);
  if (!v) v = last(out_of);
  if (!v) {
    std::string bare;
    for (char c : reply)
      if (c != '*' && c != ' ' && c != '\n' && c != '\t' && c != '\r') bare += c;
    while (!bare.empty() && bare.back() == '.') bare.pop_back();
    static const std::regex number(R"(\d+(?:\.\d+)?)");
    if (std::regex_match(bare, number)) v = std::stod(bare);
  }
  if (v && (*v < 1 || *v > 10)) return std::nullopt;
  return v;
}

std::pair<std::string, std::string> example_text(const json& ex, const std::string& where) {
  auto str = [&](const char* k) { return ex.contains(k) && ex[k].is_string() ? ex[k].get<std::string>() : ""; };
  for (auto [a, b] : {std::pair{"instruction", "output"}, {"prompt", "completion"}, {"question", "answer"}})
    if (ex.contains(a) && ex.contains(b)) return {str(a), str(b)};
  if (ex.contains("messages") && ex["messages"].is_array()) {
    std::string user, assistant;
    for (const auto& m : ex["messages"]) {
      if (!m.is_object() || !m.contains("content") || !m["content"].is_string()) continue;
      if (m.value("role", "") == "user") user = m["content"];
      if (m.value("role", "") == "assistant") assistant = m["content"];
    }
    if (!assistant.empty()) return {user, assistant};
  }
  fail("{}: no example there: expected {{instruction, output}}, {{prompt, completion}}, {{question, answer}} or "
       "{{messages}} with an assistant turn", where);
}

JudgeReport run_judge(const JudgeOptions& o) {
  o.validate();
  const auto examples = load_jsonl(o.in);
  const auto bench_items = load_check_items(o.benches);
  const std::string rubric = load_template(o.endpoint.prompt_template, kJudgeRubricTemplate);
  const std::string where = o.endpoint.prompt_template.empty() ? "the built-in judge rubric" : o.endpoint.prompt_template.string();
  std::vector<TeacherRequest> reqs;
  for (size_t i = 0; i < examples.size(); ++i) {
    auto [instruction, response] = example_text(examples[i], fmt::format("{}:{}", o.in.string(), i + 1));
    const std::string ref = examples[i].contains("reference") && examples[i]["reference"].is_string()
                                ? examples[i]["reference"].get<std::string>() : "";
    reqs.push_back({fill_template(rubric, {{"instruction", instruction}, {"response", response}, {"reference", ref}}, where),
                    {{"line", i + 1}, {"input", o.in.string()}}});
  }
  RequestLog log(sibling_path(o.out, ".requests.jsonl"));
  SpendMeter spend;
  spend.cap = o.spend_cap_tokens;
  spend.spent = log.tokens();
  auto annotate = [](json& line) {
    auto s = parse_judge_score(line.value("reply", ""));
    line["score"] = s ? json(*s) : json(nullptr);
  };
  const auto replies = ask_all(o.endpoint, reqs, log, spend, annotate, o.progress);
  JudgeReport rep;
  rep.n = examples.size();
  std::string kept, all;
  for (size_t i = 0; i < examples.size(); ++i) {
    json ex = examples[i];
    const json& r = replies[i];
    std::optional<double> score;
    if (r.is_null()) ++rep.unanswered;
    else if ((score = parse_judge_score(r.value("reply", "")))) ++rep.judged;
    else ++rep.unparsed;
    if (!r.is_null())
      rep.tokens += r["usage"].value("prompt_tokens", int64_t(0)) + r["usage"].value("completion_tokens", int64_t(0));
    CheckResult c;
    const bool basis = ex.contains("kind") || bench_items.count(ex.value("item", "")) || bench_items.count(ex.value("id", ""));
    if (o.use_checks && basis) {
      auto [instruction, response] = example_text(ex, o.in.string());
      c = check_answer(check_item_for(ex, bench_items), response, "stop", o.sandbox);
    }
    const bool judge_pass = score && *score >= o.threshold;
    const bool keep = c.passed ? *c.passed : judge_pass;
    if (c.passed) ++rep.checked;
    if (c.passed && score) ++rep.both, rep.agree += judge_pass == *c.passed;
    ex["judge"] = {{"score", score ? json(*score) : json(nullptr)},
                   {"reply", r.is_null() ? json(nullptr) : r["reply"]},
                   {"model", o.endpoint.model}};
    ex["verifier"] = {{"check", c.check}, {"passed", c.passed ? json(*c.passed) : json(nullptr)}, {"detail", c.detail}};
    ex["decided_by"] = c.passed ? "check" : "judge";
    ex["kept"] = keep;
    const std::string line = ex.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    all += line;
    if (keep) ++rep.kept, kept += line;
  }
  write_file_atomic(o.out, kept);
  write_file_atomic(sibling_path(o.out, ".judged.jsonl"), all);
  write_file_atomic(sibling_path(o.out, ".report.json"), rep.to_json().dump(2) + "\n");
  return rep;
}

}  // namespace cogumi
