// cogumi/serve: the OpenAI wire format. Parses and checks request bodies of
// /v1/chat/completions, /v1/completions and /v1/embeddings into Cogumi's own types, and builds
// the response bodies and stream chunks, routing decision included. No HTTP here: the server
// (server.h) moves these bodies over the wire, so every rule is testable without a socket.
//
// Every bad request is an ApiError: the HTTP status and OpenAI's error object
// {"error": {"message", "type", "param", "code"}}, the message naming the field at fault.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/runtime.h"

namespace cogumi::serve {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string type = "invalid_request_error",
           std::string param = "", std::string code = "")
      : std::runtime_error(message), status(status), type(std::move(type)), param(std::move(param)),
        code(std::move(code)) {}
  int status;
  std::string type, param, code;
  nlohmann::json body() const;  // {"error": {...}}
};

// The routing extension a request may carry as "cogumi": {...}.
struct CogumiExtension {
  std::string mode;     // "" = the system's; fast | accurate
  std::string session;  // "" = none
  std::string choice;   // "" = the model's; a manual override of the modifier
};

// A parsed /v1/chat/completions (chat) or /v1/completions (!chat) request.
struct CompletionRequest {
  bool chat = true;
  std::string model;                   // "" when the body named none
  std::vector<ChatMessage> messages;   // chat: all of them
  std::string prompt;                  // completions
  bool stream = false;
  bool include_usage = false;          // stream_options.include_usage
  int n = 1;                           // 1..16
  int max_tokens = 0;                  // 0 = the system's; 1..32768
  std::optional<float> temperature;    // [0, 2]
  std::optional<float> top_p;          // (0, 1]
  std::optional<uint32_t> seed;
  std::vector<std::string> stop;       // up to 4, non-empty
  int logprobs = -1;                   // -1 none, else the number of alternatives (0..20)
  std::string response_format = "text";  // text | json_object | json_schema
  nlohmann::json schema;               // json_schema: the schema
  nlohmann::json tools = nlohmann::json::array();  // the functions ({name, description, parameters})
  std::string tool_choice = "auto";    // none | auto | required | a function's name
  bool echo = false;                   // completions: the prompt before the answer
  bool ignore_eos = false;             // as vLLM: generate max_tokens (benchmarks, load tests)
  CogumiExtension cogumi;

  // The last user message (chat) or the prompt.
  const std::string& text() const;
};

// Throws ApiError (400) naming the field: malformed JSON, wrong types, values out of range.
CompletionRequest parse_completion_request(const std::string& body, bool chat);

struct EmbeddingRequest {
  std::string model;
  std::vector<std::string> input;  // 1..2048 texts
  std::string encoding_format = "float";  // float | base64
};
EmbeddingRequest parse_embedding_request(const std::string& body);

// The GBNF grammar a request's answer must follow ("" = none): JSON for json_object, the
// schema's JSON for json_schema. Throws ApiError (400, param response_format) for a schema the
// converter refuses.
std::string grammar_for(const CompletionRequest& r);

// tool_choice "required" or a function's name: a grammar that makes the answer one call
// {"name": ..., "arguments": {...}} of an allowed function, its arguments valid under the
// function's parameter schema ("" for none/auto). Throws ApiError (param tools) for a parameter
// schema the converter refuses.
std::string tool_call_grammar(const CompletionRequest& r);

// Tool calls in an answer of a tool-calling choice: a JSON call {"name", "arguments"} or a list
// of them, each naming one of `tools`. Empty when the answer holds none. Each call comes as
// OpenAI writes it: {"id", "type": "function", "function": {"name", "arguments": "<JSON>"}}.
nlohmann::json parse_tool_calls(const std::string& answer, const nlohmann::json& tools,
                                const std::string& id_prefix);

// A body as it goes on the wire: compact, invalid UTF-8 replaced by U+FFFD (a model's token can
// end inside a character).
std::string wire(const nlohmann::json& j);

// The "cogumi" object of a response: the routing decision.
nlohmann::json decision_json(const AskResponse& r, const std::vector<std::string>& router_choices,
                             const std::string& session);

// What a response is built from: the request, its answers (n of them) and identity.
struct ResponseContext {
  std::string id;       // chatcmpl-... / cmpl-...
  int64_t created = 0;  // unix seconds
  std::string model;    // as the request named it
  std::vector<std::string> router_choices;
  bool tool_calling = false;  // the answering choice writes tool calls
};

nlohmann::json completion_response(const CompletionRequest& q, const std::vector<AskResponse>& answers,
                                   const ResponseContext& ctx);
// One streamed chunk of choice `index`: a delta of text (or the role, first).
nlohmann::json stream_chunk(const CompletionRequest& q, const ResponseContext& ctx, size_t index,
                            const nlohmann::json& delta, const nlohmann::json& finish_reason);
// The chunks that end choice `index` of a stream: the answer's text past what `streamed` sent already, tool-call
// deltas (each call with its own index), then the finish reason; then the routing decision.
std::vector<nlohmann::json> stream_final_chunks(const CompletionRequest& q, const ResponseContext& ctx,
                                                size_t index, const AskResponse& answer, const std::string& streamed);
nlohmann::json usage_json(const std::vector<AskResponse>& answers);

nlohmann::json embedding_response(const EmbeddingRequest& q, const std::vector<std::vector<float>>& vecs,
                                  int prompt_tokens);

}  // namespace cogumi::serve
