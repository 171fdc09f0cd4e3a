// cogumi/data: prompt files for batched generation. JSONL, one object per line, with
// "prompt" (text) or "messages" (chat), and optionally "id", "adapter", "max_tokens".
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "core/io.h"
#include "engine/generate.h"

namespace cogumi {

struct PromptFormat {
  bool chat = false;           // wrap plain prompts as a user message with the chat template
  std::string system;          // system message when chatting
  std::string chat_template;   // overrides the model's template
};

struct PromptRecord {
  json id;                     // the line's "id", else its 0-based index among all prompts
  GenRequest request;
};

// Formats one user text as the format asks (plain, or through the chat template).
std::string format_prompt(const Model& model, const PromptFormat& fmt, const std::string& user);
// `req` asking for `user` as the format asks: plain text, or the chat template's text and its
// tokens, special tokens parsed in the template's markup only (Model::tokenize_chat).
GenRequest format_request(const Model& model, const PromptFormat& fmt, const std::string& user, GenRequest req);
GenRequest chat_request(const Model& model, const std::vector<ChatMessage>& msgs, const std::string& chat_template,
                        GenRequest req);

// Reads a prompt file; `defaults` supplies sampling and limits. Errors name file:line and field.
// `first_index` numbers lines without an "id".
std::vector<PromptRecord> load_prompt_file(const std::filesystem::path& path, const Model& model,
                                           const PromptFormat& fmt, const GenRequest& defaults, size_t first_index = 0);

}  // namespace cogumi
