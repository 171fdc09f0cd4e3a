#include "data/pairs.h"

#include "core/error.h"
#include "core/io.h"
#include "data/record_text.h"

namespace cogumi {

namespace {

void check_format(const std::string& f) {
  if (f != "instruction" && f != "messages") fail("--format must be instruction or messages, got '{}'", f);
}

std::string replace_all(std::string s, const std::string& key, const std::string& value) {
  for (size_t p = s.find(key); p != std::string::npos; p = s.find(key, p + value.size())) s.replace(p, key.size(), value);
  return s;
}

json sft_record(const std::string& prompt, const std::string& target, const std::string& format) {
  if (format == "messages")
    return {{"messages", json::array({{{"role", "user"}, {"content", prompt}}, {{"role", "assistant"}, {"content", target}}})}};
  return {{"instruction", prompt}, {"output", target}};
}

std::string dump_line(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"; }

std::string str_or_empty(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

// What the scorer found, in words: the critique's content for a failed eval item.
std::string critique_of(const json& item) {
  const std::string kind = str_or_empty(item, "kind"), extracted = str_or_empty(item, "extracted");
  const std::string reference = str_or_empty(item, "reference"), type = str_or_empty(item, "failure_type");
  const std::string detail = str_or_empty(item, "detail");
  std::string c = "The answer is wrong.";
  if (kind == "code") {
    c += " The code does not pass the task's tests";
    c += detail.empty() ? "." : ": " + detail.substr(0, 300) + (detail.size() > 300 ? "..." : "");
  } else if (extracted.empty()) {
    c += " It never states a final answer that can be checked.";
  } else if (!reference.empty()) {
    c += fmt::format(" It concludes {}, but the correct answer is {}.", extracted, reference);
  }
  if (str_or_empty(item, "finish_reason") == "length") c += " It ran out of room before finishing.";
  if (!type.empty()) c += fmt::format(" (failure: {})", type);
  return c;
}

// The template with {task} and {answer} filled in one pass: text inside a value is never read as a
// placeholder (a task that mentions "{answer}" stays as written).
std::string fill_critique_prompt(const std::string& tmpl, const std::string& task, const std::string& answer) {
  std::string out;
  for (size_t i = 0; i < tmpl.size();) {
    if (tmpl.compare(i, 6, "{task}") == 0) {
      out += task;
      i += 6;
    } else if (tmpl.compare(i, 8, "{answer}") == 0) {
      out += answer;
      i += 8;
    } else {
      out += tmpl[i++];
    }
  }
  return out;
}

json critique_record(const std::string& task, const std::string& bad, const std::string& corrected,
                     const std::string& critique, const CritiqueOptions& o) {
  std::string prompt = fill_critique_prompt(o.prompt_template, task, bad);
  json r = sft_record(prompt, critique + "\n\nCorrected answer:\n" + corrected, o.format);
  r.update(json{{"task", task}, {"bad_output", bad}, {"corrected_output", corrected}, {"critique", critique}});
  return r;
}

}  // namespace

void PairsOptions::validate() const {
  if (!forward && !reverse) fail("nothing to write: --no-forward without --reverse");
  check_format(format);
  if (reverse && reverse_template.find("{answer}") == std::string::npos)
    fail("--reverse-template must contain {{answer}}, got '{}'", reverse_template);
}

PairsStats write_pairs(const fs::path& in, const fs::path& out, const PairsOptions& o) {
  o.validate();
  PairsStats st;
  std::string text;
  read_jsonl(in, [&](const json& j, size_t line) {
    const std::string at = fmt::format("{}:{}", in.string(), line);
    QuestionAnswer qa = question_answer(j, at);
    if (qa.question.empty() || qa.answer.empty()) fail("{}: empty question or answer", at);
    st.n_records++;
    if (o.forward) {
      json r = sft_record(qa.question, qa.answer, o.format);
      r.update(json{{"direction", "forward"}, {"source", at}});
      text += dump_line(r);
      st.n_forward++;
    }
    if (o.reverse) {
      json r = sft_record(replace_all(o.reverse_template, "{answer}", qa.answer), qa.question, o.format);
      r.update(json{{"direction", "reverse"}, {"source", at}});
      text += dump_line(r);
      st.n_reverse++;
    }
  });
  if (st.n_records == 0) fail("'{}' holds no records", in.string());
  write_file_atomic(out, text);
  return st;
}

void CritiqueOptions::validate() const {
  check_format(format);
  for (const char* key : {"{task}", "{answer}"})
    if (prompt_template.find(key) == std::string::npos)
      fail("--critique-template must contain {}, got '{}'", key, prompt_template);
}

CritiqueStats write_critique(const fs::path& in, const fs::path& out, const CritiqueOptions& o) {
  o.validate();
  const fs::path path = fs::is_directory(in) ? in / "items.jsonl" : in;
  if (!fs::exists(path)) fail("'{}': no such file (an eval run directory or a critique JSONL)", path.string());
  CritiqueStats st;
  std::string text;
  read_jsonl(path, [&](const json& j, size_t line) {
    const std::string at = fmt::format("{}:{}", path.string(), line);
    st.n_items++;
    if (j.contains("correct")) {  // an eval item: failures only
      if (!j["correct"].is_boolean()) fail("{}: field 'correct' must be true or false", at);
      if (j["correct"].get<bool>()) return;
      std::string corrected = str_or_empty(j, "solution");
      if (corrected.empty()) corrected = str_or_empty(j, "reference");
      if (corrected.empty()) {
        st.n_skipped++;
        return;
      }
      text += dump_line(critique_record(get_string(j, "question", at), get_string(j, "output", at), corrected,
                                        critique_of(j), o));
    } else if (j.contains("bad_output")) {
      std::string task = j.contains("task") ? get_string(j, "task", at) : get_string(j, "instruction", at);
      text += dump_line(critique_record(task, get_string(j, "bad_output", at), get_string(j, "corrected_output", at),
                                        get_string(j, "critique", at), o));
    } else {
      fail("{}: expected an eval item (with 'correct') or a critique record ('bad_output', 'corrected_output', "
           "'critique')",
           at);
    }
    st.n_records++;
  });
  if (st.n_records == 0) fail("'{}' gives no critique records (no failed items with a reference)", path.string());
  write_file_atomic(out, text);
  return st;
}

}  // namespace cogumi
