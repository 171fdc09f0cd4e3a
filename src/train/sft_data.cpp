#include "train/sft_data.h"

#include <algorithm>

#include "core/error.h"
#include "core/io.h"

namespace cogumi {

std::vector<SftExample> load_sft(const std::filesystem::path& path, const Model& tok, const SftOptions& o,
                                 SftStats* stats) {
  SftStats st;
  std::vector<SftExample> out;
  const Token end = tok.info().eot >= 0 ? tok.info().eot : tok.info().eos;
  const bool can_chat = o.use_chat_template && tok.has_chat_template();
  read_jsonl(path, [&](const json& j, size_t line) {
    bool chat = can_chat;
    std::string at = fmt::format("{}:{}", path.string(), line);
    std::vector<ChatMessage> prompt_msgs;
    std::string prompt, response;
    if (j.contains("messages")) {
      const json& m = j["messages"];
      if (!m.is_array() || m.empty()) fail("{}: 'messages' must be a non-empty array", at);
      for (size_t i = 0; i < m.size(); ++i) {
        std::string role = get_string(m[i], "role", at + " messages[" + std::to_string(i) + "]");
        std::string content = get_string(m[i], "content", at + " messages[" + std::to_string(i) + "]");
        if (i + 1 == m.size()) {
          if (role != "assistant") fail("{}: the last message must be the assistant's (the target)", at);
          response = content;
        } else {
          prompt_msgs.push_back({role, content});
          prompt += content + "\n";
        }
      }
    } else if (j.contains("instruction")) {
      prompt = get_string(j, "instruction", at);
      if (j.contains("input") && j["input"].is_string() && !j["input"].get<std::string>().empty())
        prompt += "\n\n" + j["input"].get<std::string>();
      response = get_string(j, "output", at);
      prompt_msgs.push_back({"user", prompt});
    } else if (j.contains("prompt")) {
      prompt = get_string(j, "prompt", at);
      response = get_string(j, "completion", at);
      chat = false;  // completion data: the text exactly as given, as `cogumi eval` asks without --chat
    } else {
      fail("{}: expected 'instruction'/'output', 'messages', or 'prompt'/'completion'", at);
    }
    SftExample ex;
    ex.source = at;
    // Chat prompts tokenize as generation and eval tokenize them (Model::tokenize_chat): control
    // tokens only in the template's markup, so text in the data can't close a turn here either.
    ex.tokens = chat ? tok.tokenize_chat(prompt_msgs, true).tokens : tok.tokenize(prompt, true, false);
    ex.target.assign(ex.tokens.size(), o.train_on_inputs ? 1 : 0);
    if (!ex.target.empty()) ex.target[0] = 0;  // nothing predicts the first token
    std::vector<Token> resp = tok.tokenize(response, false, false);
    resp.push_back(end);
    for (Token t : resp) {
      ex.tokens.push_back(t);
      ex.target.push_back(1);
    }
    st.n_examples++;
    if (int(ex.tokens.size()) > o.max_len) {
      if (o.drop_long) {
        st.n_dropped++;
        return;
      }
      ex.tokens.resize(o.max_len);
      ex.target.resize(o.max_len);
      if (std::find(ex.target.begin(), ex.target.end(), uint8_t(1)) == ex.target.end()) {
        st.n_dropped++;  // the prompt alone fills the sequence: nothing left to learn from
        return;
      }
      st.n_truncated++;
    }
    for (uint8_t t : ex.target) st.n_target_tokens += t;
    out.push_back(std::move(ex));
  });
  if (stats) *stats = st;
  if (out.empty())
    fail("'{}' gives no training examples ({} read, {} dropped as longer than {} tokens)", path.string(),
         st.n_examples, st.n_dropped, o.max_len);
  return out;
}

}  // namespace cogumi
