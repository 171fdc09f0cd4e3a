#include "eval/prompts.h"

#include <fmt/format.h>

namespace cogumi {

namespace {

std::string mc_block(const EvalItem& it) {
  std::string s = it.question + "\n";
  for (size_t i = 0; i < it.choices.size(); ++i) s += fmt::format("{}. {}\n", char('A' + i), it.choices[i]);
  return s + "Answer:";
}

// A canonical call from BFCL ground truth: the first accepted value of each argument. The name
// comes first, as in the instruction's {"name": ..., "arguments": {...}}: a model writing this
// left to right picks the function before its arguments.
std::string call_from_truth(const json& gt) {
  if (!gt.is_array() || gt.empty() || !gt[0].is_object() || gt[0].empty()) return "{}";
  const auto& entry = *gt[0].begin();
  nlohmann::ordered_json args = nlohmann::ordered_json::object();
  for (auto& [k, v] : entry.items()) {
    if (!v.is_array()) {
      args[k] = v;
      continue;
    }
    for (auto& x : v)
      if (x != "") {
        args[k] = x;
        break;
      }
  }
  nlohmann::ordered_json call = nlohmann::ordered_json::object();
  call["name"] = gt[0].begin().key();
  call["arguments"] = args;
  return call.dump();
}

std::string mbpp_task(const EvalItem& it) {
  std::string tests;
  for (auto& t : it.test_list) tests += t + "\n";
  return fmt::format("You are an expert Python programmer, and here is your task: {} Your code should pass these tests:\n\n{}",
                     it.question, tests);
}

}  // namespace

std::vector<const EvalItem*> pick_shots(const EvalItem& item, const std::vector<EvalItem>& pool, int n) {
  std::vector<const EvalItem*> out;
  for (int pass = 0; pass < 2 && int(out.size()) < n; ++pass)
    for (const auto& s : pool) {
      if (int(out.size()) >= n) break;
      if (s.id == item.id && s.benchmark == item.benchmark) continue;
      bool same = s.category == item.category;
      if ((pass == 0) != same) continue;
      out.push_back(&s);
    }
  return out;
}

PromptParts build_prompt(const EvalItem& it, const std::vector<const EvalItem*>& shots, bool chat) {
  PromptParts p;
  switch (it.kind) {
    case TaskKind::kNumeric:
      for (auto* s : shots) p.text += fmt::format("Question: {}\nAnswer: {}\n\n", s->question, s->solution);
      p.text += fmt::format("Question: {}\nAnswer:", it.question);
      p.stops = {"\n\nQuestion:", "Question:"};
      break;
    case TaskKind::kMultipleChoice: {
      std::string subject = it.category;
      for (char& c : subject)
        if (c == '_') c = ' ';
      p.text = fmt::format("The following are multiple choice questions (with answers) about {}.\n\n", subject);
      for (auto* s : shots) p.text += mc_block(*s) + " " + s->reference + "\n\n";
      p.text += mc_block(it);
      p.stops = {"\n\n"};
      break;
    }
    case TaskKind::kCode:
      if (it.benchmark == "mbpp") {
        for (auto* s : shots) p.text += mbpp_task(*s) + "[BEGIN]\n" + s->solution + "\n[DONE]\n\n";
        p.text += mbpp_task(it) + "[BEGIN]\n";
        p.stops = {"[DONE]"};
      } else if (chat) {
        p.text = "Complete the following Python function. Answer with the whole function in a ```python block.\n\n```python\n" +
                 it.code_prompt + "```";
      } else {
        p.text = it.code_prompt;
        p.stops = {"\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#"};
      }
      break;
    case TaskKind::kToolCall:
      p.text = "You can call these functions:\n" + it.functions.dump() +
               "\n\nAnswer each request with one JSON object {\"name\": ..., \"arguments\": {...}} and nothing else.\n\n";
      for (auto* s : shots) p.text += fmt::format("Request: {}\nCall: {}\n\n", s->question, call_from_truth(s->ground_truth));
      p.text += fmt::format("Request: {}\nCall:", it.question);
      p.stops = {"\n\n", "\nRequest:"};
      break;
    case TaskKind::kText:
      if (it.benchmark == "bbh") {
        for (auto* s : shots) p.text += fmt::format("Q: {}\nA: {}\n\n", s->question, s->reference);
        p.text += fmt::format("Q: {}\nA:", it.question);
        p.stops = {"\n\nQ:", "\n\n"};
      } else {
        for (auto* s : shots) p.text += fmt::format("Instruction: {}\nResponse: {}\n\n", s->question, s->reference);
        p.text += fmt::format("Instruction: {}\nResponse:", it.question);
        p.stops = {"\n\nInstruction:"};
      }
      break;
  }
  if (chat) p.stops.clear();  // the chat template's end-of-turn token ends the answer
  return p;
}

std::string target_text(const EvalItem& it, bool chat) {
  const std::string lead = chat ? "" : " ";
  switch (it.kind) {
    case TaskKind::kNumeric:
      return lead + it.solution;
    case TaskKind::kMultipleChoice: {
      // The right option's text, then its letter: a model learns what is right and then reads the
      // letter off the option it just named, instead of guessing a letter in one step (which small
      // models never get past chance at). Eval's extraction reads the "Answer: X" line.
      size_t i = it.reference.size() == 1 ? size_t(it.reference[0] - 'A') : it.choices.size();
      if (i >= it.choices.size()) return lead + it.reference;
      return lead + it.choices[i] + "\nAnswer: " + it.reference;
    }
    case TaskKind::kCode:
      if (it.benchmark == "mbpp") return it.solution + "\n[DONE]";
      if (chat) return "```python\n" + it.code_prompt + it.solution + "```";
      return it.solution;
    case TaskKind::kToolCall:
      return lead + call_from_truth(it.ground_truth);
    case TaskKind::kText:
      return lead + it.reference;
  }
  return it.reference;
}

json training_record(const EvalItem& it, bool chat) {
  std::string text = build_prompt(it, {}, chat).text;
  json r = chat ? json{{"instruction", text}, {"output", target_text(it, true)}}
                : json{{"prompt", text}, {"completion", target_text(it, false)}};
  r["category"] = it.category;
  r["benchmark"] = it.benchmark;
  r["source_id"] = it.id;
  return r;
}

}  // namespace cogumi
