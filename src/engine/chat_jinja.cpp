#include "engine/chat_jinja.h"

#include <chat.h>
#include <log.h>

#include <exception>
#include <mutex>
#include <string>
#include <vector>

#include "core/error.h"

namespace cogumi {

struct JinjaChat::Impl {
  common_chat_templates_ptr templates;
};

namespace {

struct Parser {
  common_chat_parser_params params;
};

// OpenAI's tool_calls list (JSON text) as the template engine's calls.
std::vector<common_chat_tool_call> calls_of(const std::string& text, size_t message) {
  std::vector<common_chat_tool_call> out;
  if (text.empty()) return out;
  const common_json list = common_json::parse_no_throw(text);
  if (list.is_discarded() || !list.is_array())
    fail("messages[{}].tool_calls must be a list of calls, got {}", message, text);
  for (size_t i = 0; i < list.size(); ++i) {
    const common_json& c = list.at(i);
    // (every type checked here: a JSON type error is no cogumi::Error, and must not leave as one)
    if (!c.is_object() || !c.contains("function") || !c.at("function").is_object() ||
        !c.at("function").contains("name") || !c.at("function").at("name").is_string())
      fail("messages[{}].tool_calls[{}] must be {{\"function\": {{\"name\": string, \"arguments\"}}}}", message, i);
    const common_json& f = c.at("function");
    common_chat_tool_call tc;
    tc.name = f.at("name").get<std::string>();
    if (f.contains("arguments") && !f.at("arguments").is_null())
      tc.arguments = f.at("arguments").is_string() ? f.at("arguments").get<std::string>() : f.at("arguments").dump();
    if (c.contains("id") && c.at("id").is_string()) tc.id = c.at("id").get<std::string>();
    out.push_back(std::move(tc));
  }
  return out;
}

// Cogumi's functions ({name, description, parameters}; JSON text) as the template engine's tools.
std::vector<common_chat_tool> tools_of(const std::string& text) {
  std::vector<common_chat_tool> out;
  if (text.empty()) return out;
  const common_json list = common_json::parse_no_throw(text);
  if (list.is_discarded() || !list.is_array()) fail("tools must be a list of functions, got {}", text);
  for (size_t i = 0; i < list.size(); ++i) {
    const common_json& f = list.at(i);
    if (!f.is_object() || !f.contains("name") || !f.at("name").is_string())
      fail("tools[{}] must be a function with a name", i);
    common_chat_tool t;
    t.name = f.at("name").get<std::string>();
    if (f.contains("description") && f.at("description").is_string())
      t.description = f.at("description").get<std::string>();
    t.parameters = f.contains("parameters") ? f.at("parameters").dump() : std::string(R"({"type":"object"})");
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<common_chat_msg> messages_of(const std::vector<ChatMessage>& messages) {
  std::vector<common_chat_msg> out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    common_chat_msg c;
    c.role = m.role;
    c.content = m.content;
    c.tool_calls = calls_of(m.tool_calls, i);
    c.tool_call_id = m.tool_call_id;
    c.tool_name = m.name;
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace

bool JinjaChat::available(const Model& model) { return model.has_chat_template(); }

JinjaChat::JinjaChat(const Model& model) : model_(model), impl_(std::make_unique<Impl>()) {
  if (!available(model)) fail("model '{}' has no chat template of its own", model.info().path);
  // llama.cpp's common library logs on its own (a parse it could not finish, with the answer's text): quiet
  // unless the engine is verbose
  static std::once_flag quiet;
  std::call_once(quiet, [] {
    if (!engine_verbose()) common_log_pause(common_log_main());
  });
  try {
    impl_->templates = common_chat_templates_init(model.raw(), "");
  } catch (const std::exception& e) {
    fail("the chat template of '{}' does not parse as Jinja: {}", model.info().path, e.what());
  }
}

JinjaChat::~JinjaChat() = default;

JinjaChat::Prompt JinjaChat::render(const std::vector<ChatMessage>& messages, const std::string& tools,
                                    const std::string& tool_choice) const {
  common_chat_templates_inputs in;
  in.use_jinja = true;
  in.add_generation_prompt = true;
  in.tools = tools_of(tools);
  if (tool_choice != "auto" && tool_choice != "required" && tool_choice != "none")
    fail("tool_choice must be auto, required or none, got '{}'", tool_choice);
  in.tool_choice = common_chat_tool_choice_parse_oaicompat(tool_choice);
  in.parallel_tool_calls = true;
  // Control-token text where contents can't keep it plain (tools, calls, names): refused, as a forged turn would be
  if (model_.has_control_text(tools)) fail("tools hold control-token text (such as '<|eot_id|>')");
  for (size_t i = 0; i < messages.size(); ++i)
    if (model_.has_control_text(messages[i].tool_calls + messages[i].tool_call_id + messages[i].name))
      fail("messages[{}]: its tool calls, tool_call_id or name hold control-token text (such as '<|eot_id|>')", i);
  Prompt out;
  common_chat_params params;
  bool first = true;  // tokenize_rendered renders the real conversation first, then marked copies
  auto apply = [&](const std::vector<ChatMessage>& msgs) {
    in.messages = messages_of(msgs);
    try {
      common_chat_params p = common_chat_templates_apply(impl_->templates.get(), in);
      if (first) params = p;
      first = false;
      return p.prompt;
    } catch (const std::exception& e) {
      fail("the chat template of '{}' failed on this conversation: {}", model_.info().path, e.what());
    }
  };
  out.chat = model_.tokenize_rendered(messages, apply);
  out.stops = params.additional_stops;
  out.format = common_chat_format_name(params.format);
  auto parser = std::make_shared<Parser>();
  parser->params = common_chat_parser_params(params);
  parser->params.parse_tool_calls = !in.tools.empty() && in.tool_choice != COMMON_CHAT_TOOL_CHOICE_NONE;
  if (!params.parser.empty()) parser->params.parser.load(params.parser);
  out.parser = parser;
  return out;
}

ParsedChatAnswer JinjaChat::parse(const Prompt& prompt, const std::string& answer, bool partial) const {
  ParsedChatAnswer out;
  out.content = answer;
  const auto* parser = static_cast<const Parser*>(prompt.parser.get());
  if (!parser) return out;
  try {
    const common_chat_msg msg = common_chat_parse(answer, partial, parser->params);
    out.content = msg.content;
    for (const auto& c : msg.tool_calls) out.tool_calls.push_back({c.name, c.arguments});
  } catch (const std::exception&) {
    // not the format's answer: all text
  }
  return out;
}

}  // namespace cogumi
