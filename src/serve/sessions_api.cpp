#include "serve/sessions_api.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>
#include <optional>
#include <string>

#include "core/error.h"
#include "core/io.h"
#include "runtime/memory.h"

namespace cogumi {
namespace {

using json = nlohmann::json;

// An expected failure of one request: its HTTP status and OpenAI's error fields.
struct HttpError {
  int status = 400;
  std::string message;
  std::string param;  // the field at fault ("" = none)
  std::string code;
};

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(json_text(body), "application/json");  // turns hold model text
}

void send_error(httplib::Response& res, const HttpError& e) {
  const char* type = e.status >= 500 ? "server_error"
                     : e.status == 404 ? "not_found_error"
                                       : "invalid_request_error";
  json err = {{"message", e.message},
              {"type", type},
              {"param", e.param.empty() ? json() : json(e.param)},
              {"code", e.code.empty() ? json() : json(e.code)}};
  send_json(res, e.status, {{"error", err}});
}

// Runs a handler body, turning HttpError, the store's Error and anything unexpected into
// OpenAI-shaped error responses.
template <typename F>
void guarded(httplib::Response& res, F&& body) {
  try {
    body();
  } catch (const HttpError& e) {
    send_error(res, e);
  } catch (const Error& e) {
    send_error(res, {500, e.what(), "", "session_store_error"});
  } catch (const std::exception& e) {
    send_error(res, {500, std::string("internal error: ") + e.what(), "", "internal_error"});
  }
}

SessionStore& open_store(const StoreAccess& store) {
  try {
    return store();
  } catch (const Error& e) {
    throw HttpError{503, std::string("session memory is unavailable: ") + e.what(), "",
                    "no_session_memory"};
  }
}

json parse_object(const httplib::Request& req, bool empty_ok) {
  if (req.body.empty() && empty_ok) return json::object();
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded())
    throw HttpError{400, "the request body is not valid JSON", "", "invalid_json"};
  if (!body.is_object())
    throw HttpError{400, "the request body must be a JSON object", "", "invalid_json"};
  return body;
}

bool valid_session_id(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
  return true;
}

size_t parse_limit(const httplib::Request& req, size_t cap) {
  if (!req.has_param("limit")) return cap;
  const std::string v = req.get_param_value("limit");
  size_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || n == 0)
    throw HttpError{400, "limit must be a positive integer (got '" + v + "')", "limit", ""};
  return std::min(n, cap);
}

void create_session(const StoreAccess& store, const httplib::Request& req,
                    httplib::Response& res) {
  json body = parse_object(req, true);
  json metadata = json::object();
  if (body.contains("metadata")) {
    metadata = body["metadata"];
    if (!metadata.is_object())
      throw HttpError{400, "metadata must be a JSON object", "metadata", ""};
  }
  SessionStore& s = open_store(store);
  const std::string id = s.create_session(metadata);
  const auto info = s.session(id);
  send_json(res, 200,
            {{"id", id}, {"object", "session"}, {"created_ms", info ? info->created_ms : 0}});
}

void get_session(const StoreAccess& store, const SessionsApiOptions& opts,
                 const httplib::Request& req, httplib::Response& res) {
  const std::string id = req.matches[1];
  if (!valid_session_id(id))
    throw HttpError{400, "session id must be 1-128 letters, digits, '-' or '_'", "session", ""};
  const size_t limit = parse_limit(req, opts.max_turns);
  SessionStore& s = open_store(store);
  const auto info = s.session(id);
  if (!info) throw HttpError{404, "no session '" + id + "'", "session", "session_not_found"};
  std::map<int64_t, int> scores;
  FeedbackQuery q;
  q.session = id;
  for (const FeedbackRow& f : s.feedback(q)) scores[f.turn_id] = f.thumbs;
  json turns = json::array();
  for (const Turn& t : s.last_turns(id, limit)) {
    auto it = scores.find(t.id);
    turns.push_back(turn_json(t, it == scores.end() ? 0 : it->second));
  }
  send_json(res, 200,
            {{"id", info->id},
             {"object", "session"},
             {"metadata", info->metadata},
             {"created_ms", info->created_ms},
             {"updated_ms", info->updated_ms},
             {"n_turns", info->n_turns},
             {"turns", std::move(turns)}});
}

int64_t field_turn_id(const json& body) {
  if (!body.contains("turn_id"))
    throw HttpError{400, "turn_id is required (the id of the answer being rated)", "turn_id", ""};
  const json& v = body["turn_id"];
  if (!v.is_number_integer() || v.get<int64_t>() <= 0)
    throw HttpError{400, "turn_id must be a positive integer (got " + v.dump() + ")", "turn_id",
                    ""};
  return v.get<int64_t>();
}

int field_score(const json& body) {
  if (!body.contains("score"))
    throw HttpError{400, "score is required: +1 (thumbs up) or -1 (thumbs down)", "score", ""};
  const json& v = body["score"];
  if (!v.is_number_integer() || (v.get<int64_t>() != 1 && v.get<int64_t>() != -1))
    throw HttpError{400, "score must be +1 or -1 (got " + v.dump() + ")", "score", ""};
  return v.get<int>();
}

void post_feedback(const StoreAccess& store, const SessionsApiOptions& opts,
                   const httplib::Request& req, httplib::Response& res) {
  json body = parse_object(req, false);
  const int64_t turn_id = field_turn_id(body);
  const int score = field_score(body);
  std::string note;
  if (body.contains("note")) {
    if (!body["note"].is_string()) throw HttpError{400, "note must be a string", "note", ""};
    note = body["note"].get<std::string>();
    if (note.size() > opts.max_note_chars)
      throw HttpError{400, "note is longer than " + std::to_string(opts.max_note_chars) +
                               " characters",
                      "note", ""};
  }
  SessionStore& s = open_store(store);
  const auto turn = s.turn(turn_id);
  if (!turn)
    throw HttpError{404, "no turn with id " + std::to_string(turn_id), "turn_id",
                    "turn_not_found"};
  if (turn->role != "assistant")
    throw HttpError{400,
                    "turn " + std::to_string(turn_id) + " is a " + turn->role +
                        " turn; feedback rates answers (assistant turns)",
                    "turn_id", ""};
  const int64_t id = s.record_feedback(turn_id, score, note);
  if (opts.on_feedback) opts.on_feedback(score);
  send_json(res, 200,
            {{"id", id},
             {"object", "feedback"},
             {"turn_id", turn_id},
             {"session", turn->session},
             {"score", score}});
}

}  // namespace

json turn_json(const Turn& t, int feedback) {
  json out = {{"id", t.id},
              {"role", t.role},
              {"content", t.content},
              {"created_ms", t.created_ms},
              {"feedback", feedback ? json(feedback) : json()}};
  if (t.decision.is_object()) {
    json d = t.decision;
    d["turn_id"] = t.id;  // recorded before the store gave the turn its id
    d["session"] = t.session;
    if (!d.contains("choice")) d["choice"] = t.choice;
    if (!d.contains("mode")) d["mode"] = t.mode;
    if (!d.contains("escalated")) d["escalated"] = t.escalated;
    if (!d.contains("confidence") && t.confidence) d["confidence"] = *t.confidence;
    out["cogumi"] = std::move(d);
  }
  return out;
}

void add_session_routes(httplib::Server& http, StoreAccess store, SessionsApiOptions opts) {
  http.Post("/v1/sessions", [store](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { create_session(store, req, res); });
  });
  http.Get(R"(/v1/sessions/([^/]+))",
           [store, opts](const httplib::Request& req, httplib::Response& res) {
             guarded(res, [&] { get_session(store, opts, req, res); });
           });
  http.Post("/v1/feedback", [store, opts](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { post_feedback(store, opts, req, res); });
  });
}

}  // namespace cogumi
