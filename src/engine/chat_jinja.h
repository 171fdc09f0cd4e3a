#pragma once
// A chat model's own template (the Jinja text in its GGUF), rendered by llama.cpp's Jinja engine
// (common/chat, what `llama-server --jinja` uses): the request's tools go into the prompt in the
// form the model was trained on (Llama 3.1's "Given the following functions...", Qwen's <tools>,
// Mistral's [AVAILABLE_TOOLS], ...), tool results and earlier calls keep their roles, and the
// model's answer is parsed back into text and tool calls in that model's format.

#include <memory>
#include <string>
#include <vector>

#include "engine/model.h"

namespace cogumi {

struct ToolCallOut {
  std::string name;
  std::string arguments;  // a JSON object, as text
};

struct ParsedChatAnswer {
  std::string content;  // the answer's text outside its tool calls
  std::vector<ToolCallOut> tool_calls;
};

class JinjaChat {
 public:
  // Whether `model` has a template of its own (none: llama.cpp would fall back to ChatML).
  static bool available(const Model& model);
  // Parses the model's template. Throws Error naming the model when it does not parse.
  explicit JinjaChat(const Model& model);
  ~JinjaChat();
  JinjaChat(const JinjaChat&) = delete;
  JinjaChat& operator=(const JinjaChat&) = delete;

  struct Prompt {
    Model::ChatTokens chat;          // the prompt, contents kept as plain text (Model::tokenize_rendered)
    std::vector<std::string> stops;  // stop strings the format adds
    std::string format;              // the tool-call format's name
    std::shared_ptr<const void> parser;  // what parse() reads
  };
  // `tools`: OpenAI's `tools` list as JSON text ("" or "[]": none). `tool_choice`: auto, required or none.
  // Throws Error for messages or tools the template engine rejects.
  Prompt render(const std::vector<ChatMessage>& messages, const std::string& tools,
                const std::string& tool_choice) const;
  // The answer in the prompt's format: text and tool calls. An answer the format's parser does not
  // take is all text. `partial`: the answer so far, while it streams (a call being written is not text).
  ParsedChatAnswer parse(const Prompt& prompt, const std::string& answer, bool partial = false) const;

 private:
  const Model& model_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cogumi
