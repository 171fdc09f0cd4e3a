// The OpenAI wire format without a socket: what a request body turns into, which bodies are
// refused (status, param, message), the grammars structured output gets (checked against
// llama.cpp's own grammar parser through a real generation), tool calls read from an answer,
// and the response and stream shapes clients parse.
#include <gtest/gtest.h>

#include "engine/generate.h"
#include "engine/json_grammar.h"
#include "serve/openai_api.h"
#include "test_util.h"

namespace cogumi::serve {
namespace {

using json = nlohmann::json;

// The ApiError a body gets; fails the test when it gets none.
ApiError refusal(const json& body, bool chat = true) {
  try {
    parse_completion_request(body.dump(), chat);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << body.dump();
  return ApiError(0, "");
}

json chat_body(json extra = json::object()) {
  json b = {{"model", "nano"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  b.update(extra);
  return b;
}

TEST(OpenAiApi, ParsesAChatRequestWithEveryOption) {
  json body = chat_body({{"messages",
                          {{{"role", "system"}, {"content", "be brief"}},
                           {{"role", "user"}, {"content", "first"}},
                           {{"role", "assistant"}, {"content", "ok"}},
                           {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "sec"}}, {{"type", "text"}, {"text", "ond"}}}}}}},
                         {"n", 3},
                         {"max_tokens", 40},
                         {"temperature", 0.5},
                         {"top_p", 0.9},
                         {"seed", 7},
                         {"stop", "\n\n"},
                         {"logprobs", true},
                         {"top_logprobs", 2},
                         {"stream", true},
                         {"stream_options", {{"include_usage", true}}},
                         {"cogumi", {{"mode", "accurate"}, {"session", "abc"}, {"choice", "math"}}}});
  CompletionRequest r = parse_completion_request(body.dump(), true);
  EXPECT_EQ(r.model, "nano");
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.text(), "second");
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.n, 3);
  EXPECT_EQ(r.max_tokens, 40);
  EXPECT_FLOAT_EQ(*r.temperature, 0.5f);
  EXPECT_FLOAT_EQ(*r.top_p, 0.9f);
  EXPECT_EQ(*r.seed, 7u);
  EXPECT_EQ(r.stop, std::vector<std::string>{"\n\n"});
  EXPECT_EQ(r.logprobs, 2);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.cogumi.mode, "accurate");
  EXPECT_EQ(r.cogumi.session, "abc");
  EXPECT_EQ(r.cogumi.choice, "math");
  // max_completion_tokens is the newer name and wins.
  EXPECT_EQ(parse_completion_request(chat_body({{"max_completion_tokens", 9}, {"max_tokens", 40}}).dump(), true).max_tokens, 9);
}

TEST(OpenAiApi, RefusesBadBodiesNamingTheField) {
  struct Case {
    json body;
    std::string param, message_part;
  };
  const std::vector<Case> cases = {
      {chat_body({{"temperature", 2.5}}), "temperature", "'temperature' must be in [0, 2]"},
      {chat_body({{"top_p", 0}}), "top_p", "(0, 1]"},
      {chat_body({{"n", 0}}), "n", "'n' must be in [1, 16]"},
      {chat_body({{"max_tokens", 0}}), "max_tokens", "[1, 32768]"},
      {chat_body({{"max_tokens", "many"}}), "max_tokens", "must be an integer"},
      {chat_body({{"stop", {"a", "b", "c", "d", "e"}}}), "stop", "at most 4"},
      {chat_body({{"stop", 3}}), "stop", "a string or a list"},
      {chat_body({{"stream", "yes"}}), "stream", "true or false"},
      {chat_body({{"top_logprobs", 3}}), "top_logprobs", "needs 'logprobs': true"},
      {chat_body({{"messages", json::array()}}), "messages", "non-empty list"},
      {chat_body({{"messages", {{{"role", "wizard"}, {"content", "x"}}}}}), "messages[0].role", "got 'wizard'"},
      {chat_body({{"messages", {{{"role", "user"}, {"content", "x"}}, {{"role", "assistant"}, {"content", "y"}}}}}),
       "messages", "last message must be the user's"},
      {chat_body({{"messages", {{{"role", "user"}, {"content", {{{"type", "image_url"}}}}}}}}), "messages[0].content",
       "only {\"type\": \"text\""},
      {chat_body({{"response_format", {{"type", "yaml"}}}}), "response_format", "got 'yaml'"},
      {chat_body({{"response_format", {{"type", "json_schema"}}}}), "response_format", "json_schema' is required"},
      {chat_body({{"tools", {{{"type", "function"}, {"function", {{"description", "x"}}}}}}}), "tools[0]",
       "function.name' is required"},
      {chat_body({{"tool_choice", "required"}}), "tool_choice", "'tools' is empty"},
      {chat_body({{"tools", {{{"type", "function"}, {"function", {{"name", "f"}}}}}}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "g"}}}}}}),
       "tool_choice", "names 'g', which is not among 'tools'"},
      {chat_body({{"cogumi", {{"mode", "turbo"}}}}), "cogumi.mode", "fast or accurate"},
      {chat_body({{"cogumi", "fast"}}), "cogumi", "must be an object"},
  };
  for (const Case& c : cases) {
    ApiError e = refusal(c.body);
    EXPECT_EQ(e.status, 400) << c.body.dump();
    EXPECT_EQ(e.param, c.param) << c.body.dump();
    EXPECT_NE(std::string(e.what()).find(c.message_part), std::string::npos) << e.what();
    const json err = e.body()["error"];
    EXPECT_EQ(err["type"], "invalid_request_error");
    EXPECT_EQ(err["param"], c.param);
  }
  ApiError e = refusal(json::parse("{\"prompt\": 3}"), false);
  EXPECT_EQ(e.param, "prompt");
}

TEST(OpenAiApi, MalformedJsonSaysWhere) {
  try {
    parse_completion_request("{\"model\": \"nano\", \"messages\": [", true);
    FAIL() << "accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("column 32"), std::string::npos) << e.what();
    EXPECT_TRUE(e.body()["error"]["param"].is_null());
  }
  EXPECT_THROW(parse_completion_request("[1, 2]", true), ApiError);
  EXPECT_THROW(parse_embedding_request("{\"input\": [1, 2]}"), ApiError);
  EXPECT_THROW(parse_embedding_request("{\"input\": []}"), ApiError);
  EXPECT_EQ(parse_embedding_request("{\"input\": \"x\"}").input, std::vector<std::string>{"x"});
}

TEST(OpenAiApi, SchemaGrammarsParseInLlamaCppAndBadSchemasAreRefused) {
  CompletionRequest q = parse_completion_request(
      chat_body({{"response_format",
                  {{"type", "json_schema"},
                   {"json_schema",
                    {{"name", "x"},
                     {"schema",
                      {{"type", "object"},
                       {"properties", {{"n", {{"type", "integer"}}}, {"tags", {{"type", "array"}, {"items", {{"type", "string"}}}}}}},
                       {"required", {"n"}}}}}}}}})
          .dump(),
      true);
  const std::string g = grammar_for(q);
  EXPECT_NE(g.find("root ::="), std::string::npos) << g;
  EXPECT_NE(g.find("\"\\\"n\\\"\""), std::string::npos) << g;  // the property name as a literal
  EXPECT_FALSE(json_object_grammar().empty());
  // Between JSON tokens one optional space, not the converter's newline + 20 spaces (a small model spent its
  // budget there: tests/serve/openai/openai.test.mjs's forced tool call).
  for (const std::string& gr : {g, json_object_grammar()}) {
    EXPECT_NE(gr.find("\nspace ::= \" \"?\n"), std::string::npos) << gr;
    EXPECT_EQ(gr.find("\\n\"{1,2}"), std::string::npos) << gr;
  }

  q.schema = {{"type", "object"}, {"properties", {{"a", {{"$ref", "#/$defs/nowhere"}}}}}};
  try {
    grammar_for(q);
    FAIL() << "accepted an unresolvable $ref";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, "response_format");
    EXPECT_EQ(e.code, "invalid_schema");
    EXPECT_NE(std::string(e.what()).find("nowhere"), std::string::npos) << e.what();
  }

  // The grammar constrains a real generation: a random tiny model writes JSON that validates.
  engine_init();
  auto model = Model::load(test::tiny_model());
  Generator gen(model, {});
  GenRequest r;
  r.prompt = "hello";
  r.max_tokens = 200;
  r.grammar = json_schema_grammar({{"type", "object"},
                                   {"properties", {{"ok", {{"type", "boolean"}}}, {"k", {{"enum", {"a", "b"}}}}}},
                                   {"required", {"ok", "k"}},
                                   {"additionalProperties", false}});
  GenResult out = gen.generate({r})[0];
  ASSERT_EQ(out.finish, FinishReason::kStop) << out.text;
  json v = json::parse(out.text);
  EXPECT_TRUE(v["ok"].is_boolean()) << out.text;
  EXPECT_TRUE(v["k"] == "a" || v["k"] == "b") << out.text;
  // A required tool call: whatever the model, one call of an allowed function, valid arguments.
  CompletionRequest tq = parse_completion_request(
      chat_body({{"tools",
                  {{{"type", "function"},
                    {"function",
                     {{"name", "add"},
                      {"parameters",
                       {{"type", "object"},
                        {"properties", {{"a", {{"type", "integer"}}}, {"b", {{"type", "integer"}}}}},
                        {"required", {"a", "b"}}}}}}},
                   {{"type", "function"}, {"function", {{"name", "noop"}}}}}},
                 {"tool_choice", {{"type", "function"}, {"function", {{"name", "add"}}}}}})
          .dump(),
      true);
  EXPECT_EQ(tool_call_grammar(parse_completion_request(chat_body().dump(), true)), "");
  r.grammar = tool_call_grammar(tq);
  out = gen.generate({r})[0];
  json calls = parse_tool_calls(out.text, tq.tools, "c");
  ASSERT_EQ(calls.size(), 1u) << out.text;
  EXPECT_EQ(calls[0]["function"]["name"], "add");
  json args = json::parse(calls[0]["function"]["arguments"].get<std::string>());
  EXPECT_TRUE(args["a"].is_number_integer() && args["b"].is_number_integer()) << out.text;

  r.grammar = "root ::= (";
  EXPECT_NE(test::error_of([&] { gen.generate({r}); }).find("grammar does not parse"), std::string::npos);
}

TEST(OpenAiApi, ToolCallsAreReadFromAnswersInTheShapesModelsWrite) {
  const json tools = {{{"name", "get_weather"}, {"parameters", json::object()}}, {{"name", "add"}}};
  json calls = parse_tool_calls(R"( {"name": "get_weather", "arguments": {"city": "Paris"}})", tools, "c");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0]["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(calls[0]["function"]["arguments"].get<std::string>()), json({{"city", "Paris"}}));
  EXPECT_EQ(calls[0]["type"], "function");
  calls = parse_tool_calls(R"([{"name": "add", "parameters": {"a": 1}}, {"function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}])",
                           tools, "c");
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_NE(calls[0]["id"], calls[1]["id"]);
  EXPECT_EQ(json::parse(calls[1]["function"]["arguments"].get<std::string>())["city"], "Oslo");
  // Not a call of a known function: plain text.
  EXPECT_TRUE(parse_tool_calls(R"({"name": "rm_rf", "arguments": {}})", tools, "c").empty());
  EXPECT_TRUE(parse_tool_calls("It is sunny.", tools, "c").empty());
}

// An answer read in the model's own format (a chat template with tools) that held no call there: with tool_choice
// auto it is the text the stream sent, not also a call (a Qwen model writing bare JSON, not its <tool_call> tags);
// a grammar-made call (required) still comes out of Cogumi's JSON.
TEST(OpenAiApi, AnAnswerTheModelsFormatReadAsTextIsNotAlsoACall) {
  const json weather = {{"type", "function"}, {"function", {{"name", "get_weather"}}}};
  ResponseContext ctx;
  ctx.id = "chatcmpl-2";
  ctx.tool_calling = true;
  AskResponse a;
  a.text = R"({"name": "get_weather", "arguments": {"city": "Paris"}})";
  a.tools_parsed = true;
  CompletionRequest automatic = parse_completion_request(chat_body({{"tools", {weather}}}).dump(), true);
  json whole = completion_response(automatic, {a}, ctx);
  EXPECT_EQ(whole["choices"][0]["message"]["content"], a.text);
  EXPECT_FALSE(whole["choices"][0]["message"].contains("tool_calls"));
  auto chunks = stream_final_chunks(automatic, ctx, 0, a, a.text);  // all of it streamed as text
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0]["choices"][0]["finish_reason"], "stop");
  CompletionRequest required =
      parse_completion_request(chat_body({{"tools", {weather}}, {"tool_choice", "required"}}).dump(), true);
  whole = completion_response(required, {a}, ctx);
  EXPECT_EQ(whole["choices"][0]["message"]["tool_calls"].size(), 1u);
  EXPECT_EQ(whole["choices"][0]["finish_reason"], "tool_calls");
  // calls the format read, with the text around them
  a.text = "Let me look.";
  a.tool_calls = {{"get_weather", R"({"city": "Paris"})"}};
  whole = completion_response(automatic, {a}, ctx);
  EXPECT_EQ(whole["choices"][0]["message"]["content"], "Let me look.");
  EXPECT_EQ(whole["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], R"({"city": "Paris"})");
}

TEST(OpenAiApi, ToolTurnsKeepTheirCallsIdsAndNames) {
  const json call = {{"id", "call_1"}, {"type", "function"},
                     {"function", {{"name", "get_weather"}, {"arguments", "{\"city\": \"Paris\"}"}}}};
  CompletionRequest q = parse_completion_request(
      chat_body({{"messages", {{{"role", "user"}, {"content", "Weather?"}},
                               {{"role", "assistant"}, {"content", nullptr}, {"tool_calls", {call}}},
                               {{"role", "assistant"}, {"content", "x"}, {"tool_calls", nullptr}},
                               {{"role", "tool"}, {"tool_call_id", "call_1"}, {"name", "get_weather"},
                                {"content", "{\"celsius\": 21}"}}}}})
          .dump(),
      true);
  ASSERT_EQ(q.messages.size(), 4u);
  EXPECT_EQ(json::parse(q.messages[1].tool_calls), json::array({call}));
  EXPECT_EQ(q.messages[1].content, "");
  EXPECT_EQ(q.messages[2].tool_calls, "");  // null: no calls (some clients send it)
  EXPECT_EQ(q.messages[3].tool_call_id, "call_1");
  EXPECT_EQ(q.messages[3].name, "get_weather");
}

TEST(OpenAiApi, StreamedToolCallsCarryOneIndexEach) {
  CompletionRequest q = parse_completion_request(
      chat_body({{"tools", {{{"type", "function"}, {"function", {{"name", "add"}}}}}}}).dump(), true);
  ResponseContext ctx;
  ctx.id = "chatcmpl-1";
  ctx.model = "nano";
  ctx.tool_calling = true;
  AskResponse a;
  a.choice = "automation";
  a.text = R"([{"name": "add", "arguments": {"a": 1}}, {"name": "add", "arguments": {"a": 2}}])";
  auto chunks = stream_final_chunks(q, ctx, 0, a, "");
  ASSERT_EQ(chunks.size(), 5u);  // per call: head + arguments; then the finish
  std::map<int, std::string> args;
  for (size_t i = 0; i < 4; ++i) {
    const json& d = chunks[i]["choices"][0]["delta"]["tool_calls"][0];
    args[d["index"].get<int>()] += d["function"]["arguments"].get<std::string>();
  }
  EXPECT_EQ(json::parse(args[0])["a"], 1);
  EXPECT_EQ(json::parse(args[1])["a"], 2);
  EXPECT_EQ(chunks[4]["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_EQ(chunks[4]["cogumi"]["choice"], "automation");

  json whole = completion_response(q, {a}, ctx);
  EXPECT_TRUE(whole["choices"][0]["message"]["content"].is_null());
  EXPECT_EQ(whole["choices"][0]["message"]["tool_calls"].size(), 2u);
  ctx.tool_calling = false;  // the answering choice does not write calls: the text is the answer
  whole = completion_response(q, {a}, ctx);
  EXPECT_EQ(whole["choices"][0]["message"]["content"], a.text);
  EXPECT_EQ(whole["choices"][0]["finish_reason"], "stop");
}

TEST(OpenAiApi, ResponsesCarryTheDecisionUsageAndLogprobs) {
  CompletionRequest q = parse_completion_request(chat_body({{"logprobs", true}, {"top_logprobs", 1}}).dump(), true);
  AskResponse a;
  a.text = "ok";
  a.choice = "math";
  a.mode = "accurate";
  a.escalated = true;
  a.escalated_by = "router";
  a.confidence = 0.6;
  a.route.probs = {0.75, 0.25};
  a.prompt_tokens = 5;
  a.cached_tokens = 3;  // of them from the KV cache an earlier request left
  a.gen_tokens = 1;
  a.finish_reason = "length";
  a.logprobs = {{7, "ok", -0.5f, {{"ok", -0.5f}}}};
  ResponseContext ctx;
  ctx.id = "x";
  ctx.router_choices = {"math", "code"};
  json r = completion_response(q, {a, a}, ctx);
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["choices"].size(), 2u);
  EXPECT_EQ(r["choices"][1]["index"], 1);
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(r["usage"], json({{"prompt_tokens", 5},
                              {"completion_tokens", 2},
                              {"total_tokens", 7},
                              {"prompt_tokens_details", {{"cached_tokens", 3}}}}));
  EXPECT_EQ(r["cogumi"]["probabilities"], json({{"math", 0.75}, {"code", 0.25}}));
  EXPECT_EQ(r["cogumi"]["escalated_by"], "router");
  EXPECT_EQ(r["cogumi"]["mode"], "accurate");
  EXPECT_EQ(r["choices"][0]["logprobs"]["content"][0]["token"], "ok");
  EXPECT_EQ(r["choices"][0]["logprobs"]["content"][0]["top_logprobs"].size(), 1u);
}

}  // namespace
}  // namespace cogumi::serve
