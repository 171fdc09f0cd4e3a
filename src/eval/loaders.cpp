// Loaders for each benchmark's upstream format (see benchmark.h).
#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <optional>
#include <re2/re2.h>

#include "core/error.h"
#include "core/io.h"
#include "data/csv.h"
#include "eval/benchmark.h"

namespace cogumi {

const char* task_kind_name(TaskKind k) {
  switch (k) {
    case TaskKind::kNumeric: return "numeric";
    case TaskKind::kMultipleChoice: return "multiple_choice";
    case TaskKind::kCode: return "code";
    case TaskKind::kToolCall: return "tool_call";
    case TaskKind::kText: return "text";
  }
  return "?";
}

const std::vector<std::string>& benchmark_kinds() {
  static const std::vector<std::string> k = {"gsm8k", "mmlu", "humaneval", "mbpp", "bbh", "bfcl", "jsonl"};
  return k;
}

namespace {

std::string where(const fs::path& p, size_t line) { return fmt::format("{}:{}", p.string(), line); }

// 1-based line of each element of a JSON document's list: the top-level list when `key` is
// empty, else the list under that top-level key. Errors then name the line of the element at
// fault, as JSONL errors do. The document has already parsed; this only counts.
std::vector<size_t> element_lines(const std::string& text, const std::string& key) {
  std::vector<size_t> lines;
  size_t line = 1;
  int depth = 0, list_depth = key.empty() ? 1 : -1;
  bool expect_element = false;
  std::string last_string;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\n') {
      ++line;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r') continue;
    if (expect_element && c != ']') lines.push_back(line);
    expect_element = false;
    if (c == '"') {
      size_t j = i + 1;
      for (; j < text.size() && text[j] != '"'; ++j)
        if (text[j] == '\\') ++j;
      last_string = text.substr(i + 1, j - i - 1);
      i = j;
    } else if (c == ':' && depth == 1 && list_depth < 0 && last_string == key) {
      list_depth = 2;  // the value that follows opens at depth 1 and holds elements at depth 2
    } else if (c == '{' || c == '[') {
      ++depth;
      if (c == '[' && depth == list_depth) expect_element = true;
    } else if (c == '}' || c == ']') {
      if (depth == list_depth) list_depth = key.empty() ? 1 : -2;  // that list is done
      --depth;
    } else if (c == ',' && depth == list_depth) {
      expect_element = true;
    }
  }
  return lines;
}

const json& field(const json& o, const char* name, const std::string& at) {
  auto it = o.find(name);
  if (it == o.end()) fail("{}: missing field '{}'", at, name);
  return *it;
}

const json& object_at(const json& o, const std::string& at) {
  if (!o.is_object()) fail("{}: expected a JSON object, got {}", at, o.type_name());
  return o;
}

std::string str_field(const json& o, const char* name, const std::string& at) {
  const json& v = field(o, name, at);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<long long>());
  fail("{}: field '{}' must be a string", at, name);
}

std::vector<EvalItem> load_gsm8k(const fs::path& p) {
  std::vector<EvalItem> out;
  std::string base = p.filename().string();
  read_jsonl(p, [&](const json& o, size_t line) {
    std::string at = where(p, line);
    EvalItem it;
    it.id = fmt::format("{}:{}", base, out.size());
    it.benchmark = "gsm8k";
    it.category = "gsm8k";
    it.kind = TaskKind::kNumeric;
    it.question = str_field(o, "question", at);
    it.solution = str_field(o, "answer", at);
    auto pos = it.solution.rfind("####");
    if (pos == std::string::npos) fail("{}: field 'answer' has no '#### <number>' final answer", at);
    std::string ans = it.solution.substr(pos + 4);
    ans.erase(0, ans.find_first_not_of(" \t"));
    ans.erase(ans.find_last_not_of(" \t\r\n") + 1);
    it.reference = ans;
    out.push_back(std::move(it));
  });
  return out;
}

std::string mmlu_subject(const fs::path& p) {
  std::string s = p.stem().string();
  for (const char* suf : {"_test", "_dev", "_val", "_train"}) {
    std::string x(suf);
    if (s.size() > x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0) return s.substr(0, s.size() - x.size());
  }
  return s;
}

void load_mmlu_file(const fs::path& p, std::vector<EvalItem>& out) {
  std::vector<size_t> lines;
  auto rows = read_csv(p, &lines);
  if (rows.empty()) return;
  bool header = rows[0].size() >= 6 && rows[0][0] == "question";
  std::string subject = mmlu_subject(p), base = p.filename().string();
  for (size_t r = header ? 1 : 0; r < rows.size(); ++r) {
    const CsvRow& row = rows[r];
    std::string at = fmt::format("{}:{}", p.string(), lines[r]);
    if (row.size() < 6) fail("{}: expected 6 columns (question, 4 choices, answer), got {}", at, row.size());
    EvalItem it;
    it.id = fmt::format("{}:{}", base, r - (header ? 1 : 0));
    it.benchmark = "mmlu";
    it.category = subject;
    it.kind = TaskKind::kMultipleChoice;
    it.question = row[0];
    it.choices = {row[1], row[2], row[3], row[4]};
    std::string a = row[5];
    a.erase(a.find_last_not_of(" \t\r") + 1);
    if (header) {
      if (a.size() != 1 || a[0] < '0' || a[0] > '3') fail("{}: 'answer' must be an index 0-3, got '{}'", at, a);
      it.reference = std::string(1, char('A' + (a[0] - '0')));
    } else {
      if (a.size() != 1 || a[0] < 'A' || a[0] > 'D') fail("{}: answer must be a letter A-D, got '{}'", at, a);
      it.reference = a;
    }
    it.solution = it.reference;
    out.push_back(std::move(it));
  }
}

std::vector<EvalItem> load_mmlu(const fs::path& p) {
  std::vector<EvalItem> out;
  if (fs::is_directory(p)) {
    std::vector<fs::path> files;
    for (auto& e : fs::directory_iterator(p))
      if (e.path().extension() == ".csv") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    if (files.empty()) fail("'{}' holds no .csv files", p.string());
    for (auto& f : files) load_mmlu_file(f, out);
  } else {
    load_mmlu_file(p, out);
  }
  return out;
}

std::vector<EvalItem> load_humaneval(const fs::path& p) {
  std::vector<EvalItem> out;
  read_jsonl(p, [&](const json& o, size_t line) {
    std::string at = where(p, line);
    EvalItem it;
    it.id = str_field(o, "task_id", at);
    it.benchmark = "humaneval";
    it.category = o.contains("category") ? str_field(o, "category", at) : "humaneval";
    it.kind = TaskKind::kCode;
    it.code_prompt = str_field(o, "prompt", at);
    it.question = it.code_prompt;
    it.entry_point = str_field(o, "entry_point", at);
    // A Python identifier: it is spliced into a pattern (prompt_before_entry) and a test call.
    const std::string& e = it.entry_point;
    auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
    if (e.empty() || std::isdigit(static_cast<unsigned char>(e[0])) || !std::all_of(e.begin(), e.end(), word))
      fail("{}: entry_point '{}' is not a Python identifier", at, e);
    it.test = str_field(o, "test", at);
    if (o.contains("canonical_solution")) it.solution = str_field(o, "canonical_solution", at);
    out.push_back(std::move(it));
  });
  return out;
}

std::vector<std::string> string_list(const json& o, const char* name, const std::string& at) {
  const json& v = field(o, name, at);
  if (!v.is_array()) fail("{}: field '{}' must be a list of strings", at, name);
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string()) fail("{}: field '{}[{}]' must be a string, got {}", at, name, i, v[i].type_name());
    out.push_back(v[i].get<std::string>());
  }
  return out;
}

EvalItem mbpp_item(const json& o, const std::string& at, bool sanitized) {
  object_at(o, at);
  EvalItem it;
  it.id = "mbpp/" + str_field(o, "task_id", at);
  it.benchmark = "mbpp";
  it.category = "mbpp";
  it.kind = TaskKind::kCode;
  it.question = str_field(o, sanitized ? "prompt" : "text", at);
  it.solution = str_field(o, "code", at);
  it.test_list = string_list(o, "test_list", at);
  if (sanitized && o.contains("test_imports"))
    for (const auto& t : string_list(o, "test_imports", at)) it.test_setup += t + "\n";
  if (!sanitized && o.contains("test_setup_code")) it.test_setup = str_field(o, "test_setup_code", at);
  return it;
}

std::vector<EvalItem> load_mbpp(const fs::path& p) {
  std::vector<EvalItem> out;
  std::string text = read_file(p);
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') {  // sanitized-mbpp.json: one JSON array
    json arr;
    try {
      arr = json::parse(text);
    } catch (const json::exception& e) {  // parse_error, or out_of_range for 1e400
      fail("{}: invalid JSON: {}", p.string(), e.what());
    }
    if (!arr.is_array()) fail("{}: expected a JSON list of tasks", p.string());
    auto lines = element_lines(text, "");
    for (size_t i = 0; i < arr.size(); ++i)
      out.push_back(mbpp_item(arr[i], fmt::format("{}:{}: [{}]", p.string(), i < lines.size() ? lines[i] : 0, i), true));
  } else {
    read_jsonl(p, [&](const json& o, size_t line) { out.push_back(mbpp_item(o, where(p, line), false)); });
  }
  return out;
}

void load_bbh_file(const fs::path& p, std::vector<EvalItem>& out) {
  json doc;
  std::string text = read_file(p);
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for 1e400
    fail("{}: invalid JSON: {}", p.string(), e.what());
  }
  const std::string where = p.string();  // a named string: the reference below is into doc, not into it
  object_at(doc, where);
  const json& ex = field(doc, "examples", where);
  if (!ex.is_array()) fail("{}: field 'examples' must be a list, got {}", p.string(), ex.type_name());
  auto lines = element_lines(text, "examples");
  std::string task = p.stem().string();
  for (size_t i = 0; i < ex.size(); ++i) {
    std::string at = fmt::format("{}:{}: examples[{}]", p.string(), i < lines.size() ? lines[i] : 0, i);
    object_at(ex[i], at);
    EvalItem it;
    it.id = fmt::format("{}:{}", p.filename().string(), i);
    it.benchmark = "bbh";
    it.category = task;
    it.kind = TaskKind::kText;
    it.question = str_field(ex[i], "input", at);
    it.reference = str_field(ex[i], "target", at);
    it.solution = it.reference;
    it.scoring = "normalized";
    out.push_back(std::move(it));
  }
}

std::vector<EvalItem> load_bbh(const fs::path& p) {
  std::vector<EvalItem> out;
  if (fs::is_directory(p)) {
    std::vector<fs::path> files;
    for (auto& e : fs::directory_iterator(p))
      if (e.path().extension() == ".json") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (auto& f : files) load_bbh_file(f, out);
  } else {
    load_bbh_file(p, out);
  }
  return out;
}

// question: [[{"role","content"}, ...]] (v3: turns of messages; the first turn's last user
// message is the request), [{"role","content"}, ...], or a plain string (v1).
std::string bfcl_question(const json& q, const std::string& at) {
  if (q.is_string()) return q.get<std::string>();
  bool turns = q.is_array() && !q.empty() && q[0].is_array();
  const json& turn = turns ? q[0] : q;
  const std::string path = turns ? "question[0]" : "question";
  if (!turn.is_array()) fail("{}: field '{}' must be a list of messages, got {}", at, path, turn.type_name());
  std::optional<std::string> text;
  for (size_t i = 0; i < turn.size(); ++i) {
    const json& m = turn[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string())
      fail("{}: field '{}[{}]' must be an object with string 'role' and 'content', got {}", at, path, i, m.dump());
    if (m["role"] == "user") text = m["content"].get<std::string>();
  }
  if (!text) fail("{}: field '{}' has no user message", at, path);
  return *text;
}

// function: a list of {"name", "parameters", ...} (v1 files may hold one object).
json bfcl_functions(const json& f, const std::string& at) {
  json list = f.is_object() ? json::array({f}) : f;
  if (!list.is_array()) fail("{}: field 'function' must be a list of functions, got {}", at, f.type_name());
  for (size_t i = 0; i < list.size(); ++i)
    if (!list[i].is_object() || !list[i].contains("name") || !list[i]["name"].is_string())
      fail("{}: field 'function[{}]' must be an object with a string 'name'", at, i);
  return list;
}

// ground_truth: [{func_name: {param: [accepted values]}}].
json bfcl_ground_truth(const json& o, const std::string& at) {
  const json& gt = field(object_at(o, at), "ground_truth", at);
  if (!gt.is_array()) fail("{}: field 'ground_truth' must be a list, got {}", at, gt.type_name());
  for (size_t i = 0; i < gt.size(); ++i)
    if (!gt[i].is_object() || gt[i].size() != 1 || !gt[i].begin().value().is_object())
      fail("{}: field 'ground_truth[{}]' must be {{\"function name\": {{\"param\": [accepted values]}}}}, got {}", at,
           i, gt[i].dump());
  return gt;
}

// "questions.jsonl,answers.jsonl", or questions with answers in possible_answer/<same name>.
std::vector<EvalItem> load_bfcl(const fs::path& spec) {
  std::string s = spec.string();
  fs::path qpath = s, apath;
  if (auto comma = s.find(','); comma != std::string::npos) {
    qpath = s.substr(0, comma);
    apath = s.substr(comma + 1);
  } else {
    apath = qpath.parent_path() / "possible_answer" / qpath.filename();
  }
  if (!fs::exists(apath))
    fail("BFCL answers not found for '{}': give 'bfcl=QUESTIONS.jsonl,ANSWERS.jsonl' or put them in '{}'",
         qpath.string(), apath.string());
  std::map<std::string, json> answers;
  read_jsonl(apath, [&](const json& o, size_t line) {
    std::string at = where(apath, line);
    answers[str_field(o, "id", at)] = bfcl_ground_truth(o, at);
  });
  std::vector<EvalItem> out;
  std::string category = qpath.stem().string();
  read_jsonl(qpath, [&](const json& o, size_t line) {
    std::string at = where(qpath, line);
    EvalItem it;
    it.id = str_field(o, "id", at);
    it.benchmark = "bfcl";
    it.category = category;
    it.kind = TaskKind::kToolCall;
    it.question = bfcl_question(field(o, "question", at), at);
    it.functions = bfcl_functions(field(o, "function", at), at);
    auto a = answers.find(it.id);
    if (a == answers.end()) fail("{}: no ground truth for id '{}' in '{}'", at, it.id, apath.string());
    it.ground_truth = a->second;
    it.solution = it.ground_truth.dump();
    out.push_back(std::move(it));
  });
  return out;
}

std::vector<EvalItem> load_generic(const fs::path& p, const std::string& scoring) {
  static const std::vector<std::string> kScorings = {"exact", "normalized", "numeric", "regex", "judge"};
  if (std::find(kScorings.begin(), kScorings.end(), scoring) == kScorings.end())
    fail("unknown scoring '{}' (known: exact, normalized, numeric, regex, judge)", scoring);
  std::vector<EvalItem> out;
  std::string base = p.filename().string();
  read_jsonl(p, [&](const json& o, size_t line) {
    std::string at = where(p, line);
    EvalItem it;
    it.id = o.contains("id") ? str_field(o, "id", at) : fmt::format("{}:{}", base, out.size());
    it.benchmark = "jsonl";
    it.category = o.contains("category") ? str_field(o, "category", at) : base;
    it.kind = scoring == "numeric" ? TaskKind::kNumeric : TaskKind::kText;
    it.question = str_field(o, "instruction", at);
    if (o.contains("input") && o["input"].is_string() && !o["input"].get<std::string>().empty())
      it.question += "\n\n" + o["input"].get<std::string>();
    it.reference = str_field(o, "output", at);
    it.solution = it.reference;
    it.scoring = scoring;
    if (scoring == "regex") {  // refused here, before any model time is spent on the item
      RE2::Options ro;
      ro.set_log_errors(false);
      RE2 re(it.reference, ro);
      if (!re.ok()) fail("{}: item '{}': invalid regex in \"output\": {} (RE2 syntax)", at, it.id, re.error());
    }
    out.push_back(std::move(it));
  });
  return out;
}

}  // namespace

std::vector<EvalItem> load_benchmark(const std::string& kind, const fs::path& path, const LoadOptions& opts) {
  if (kind != "bfcl" && !fs::exists(path)) fail("benchmark file not found: '{}'", path.string());
  std::vector<EvalItem> items;
  if (kind == "gsm8k") items = load_gsm8k(path);
  else if (kind == "mmlu") items = load_mmlu(path);
  else if (kind == "humaneval") items = load_humaneval(path);
  else if (kind == "mbpp") items = load_mbpp(path);
  else if (kind == "bbh") items = load_bbh(path);
  else if (kind == "bfcl") items = load_bfcl(path);
  else if (kind == "jsonl") items = load_generic(path, opts.scoring);
  else fail("unknown benchmark kind '{}' (known: gsm8k, mmlu, humaneval, mbpp, bbh, bfcl, jsonl)", kind);
  if (items.empty()) fail("'{}' holds no items", path.string());
  if (opts.skip > 0) {
    if (opts.skip >= items.size())
      fail("skip {} leaves no items of the {} in '{}'", opts.skip, items.size(), path.string());
    items.erase(items.begin(), items.begin() + std::ptrdiff_t(opts.skip));
  }
  if (opts.limit > 0 && items.size() > opts.limit) items.resize(opts.limit);
  return items;
}

}  // namespace cogumi
