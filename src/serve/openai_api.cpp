#include "serve/openai_api.h"

#include <fmt/format.h>

#include <openssl/evp.h>

#include <cmath>

#include "core/error.h"
#include "core/io.h"
#include "engine/json_grammar.h"
#include "eval/extract.h"

namespace cogumi::serve {

using json = nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& msg) { throw ApiError(400, msg, "invalid_request_error", param); }

const char* kind(const json& v) { return v.type_name(); }

std::string get_string(const json& o, const char* key, const std::string& fallback = "") {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return fallback;
  if (!it->is_string()) bad(key, fmt::format("'{}' must be a string, got {}", key, kind(*it)));
  return it->get<std::string>();
}

bool get_bool(const json& o, const char* key, bool fallback) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) bad(key, fmt::format("'{}' must be true or false, got {}", key, it->dump()));
  return it->get<bool>();
}

// A number in [lo, hi] (open at lo when `open_lo`); nullopt when absent or null.
std::optional<double> get_number(const json& o, const char* key, double lo, double hi, bool open_lo = false) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) bad(key, fmt::format("'{}' must be a number, got {}", key, it->dump()));
  const double v = it->get<double>();
  if (!std::isfinite(v) || (open_lo ? v <= lo : v < lo) || v > hi)
    bad(key, fmt::format("'{}' must be in {}{}, {}], got {}", key, open_lo ? "(" : "[", lo, hi, it->dump()));
  return v;
}

std::optional<int64_t> get_int(const json& o, const char* key, int64_t lo, int64_t hi) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer() && !it->is_number_unsigned())
    bad(key, fmt::format("'{}' must be an integer, got {}", key, it->dump()));
  const int64_t v = it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(INT64_MAX) ? INT64_MAX : it->get<int64_t>();
  if (v < lo || v > hi) bad(key, fmt::format("'{}' must be in [{}, {}], got {}", key, lo, hi, it->dump()));
  return v;
}

// Message content: a string, or a list of parts of which the text parts count.
std::string content_text(const json& c, size_t i) {
  const std::string param = fmt::format("messages[{}].content", i);
  if (c.is_null()) return "";
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) bad(param, fmt::format("'{}' must be a string or a list of parts, got {}", param, kind(c)));
  std::string text;
  for (size_t k = 0; k < c.size(); ++k) {
    const json& part = c[k];
    if (!part.is_object() || get_string(part, "type") != "text")
      bad(param, fmt::format("'{}[{}]': only {{\"type\": \"text\", \"text\": ...}} parts are supported", param, k));
    text += get_string(part, "text");
  }
  return text;
}

std::vector<ChatMessage> parse_messages(const json& body) {
  auto it = body.find("messages");
  if (it == body.end()) bad("messages", "'messages' is required");
  if (!it->is_array() || it->empty()) bad("messages", "'messages' must be a non-empty list");
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    if (!m.is_object()) bad("messages", fmt::format("'messages[{}]' must be an object, got {}", i, kind(m)));
    auto role = m.find("role");
    if (role == m.end() || !role->is_string())
      bad(fmt::format("messages[{}].role", i), fmt::format("'messages[{}].role' is required (a string)", i));
    const std::string r = role->get<std::string>();
    if (r != "system" && r != "developer" && r != "user" && r != "assistant" && r != "tool")
      bad(fmt::format("messages[{}].role", i),
          fmt::format("'messages[{}].role' must be system, developer, user, assistant or tool, got '{}'", i, r));
    ChatMessage msg{r == "developer" ? "system" : r, content_text(m.contains("content") ? m["content"] : json(), i),
                    "", "", ""};
    if (r == "assistant" && m.contains("tool_calls") && !m["tool_calls"].is_null()) {
      if (!m["tool_calls"].is_array())
        bad(fmt::format("messages[{}].tool_calls", i), fmt::format("'messages[{}].tool_calls' must be a list", i));
      msg.tool_calls = m["tool_calls"].dump();
    }
    if (r == "tool") {
      msg.tool_call_id = get_string(m, "tool_call_id");
      msg.name = get_string(m, "name");
    }
    out.push_back(std::move(msg));
  }
  if (out.back().role != "user" && out.back().role != "tool")
    bad("messages", fmt::format("the last message must be the user's (or a tool's), got '{}'", out.back().role));
  return out;
}

std::vector<std::string> parse_stop(const json& body) {
  auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return {};
  std::vector<std::string> out;
  if (it->is_string()) {
    out.push_back(it->get<std::string>());
  } else if (it->is_array()) {
    for (auto& s : *it) {
      if (!s.is_string()) bad("stop", fmt::format("'stop' must hold strings, got {}", s.dump()));
      out.push_back(s.get<std::string>());
    }
  } else {
    bad("stop", fmt::format("'stop' must be a string or a list of strings, got {}", kind(*it)));
  }
  if (out.size() > 4) bad("stop", fmt::format("'stop' takes at most 4 strings, got {}", out.size()));
  for (auto& s : out)
    if (s.empty()) bad("stop", "'stop' strings must not be empty");
  return out;
}

void parse_response_format(const json& body, CompletionRequest& r) {
  auto it = body.find("response_format");
  if (it == body.end() || it->is_null()) return;
  if (!it->is_object()) bad("response_format", "'response_format' must be an object");
  r.response_format = get_string(*it, "type", "text");
  if (r.response_format == "json_schema") {
    auto js = it->find("json_schema");
    if (js == it->end() || !js->is_object())
      bad("response_format", "'response_format.json_schema' is required for type json_schema (an object)");
    auto schema = js->find("schema");
    if (schema == js->end() || !schema->is_object())
      bad("response_format", "'response_format.json_schema.schema' is required (a JSON Schema object)");
    r.schema = *schema;
  } else if (r.response_format != "text" && r.response_format != "json_object") {
    bad("response_format", fmt::format("'response_format.type' must be text, json_object or json_schema, got '{}'",
                                       r.response_format));
  }
}

void parse_tools(const json& body, CompletionRequest& r) {
  auto it = body.find("tools");
  if (it != body.end() && !it->is_null()) {
    if (!it->is_array()) bad("tools", "'tools' must be a list");
    for (size_t i = 0; i < it->size(); ++i) {
      const json& t = (*it)[i];
      const std::string p = fmt::format("tools[{}]", i);
      if (!t.is_object() || get_string(t, "type", "function") != "function" || !t.contains("function") ||
          !t["function"].is_object())
        bad(p, fmt::format("'{}' must be {{\"type\": \"function\", \"function\": {{...}}}}", p));
      const json& f = t["function"];
      if (get_string(f, "name").empty()) bad(p, fmt::format("'{}.function.name' is required", p));
      if (f.contains("parameters") && !f["parameters"].is_object())
        bad(p, fmt::format("'{}.function.parameters' must be a JSON Schema object", p));
      r.tools.push_back(f);
    }
  }
  auto tc = body.find("tool_choice");
  if (tc == body.end() || tc->is_null()) return;
  if (tc->is_string()) {
    r.tool_choice = tc->get<std::string>();
    if (r.tool_choice != "none" && r.tool_choice != "auto" && r.tool_choice != "required")
      bad("tool_choice", fmt::format("'tool_choice' must be none, auto, required or a function, got '{}'", r.tool_choice));
  } else if (tc->is_object() && tc->contains("function") && (*tc)["function"].is_object()) {
    r.tool_choice = get_string((*tc)["function"], "name");
  } else {
    bad("tool_choice", "'tool_choice' must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}");
  }
  if (r.tool_choice != "none" && r.tool_choice != "auto" && r.tool_choice != "required") {
    bool found = false;
    for (auto& f : r.tools) found = found || f["name"] == r.tool_choice;
    if (!found) bad("tool_choice", fmt::format("'tool_choice' names '{}', which is not among 'tools'", r.tool_choice));
  }
  if (r.tool_choice != "none" && r.tool_choice != "auto" && r.tools.empty())
    bad("tool_choice", "'tool_choice' asks for a tool call but 'tools' is empty");
}

json parse_body(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {  // the parser's message says where
    throw ApiError(400, fmt::format("the body is not valid JSON: {}", e.what()));
  }
  if (!j.is_object()) throw ApiError(400, fmt::format("the body must be a JSON object, got {}", kind(j)));
  return j;
}

void parse_extension(const json& body, CogumiExtension& x) {
  auto it = body.find("cogumi");
  if (it == body.end() || it->is_null()) return;
  if (!it->is_object()) bad("cogumi", "'cogumi' must be an object {mode, session, choice}");
  x.mode = get_string(*it, "mode");
  if (!x.mode.empty() && x.mode != "fast" && x.mode != "accurate")
    bad("cogumi.mode", fmt::format("'cogumi.mode' must be fast or accurate, got '{}'", x.mode));
  x.session = get_string(*it, "session");
  x.choice = get_string(*it, "choice");
}

}  // namespace

std::string wire(const json& j) { return json_text(j); }

json ApiError::body() const {
  return {{"error",
           {{"message", what()},
            {"type", type},
            {"param", param.empty() ? json() : json(param)},
            {"code", code.empty() ? json() : json(code)}}}};
}

const std::string& CompletionRequest::text() const { return chat ? messages.back().content : prompt; }

CompletionRequest parse_completion_request(const std::string& body_text, bool chat) {
  const json body = parse_body(body_text);
  CompletionRequest r;
  r.chat = chat;
  r.model = get_string(body, "model");
  if (chat) {
    r.messages = parse_messages(body);
  } else {
    auto p = body.find("prompt");
    if (p == body.end()) bad("prompt", "'prompt' is required");
    if (p->is_array() && p->size() == 1 && (*p)[0].is_string())
      r.prompt = (*p)[0].get<std::string>();
    else if (p->is_string())
      r.prompt = p->get<std::string>();
    else
      bad("prompt", "'prompt' must be a string (or a list of one string)");
    if (r.prompt.empty()) bad("prompt", "'prompt' must not be empty");
    r.echo = get_bool(body, "echo", false);
  }
  r.stream = get_bool(body, "stream", false);
  r.ignore_eos = get_bool(body, "ignore_eos", false);
  if (auto so = body.find("stream_options"); so != body.end() && so->is_object())
    r.include_usage = get_bool(*so, "include_usage", false);
  r.n = int(get_int(body, "n", 1, 16).value_or(1));
  auto mt = get_int(body, "max_completion_tokens", 1, 32768);
  if (!mt) mt = get_int(body, "max_tokens", 1, 32768);
  r.max_tokens = int(mt.value_or(0));
  if (auto t = get_number(body, "temperature", 0, 2)) r.temperature = float(*t);
  if (auto t = get_number(body, "top_p", 0, 1, true)) r.top_p = float(*t);
  if (auto s = get_int(body, "seed", INT64_MIN, INT64_MAX)) r.seed = uint32_t(uint64_t(*s));
  r.stop = parse_stop(body);
  if (chat) {
    if (get_bool(body, "logprobs", false)) r.logprobs = int(get_int(body, "top_logprobs", 0, 20).value_or(0));
    else if (body.contains("top_logprobs") && !body["top_logprobs"].is_null())
      bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
  } else if (auto lp = get_int(body, "logprobs", 0, 5)) {
    r.logprobs = int(*lp);
  }
  parse_response_format(body, r);
  if (chat) parse_tools(body, r);
  if (r.response_format != "text" && !r.tools.empty() && r.tool_choice != "none")
    bad("response_format", "'response_format' and 'tools' cannot both shape the answer; set tool_choice none");
  parse_extension(body, r.cogumi);
  return r;
}

EmbeddingRequest parse_embedding_request(const std::string& body_text) {
  const json body = parse_body(body_text);
  EmbeddingRequest r;
  r.model = get_string(body, "model");
  auto in = body.find("input");
  if (in == body.end()) bad("input", "'input' is required");
  if (in->is_string()) {
    r.input.push_back(in->get<std::string>());
  } else if (in->is_array() && !in->empty()) {
    for (auto& s : *in) {
      if (!s.is_string()) bad("input", "'input' must be a string or a list of strings (token arrays are not supported)");
      r.input.push_back(s.get<std::string>());
    }
  } else {
    bad("input", "'input' must be a string or a non-empty list of strings");
  }
  if (r.input.size() > 2048) bad("input", fmt::format("'input' holds {} texts; at most 2048", r.input.size()));
  for (auto& s : r.input)
    if (s.empty()) bad("input", "'input' texts must not be empty");
  r.encoding_format = get_string(body, "encoding_format", "float");
  if (r.encoding_format != "float" && r.encoding_format != "base64")
    bad("encoding_format", fmt::format("'encoding_format' must be float or base64, got '{}'", r.encoding_format));
  return r;
}

std::string grammar_for(const CompletionRequest& r) {
  if (r.response_format == "json_object") return json_object_grammar();
  if (r.response_format != "json_schema") return "";
  try {
    return json_schema_grammar(r.schema);
  } catch (const Error& e) {
    throw ApiError(400, fmt::format("'response_format.json_schema.schema' is not a schema the grammar converter takes: {}",
                                    e.what()),
                   "invalid_request_error", "response_format", "invalid_schema");
  }
}

std::string tool_call_grammar(const CompletionRequest& r) {
  if (r.tools.empty() || r.tool_choice == "none" || r.tool_choice == "auto") return "";
  json any = json::array();
  for (auto& f : r.tools) {
    if (r.tool_choice != "required" && f["name"] != r.tool_choice) continue;
    any.push_back({{"type", "object"},
                   {"properties", {{"name", {{"const", f["name"]}}}, {"arguments", f.value("parameters", json{{"type", "object"}})}}},
                   {"required", {"name", "arguments"}},
                   {"additionalProperties", false}});
  }
  // The call may follow a space (the tool-calling prompts end in "Call:"): json_schema_grammar allows one.
  try {
    return json_schema_grammar(any.size() == 1 ? any[0] : json{{"anyOf", any}});
  } catch (const Error& e) {
    throw ApiError(400, fmt::format("a function's 'parameters' is not a schema the grammar converter takes: {}", e.what()),
                   "invalid_request_error", "tools", "invalid_schema");
  }
}

json parse_tool_calls(const std::string& answer, const json& tools, const std::string& id_prefix) {
  json calls = json::array();
  auto j = extract_json(answer);
  if (!j) return calls;
  json list = j->is_array() ? *j : json::array({*j});
  for (auto& c : list) {
    const json& f = c.is_object() && c.contains("function") && c["function"].is_object() ? c["function"] : c;
    if (!f.is_object() || !f.contains("name") || !f["name"].is_string()) return json::array();
    bool known = false;
    for (auto& t : tools) known = known || t["name"] == f["name"];
    if (!known) return json::array();
    json args = f.contains("arguments") ? f["arguments"] : f.value("parameters", json::object());
    if (args.is_string()) args = json::parse(args.get<std::string>(), nullptr, false);
    if (!args.is_object()) return json::array();
    calls.push_back({{"id", fmt::format("{}_{}", id_prefix, calls.size())},
                     {"type", "function"},
                     {"function", {{"name", f["name"]}, {"arguments", args.dump()}}}});
  }
  return calls;
}

// The calls an answer holds: read in the model's own format by the runtime (a chat template with tools; with
// tool_choice auto, only those, as the stream read the text), or Cogumi's {"name", "arguments"} JSON (bfcl
// choices, and calls a grammar made: tool_choice required or named).
json answer_tool_calls(const CompletionRequest& q, const AskResponse& a, const std::string& id_prefix) {
  if (a.tools_parsed && a.tool_calls.empty() && q.tool_choice == "auto") return json::array();
  if (!a.tools_parsed || a.tool_calls.empty()) return parse_tool_calls(a.text, q.tools, id_prefix);
  json calls = json::array();
  for (const auto& c : a.tool_calls)
    calls.push_back({{"id", fmt::format("{}_{}", id_prefix, calls.size())},
                     {"type", "function"},
                     {"function", {{"name", c.name}, {"arguments", c.arguments.empty() ? "{}" : c.arguments}}}});
  return calls;
}

json decision_json(const AskResponse& r, const std::vector<std::string>& rc, const std::string& session) {
  json probs = json::object();
  for (size_t i = 0; i < r.route.probs.size() && i < rc.size(); ++i) probs[rc[i]] = r.route.probs[i];
  return {{"choice", r.choice},         {"probabilities", probs}, {"confidence", r.confidence},
          {"escalated", r.escalated},   {"escalated_by", r.escalated_by.empty() ? json() : json(r.escalated_by)},
          {"mode", r.mode},             {"overridden", r.overridden},
          {"votes", r.votes},           {"samples", r.samples},
          {"turn_id", r.turn_id ? json(r.turn_id) : json()},
          {"session", session.empty() ? json() : json(session)}};
}

json usage_json(const std::vector<AskResponse>& answers) {
  int p = answers.empty() ? 0 : answers[0].prompt_tokens, c = 0;
  for (auto& a : answers) c += a.gen_tokens;
  const int cached = answers.empty() ? 0 : answers[0].cached_tokens;
  return {{"prompt_tokens", p},
          {"completion_tokens", c},
          {"total_tokens", p + c},
          {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

namespace {

json logprobs_json(const CompletionRequest& q, const AskResponse& a) {
  if (q.logprobs < 0) return nullptr;
  if (q.chat) {
    json content = json::array();
    for (auto& t : a.logprobs) {
      json top = json::array();
      for (auto& [s, l] : t.top) top.push_back({{"token", s}, {"logprob", l}, {"bytes", json(std::vector<uint8_t>(s.begin(), s.end()))}});
      content.push_back({{"token", t.text},
                         {"logprob", t.logprob},
                         {"bytes", json(std::vector<uint8_t>(t.text.begin(), t.text.end()))},
                         {"top_logprobs", top}});
    }
    return {{"content", content}};
  }
  json tokens = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
  size_t off = q.echo ? q.prompt.size() : 0;
  for (auto& t : a.logprobs) {
    tokens.push_back(t.text);
    lps.push_back(t.logprob);
    json top = json::object();
    for (auto& [s, l] : t.top) top[s] = l;
    tops.push_back(top);
    offs.push_back(off);
    off += t.text.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offs}};
}

std::string finish_of(const AskResponse& a, bool has_calls) {
  if (has_calls) return "tool_calls";
  return a.finish_reason == "length" ? "length" : "stop";
}

}  // namespace

json completion_response(const CompletionRequest& q, const std::vector<AskResponse>& answers,
                         const ResponseContext& ctx) {
  json choices = json::array();
  for (size_t i = 0; i < answers.size(); ++i) {
    const AskResponse& a = answers[i];
    json c = {{"index", i}, {"logprobs", logprobs_json(q, a)}};
    if (q.chat) {
      json calls = ctx.tool_calling ? answer_tool_calls(q, a, fmt::format("call_{}_{}", ctx.id, i)) : json::array();
      // with calls, the text around them (the model's format may let it write some) or null
      const bool text_too = a.tools_parsed && !a.tool_calls.empty() && !a.text.empty();
      json msg = {{"role", "assistant"}, {"content", calls.empty() || text_too ? json(a.text) : json()}};
      if (!calls.empty()) msg["tool_calls"] = calls;
      c["message"] = msg;
      c["finish_reason"] = finish_of(a, !calls.empty());
    } else {
      c["text"] = q.echo ? q.prompt + a.text : a.text;
      c["finish_reason"] = finish_of(a, false);
    }
    choices.push_back(c);
  }
  return {{"id", ctx.id},
          {"object", q.chat ? "chat.completion" : "text_completion"},
          {"created", ctx.created},
          {"model", ctx.model},
          {"system_fingerprint", "cogumi"},
          {"choices", choices},
          {"usage", usage_json(answers)},
          {"cogumi", answers.empty() ? json() : decision_json(answers[0], ctx.router_choices, q.cogumi.session)}};
}

json stream_chunk(const CompletionRequest& q, const ResponseContext& ctx, size_t index, const json& delta,
                  const json& finish_reason) {
  json c = {{"index", index}, {"finish_reason", finish_reason}, {"logprobs", nullptr}};
  if (q.chat)
    c["delta"] = delta;
  else
    c["text"] = delta.value("content", "");
  return {{"id", ctx.id},
          {"object", q.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", ctx.created},
          {"model", ctx.model},
          {"system_fingerprint", "cogumi"},
          {"choices", json::array({c})}};
}

std::vector<json> stream_final_chunks(const CompletionRequest& q, const ResponseContext& ctx, size_t index,
                                      const AskResponse& a, const std::string& streamed) {
  std::vector<json> out;
  json calls = q.chat && ctx.tool_calling ? answer_tool_calls(q, a, fmt::format("call_{}_{}", ctx.id, index))
                                          : json::array();
  // The text not sent yet: all of it when nothing streamed (a tool-calling choice's answer without calls), else
  // the rest of what streamed; with calls, only text read around them in the model's own format.
  const bool rest = a.text.size() > streamed.size() && a.text.compare(0, streamed.size(), streamed) == 0;
  if (rest && (calls.empty() || a.tools_parsed))
    out.push_back(stream_chunk(q, ctx, index, {{"content", a.text.substr(streamed.size())}}, nullptr));
  for (size_t k = 0; k < calls.size(); ++k) {
    json head = calls[k];
    head["index"] = k;
    head["function"]["arguments"] = "";
    out.push_back(stream_chunk(q, ctx, index, {{"tool_calls", json::array({head})}}, nullptr));
    json args = {{"index", k}, {"function", {{"arguments", calls[k]["function"]["arguments"]}}}};
    out.push_back(stream_chunk(q, ctx, index, {{"tool_calls", json::array({args})}}, nullptr));
  }
  json last = stream_chunk(q, ctx, index, json::object(), finish_of(a, !calls.empty()));
  if (q.logprobs >= 0) last["choices"][0]["logprobs"] = logprobs_json(q, a);
  last["cogumi"] = decision_json(a, ctx.router_choices, q.cogumi.session);
  out.push_back(last);
  return out;
}

json embedding_response(const EmbeddingRequest& q, const std::vector<std::vector<float>>& vecs, int prompt_tokens) {
  json data = json::array();
  for (size_t i = 0; i < vecs.size(); ++i) {
    json emb;
    if (q.encoding_format == "base64") {  // little-endian float32 bytes, as OpenAI sends them
      const auto* b = reinterpret_cast<const unsigned char*>(vecs[i].data());
      const int n = int(vecs[i].size() * sizeof(float));
      std::string s(size_t(4 * ((n + 2) / 3)) + 1, '\0');
      s.resize(size_t(EVP_EncodeBlock(reinterpret_cast<unsigned char*>(s.data()), b, n)));
      emb = s;
    } else {
      emb = vecs[i];
    }
    data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", emb}});
  }
  return {{"object", "list"},
          {"data", data},
          {"model", q.model},
          {"usage", {{"prompt_tokens", prompt_tokens}, {"total_tokens", prompt_tokens}}}};
}

}  // namespace cogumi::serve
