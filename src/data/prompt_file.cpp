#include "data/prompt_file.h"

#include "core/error.h"

namespace cogumi {

std::string format_prompt(const Model& model, const PromptFormat& fmt, const std::string& user) {
  if (!fmt.chat) return user;
  std::vector<ChatMessage> msgs;
  if (!fmt.system.empty()) msgs.push_back({"system", fmt.system});
  msgs.push_back({"user", user});
  return model.apply_chat_template(msgs, true, fmt.chat_template);
}

GenRequest format_request(const Model& model, const PromptFormat& fmt, const std::string& user, GenRequest req) {
  if (!fmt.chat) {
    req.prompt = user;
    return req;
  }
  std::vector<ChatMessage> msgs;
  if (!fmt.system.empty()) msgs.push_back({"system", fmt.system});
  msgs.push_back({"user", user});
  return chat_request(model, msgs, fmt.chat_template, std::move(req));
}

GenRequest chat_request(const Model& model, const std::vector<ChatMessage>& msgs, const std::string& chat_template,
                        GenRequest req) {
  // Tokens from tokenize_chat: the template's markup is special, the messages are not.
  auto ct = model.tokenize_chat(msgs, true, chat_template);
  req.prompt = std::move(ct.text);
  req.prompt_tokens = std::move(ct.tokens);
  return req;
}

std::vector<PromptRecord> load_prompt_file(const std::filesystem::path& path, const Model& model,
                                           const PromptFormat& fmt, const GenRequest& defaults, size_t first_index) {
  std::vector<PromptRecord> out;
  read_jsonl(path, [&](const json& o, size_t line) {
    std::string where = fmt::format("{}:{}", path.string(), line);
    PromptRecord rec;
    rec.request = defaults;
    if (o.contains("messages")) {
      if (!o["messages"].is_array()) fail("{}: field 'messages' must be an array", where);
      std::vector<ChatMessage> msgs;
      for (const auto& m : o["messages"])
        msgs.push_back({get_string(m, "role", where + " messages[]"), get_string(m, "content", where + " messages[]")});
      rec.request = chat_request(model, msgs, fmt.chat_template, std::move(rec.request));
    } else {
      rec.request = format_request(model, fmt, get_string(o, "prompt", where), std::move(rec.request));
    }
    if (o.contains("adapter")) rec.request.adapter = get_string(o, "adapter", where);
    if (o.contains("max_tokens")) {
      if (!o["max_tokens"].is_number_integer() || o["max_tokens"].get<int64_t>() < 1 ||
          o["max_tokens"].get<int64_t>() > (int64_t(1) << 30))
        fail("{}: field 'max_tokens' must be an integer >= 1, got {}", where, o["max_tokens"].dump());
      rec.request.max_tokens = o["max_tokens"].get<int>();
    }
    rec.id = o.contains("id") ? o["id"] : json(first_index + out.size());
    out.push_back(std::move(rec));
  });
  return out;
}

}  // namespace cogumi
