#include "data/record_text.h"

#include "core/error.h"

namespace cogumi {

namespace {

using json = nlohmann::json;

const std::string& str_at(const json& r, const std::string& f, const std::string& where) {
  auto it = r.find(f);
  if (it == r.end()) fail("{}: missing field '{}'", where, f);
  if (!it->is_string()) fail("{}: field '{}' must be a string", where, f);
  return it->get_ref<const std::string&>();
}

std::string messages_text(const json& r, const std::string& where) {
  const json& m = r["messages"];
  if (!m.is_array() || m.empty()) fail("{}: 'messages' must be a non-empty array", where);
  std::string out;
  for (size_t i = 0; i < m.size(); ++i) {
    std::string at = fmt::format("{} messages[{}]", where, i);
    if (!m[i].is_object()) fail("{}: must be an object {{role, content}}", at);
    if (i) out += '\n';
    out += str_at(m[i], "content", at);
  }
  return out;
}

void append(std::string& out, const std::string& s) {
  if (!out.empty()) out += '\n';
  out += s;
}

}  // namespace

TextFields::TextFields(const std::string& spec) : spec_(spec) {
  if (spec == "auto") return;
  size_t start = 0;
  while (true) {
    size_t plus = spec.find('+', start);
    std::string f = spec.substr(start, plus == std::string::npos ? std::string::npos : plus - start);
    if (f.empty()) fail("--field '{}': empty field name (expected auto, messages, text, prompt+completion, ...)", spec);
    fields_.push_back(f);
    if (plus == std::string::npos) break;
    start = plus + 1;
  }
}

std::string TextFields::text(const json& r, const std::string& where) const {
  if (fields_.empty()) {
    if (r.contains("messages")) return messages_text(r, where);
    for (const char* spec : {"instruction+input+output", "prompt+completion", "prompt+canonical_solution",
                             "question+answer", "text"}) {
      TextFields tf(spec);
      if (r.contains(tf.fields_[0])) return tf.text(r, where);
    }
    fail("{}: no text: expected 'messages', 'instruction'/'output', 'prompt'/'completion', 'question'/'answer' or "
         "'text' (or name the fields with --field)",
         where);
  }
  std::string out;
  for (const auto& f : fields_) {
    if (f == "messages") {
      if (!r.contains("messages")) fail("{}: missing field 'messages' (--field {})", where, spec_);
      append(out, messages_text(r, where));
    } else if (f == "input") {
      if (r.contains("input") && r["input"].is_string() && !r["input"].get_ref<const std::string&>().empty())
        append(out, r["input"].get<std::string>());
    } else {
      if (!r.contains(f)) fail("{}: missing field '{}' (--field {})", where, f, spec_);
      append(out, str_at(r, f, where));
    }
  }
  return out;
}

QuestionAnswer question_answer(const json& r, const std::string& where) {
  QuestionAnswer qa;
  if (r.contains("messages")) {
    const json& m = r["messages"];
    if (!m.is_array() || m.empty()) fail("{}: 'messages' must be a non-empty array", where);
    int last_asst = -1;
    for (int i = int(m.size()) - 1; i >= 0 && last_asst < 0; --i)
      if (m[i].is_object() && m[i].value("role", "") == "assistant") last_asst = i;
    if (last_asst < 0) fail("{}: no assistant message (the answer)", where);
    for (int i = last_asst - 1; i >= 0 && qa.question.empty(); --i)
      if (m[i].is_object() && m[i].value("role", "") == "user")
        qa.question = str_at(m[i], "content", fmt::format("{} messages[{}]", where, i));
    if (qa.question.empty()) fail("{}: no user message before the last assistant message (the question)", where);
    qa.answer = str_at(m[last_asst], "content", fmt::format("{} messages[{}]", where, last_asst));
  } else if (r.contains("instruction")) {
    qa.question = str_at(r, "instruction", where);
    if (r.contains("input") && r["input"].is_string() && !r["input"].get_ref<const std::string&>().empty())
      qa.question += "\n\n" + r["input"].get<std::string>();
    qa.answer = str_at(r, "output", where);
  } else if (r.contains("prompt")) {
    qa.question = str_at(r, "prompt", where);
    qa.answer = str_at(r, r.contains("completion") ? "completion" : "canonical_solution", where);
  } else if (r.contains("question")) {
    qa.question = str_at(r, "question", where);
    qa.answer = str_at(r, "answer", where);
  } else {
    fail("{}: expected 'messages', 'instruction'/'output', 'prompt'/'completion' or 'question'/'answer'", where);
  }
  return qa;
}

}  // namespace cogumi
