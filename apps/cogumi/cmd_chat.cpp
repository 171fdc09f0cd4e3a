// cogumi chat: a terminal conversation over the runtime, one request per line, each answer
// with its decision (src/serve/chat.h).
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "core/error.h"
#include "engine/model.h"
#include "runtime/runtime.h"
#include "serve/chat.h"

namespace cogumi::cli {

void setup_chat(CLI::App& sub) {
  static std::string system = "models/nano-system.yaml", memory, model;
  static ChatOptions opts;
  auto* s = sub.add_option("-s,--system", system, "System file (YAML)")->capture_default_str();
  sub.add_option("-m,--model", model,
                 "Chat with a bare GGUF model instead of a system (its chat template; the session lives in a "
                 "temporary store unless --memory names one)")
      ->excludes(s);
  sub.add_option("--session", opts.session,
                 "'new' starts a session in the system's memory, 'none' keeps none, or the id "
                 "of a session to continue")
      ->capture_default_str();
  sub.add_option("--memory", memory, "Session store (SQLite) instead of the system file's");
  sub.add_option("--mode", opts.mode, "fast or accurate (default: the system's)")
      ->check(CLI::IsMember({"fast", "accurate"}));
  sub.add_option("--choice", opts.choice, "Skip the router: answer with this choice");
  sub.add_option("-n,--max-tokens", opts.max_tokens, "Tokens per answer (0 = the system's)")
      ->check(CLI::Range(0, 32768));
  sub.add_flag("--json", opts.json, "One JSON object per answer: the text and the decision");
  static bool no_prefix_cache = false;
  sub.add_flag("--no-prefix-cache", no_prefix_cache,
               "Decode every prompt whole (by default a turn reuses the cache the turns before it left)");
  sub.callback([&] {
    engine_set_verbose(globals().verbose);
    opts.validate();
    SystemConfig cfg = model.empty() ? SystemConfig::load(system) : SystemConfig::bare_model(model);
    if (!memory.empty()) cfg.memory = memory;
    std::filesystem::path scratch;  // a bare model's session store, for this chat only
    if (!model.empty() && memory.empty()) {
      std::string dir = (std::filesystem::temp_directory_path() / "cogumi-chat-XXXXXX").string();
      if (!mkdtemp(dir.data())) fail("chat: cannot make a temporary folder for the session: {}", std::strerror(errno));
      scratch = dir;
      cfg.memory = scratch / "sessions.db";
    }
    struct Cleanup {  // after the runtime below has closed the store
      std::filesystem::path dir;
      ~Cleanup() {
        std::error_code ec;
        if (!dir.empty()) std::filesystem::remove_all(dir, ec);
      }
    } cleanup{scratch};
    if (no_prefix_cache) cfg.prefix_cache = false;
    // One person chatting: as many slots as accurate mode samples at once, not a server's 16 (each slot holds
    // a context's KV: ~512 MiB for an 8B Llama at 4,096 tokens).
    if (!model.empty()) cfg.parallel = cfg.samples;
    Runtime rt(cfg);
    if (!model.empty() && !rt.model()->has_chat_template())
      std::cerr << "note: " << model << " has no chat template: each line is asked as plain text, without the "
                << "conversation before it\n";
    opts.show_prompt = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    const ChatStats st = run_chat(rt, std::cin, std::cout, std::cerr, opts);
    std::cerr << st.answered << " answered, " << st.failed << " failed\n";
  });
}

}  // namespace cogumi::cli
