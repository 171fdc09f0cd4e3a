// cogumi/serve: session memory over HTTP, what the web UI reads its history from and writes its
// thumbs to. The routes answer from the system's SessionStore (runtime/memory.h); they never
// touch the model, so they stay fast while generations run.
//
//   POST /v1/sessions        {metadata?: {..}}             -> {id, object: "session", created_ms}
//   GET  /v1/sessions/{id}   ?limit=N (default and cap: SessionsApiOptions::max_turns)
//                            -> {id, object, metadata, created_ms, updated_ms, n_turns,
//                                turns: [{id, role, content, created_ms, feedback, cogumi?}]}
//                               an answer's `cogumi` is its routing decision (choice,
//                               probabilities, confidence, mode, escalated, escalated_by,
//                               overridden, turn_id, session), the shape chat completions
//                               return; `feedback` is the turn's latest score (+1, -1 or null)
//   POST /v1/feedback        {turn_id, score: +1|-1, note?} -> {id, object: "feedback", turn_id,
//                               session, score}; a later score on the same turn replaces it
//
// Errors are OpenAI's shape, {"error": {message, type, param, code}}, `param` naming the field
// at fault: 400 for a malformed body, 404 for an unknown session or turn, 503 when the system
// has no session memory.
//
// Thread safety: the handlers may run on many threads at once (SessionStore is thread safe).
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <functional>

namespace httplib {
class Server;
}

namespace cogumi {

class SessionStore;
struct Turn;

// How the routes reach session memory. The runtime opens its store on first use; an accessor
// that throws Error (a system file without `memory:`) makes the routes answer 503 with its
// message.
using StoreAccess = std::function<SessionStore&()>;

struct SessionsApiOptions {
  size_t max_turns = 1000;  // the most turns one GET returns (the latest ones); ?limit= lowers it
  size_t max_note_chars = 4000;  // a feedback note longer than this is refused
  // Called after each stored feedback with its score (+1/-1), e.g. to count it in /metrics.
  std::function<void(int score)> on_feedback;
};

void add_session_routes(httplib::Server& http, StoreAccess store, SessionsApiOptions opts = {});

// One turn as GET /v1/sessions/{id} lists it; `feedback` is its latest score (0 = none).
nlohmann::json turn_json(const Turn& turn, int feedback);

}  // namespace cogumi
