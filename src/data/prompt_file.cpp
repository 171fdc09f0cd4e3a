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
      rec.request.prompt = model.apply_chat_template(msgs, true, fmt.chat_template);
    } else {
      rec.request.prompt = format_prompt(model, fmt, get_string(o, "prompt", where));
    }
    if (o.contains("adapter")) rec.request.adapter = get_string(o, "adapter", where);
    if (o.contains("max_tokens")) {
      if (!o["max_tokens"].is_number_integer()) fail("{}: field 'max_tokens' must be an integer", where);
      rec.request.max_tokens = o["max_tokens"].get<int>();
    }
    rec.id = o.contains("id") ? o["id"] : json(first_index + out.size());
    out.push_back(std::move(rec));
  });
  return out;
}

}  // namespace cogumi
