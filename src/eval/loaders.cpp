// Loaders for each benchmark's upstream format (see benchmark.h).
#include <algorithm>
#include <fstream>

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

const json& field(const json& o, const char* name, const std::string& at) {
  auto it = o.find(name);
  if (it == o.end()) fail("{}: missing field '{}'", at, name);
  return *it;
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
  auto rows = read_csv(p);
  if (rows.empty()) return;
  bool header = rows[0].size() >= 6 && rows[0][0] == "question";
  std::string subject = mmlu_subject(p), base = p.filename().string();
  for (size_t r = header ? 1 : 0; r < rows.size(); ++r) {
    const CsvRow& row = rows[r];
    std::string at = fmt::format("{}: row {}", p.string(), r + 1);
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
    it.test = str_field(o, "test", at);
    if (o.contains("canonical_solution")) it.solution = str_field(o, "canonical_solution", at);
    out.push_back(std::move(it));
  });
  return out;
}

EvalItem mbpp_item(const json& o, const std::string& at, bool sanitized) {
  EvalItem it;
  it.id = "mbpp/" + str_field(o, "task_id", at);
  it.benchmark = "mbpp";
  it.category = "mbpp";
  it.kind = TaskKind::kCode;
  it.question = str_field(o, sanitized ? "prompt" : "text", at);
  it.solution = str_field(o, "code", at);
  const json& tl = field(o, "test_list", at);
  if (!tl.is_array()) fail("{}: 'test_list' must be an array", at);
  for (auto& t : tl) it.test_list.push_back(t.get<std::string>());
  if (sanitized && o.contains("test_imports"))
    for (auto& t : o["test_imports"]) it.test_setup += t.get<std::string>() + "\n";
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
    } catch (const json::parse_error& e) {
      fail("{}: invalid JSON: {}", p.string(), e.what());
    }
    for (size_t i = 0; i < arr.size(); ++i) out.push_back(mbpp_item(arr[i], fmt::format("{}[{}]", p.string(), i), true));
  } else {
    read_jsonl(p, [&](const json& o, size_t line) { out.push_back(mbpp_item(o, where(p, line), false)); });
  }
  return out;
}

void load_bbh_file(const fs::path& p, std::vector<EvalItem>& out) {
  json doc;
  try {
    doc = json::parse(read_file(p));
  } catch (const json::parse_error& e) {
    fail("{}: invalid JSON: {}", p.string(), e.what());
  }
  const json& ex = field(doc, "examples", p.string());
  std::string task = p.stem().string();
  for (size_t i = 0; i < ex.size(); ++i) {
    std::string at = fmt::format("{}: examples[{}]", p.string(), i);
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
    answers[str_field(o, "id", at)] = field(o, "ground_truth", at);
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
    const json& q = field(o, "question", at);
    // question: [[{"role","content"}, ...]] (turns of messages); use the last user message.
    const json& turn = q.is_array() && !q.empty() && q[0].is_array() ? q[0] : q;
    if (!turn.is_array()) fail("{}: 'question' must be a list of messages", at);
    for (auto& m : turn)
      if (m.value("role", "") == "user") it.question = m.value("content", "");
    it.functions = field(o, "function", at);
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
  if (opts.limit > 0 && items.size() > opts.limit) items.resize(opts.limit);
  return items;
}

}  // namespace cogumi
