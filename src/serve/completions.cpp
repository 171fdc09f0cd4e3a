// The generating endpoints of Server: /v1/chat/completions, /v1/completions (whole or streamed
// over SSE) and /v1/embeddings.
#include <fmt/format.h>

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "engine/embed.h"
#include "runtime/memory.h"
#include "serve/openai_api.h"
#include "serve/server.h"

namespace cogumi::serve {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(wire(e.body()), "application/json");
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string make_id(const char* prefix) {
  static std::atomic<uint64_t> counter{0};
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::system_clock::now().time_since_epoch());
  return fmt::format("{}-{:x}{:04x}", prefix, uint64_t(us.count()), counter++ & 0xffff);
}

double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// The choice a request's model names: "" (the router decides) for the system, or a choice.
std::string choice_of_model(const Runtime& rt, const std::string& model) {
  const SystemConfig& cfg = rt.config();
  if (model.empty() || model == cfg.name) return "";
  if (cfg.has_choice(model)) return model;
  std::vector<std::string> names = {cfg.name};
  for (auto& c : cfg.choices) names.push_back(c.name);
  throw ApiError(404, fmt::format("The model '{}' does not exist; this server has: {}", model, fmt::join(names, ", ")),
                 "invalid_request_error", "model", "model_not_found");
}

// The Runtime requests of one API request: one per answer (n).
std::vector<AskRequest> plan(Runtime& rt, CompletionRequest& q) {
  const SystemConfig& cfg = rt.config();
  AskRequest a;
  a.choice = choice_of_model(rt, q.model);
  if (!q.cogumi.choice.empty()) {
    if (!cfg.has_choice(q.cogumi.choice))
      throw ApiError(400, fmt::format("'cogumi.choice' names '{}', which is not a choice of system '{}'", q.cogumi.choice,
                                      cfg.name),
                     "invalid_request_error", "cogumi.choice", "unknown_choice");
    a.choice = q.cogumi.choice;
  }
  // A call the caller insists on goes to a choice that writes tool calls.
  if (a.choice.empty() && q.tool_choice != "auto" && q.tool_choice != "none") {
    auto it = std::find_if(cfg.choices.begin(), cfg.choices.end(), [](auto& c) { return c.ask_as == "bfcl"; });
    if (it != cfg.choices.end()) a.choice = it->name;
  }
  a.mode = q.cogumi.mode;
  if (!q.cogumi.session.empty()) {
    if (cfg.memory.empty())
      throw ApiError(400, fmt::format("system '{}' keeps no sessions (no 'memory' in its system file)", cfg.name),
                     "invalid_request_error", "cogumi.session");
    if (q.cogumi.session == "new")
      q.cogumi.session = rt.memory().create_session({{"source", "serve"}});
    else if (!rt.memory().session(q.cogumi.session))
      throw ApiError(400, fmt::format("'cogumi.session': no session '{}'", q.cogumi.session), "invalid_request_error",
                     "cogumi.session", "unknown_session");
    a.session = q.cogumi.session;
  }
  a.text = q.text();
  if (q.chat) {
    a.history.assign(q.messages.begin(), q.messages.end() - 1);
    if (q.messages.back().role != "user") a.message = q.messages.back();  // a tool's result
  }
  a.tool_choice = q.tool_choice;
  a.raw = !q.chat;
  a.max_tokens = q.max_tokens;
  a.stop = q.stop;
  a.n_logprobs = q.logprobs;
  a.grammar = tool_call_grammar(q);
  if (a.grammar.empty()) a.grammar = grammar_for(q);
  a.ignore_eos = q.ignore_eos;
  if (q.tool_choice != "none")
    for (auto& t : q.tools) a.tools.push_back(t);
  std::vector<AskRequest> out;
  for (int i = 0; i < q.n; ++i) {
    AskRequest r = a;
    if (q.temperature || q.top_p || q.seed || q.n > 1) {
      SamplingParams sp;
      sp.temperature = q.temperature.value_or(q.n > 1 ? 1.0f : 0.0f);
      sp.top_p = q.top_p.value_or(1.0f);
      sp.top_k = 0;
      sp.min_p = 0.0f;
      sp.seed = q.seed.value_or(uint32_t(unix_now())) + uint32_t(i);
      r.sampling = sp;
    }
    if (i > 0) r.session.clear();  // one answer per turn goes to session memory
    out.push_back(std::move(r));
  }
  return out;
}

bool writes_tool_calls(const Runtime& rt, const CompletionRequest& q, const std::string& choice) {
  if (!q.chat || q.tools.empty() || q.tool_choice == "none") return false;
  if (q.tool_choice != "auto") return true;  // the grammar made the answer a call
  return rt.config().has_choice(choice) && (rt.config().choice(choice).ask_as == "bfcl" || rt.formats_tools(choice));
}

void set_decision_headers(httplib::Response& res, const AskResponse& d) {
  res.set_header("X-Cogumi-Choice", d.choice);
  res.set_header("X-Cogumi-Confidence", fmt::format("{:.4f}", d.confidence));
  res.set_header("X-Cogumi-Mode", d.mode);
  res.set_header("X-Cogumi-Escalated", d.escalated ? "true" : "false");
}

bool any_accurate(const std::vector<AskResponse>& decisions) {
  return std::any_of(decisions.begin(), decisions.end(), [](const AskResponse& d) { return d.mode == "accurate"; });
}

// The first answer error (a prompt over the context) as the API reports it.
std::optional<ApiError> answer_error(const std::vector<AskResponse>& answers) {
  for (auto& a : answers)
    if (!a.error.empty())
      return ApiError(400, a.error, "invalid_request_error", "messages",
                      a.error.find("context") != std::string::npos ? "context_length_exceeded" : "");
  return std::nullopt;
}

// The job's own failure as the API reports it (the caller holds job.mu): cut by the server's
// shutdown 503, the engine's failure 500, a refusal of the request 400.
std::optional<ApiError> job_failure(const Job& job) {
  const bool cut = std::any_of(job.answers.begin(), job.answers.end(), [](auto& a) { return a.finish_reason == "cancelled"; });
  if (job.shutdown && (job.answers.empty() || cut))  // an answer that ended whole before the cut stands
    return ApiError(503, "the server is shutting down; the request was cut before it finished", "server_error", "",
                    "shutting_down");
  if (job.error.empty()) return std::nullopt;
  if (job.engine_failed) return ApiError(500, job.error, "server_error");
  return ApiError(400, job.error);
}

// The socket of a request's connection, which httplib 0.11 does not hand to handlers: the open
// descriptor whose local and peer ports and peer address are the request's. -1 when none is.
int connection_fd(const httplib::Request& req) {
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    int fd = -1;
    try {
      fd = std::stoi(e.path().filename().string());
    } catch (const std::exception&) {
      continue;
    }
    sockaddr_storage local{}, peer{};
    socklen_t ll = sizeof local, lp = sizeof peer;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0 ||
        getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &lp) != 0)
      continue;
    char host[NI_MAXHOST], lport[NI_MAXSERV], pport[NI_MAXSERV];
    if (getnameinfo(reinterpret_cast<sockaddr*>(&local), ll, nullptr, 0, lport, sizeof lport, NI_NUMERICSERV) != 0 ||
        getnameinfo(reinterpret_cast<sockaddr*>(&peer), lp, host, sizeof host, pport, sizeof pport,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
      continue;
    if (req.remote_addr == host && std::to_string(req.remote_port) == pport &&
        std::to_string(req.local_port) == lport)
      return fd;
  }
  return -1;
}

// The client hung up (or reset) the connection: nobody will read the answer.
bool peer_gone(int fd) {
  if (fd < 0) return false;
  pollfd p{fd, POLLRDHUP, 0};
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

void fill_record(RequestRecord& rec, const Job& job, const std::vector<AskResponse>& answers) {
  if (!answers.empty()) {
    rec.choice = answers[0].choice;
    rec.mode = answers[0].mode;
    rec.escalated = answers[0].escalated;
    rec.escalated_by = answers[0].escalated_by;
    rec.overridden = answers[0].overridden;
    if (!answers[0].route.probs.empty()) rec.router_probability = answers[0].route.probability;
    rec.prompt_tokens = answers[0].prompt_tokens;
    rec.cached_tokens = answers[0].cached_tokens;
    for (auto& a : answers) rec.completion_tokens += a.gen_tokens;
  }
  if (job.started != Clock::time_point{}) rec.queue_seconds = secs(job.submitted, job.started);
  if (job.first_piece != Clock::time_point{}) rec.ttft_seconds = secs(job.submitted, job.first_piece);
}

// One SSE response: the role chunk with the decision, the pieces as the batch makes them, then
// the final chunks (tool calls, finish reason, decision), usage and [DONE]. A failed write (the
// client left) or the deadline cancels the job's generation.
struct SseWriter {
  std::shared_ptr<Job> job;
  std::shared_ptr<CompletionRequest> q;
  ResponseContext ctx;
  AskResponse decision;
  Clock::time_point t0, deadline;
  double timeout_s = 0;
  RequestRecord rec;
  std::function<void(const RequestRecord&)> notify;
  std::shared_ptr<void> guard;  // the request counts as in flight while this lives
  const Runtime* rt = nullptr;
  std::vector<std::string> generated;  // per choice: the answer so far (a tool-calling answer, read as it grows)

  bool send(httplib::DataSink& sink, const json& j) {
    const std::string s = "data: " + wire(j) + "\n\n";
    return sink.write(s.data(), s.size());
  }

  // Accurate answers before their vote: an SSE comment (clients skip it) with the samples done,
  // each time that count grows, so a client sees the request alive and how far it is.
  int progress_sent = 0;
  bool send_progress(httplib::DataSink& sink, int done, int total) {
    if (done <= progress_sent) return true;
    progress_sent = done;
    const std::string s = ": " + json{{"cogumi", {{"progress", {{"samples_done", done}, {"samples", total}}}}}}.dump() + "\n\n";
    return sink.write(s.data(), s.size());
  }

  // A tool-calling answer's new piece: in the model's own format (a chat template with tools), the text it adds
  // outside calls, read from the answer so far (`text`; false: none); with Cogumi's bare JSON calls, nothing.
  bool tool_text(size_t k, const std::string& piece, const std::string& sent, std::string& text) {
    // (tool_choice required or named: a grammar makes the answer a call in Cogumi's JSON, which is no text)
    if (!decision.tools_prompt || !rt || q->tool_choice != "auto") return false;
    if (generated.size() <= k) generated.resize(k + 1);
    generated[k] += piece;
    const ParsedChatAnswer so_far = rt->parse_answer(decision, generated[k], true);
    if (!so_far.tool_calls.empty() || so_far.content.size() <= sent.size() ||
        so_far.content.compare(0, sent.size(), sent) != 0)
      return false;
    text = so_far.content.substr(sent.size());
    return true;
  }

  // Pieces until the job is done; false when the client left or the deadline passed.
  bool stream_pieces(httplib::DataSink& sink, std::vector<std::string>& streamed, bool& timed_out) {
    for (;;) {
      std::unique_lock lk(job->mu);
      job->cv.wait_until(lk, std::min(deadline, Clock::now() + std::chrono::milliseconds(250)), [&] {
        return job->done || !job->pieces.empty() || job->samples_done > progress_sent;
      });
      auto pieces = std::move(job->pieces);
      job->pieces.clear();
      const bool done = job->done;
      const int samples_done = job->samples_done, samples = job->samples_total;
      lk.unlock();
      if (!send_progress(sink, samples_done, samples)) return false;
      for (auto& [k, piece] : pieces) {
        std::string text = piece;
        if (ctx.tool_calling && !tool_text(k, piece, streamed[k], text)) continue;  // calls go out whole, at the end
        streamed[k] += text;
        if (!send(sink, stream_chunk(*q, ctx, k, {{"content", text}}, nullptr))) return false;
      }
      if (done) return true;
      if (Clock::now() >= deadline) return !(timed_out = true);
      if (pieces.empty() && !sink.is_writable()) return false;  // nothing flows: is the client there?
    }
  }

  bool write(httplib::DataSink& sink) {
    const size_t n = job->requests.size();
    std::vector<std::string> streamed(n);  // the text each choice sent
    bool ok = true, timed_out = false;
    for (size_t i = 0; i < n && ok && q->chat; ++i) {
      json first = stream_chunk(*q, ctx, i, {{"role", "assistant"}, {"content", ""}}, nullptr);
      first["cogumi"] = decision_json(decision, ctx.router_choices, q->cogumi.session);
      ok = send(sink, first);
    }
    if (!ok || !stream_pieces(sink, streamed, timed_out)) {
      job->cancel = true;
      if (timed_out) {
        send(sink, ApiError(504, fmt::format("the request took longer than {} s (--timeout)", timeout_s), "timeout",
                            "", "timeout")
                       .body());
        sink.done();
      }
      rec.status = timed_out ? 504 : 499;  // 499: the client closed the connection
      rec.error_type = timed_out ? "timeout" : "cancelled";
      rec.seconds = secs(t0, Clock::now());
      notify(rec);
      return timed_out;
    }
    std::vector<AskResponse> answers;
    std::optional<ApiError> failed;
    {
      std::lock_guard lk(job->mu);
      answers = job->answers;
      failed = job_failure(*job);
    }
    // Refused or cut after the stream began (an accurate answer's prompt over the context, the
    // server's shutdown): the error in OpenAI's shape as the last event, as for a timeout.
    std::optional<ApiError> refused = failed && failed->status != 400 ? failed : answer_error(answers);
    if (!refused) refused = failed;
    if (refused) {
      send(sink, refused->body());
      sink.done();
      rec.status = refused->status;
      rec.error_type = refused->code.empty() ? refused->type : refused->code;
      rec.seconds = secs(t0, Clock::now());
      notify(rec);
      return true;
    }
    for (size_t i = 0; i < answers.size() && ok; ++i)
      for (auto& c : stream_final_chunks(*q, ctx, i, answers[i], streamed[i])) ok = ok && send(sink, c);
    if (ok && q->include_usage) {
      json u = stream_chunk(*q, ctx, 0, json::object(), nullptr);
      u["choices"] = json::array();
      u["usage"] = usage_json(answers);
      ok = send(sink, u);
    }
    if (ok) ok = sink.write("data: [DONE]\n\n", 14);
    if (ok) sink.done();
    fill_record(rec, *job, answers);
    rec.seconds = secs(t0, Clock::now());
    notify(rec);
    return ok;
  }
};

}  // namespace

void Server::handle_completion(const httplib::Request& req, httplib::Response& res, bool chat) {
  auto guard = std::make_shared<InFlight>(this);
  const auto t0 = Clock::now();
  const auto deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opts_.timeout_s));
  RequestRecord rec;
  rec.endpoint = chat ? "/v1/chat/completions" : "/v1/completions";
  auto refuse = [&](const ApiError& e) {
    send_error(res, e);
    rec.status = e.status;
    rec.error_type = e.code.empty() ? e.type : e.code;
    rec.seconds = secs(t0, Clock::now());
    notify(rec);
  };
  auto q = std::make_shared<CompletionRequest>();
  std::shared_ptr<Job> job;
  try {
    *q = parse_completion_request(req.body, chat);
    rec.model = q->model.empty() ? system_name() : q->model;
    rec.stream = q->stream;
    job = sched_->submit(plan(*rt_, *q));
  } catch (const ApiError& e) {
    return refuse(e);
  } catch (const ShuttingDown& e) {
    return refuse(ApiError(503, e.what(), "server_error", "", "shutting_down"));
  } catch (const Error& e) {
    return refuse(ApiError(400, e.what()));
  } catch (const std::exception& e) {  // preparing it failed outside the request's checks (the session store)
    return refuse(ApiError(500, e.what(), "server_error"));
  }
  ResponseContext ctx;
  ctx.id = make_id(chat ? "chatcmpl" : "cmpl");
  ctx.created = unix_now();
  ctx.model = rec.model;
  if (rt_->router()) ctx.router_choices = rt_->router()->choices();

  // Whole answers: wait for the batch. Fast streams: wait for the first piece (or the end), so a
  // refusal still gets its status code and the headers carry the decision. Accurate streams
  // start once decided (their text comes only after the vote): the role chunk at once, progress
  // comments while the samples generate, then the chosen answer.
  // While it waits, a client that hangs up cancels its generation.
  const int fd = connection_fd(req);
  std::unique_lock lk(job->mu);
  bool ready = false, gone = false;
  while (!ready && !gone && Clock::now() < deadline) {
    ready = job->cv.wait_until(lk, std::min(deadline, Clock::now() + std::chrono::milliseconds(200)), [&] {
      return job->done || (q->stream && job->decided && (!job->pieces.empty() || any_accurate(job->decisions)));
    });
    gone = !ready && peer_gone(fd);
  }
  if (gone) {
    job->cancel = true;
    lk.unlock();
    return refuse(ApiError(499, "the client closed the connection", "invalid_request_error", "", "cancelled"));
  }
  if (!ready) {
    job->cancel = true;
    lk.unlock();
    return refuse(ApiError(504, fmt::format("the request took longer than {} s (--timeout)", opts_.timeout_s), "timeout",
                           "", "timeout"));
  }
  if (auto failed = job_failure(*job)) {
    lk.unlock();
    return refuse(*failed);
  }
  if (job->done) {
    if (auto e = answer_error(job->answers)) {
      lk.unlock();
      return refuse(*e);
    }
  }
  const AskResponse decision = job->decisions.at(0);
  ctx.tool_calling = writes_tool_calls(*rt_, *q, decision.choice);
  set_decision_headers(res, decision);
  if (!q->stream) {
    const std::vector<AskResponse> answers = job->answers;
    lk.unlock();
    res.set_content(wire(completion_response(*q, answers, ctx)), "application/json");
    fill_record(rec, *job, answers);
    rec.seconds = secs(t0, Clock::now());
    return notify(rec);
  }
  lk.unlock();
  res.set_header("Cache-Control", "no-cache");
  auto w = std::make_shared<SseWriter>();
  *w = SseWriter{job, q, ctx, decision, t0, deadline, opts_.timeout_s, rec,
                 [this](const RequestRecord& r) { notify(r); }, guard, rt_.get(), {}};
  // An exception must not leave httplib's thread (it would end the process): the stream ends.
  res.set_chunked_content_provider("text/event-stream", [w](size_t, httplib::DataSink& sink) {
    try {
      return w->write(sink);
    } catch (const std::exception&) {
      w->job->cancel = true;
      return false;
    }
  });
}

void Server::handle_embeddings(const httplib::Request& req, httplib::Response& res) {
  InFlight guard(this);
  const auto t0 = Clock::now();
  RequestRecord rec;
  rec.endpoint = "/v1/embeddings";
  try {
    EmbeddingRequest q = parse_embedding_request(req.body);
    if (q.model.empty()) q.model = system_name();
    (void)choice_of_model(*rt_, q.model);  // 404 for an unknown one
    rec.model = q.model;
    int tokens = 0;
    for (auto& t : q.input) tokens += int(rt_->model()->tokenize(t, true, false).size());
    std::vector<std::vector<float>> vecs;
    {
      std::lock_guard lk(embed_mu_);
      if (!embedder_) {
        EmbedOptions eo;
        eo.n_threads = rt_->config().threads;
        embedder_ = std::make_unique<Embedder>(rt_->model(), eo);
      }
      vecs = embedder_->embed(q.input);
    }
    res.set_content(wire(embedding_response(q, vecs, tokens)), "application/json");
    rec.prompt_tokens = tokens;
  } catch (const ApiError& e) {
    send_error(res, e);
    rec.status = e.status;
    rec.error_type = e.code.empty() ? e.type : e.code;
  } catch (const Error& e) {
    send_error(res, ApiError(400, e.what()));
    rec.status = 400;
    rec.error_type = "invalid_request_error";
  }
  rec.seconds = secs(t0, Clock::now());
  notify(rec);
}

}  // namespace cogumi::serve
