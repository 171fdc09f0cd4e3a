// cogumi/runtime: one request end to end. A request goes: router -> choice (the base, or the
// base with one modifier) -> mode -> answer, and the response says what was decided and why
// (the router's probability per choice, the confidence, whether the request escalated or was
// overridden). `cogumi ask`, `cogumi eval --system` and `cogumi serve` take this one path.
//
// Modes:
//  - fast: one greedy answer from the routed choice.
//  - accurate: self-consistency. N samples at the mode's temperature, all in one batch
//    through the engine; each sample's answer is extracted the way the eval extracts it for
//    that kind (the number, the option letter, the tool call as canonical JSON, the code);
//    the majority wins, ties go to the higher mean token log-probability. Confidence is the
//    winner's vote share. Self-critique by the model itself is not used: without outside
//    feedback it often makes answers worse (Huang et al. 2023).
// A router probability below the system's threshold escalates the request: to accurate mode,
// or to the default choice (escalation: base).
//
// Thread safety: one ask() at a time per Runtime (it owns one Generator).
#pragma once

#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/chat_jinja.h"
#include "engine/generate.h"
#include "eval/benchmark.h"
#include "route/calibration.h"
#include "route/critique.h"
#include "route/router.h"
#include "runtime/system.h"
#include "runtime/verify.h"

namespace cogumi {

class Model;
class Generator;
class SessionStore;
class EscalationDetector;
class FewshotBank;
struct GenRequest;

struct AskRequest {
  std::string text;                                // the user's request
  // Functions ({name, description, parameters}): in the prompt of choices asked as bfcl, and of chat choices
  // whose model has a chat template of its own (its Jinja text, in the model's tool format; engine/chat_jinja.h).
  nlohmann::json tools = nlohmann::json::array();
  std::string tool_choice = "auto";  // auto | required | none | a function's name
  std::string choice;                              // manual override ("" = the router decides)
  std::string mode;                                // "" = the system's default; fast | accurate
  int max_tokens = 0;                              // 0 = the system's
  // A conversation in the system's session memory ("" = none): the request and its answer are
  // recorded as turns with the decision, and when the system has an escalation detector, a
  // follow-up that complains about the previous answer escalates this one.
  std::string session;
  // An item asked exactly as `cogumi eval` asks it (eval --system): its own benchmark's prompt
  // through the routed choice's adapter, whatever the choice's ask_as; `text` is what routes it.
  std::optional<EvalItem> item;
  // Serving (cogumi serve). The conversation before `text`, for choices asked as chat. Fast
  // mode's sampling (accurate mode samples at the system's temperature). Extra stop strings.
  // Token log-probabilities of the answer (-1 none, 0 the chosen token's, k also the top k). A
  // GBNF grammar the answer must follow. `raw`: `text` goes to the choice as is (a completion
  // prompt), whatever its ask_as. `cancel`, once set, stops the request where it is.
  std::vector<ChatMessage> history;
  // Chat: the request's own message whole, when it is not the user's text alone (a tool's result).
  std::optional<ChatMessage> message;
  std::optional<SamplingParams> sampling;
  std::vector<std::string> stop;
  int n_logprobs = -1;
  std::string grammar;
  bool raw = false;
  bool ignore_eos = false;  // generate max_tokens whatever the model says (benchmarks, load tests)
  const std::atomic<bool>* cancel = nullptr;
};

struct AskResponse {
  std::string text;          // the answer
  std::string choice;        // the choice that answered
  std::string mode;          // the mode used
  bool overridden = false;   // the caller named the choice
  bool escalated = false;    // router confidence under the threshold, or a complaining follow-up
  std::string escalated_by;  // "router", "detector" or "confidence" (calibrated, after answering)
  double escalation_probability = 0;  // the detector's P(escalate), when it ran
  int64_t turn_id = 0;                // the answer's turn in session memory (0 = not recorded)
  RouteDecision route;     // empty probs when there is no router or the choice was overridden
  // P(answer correct) from the system's calibration (route/calibration.h); without one, the
  // router probability (fast) or the vote share (accurate), as raw_confidence always is.
  double confidence = 0;
  double raw_confidence = 0;
  AnswerSignals signals;   // what the confidence was judged from
  std::string answer_key;  // the extracted answer the vote counted
  // Verification (runtime/verify.h; off with modes.accurate.verify: false): what checked the
  // answer ("tests", "schema", "agreement", "" = nothing could), whether the answer given passed,
  // and how many samples passed.
  std::string verifier;
  bool verified = false;
  int verify_passed = 0;
  std::string prompt;  // the prompt as generated (chat prompts: after the template)
  int votes = 1, samples = 1;
  std::vector<std::string> demonstrations;  // ids of the bank examples put before the request
  int prompt_tokens = 0, gen_tokens = 0;
  int cached_tokens = 0;  // of the prompt's tokens, taken from a KV cache an earlier request left
  double seconds = 0;  // wall time of the batch this request ran in
  std::string finish_reason = "stop";  // stop | length | cancelled
  std::vector<TokenLogprob> logprobs;  // the answer's, when AskRequest::n_logprobs >= 0
  std::string error;                   // the engine's refusal (AskStream::errors_in_response)
  // Tool calls read from the answer in the model's own format (a chat choice asked with tools through the
  // model's Jinja template; `text` is then the rest of the answer). tools_parsed: the answer was read so.
  std::vector<ToolCallOut> tool_calls;
  bool tools_parsed = false;
  std::shared_ptr<const JinjaChat::Prompt> tools_prompt;  // that prompt (the decision has it: parse_answer)
  nlohmann::json to_json(const std::vector<std::string>& router_choices) const;
};

// How ask() runs a server's batch: each new piece of a fast-mode answer as it is generated
// (return false to stop that request), and an engine refusal of one request (a prompt over the
// context) in its AskResponse::error instead of failing the whole batch.
struct AskStream {
  std::function<bool(size_t request, const std::string& piece)> on_piece;
  // Once every request is routed, before anything is generated: the decision (choice, mode,
  // probabilities, escalation) of request i, so a stream can announce it first. A second time for
  // a request re-asked on the escalation path (its fast answer under the calibrated threshold).
  std::function<void(size_t request, const AskResponse& decision)> on_decision;
  bool errors_in_response = false;
};

struct PreparedAsk;  // Runtime::prepare

// A server's continuous path (Runtime::serve): requests handed over while others generate join
// the engine's running batch at its next step (Generator::serve).
struct AskJob {
  uint64_t id = 0;  // the caller's name for it in the callbacks
  AskRequest request;
  // Its decision when the caller made it already (Runtime::decide_request, to count the engine
  // sequences it takes before handing it over); serve() decides it otherwise.
  std::optional<AskResponse> decision;
  // Decided and planned by the caller already (Runtime::prepare, on its own thread): serve() only
  // starts its samples. Takes the place of `decision`.
  std::shared_ptr<const PreparedAsk> prepared;
};
struct AskFeed {
  // Before every engine step: append newcomers. `idle`: nothing runs, so it may block until
  // there is work. Returning false ends serve() once the requests given so far have finished.
  std::function<bool(std::vector<AskJob>& admit, bool idle)> poll;
  // A request's decision (choice, mode, probabilities, escalation), before it generates.
  std::function<void(uint64_t id, const AskResponse& decision)> on_decision;
  // Fast answers: each piece as it is generated. Accurate answers: the chosen sample's text, a
  // piece per token, once the vote has decided (answer_pieces). Returning false stops it.
  std::function<bool(uint64_t id, const std::string& piece)> on_piece;
  // Accurate answers: `finished` of `total` samples are done (a stream's progress events).
  std::function<void(uint64_t id, int finished, int total)> on_progress;
  // Every sample of a request has finished generating: its engine sequences are free for other
  // requests while its checks still run (a re-ask's on_decision takes them again). Optional.
  std::function<void(uint64_t id)> on_generated;
  // Once per request: the answer, or why it was refused before generating (an unknown choice,
  // mode or session) or failed (an error recording it) in `error`. The engine's refusal of a
  // request (a prompt over the context) comes in answer.error, as with AskStream::errors_in_response.
  std::function<void(uint64_t id, AskResponse answer, const std::string& error)> on_done;
  // Threads: poll, on_decision, on_progress and on_generated come from the thread that called serve(); on_done,
  // and on_piece for an answer known only when its checks end (accurate, or a fast answer that
  // may be re-asked), from serve()'s finishing threads (one per finished request, so a slow check
  // never stalls decoding nor other answers): the feed must be safe from several threads.
  // on_decision comes a second time for a request re-asked on the escalation path (its new mode
  // and choice: accurate mode takes more engine sequences).
};


class Runtime {
 public:
  explicit Runtime(SystemConfig cfg);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Answers every request in one batch through the engine. Bad requests (unknown choice or
  // mode) throw before anything runs, naming the request.
  std::vector<AskResponse> ask(const std::vector<AskRequest>& requests, const AskStream& stream = {});
  // A server's engine loop (runtime_serve.cpp): answers requests as `feed` hands them over, each
  // decided, generated, verified, voted and recorded on its own, until feed.poll returns false
  // and the running ones finish. Fast answers below a calibrated threshold are re-asked on the
  // escalation path, their samples joining the running batch, as ask() does. Throws only for
  // engine failures outside a request.
  void serve(const AskFeed& feed);
  // The decision ask() and serve() make for a request before generating (route, override, mode,
  // escalation). Throws Error for a bad request (unknown choice, mode or session).
  AskResponse decide_request(const AskRequest& q) { return decide(q, 0); }
  // Everything serve() does for a request before its samples join the engine: the session's history read,
  // the decision made (as decide_request) and the prompt rendered and tokenized (a chat template's Jinja
  // render: milliseconds). On the caller's thread, so a server's HTTP threads do it while the engine loop
  // decodes; hand the result over in AskJob::prepared. Throws Error for a bad request. Safe from any thread.
  std::shared_ptr<const PreparedAsk> prepare(const AskRequest& q);
  // Whether the engine leaves a CPU core to other threads: its model on a GPU, or fewer engine threads than
  // cores and no few-shot retrieval by the model's embeddings (where preparing requests on other threads pays:
  // bench/RESULTS.md, "prepared on the HTTP threads").
  bool cpu_to_spare() const;
  // The engine sequences a decided request takes at first: accurate mode's samples, else 1.
  size_t sequences(const AskResponse& decision) const {
    return decision.mode == "accurate" ? size_t(cfg_.samples) : 1;
  }
  // The most sandboxed checks that ran at once so far (SystemConfig::sandboxes caps it).
  int sandbox_peak() const { return sandbox_slots_->peak(); }

  // The choice the router makes for a query (the default without a router): route_choice().
  std::string route(const std::string& text, RouteDecision* decision = nullptr) const;
  // The adapter name the engine knows a choice by ("" for the base alone).
  std::string adapter_of(const std::string& choice) const;

  const SystemConfig& config() const { return cfg_; }
  const std::optional<Router>& router() const { return router_; }
  const std::optional<Calibrator>& calibrator() const { return calibrator_; }
  // The session store, opened on first use (throws when the system file names no memory).
  SessionStore& memory();
  std::shared_ptr<Model> model() const { return model_; }
  // Whether a chat with tools asked of this choice gets them in the model's own template and format (the
  // model has a chat template; AskResponse::tool_calls then holds the calls).
  bool formats_tools(const std::string& choice) const;
  // An answer (or, partial, the answer so far) of a decided request read in its prompt's tool-call format; all
  // text when the decision has no such prompt.
  ParsedChatAnswer parse_answer(const AskResponse& decision, const std::string& text, bool partial) const;
  // The engine's KV cache: cells held by the batch now running (0 between batches) and the
  // total. Safe from any thread.
  int64_t kv_cells_used() const;
  int64_t kv_cells_total() const;

 private:
  SystemConfig cfg_;
  std::shared_ptr<Model> model_;
  std::optional<Router> router_;
  std::unique_ptr<Generator> gen_;
  std::shared_ptr<SandboxSlots> sandbox_slots_;  // SystemConfig::sandboxes, shared by every check
  std::unique_ptr<SessionStore> memory_;
  std::mutex memory_open_;  // memory_ is opened on first use, from any thread
  std::unique_ptr<EscalationDetector> detector_;
  std::unique_ptr<FewshotBank> fewshot_;  // the system's few-shot bank, when it has one
  std::optional<Calibrator> calibrator_;
  std::optional<Critique> critique_;  // the system's critique classifier, when it has one
  std::unique_ptr<JinjaChat> jinja_;  // the model's own chat template, when it has one that parses
  bool builtin_template_ = false;     // llama.cpp's builtin templates know the model's (else jinja_ renders all)

  // Confidence from the answer's signals; true when a fast answer falls under the calibration's
  // threshold and should be asked again on the escalation path.
  bool judge_confidence(const AskRequest& q, const GenResult& answer, AskResponse& r) const;
  // Whether the decided request's answer may be re-asked (a calibrated threshold for its choice,
  // fast mode the system chose): its pieces then stream only once its confidence is judged.
  bool may_reask(const AskRequest& q, const AskResponse& r) const;
  // A request as the escalation path asks it again (accurate mode, or the default choice).
  AskRequest escalated_request(const AskRequest& q);
  // The re-asked answer `r` keeps the first answer's route and generation cost.
  static void merge_escalated(const AskResponse& first, AskResponse& r);
  // Asks the requests `unsure` indexes again on the escalation path, in one batch; each keeps its
  // first answer's cost and route, and is recorded in its session then. Pieces go to `stream`.
  void escalate_unsure(const std::vector<AskRequest>& requests, const std::vector<size_t>& unsure,
                       std::vector<AskResponse>& out, const AskStream& stream);

  // One ask, phase by phase (runtime.cpp): decide (route, override, mode, escalation), plan
  // (prompt and generation requests), generate (in ask), verify (every sample at once),
  // conclude (the verified vote, confidence, cost).
  struct Plan {
    EvalItem item;            // the request as the eval would ask it: what votes and checks read
    size_t first = 0, n = 1;  // this request's generation requests (n > 1: accurate mode's samples)
    std::shared_ptr<const JinjaChat::Prompt> jinja;  // a prompt with tools in the model's format
  };
  // The chat prompt of a request with its history, through the builtin template or (tools, tool results)
  // the model's Jinja template; the oldest exchanges leave it until the answer fits a slot's context.
  Model::ChatTokens chat_prompt(const AskRequest& q, const GenRequest& g, Plan& p) const;
  struct Serving;  // one request's state in serve()
  friend struct PreparedAsk;
  // Verify, vote and judge a request whose samples have all finished (serve()); the winning
  // sample, or npos when the engine refused the request (r.error says why). `unsure`: the
  // answer falls under the calibrated threshold and is to be re-asked.
  size_t complete(const AskRequest& q, AskResponse& r, const Plan& p, const std::vector<GenResult>& res,
                  bool& unsure) const;
  AskResponse decide(const AskRequest& q, size_t i);
  void plan(const AskRequest& q, AskResponse& r, Plan& p, std::vector<GenRequest>& gens);
  std::vector<Verdict> verify(const std::vector<Plan>& plans, const std::vector<GenResult>& res) const;
  size_t conclude(size_t i, const Plan& p, const std::vector<GenResult>& res, const std::vector<Verdict>& verdicts,
                  bool errors_in_response, AskResponse& r) const;
  void escalate_from_session(const AskRequest& q, AskResponse& r);
  // The session's last `history` turns as chat messages (none without a session).
  std::vector<ChatMessage> session_history(const AskRequest& q);
  void record(const AskRequest& q, AskResponse& r);
  // Puts the bank's nearest examples of the choice's domain before the request (runtime/fewshot.h).
  void demonstrate(const SystemChoice& c, const AskRequest& q, GenRequest& g, AskResponse& r) const;
};

// A request ready for the engine (Runtime::prepare): as asked with its session's history, its decision, and its
// generation requests (the prompt tokenized; accurate mode's samples).
struct PreparedAsk {
  AskRequest request;
  AskResponse decision;
  Runtime::Plan plan;
  std::vector<GenRequest> gens;
};

// The one routing decision of a system (Runtime::route, eval --system): the router's choice
// for `text`, or the system's default without a router. `decision` gets the probabilities.
std::string route_choice(const SystemConfig& cfg, const Router* router, std::string_view text,
                         RouteDecision* decision = nullptr);

// A bare request put as the eval asks `ask_as` (see SystemChoice): the item whose prompt the
// choice was trained on. Multiple-choice options are read from lines "A. ..", "B) ..".
EvalItem item_from_request(const std::string& text, const std::string& ask_as,
                           const nlohmann::json& tools);

// Self-consistency: the index of the winning sample. Most votes for its key wins, ties go to
// the higher mean log-probability, and within the winning key the sample with the highest
// mean log-probability answers. An empty key (nothing extracted) wins only when every key is
// empty. Returns the votes of the winner in *votes.
size_t majority_vote(const std::vector<std::string>& keys, const std::vector<double>& mean_logprobs,
                     int* votes);

// A finished answer cut where its tokens were (`tokens`: the sample's log-probabilities, one per
// generated token), never inside a UTF-8 character, for streaming an answer known only at the
// end (accurate mode). The pieces join to `text`.
std::vector<std::string> answer_pieces(const std::string& text, const std::vector<TokenLogprob>& tokens);

// The answer of one output as the vote counts it, for items of `kind`: "" when nothing can be
// extracted (such samples never win a vote unless every sample is empty).
std::string vote_key(const EvalItem& item, const std::string& output);

}  // namespace cogumi
