#include "route/escalation.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <set>

#include "core/error.h"
#include "core/io.h"

namespace cogumi {

namespace {

const std::vector<std::string> kChoices = {"continue", "escalate"};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = size_t(std::ceil(p * double(v.size()))) - 1;
  return v[std::min(i, v.size() - 1)];
}

// Lowercase runs of letters or of digits: enough to compare two turns' wording.
std::vector<std::string> plain_words(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty()) out.push_back(std::move(cur)), cur.clear();
  };
  for (unsigned char c : s) {
    const bool alpha = std::isalpha(c) != 0, digit = std::isdigit(c) != 0;
    if (!alpha && !digit) {
      flush();
      continue;
    }
    if (!cur.empty() && (std::isdigit(static_cast<unsigned char>(cur.back())) != 0) != digit)
      flush();
    cur.push_back(char(std::tolower(c)));
  }
  flush();
  return out;
}

// " neg_w" for each word w in the scope of a negation: the 3 words after it, cut at
// punctuation.
std::string negated_words(std::string_view s) {
  static const std::set<std::string> kNegators = {"not",    "no",      "never", "nothing", "nope",
                                                  "cannot", "without", "isnt",  "dont"};
  std::string out, word;
  int scope = 0;
  bool apostrophe = false;  // the word had one: "didn't" is read as "didnt"
  auto end_word = [&] {
    if (word.empty()) return;
    if (scope > 0) out += " neg_" + word, --scope;
    if (kNegators.count(word) || (apostrophe && word.ends_with("nt"))) scope = 3;
    word.clear();
    apostrophe = false;
  };
  for (unsigned char c : s) {
    if (std::isalnum(c)) {
      word.push_back(char(std::tolower(c)));
    } else if (c == '\'' && !word.empty()) {
      apostrophe = true;
    } else {
      end_word();
      if (c != ' ') scope = 0;
    }
  }
  end_word();
  return out;
}

bool is_number(const std::string& w) {
  return !w.empty() && std::isdigit((unsigned char)w[0]);
}

}  // namespace

// Markers are made-up words no follow-up contains, so their weights are their own; they say
// what a bag of n-grams cannot: whether the user quotes the assistant's number back (the
// "7 + 8 isn't 14" case) and whether the follow-up restates what the assistant just said.
std::string escalation_input(std::string_view followup, std::string_view previous,
                             bool use_previous, bool negation) {
  std::string s(followup);
  if (negation) s += negated_words(followup);
  if (!use_previous || previous.empty()) return s;
  const auto prev = plain_words(previous);
  const std::set<std::string> prev_set(prev.begin(), prev.end());
  size_t content = 0, shared = 0;
  bool number_back = false;
  for (const auto& w : plain_words(followup)) {
    const bool in_prev = prev_set.count(w) != 0;
    if (is_number(w) && in_prev) number_back = true;
    if (w.size() >= 4 || is_number(w)) ++content, shared += in_prev;
  }
  if (number_back) s += " qqctxnumberback";
  if (content >= 2 && 2 * shared >= content) s += " qqctxechoes";
  if (content > 0 && shared == 0) s += " qqctxnewwords";
  return s;
}

std::vector<EscalationExample> load_escalation_examples(const fs::path& path) {
  std::vector<EscalationExample> out;
  read_jsonl(path, [&](const json& o, size_t line) {
    const std::string where = fmt::format("{}:{}", path.string(), line);
    for (auto& [k, v] : o.items())
      if (k != "text" && k != "label" && k != "previous" && k != "family")
        fail("{}: unknown field '{}' (expected text, label, previous, family)", where, k);
    EscalationExample e;
    e.text = get_string(o, "text", where);
    if (e.text.empty()) fail("{}: field 'text' is empty", where);
    const std::string label = get_string(o, "label", where);
    if (label != "escalate" && label != "continue")
      fail("{}: field 'label' must be \"escalate\" or \"continue\", got \"{}\"", where, label);
    e.escalate = label == "escalate";
    if (o.contains("previous")) e.previous = get_string(o, "previous", where);
    if (o.contains("family")) e.family = get_string(o, "family", where);
    out.push_back(std::move(e));
  });
  return out;
}

RouterTrainOptions EscalationOptions::default_train_options() {
  RouterTrainOptions o;
  o.features.char_ngram_min = 0;
  o.features.char_ngram_max = 0;
  o.l2 = 1e-4;
  return o;
}

void EscalationOptions::validate() const {
  train.validate();
  if (!(threshold > 0 && threshold < 1))
    fail("escalation: --threshold must be in (0, 1), got {}", threshold);
}

void EscalationDetector::set_threshold(double t) {
  if (!(t > 0 && t < 1)) fail("escalation: threshold must be in (0, 1), got {}", t);
  threshold_ = t;
}

EscalationDetector EscalationDetector::train(const std::vector<EscalationExample>& examples,
                                             const EscalationOptions& opts) {
  opts.validate();
  std::vector<RouterExample> ex;
  ex.reserve(examples.size());
  for (auto& e : examples)
    ex.push_back({escalation_input(e.text, e.previous, opts.use_previous, opts.negation),
                  e.escalate ? 1 : 0});
  EscalationDetector d;
  d.router_ = Router::train(kChoices, ex, opts.train);
  d.threshold_ = opts.threshold;
  d.use_previous_ = opts.use_previous;
  d.negation_ = opts.negation;
  return d;
}

EscalationVerdict EscalationDetector::detect(std::string_view followup,
                                             std::string_view previous) const {
  RouteDecision r = router_.route(escalation_input(followup, previous, use_previous_, negation_));
  EscalationVerdict v;
  v.probability = r.probs[size_t(escalate_index_)];
  v.escalate = v.probability >= threshold_;
  return v;
}

void EscalationDetector::save(const fs::path& path) const {
  // The router writes its own format; the escalation object is added to that JSON so the file
  // stays a valid router file.
  const fs::path tmp = path.string() + ".router.tmp";
  router_.save(tmp);
  json j = json::parse(read_file(tmp));
  fs::remove(tmp);
  j["escalation"] = {{"positive", kChoices[size_t(escalate_index_)]},
                     {"threshold", threshold_},
                     {"use_previous", use_previous_},
                     {"negation", negation_}};
  write_file_atomic(path, j.dump() + "\n");
}

EscalationDetector EscalationDetector::load(const fs::path& path) {
  EscalationDetector d;
  d.router_ = Router::load(path);
  const std::string where = path.string();
  const json j = json::parse(read_file(path));
  if (!j.contains("escalation") || !j["escalation"].is_object())
    fail("{}: a router file without an 'escalation' object (not an escalation detector)", where);
  const json& e = j["escalation"];
  for (auto& [k, v] : e.items())
    if (k != "positive" && k != "threshold" && k != "use_previous" && k != "negation")
      fail("{}: escalation: unknown field '{}'", where, k);
  if (!e.contains("threshold") || !e["threshold"].is_number())
    fail("{}: escalation: field 'threshold' must be a number", where);
  const double t = e["threshold"].get<double>();
  if (!(t > 0 && t < 1))
    fail("{}: escalation: field 'threshold' must be in (0, 1), got {}", where, t);
  d.threshold_ = t;
  for (const char* k : {"use_previous", "negation"})
    if (e.contains(k) && !e[k].is_boolean())
      fail("{}: escalation: field '{}' must be true or false", where, k);
  d.use_previous_ = e.value("use_previous", false);
  d.negation_ = e.value("negation", false);
  const std::string pos = e.value("positive", std::string("escalate"));
  const auto& ch = d.router_.choices();
  auto it = std::find(ch.begin(), ch.end(), pos);
  if (ch.size() != 2 || it == ch.end())
    fail("{}: escalation: field 'positive' ('{}') must be one of exactly two choices", where, pos);
  d.escalate_index_ = int(it - ch.begin());
  return d;
}

EscalationReport evaluate_escalation(const EscalationDetector& d,
                                     const std::vector<EscalationExample>& examples) {
  EscalationReport r;
  r.n = examples.size();
  std::vector<double> us;
  us.reserve(examples.size());
  for (auto& e : examples) {
    auto t0 = std::chrono::steady_clock::now();
    const EscalationVerdict v = d.detect(e.text, e.previous);
    us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    if (v.escalate)
      ++(e.escalate ? r.tp : r.fp);
    else
      ++(e.escalate ? r.fn : r.tn);
  }
  auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  r.accuracy = ratio(double(r.tp + r.tn), double(r.n));
  r.precision = ratio(double(r.tp), double(r.tp + r.fp));
  r.recall = ratio(double(r.tp), double(r.tp + r.fn));
  r.f1 = ratio(2 * r.precision * r.recall, r.precision + r.recall);
  r.latency_p50_us = percentile(us, 0.50);
  r.latency_p99_us = percentile(us, 0.99);
  return r;
}

json EscalationReport::to_json() const {
  return {{"n", n},
          {"tp", tp},
          {"fp", fp},
          {"tn", tn},
          {"fn", fn},
          {"accuracy", accuracy},
          {"precision", precision},
          {"recall", recall},
          {"f1", f1},
          {"latency_p50_us", latency_p50_us},
          {"latency_p99_us", latency_p99_us}};
}

std::string EscalationReport::summary() const {
  return fmt::format(
      "{} follow-ups: accuracy {:.1f}%, escalate precision {:.1f}% recall {:.1f}% F1 {:.3f} "
      "(tp {} fp {} tn {} fn {}); latency p50 {:.1f} us, p99 {:.1f} us",
      n, 100 * accuracy, 100 * precision, 100 * recall, f1, tp, fp, tn, fn, latency_p50_us,
      latency_p99_us);
}

void EscalationJob::validate() const {
  if (train_file.empty()) fail("escalation train: --train is required");
  if (out.empty()) fail("escalation train: -o/--out is required");
  opts.validate();
}

EscalationJobResult train_escalation_job(const EscalationJob& job) {
  job.validate();
  const auto train = load_escalation_examples(job.train_file);
  const auto n_pos =
      size_t(std::count_if(train.begin(), train.end(), [](auto& e) { return e.escalate; }));
  if (n_pos == 0 || n_pos == train.size())
    fail("escalation train: {} needs both escalate and continue rows", job.train_file.string());
  EscalationJobResult r{EscalationDetector::train(train, job.opts), train.size(), {}};
  if (!job.dev_file.empty())
    r.dev = evaluate_escalation(r.detector, load_escalation_examples(job.dev_file));
  r.detector.save(job.out);
  const auto& t = job.opts.train;
  json report = {{"train", job.train_file.string()},
                 {"n_train", r.n_train},
                 {"threshold", job.opts.threshold},
                 {"use_previous", job.opts.use_previous},
                 {"negation", job.opts.negation},
                 {"features", t.features.to_json()},
                 {"epochs", t.epochs},
                 {"lr", t.lr},
                 {"l2", t.l2},
                 {"seed", t.seed}};
  if (r.dev.n) report["dev"] = r.dev.to_json(), report["dev_file"] = job.dev_file.string();
  write_file_atomic(job.out.string() + ".report.json", report.dump(2) + "\n");
  return r;
}

EscalationReport eval_escalation_job(const fs::path& detector, const fs::path& data,
                                     const std::string& family_prefix, double threshold) {
  EscalationDetector d = EscalationDetector::load(detector);
  if (threshold > 0) d.set_threshold(threshold);
  auto rows = load_escalation_examples(data);
  std::erase_if(rows, [&](auto& e) { return !e.family.starts_with(family_prefix); });
  if (rows.empty())
    fail("escalation eval: no rows in {} with a family starting with '{}'", data.string(),
         family_prefix);
  return evaluate_escalation(d, rows);
}

}  // namespace cogumi
