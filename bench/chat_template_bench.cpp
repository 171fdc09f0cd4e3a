// What a chat prompt costs the server before any decoding: the model's template rendered and tokenized by
// llama.cpp's builtin templates (llama_chat_apply_template, the peer) and by its Jinja engine (engine/chat_jinja.h:
// what a request with tools takes), and the answer read back in the model's tool format, whole and as a stream
// reads it (the answer so far, after each of its pieces). The Jinja rows run twice: with the template's analysis
// made once per template (patch 0021) and made on every call as unpatched llama.cpp does. Prints a Markdown table,
// median and p90 of REPS runs.
//   cogumi-bench-chat-template MODEL.gguf [TURNS] [REPS]
// (a GGUF whose template both engines know: llama.cpp's models/templates/meta-llama-Llama-3.1-8B-Instruct.jinja
// through `cogumi model init --chat-template`, bench/chat_template_bench.sh)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "engine/chat_jinja.h"
#include "engine/model.h"

namespace {

using Clock = std::chrono::steady_clock;

const char* kTools =
    R"([{"name": "get_weather", "description": "Current weather for a city",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}},
        {"name": "set_timer", "description": "Start a timer",
         "parameters": {"type": "object", "properties": {"minutes": {"type": "integer"}}, "required": ["minutes"]}}])";

void row(const char* what, int reps, const std::function<void()>& fn) {
  std::vector<double> us;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    fn();
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  std::sort(us.begin(), us.end());
  std::printf("| %s | %d | %.0f | %.0f |\n", what, reps, us[us.size() / 2], us[size_t(0.9 * double(us.size()))]);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.gguf [TURNS (1..200)] [REPS (1..100000)]\n", argv[0]);
    return 2;
  }
  const int turns = argc > 2 ? std::atoi(argv[2]) : 8, reps = argc > 3 ? std::atoi(argv[3]) : 200;
  if (turns < 1 || turns > 200 || reps < 1 || reps > 100000) {
    std::fprintf(stderr, "TURNS must be 1..200 and REPS 1..100000, got %d and %d\n", turns, reps);
    return 2;
  }
  try {
    cogumi::engine_init();
    auto model = cogumi::Model::load(argv[1]);
    cogumi::JinjaChat chat(*model);
    std::vector<cogumi::ChatMessage> msgs;
    for (int t = 0; t < turns; ++t) {
      msgs.push_back({"user", "Question " + std::to_string(t) + ": what is the weather in Paris tomorrow morning?",
                      "", "", ""});
      msgs.push_back({"assistant", "Answer " + std::to_string(t) + ": sunny, 21 degrees, a light wind.", "", "", ""});
    }
    msgs.push_back({"user", "And in Oslo?", "", "", ""});
    const auto prompt = chat.render(msgs, kTools, "auto");
    std::printf("%s, %d earlier exchanges, %zu prompt tokens with the tools\n\n", argv[1], turns,
                prompt.chat.tokens.size());
    std::printf("| step | runs | median us | p90 us |\n|---|---:|---:|---:|\n");
    row("builtin template (llama_chat_apply_template), tokenized", reps, [&] { (void)model->tokenize_chat(msgs); });
    // The template's analysis made once (patch 0021, the default) and, as llama.cpp does unpatched, on every call
    // (COGUMI_TEMPLATE_ANALYSIS_CACHE=0, read by the patched library on each call)
    for (const bool cached : {false, true}) {
      setenv("COGUMI_TEMPLATE_ANALYSIS_CACHE", cached ? "1" : "0", 1);
      const std::string how = cached ? ", analysis kept (patch 0021)" : ", analyzed every call (unpatched)";
      row(("Jinja template, no tools, tokenized" + how).c_str(), reps, [&] { (void)chat.render(msgs, "", "auto"); });
      row(("Jinja template, 2 tools, tokenized" + how).c_str(), reps,
          [&] { (void)chat.render(msgs, kTools, "auto"); });
    }
    const std::string call = R"({"name": "get_weather", "parameters": {"city": "Oslo", "unit": "celsius"}})";
    row("a call read back (whole answer)", reps, [&] { (void)chat.parse(prompt, call); });
    const std::string text = "It will be sunny in Oslo tomorrow, around 14 degrees, with a light wind from the west.";
    const auto pieces = model->tokenize(text, false, false);
    row("a 20-token text answer read as it streams (every piece)", std::max(1, reps / 10), [&] {
      std::string so_far;
      for (auto t : pieces) {
        so_far += model->token_to_piece(t);
        (void)chat.parse(prompt, so_far, true);
      }
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
