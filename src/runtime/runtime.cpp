#include "runtime/runtime.h"

#include <algorithm>
#include <numeric>
#include <chrono>
#include <cstdio>
#include <fmt/core.h>
#include <map>
#include <regex>
#include <thread>

#include "core/error.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "eval/extract.h"
#include "eval/prompts.h"
#include "route/escalation.h"
#include "runtime/fewshot.h"
#include "runtime/memory.h"
#include "runtime/verify.h"

namespace cogumi {

namespace {

// "A. text" / "B) text" lines of a pasted multiple-choice question.
void split_options(const std::string& text, EvalItem& it) {
  static const std::regex opt(R"(^\s*\(?([A-J])[\.\):]\s+(.*)$)");
  std::string question;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    std::smatch m;
    if (std::regex_match(line, m, opt) && m[1].str()[0] == char('A' + it.choices.size()))
      it.choices.push_back(m[2].str());
    else if (it.choices.empty())
      question += (question.empty() ? "" : "\n") + line;
    start = end + 1;
  }
  it.question = question;
}

double mean_logprob(const GenResult& r) {
  if (r.logprobs.empty()) return 0;
  double s = 0;
  for (auto& t : r.logprobs) s += t.logprob;
  return s / double(r.logprobs.size());
}

// The critique's 0-10 score of one sample, from the signals the eval records for training.
int critique_score(const Critique& c, const EvalItem& item, const GenResult& g, const std::string& key) {
  CritiqueExample e;
  e.question = item.question;
  e.answer = g.text;
  e.extracted = !key.empty();
  if (!g.logprobs.empty()) {
    e.logprob_mean = mean_logprob(g);
    double lo = 0;
    for (auto& t : g.logprobs) lo = std::min<double>(lo, t.logprob);
    e.logprob_min = lo;
  }
  return c.score(e);
}

}  // namespace

EvalItem item_from_request(const std::string& text, const std::string& ask_as,
                           const nlohmann::json& tools) {
  EvalItem it;
  it.id = "request";
  it.benchmark = ask_as;
  it.category = ask_as;
  it.question = text;
  if (ask_as == "gsm8k") {
    it.kind = TaskKind::kNumeric;
  } else if (ask_as == "mmlu") {
    it.kind = TaskKind::kMultipleChoice;
    split_options(text, it);
  } else if (ask_as == "humaneval" || ask_as == "mbpp") {
    it.kind = TaskKind::kCode;
    it.code_prompt = text;
    // The function to complete: the last one the request defines (its doctests verify it).
    static const std::regex def(R"((?:^|\n)\s*def\s+([A-Za-z_][A-Za-z0-9_]*)\s*\()");
    for (auto m = std::sregex_iterator(text.begin(), text.end(), def); m != std::sregex_iterator(); ++m)
      it.entry_point = (*m)[1].str();
  } else if (ask_as == "bfcl") {
    it.kind = TaskKind::kToolCall;
    it.functions = tools;
  } else {
    it.kind = TaskKind::kText;
  }
  return it;
}

std::string vote_key(const EvalItem& item, const std::string& output) {
  switch (item.kind) {
    case TaskKind::kNumeric: {
      Extraction e = extract_numeric(output);
      return e.strict ? *e.strict : e.flexible.value_or("");
    }
    case TaskKind::kMultipleChoice: {
      Extraction e = extract_choice(output, std::max<int>(4, int(item.choices.size())));
      return e.strict ? *e.strict : e.flexible.value_or("");
    }
    case TaskKind::kToolCall: {
      auto j = extract_json(output);
      return j ? j->dump() : "";  // nlohmann sorts object keys: equal calls dump equally
    }
    case TaskKind::kCode: {
      std::string code = extract_code(output), key;
      for (char c : code)
        if (!std::isspace(static_cast<unsigned char>(c))) key += c;
      return key;
    }
    case TaskKind::kText:
      break;
  }
  return normalize_text(output);
}

size_t majority_vote(const std::vector<std::string>& keys, const std::vector<double>& lps,
                     int* votes) {
  if (keys.empty() || keys.size() != lps.size())
    fail("majority_vote: {} keys and {} log-probabilities", keys.size(), lps.size());
  // key -> (votes, best mean logprob, index of that sample)
  std::map<std::string, std::tuple<int, double, size_t>> tally;
  for (size_t s = 0; s < keys.size(); ++s) {
    auto [it, fresh] = tally.try_emplace(keys[s], 0, lps[s], s);
    auto& [n, best, idx] = it->second;
    ++n;
    if (!fresh && lps[s] > best) best = lps[s], idx = s;
  }
  const std::tuple<int, double, size_t>* win = nullptr;
  for (auto& [key, t] : tally) {
    if (key.empty() && tally.size() > 1) continue;
    if (!win || std::get<0>(t) > std::get<0>(*win) ||
        (std::get<0>(t) == std::get<0>(*win) && std::get<1>(t) > std::get<1>(*win)))
      win = &t;
  }
  if (votes) *votes = std::get<0>(*win);
  return std::get<2>(*win);
}

nlohmann::json AskResponse::to_json(const std::vector<std::string>& router_choices) const {
  nlohmann::json probs = nlohmann::json::object();
  for (size_t i = 0; i < route.probs.size() && i < router_choices.size(); ++i)
    probs[router_choices[i]] = route.probs[i];
  return {{"text", text},
          {"choice", choice},
          {"mode", mode},
          {"overridden", overridden},
          {"escalated", escalated},
          {"escalated_by", escalated_by},
          {"escalation_probability", escalation_probability},
          {"turn_id", turn_id},
          {"confidence", confidence},
          {"raw_confidence", raw_confidence},
          {"signals", signals.to_json()},
          {"probabilities", probs},
          {"answer", answer_key},
          {"votes", votes},
          {"verification", {{"verifier", verifier}, {"verified", verified}, {"passed", verify_passed}}},
          {"demonstrations", demonstrations},
          {"samples", samples},
          {"prompt_tokens", prompt_tokens},
          {"cached_tokens", cached_tokens},
          {"completion_tokens", gen_tokens},
          {"seconds", seconds}};
}

int64_t Runtime::kv_cells_used() const { return gen_->kv_cells_used(); }
int64_t Runtime::kv_cells_total() const { return gen_->kv_cells_total(); }

Runtime::Runtime(SystemConfig cfg) : cfg_(std::move(cfg)) {
  cfg_.validate();
  sandbox_slots_ = std::make_shared<SandboxSlots>(
      cfg_.sandboxes > 0 ? cfg_.sandboxes : int(std::max(1u, std::thread::hardware_concurrency())));
  engine_init();
  model_ = Model::load(cfg_.base);
  // "base" always names the base alone (a server's `model: base`), even when the system's
  // choices are all modifiers; the router never picks it unless it was trained to.
  if (!cfg_.has_choice("base"))
    cfg_.choices.push_back({"base", {}, model_->has_chat_template() ? "chat" : "raw"});
  for (auto& c : cfg_.choices)
    if (!c.adapter.empty() && cfg_.adapter_name(c.name) == c.name) model_->load_adapter(c.name, c.adapter);
  if (!cfg_.router.empty()) {
    router_ = Router::load(cfg_.router);
    for (auto& name : router_->choices())
      if (!cfg_.has_choice(name))
        fail("{}: the router '{}' can choose '{}', which the system has no choice for",
             cfg_.file.string(), cfg_.router.string(), name);
  }
  if (!cfg_.detector.empty())
    detector_ = std::make_unique<EscalationDetector>(EscalationDetector::load(cfg_.detector));
  if (!cfg_.fewshot.bank.empty())
    fewshot_ = std::make_unique<FewshotBank>(FewshotBank::open(cfg_.fewshot, model_));
  if (!cfg_.calibration.empty()) calibrator_ = Calibrator::load(cfg_.calibration);
  if (!cfg_.critique.empty()) critique_ = Critique::load(cfg_.critique);
  GeneratorOptions go;
  go.n_parallel = cfg_.parallel;
  go.n_threads = cfg_.threads;
  go.shared_prefix = cfg_.prefix_cache;
  go.keep_cache = cfg_.keep_cache;
  go.spare_sequence = cfg_.spare_sequence;
  gen_ = std::make_unique<Generator>(model_, go);
  if (JinjaChat::available(*model_)) {
    try {
      model_->apply_chat_template({{"user", "x", "", "", ""}});
      builtin_template_ = true;
    } catch (const Error&) {  // a template llama.cpp's builtin list does not recognise: Jinja renders it
    }
    try {
      jinja_ = std::make_unique<JinjaChat>(*model_);
    } catch (const Error& e) {  // the builtin templates still serve it; tools then reach only bfcl choices
      fmt::print(stderr, "cogumi: {} (tools reach only the system's bfcl choices)\n", e.what());
    }
  }
}

Runtime::~Runtime() = default;

SessionStore& Runtime::memory() {
  if (cfg_.memory.empty())
    fail("system '{}' has no session memory (add 'memory: FILE' to the system file)", cfg_.name);
  std::lock_guard lock(memory_open_);
  if (!memory_) {  // opened on first use: a system asked without sessions never creates the file
    std::error_code ec;
    std::filesystem::create_directories(cfg_.memory.parent_path(), ec);
    memory_ = std::make_unique<SessionStore>(SessionStore::open(cfg_.memory));
  }
  return *memory_;
}

// A follow-up that complains about the session's last answer escalates this request.
void Runtime::escalate_from_session(const AskRequest& q, AskResponse& r) {
  if (!detector_ || q.session.empty()) return;
  auto last = memory().last_turns(q.session, 1);
  if (last.empty() || last.back().role != "assistant") return;
  EscalationVerdict v = detector_->detect(q.text, last.back().content);
  r.escalation_probability = v.probability;
  if (!v.escalate || r.escalated) return;
  r.escalated = true;
  r.escalated_by = "detector";
  // A complaint is about the last answer: it stays with that answer's choice (the complaint's
  // own words would route elsewhere), unless the caller overrode it.
  if (!r.overridden && cfg_.has_choice(last.back().choice)) r.choice = last.back().choice;
  if (cfg_.escalation == "accurate")
    r.mode = "accurate";
  else if (!r.overridden)
    r.choice = cfg_.default_choice;
}

void Runtime::record(const AskRequest& q, AskResponse& r) {
  if (q.session.empty()) return;
  const std::vector<std::string> rc = router_ ? router_->choices() : std::vector<std::string>{};
  Turn user;
  user.role = "user";
  user.content = q.text;
  memory().append_turn(q.session, user);
  Turn a;
  a.role = "assistant";
  a.content = r.text;
  a.choice = r.choice;
  a.decision = r.to_json(rc);
  a.decision.erase("text");
  a.confidence = r.confidence;
  a.mode = r.mode;
  a.escalated = r.escalated;
  r.turn_id = memory().append_turn(q.session, a);
}

bool Runtime::judge_confidence(const AskRequest& q, const GenResult& g, AskResponse& r) const {
  AnswerSignals& s = r.signals;
  s.choice = r.choice;
  s.mode = r.mode;
  s.router_probs.assign(r.route.probs.begin(), r.route.probs.end());
  if (!g.logprobs.empty()) {
    double sum = 0, lo = 0;
    for (const auto& t : g.logprobs) sum += t.logprob, lo = std::min<double>(lo, t.logprob);
    s.logprob_mean = sum / double(g.logprobs.size());
    s.logprob_min = lo;
  }
  if (r.mode == "accurate") s.agreement = double(r.votes) / double(std::max(1, r.samples));
  if (r.verifier == "tests" || r.verifier == "schema") s.verified = r.verified;  // outside checks
  r.raw_confidence = r.confidence;
  if (!calibrator_) return false;
  r.confidence = calibrator_->confidence(s);
  const bool cancelled = q.cancel && q.cancel->load();  // nobody waits for a second answer
  return may_reask(q, r) && !cancelled && r.confidence < *calibrator_->threshold_for(r.choice);
}

bool Runtime::may_reask(const AskRequest& q, const AskResponse& r) const {
  if (!calibrator_) return false;
  // A threshold of 0 re-asks nothing (no confidence is under it): such answers stream at once.
  const std::optional<double> t = calibrator_->threshold_for(r.choice);
  return t && *t > 0 && r.mode == "fast" && !r.overridden && !r.escalated &&
         q.mode.empty();  // a caller who asked for fast mode gets fast mode
}

AskRequest Runtime::escalated_request(const AskRequest& q) {
  AskRequest e = q;
  // The session's turns stay in the prompt: the re-ask answers the same conversation.
  if (e.history.empty()) e.history = session_history(q);
  e.session.clear();  // recorded with the first answer's decision
  if (cfg_.escalation == "accurate")
    e.mode = "accurate";
  else
    e.choice = cfg_.default_choice;
  return e;
}

void Runtime::merge_escalated(const AskResponse& first, AskResponse& r) {
  r.overridden = false;
  r.escalated = true;
  r.escalated_by = "confidence";
  r.route = first.route;
  r.gen_tokens += first.gen_tokens;
}

void Runtime::escalate_unsure(const std::vector<AskRequest>& requests, const std::vector<size_t>& unsure,
                              std::vector<AskResponse>& out, const AskStream& stream) {
  if (unsure.empty()) return;
  std::vector<AskRequest> again;
  for (size_t i : unsure) again.push_back(escalated_request(requests[i]));
  AskStream inner;  // the first answers were held back: the second ones stream
  inner.errors_in_response = stream.errors_in_response;
  if (stream.on_piece)
    inner.on_piece = [&](size_t k, const std::string& piece) { return stream.on_piece(unsure[k], piece); };
  // The second decision (its mode and choice on the escalation path) is announced escalated, as serve() does.
  if (stream.on_decision)
    inner.on_decision = [&](size_t k, const AskResponse& d) {
      AskResponse e = d;
      merge_escalated(out[unsure[k]], e);
      stream.on_decision(unsure[k], e);
    };
  std::vector<AskResponse> second = ask(again, inner);
  for (size_t k = 0; k < unsure.size(); ++k) {
    const AskResponse& first = out[unsure[k]];
    AskResponse r = std::move(second[k]);
    merge_escalated(first, r);
    r.seconds += first.seconds;
    out[unsure[k]] = std::move(r);
    record(requests[unsure[k]], out[unsure[k]]);
  }
}

// Completion-form prompts get the examples' prompts and answers in front (before a session's
// earlier turns too); chat prompts get them as the first user/assistant turns. Retrieval compares
// the examples' prompts with the request's own prompt, without its history (the bank stores each
// example in its domain's form).
void Runtime::demonstrate(const SystemChoice& c, const AskRequest& q, GenRequest& g,
                          AskResponse& r) const {
  if (!fewshot_ || !fewshot_->options().covers(c.name)) return;
  const bool chat = !g.prompt_tokens.empty();
  std::string own = q.text;
  if (q.item)
    own = build_prompt(*q.item, {}, false).text;
  else if (!chat && !q.raw && c.ask_as != "raw" && c.ask_as != "chat")
    own = build_prompt(item_from_request(q.text, c.ask_as, q.tools), {}, false).text;
  const std::vector<Retrieved> demos = fewshot_->demonstrations(c.name, own);
  if (demos.empty()) return;
  for (const auto& d : demos) r.demonstrations.push_back(d.entry->id);
  if (!chat) {
    g.prompt = demonstration_text(demos) + g.prompt;
    return;
  }
  auto ct = model_->tokenize_chat(demonstration_messages(demos, q.history, q.text));
  g.prompt_tokens = std::move(ct.tokens);
  r.prompt = std::move(ct.text);
}

std::string Runtime::adapter_of(const std::string& choice) const {
  return cfg_.adapter_name(choice);
}

std::string route_choice(const SystemConfig& cfg, const Router* router, std::string_view text,
                         RouteDecision* decision) {
  if (!router) return cfg.default_choice;
  RouteDecision d = router->route(text);
  std::string choice = router->choices()[size_t(d.choice)];
  if (decision) *decision = std::move(d);
  return choice;
}

std::string Runtime::route(const std::string& text, RouteDecision* decision) const {
  return route_choice(cfg_, router_ ? &*router_ : nullptr, text, decision);
}

ParsedChatAnswer Runtime::parse_answer(const AskResponse& decision, const std::string& text, bool partial) const {
  if (!jinja_ || !decision.tools_prompt) return {text, {}};
  return jinja_->parse(*decision.tools_prompt, text, partial);
}

bool Runtime::formats_tools(const std::string& choice) const {
  return jinja_ && cfg_.has_choice(choice) && cfg_.choice(choice).ask_as == "chat";
}

Model::ChatTokens Runtime::chat_prompt(const AskRequest& q, const GenRequest& g, Plan& p) const {
  std::vector<ChatMessage> msgs = q.history;
  msgs.push_back(q.message ? *q.message : ChatMessage{"user", q.text, "", "", ""});
  bool tool_turns = false;
  for (const auto& m : msgs) tool_turns = tool_turns || m.role == "tool" || !m.tool_calls.empty();
  const bool tools = !q.tools.empty() && q.tool_choice != "none";
  std::string tool_choice = q.tool_choice == "auto" || q.tool_choice == "none" ? q.tool_choice : "required";
  nlohmann::json functions = nlohmann::json::array();  // a named function: that one alone, required
  for (const auto& f : q.tools)
    if (tool_choice != "required" || q.tool_choice == "required" || f.value("name", "") == q.tool_choice)
      functions.push_back(f);
  auto render = [&](const std::vector<ChatMessage>& m) {
    if (jinja_ && (tools || tool_turns || !builtin_template_)) {
      auto jp = std::make_shared<JinjaChat::Prompt>(jinja_->render(m, tools ? functions.dump() : "", tool_choice));
      Model::ChatTokens ct = jp->chat;
      p.jinja = std::move(jp);
      return ct;
    }
    std::vector<ChatMessage> plain = m;  // the builtin templates know roles and text only
    for (auto& x : plain)
      if (x.content.empty() && !x.tool_calls.empty()) x.content = x.tool_calls;
    return model_->tokenize_chat(plain);
  };
  auto ct = render(msgs);
  // The oldest turns leave the prompt, an exchange at a time, until it leaves room for the answer in a slot's
  // context (up to half of it): a long session is not refused for its history.
  const size_t ctx = size_t(gen_->options().n_ctx_per_seq);
  const size_t answer = std::min(size_t(g.max_tokens), ctx / 2);
  // (An exchange ends where the next user message starts: a call and its tool results leave with their question.)
  while (ct.tokens.size() + answer > ctx && msgs.size() > 1) {
    msgs.erase(msgs.begin(), msgs.begin() + long(std::min<size_t>(2, msgs.size() - 1)));
    while (msgs.size() > 1 && msgs.front().role != "user") msgs.erase(msgs.begin());
    ct = render(msgs);
  }
  return ct;
}

std::vector<ChatMessage> Runtime::session_history(const AskRequest& q) {
  std::vector<ChatMessage> out;
  if (q.session.empty() || cfg_.history == 0) return out;
  for (const Turn& t : memory().last_turns(q.session, size_t(cfg_.history)))
    if (t.role == "user" || t.role == "assistant") out.push_back({t.role, t.content});
  return out;
}

namespace {

// Earlier turns before a completion-form prompt: each exchange asked as this request is, with
// the answer it got (the form a completion model continues best).
std::string history_text(const std::vector<ChatMessage>& history, const std::string& ask_as,
                         const nlohmann::json& tools) {
  std::string out;
  for (size_t i = 0; i + 1 < history.size(); ++i) {
    if (history[i].role != "user" || history[i + 1].role != "assistant") continue;
    out += build_prompt(item_from_request(history[i].content, ask_as, tools), {}, false).text +
           history[i + 1].content + "\n\n";
    ++i;
  }
  return out;
}

}  // namespace

// Route, override, mode and escalation: everything decided before generation.
AskResponse Runtime::decide(const AskRequest& q, size_t i) {
  AskResponse r;
  r.mode = q.mode.empty() ? cfg_.mode : q.mode;
  if (r.mode != "fast" && r.mode != "accurate")
    fail("request {}: mode must be fast or accurate, got '{}'", i, r.mode);
  if (q.max_tokens < 0 || q.max_tokens > 32768)
    fail("request {}: max_tokens must be 0..32768, got {}", i, q.max_tokens);
  if (!q.choice.empty()) {
    (void)cfg_.choice(q.choice);  // throws for an unknown name, listing the known ones
    r.choice = q.choice;
    r.overridden = true;
    r.confidence = 1.0;
  } else {
    r.choice = route(q.text, &r.route);
    r.confidence = router_ ? r.route.probability : 1.0;
    if (router_ && r.confidence < cfg_.threshold) {
      r.escalated = true;
      r.escalated_by = "router";
      if (cfg_.escalation == "accurate")
        r.mode = "accurate";
      else
        r.choice = cfg_.default_choice;
    }
  }
  if (!q.session.empty() && !memory().session(q.session))
    fail("request {}: no session '{}' in '{}'", i, q.session, cfg_.memory.string());
  escalate_from_session(q, r);
  return r;
}

// The prompt of a decided request and its generation requests (one, or the accurate mode's
// samples), appended to `gens`.
void Runtime::plan(const AskRequest& q, AskResponse& r, Plan& p, std::vector<GenRequest>& gens) {
  const SystemChoice& c = cfg_.choice(r.choice);
  if (q.item) {
    p.item = *q.item;
  } else {
    p.item = item_from_request(q.text, c.ask_as, q.tools);
    p.item.category = c.name;
  }
  GenRequest g;
  g.max_tokens = q.max_tokens ? q.max_tokens : cfg_.max_tokens;
  g.adapter = adapter_of(r.choice);
  g.n_logprobs = std::max(0, q.n_logprobs);
  g.grammar = q.grammar;
  g.ignore_eos = q.ignore_eos;
  if (q.sampling && r.mode == "fast") g.sampling = *q.sampling;
  // A model without a chat template takes the request as plain text.
  if (!q.item && c.ask_as == "chat" && !q.raw && model_->has_chat_template()) {
    auto ct = chat_prompt(q, g, p);
    // (tool_choice required or named keeps the serve's grammar of {"name", "arguments"} calls, which the
    // answer's parse falls back to)
    if (p.jinja) g.stop.insert(g.stop.end(), p.jinja->stops.begin(), p.jinja->stops.end());
    g.prompt_tokens = std::move(ct.tokens);
    r.prompt = std::move(ct.text);
  } else if (!q.item && (c.ask_as == "raw" || c.ask_as == "chat" || q.raw)) {
    g.prompt = q.text;
  } else {
    PromptParts pp = build_prompt(p.item, {}, false);
    g.prompt = (q.item ? "" : history_text(q.history, c.ask_as, q.tools)) + pp.text;
    g.stop = pp.stops;
  }
  g.stop.insert(g.stop.end(), q.stop.begin(), q.stop.end());
  r.tools_prompt = p.jinja;
  if (!p.jinja) demonstrate(c, q, g, r);  // (a conversation with tools keeps the model's own format)
  if (g.prompt_tokens.empty()) r.prompt = g.prompt;
  p.first = gens.size();
  p.n = r.mode == "accurate" ? size_t(cfg_.samples) : 1;
  for (size_t s = 0; s < p.n; ++s) {
    GenRequest gs = g;
    if (r.mode == "accurate") {
      gs.sampling.temperature = cfg_.temperature;
      gs.sampling.seed = uint32_t(1000 + s);
    }
    gens.push_back(std::move(gs));
  }
}

// Every sample of the batch checked at once (code: one sandbox batch); all unchecked when the
// system verifies nothing.
std::vector<Verdict> Runtime::verify(const std::vector<Plan>& plans, const std::vector<GenResult>& res) const {
  std::vector<Verdict> verdicts(res.size());
  if (!cfg_.verify) return verdicts;
  std::vector<std::pair<const EvalItem*, std::string>> answers(res.size());
  for (const Plan& p : plans)
    for (size_t s = p.first; s < p.first + p.n; ++s) answers[s] = {&p.item, res[s].text};
  SandboxOptions so;
  so.slots = sandbox_slots_;  // one cap for every request's checks, whichever thread runs them
  return verify_outputs(answers, so, sandbox_slots_->capacity());
}

// The answer of request i from its samples: the verified vote, its confidence, its cost.
// Returns the winning generation request, or npos when the engine refused the request.
size_t Runtime::conclude(size_t i, const Plan& p, const std::vector<GenResult>& res,
                         const std::vector<Verdict>& verdicts, bool errors_in_response, AskResponse& r) const {
  r.samples = int(p.n);
  std::vector<std::string> keys;
  std::vector<double> lps;
  for (size_t s = p.first; s < p.first + p.n; ++s) {
    const GenResult& g = res[s];
    if (g.finish == FinishReason::kError) {
      if (!errors_in_response) fail("request {}: {}", i, g.error);
      r.error = g.error;
    }
    r.prompt_tokens = g.n_prompt_tokens;
    if (s == p.first) r.cached_tokens = g.n_cached_tokens;
    r.gen_tokens += g.n_gen_tokens;
    keys.push_back(vote_key(p.item, g.text));
    lps.push_back(mean_logprob(g));
  }
  if (!r.error.empty()) return std::string::npos;
  r.verifier = cfg_.verify ? verifier_for(p.item) : "";
  if (r.verifier == "agreement" && p.n == 1) r.verifier.clear();  // one sample agrees with nothing
  std::vector<Verdict> ver(verdicts.begin() + long(p.first), verdicts.begin() + long(p.first + p.n));
  std::vector<size_t> keep(p.n);
  std::iota(keep.begin(), keep.end(), size_t(0));
  if (critique_ && r.mode == "accurate") {  // low-scoring samples leave the vote when a high one exists
    std::vector<int> scores;
    for (size_t s = 0; s < p.n; ++s) scores.push_back(critique_score(*critique_, p.item, res[p.first + s], keys[s]));
    keep = critique_keep(scores, critique_->min_score());
  }
  std::vector<std::string> kk;
  std::vector<double> kl;
  std::vector<Verdict> kv;
  for (size_t s : keep) kk.push_back(keys[s]), kl.push_back(lps[s]), kv.push_back(ver[s]);
  VerifiedVote vote = verified_vote(kk, kl, kv, r.verifier);
  vote.index = keep[vote.index];
  r.votes = vote.votes;
  r.verified = vote.verified;
  r.verify_passed = vote.passed;
  const GenResult& win = res[p.first + vote.index];
  r.text = win.text;
  if (p.jinja && jinja_) {  // the model's own tool-call format
    ParsedChatAnswer parsed = jinja_->parse(*p.jinja, win.text);
    r.tools_parsed = true;
    // the parser is lenient (it closes what a cut answer left open): calls count only with whole JSON arguments
    bool whole = true;
    for (const auto& c : parsed.tool_calls) {
      const auto args = nlohmann::json::parse(c.arguments.empty() ? "{}" : c.arguments, nullptr, false);
      whole = whole && args.is_object() && win.finish != FinishReason::kLength;
    }
    if (!parsed.tool_calls.empty() && whole) {
      r.tool_calls = std::move(parsed.tool_calls);
      r.text = std::move(parsed.content);
    }
  }
  r.finish_reason = finish_reason_name(win.finish);
  r.answer_key = keys[vote.index];
  if (r.mode == "accurate") r.confidence = double(r.votes) / double(p.n);
  return p.first + vote.index;
}

std::vector<AskResponse> Runtime::ask(const std::vector<AskRequest>& requests, const AskStream& stream) {
  std::vector<AskResponse> out(requests.size());
  std::vector<Plan> plans(requests.size());
  std::vector<GenRequest> gens;
  for (size_t i = 0; i < requests.size(); ++i) {
    AskRequest q = requests[i];
    if (q.history.empty()) q.history = session_history(q);  // the session's last turns
    out[i] = decide(q, i);
    plan(q, out[i], plans[i], gens);
  }
  if (stream.on_decision)
    for (size_t i = 0; i < out.size(); ++i) stream.on_decision(i, out[i]);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<size_t> ask_of(gens.size());  // generation request -> its ask request
  for (size_t i = 0; i < plans.size(); ++i)
    for (size_t s = plans[i].first; s < plans[i].first + plans[i].n; ++s) ask_of[s] = i;
  // Fast answers stream as they come; accurate ones are known only after the vote, and fast ones
  // that may be re-asked only once their confidence is judged (below).
  std::vector<bool> held(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) held[i] = plans[i].n > 1 || may_reask(requests[i], out[i]);
  auto on_piece = [&](size_t gi, const std::string& piece) {
    const size_t i = ask_of[gi];
    const AskRequest& q = requests[i];
    if (q.cancel && q.cancel->load()) return false;
    if (stream.on_piece && !held[i]) return stream.on_piece(i, piece);
    return true;
  };
  std::vector<GenResult> res = gen_->generate(gens, on_piece);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::vector<Verdict> verdicts = verify(plans, res);
  std::vector<size_t> unsure;  // fast answers under the calibrated threshold
  for (size_t i = 0; i < requests.size(); ++i) {
    AskResponse& r = out[i];
    r.seconds = secs;
    const size_t win = conclude(i, plans[i], res, verdicts, stream.errors_in_response, r);
    if (win == std::string::npos) continue;
    if (requests[i].n_logprobs >= 0) r.logprobs = res[win].logprobs;
    if (judge_confidence(requests[i], res[win], r)) {
      unsure.push_back(i);
      continue;  // streamed and recorded once it has its escalated answer
    }
    if (stream.on_piece && held[i])  // the chosen answer streams once the vote (or the judge) decided
      for (const std::string& piece : answer_pieces(r.text, res[win].logprobs))
        if (!stream.on_piece(i, piece)) break;
    record(requests[i], r);
  }
  escalate_unsure(requests, unsure, out, stream);
  return out;
}

}  // namespace cogumi
