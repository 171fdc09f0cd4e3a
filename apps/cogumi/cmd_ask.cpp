// cogumi ask: one request through the modular runtime, printing the answer and the decision.
#include <fmt/format.h>

#include "commands.h"
#include "core/error.h"
#include "core/io.h"
#include "engine/model.h"
#include "runtime/memory.h"
#include "runtime/runtime.h"

namespace cogumi::cli {

void setup_ask(CLI::App& sub) {
  static std::string system = "models/nano-system.yaml", tools_file, mode;
  static std::vector<std::string> prompts;
  static AskRequest req;
  static bool as_json = false;
  static int max_tokens = 0;
  sub.add_option("-s,--system", system, "System file (YAML)")->capture_default_str();
  sub.add_option("-p,--prompt", prompts, "A request (repeat for several: they run as one batch)")
      ->required();
  sub.add_option("--choice", req.choice,
                 "Skip the router: answer with this choice (the base or a modifier)");
  sub.add_option("--mode", mode, "fast or accurate (default: the system's)")
      ->check(CLI::IsMember({"fast", "accurate"}));
  sub.add_option("--tools", tools_file, "JSON file with the functions a tool-call choice may call");
  sub.add_option("-n,--max-tokens", max_tokens, "Tokens per answer (0 = the system's)")
      ->check(CLI::Range(0, 32768));
  sub.add_flag("--json", as_json, "One JSON object per request: the answer and the decision");
  static std::string session;
  sub.add_option("--session", session,
                 "Continue a session of the system's memory ('new' starts one; its id is printed)");
  sub.callback([&] {
    engine_set_verbose(globals().verbose);
    Runtime rt(SystemConfig::load(system));
    req.mode = mode;
    req.max_tokens = max_tokens;
    if (!tools_file.empty()) {
      try {
        req.tools = json::parse(read_file(tools_file));
      } catch (const json::exception& e) {
        throw cogumi::Error(fmt::format("--tools '{}': not JSON: {}", tools_file, e.what()));
      }
    }
    if (session == "new") {
      session = rt.memory().create_session();
      fmt::print(stderr, "session {}\n", session);
    }
    req.session = session;
    std::vector<AskRequest> reqs;
    for (auto& p : prompts) {
      AskRequest r = req;
      r.text = p;
      reqs.push_back(std::move(r));
    }
    const std::vector<std::string> rc =
        rt.router() ? rt.router()->choices() : std::vector<std::string>{};
    for (const AskResponse& r : rt.ask(reqs)) {
      if (as_json) {
        fmt::print("{}\n", json_text(r.to_json(rc)));
        continue;
      }
      std::string probs;
      for (size_t i = 0; i < r.route.probs.size() && i < rc.size(); ++i)
        probs += fmt::format("{}{} {:.2f}", probs.empty() ? "" : ", ", rc[i], r.route.probs[i]);
      fmt::print("{}\n", r.text);
      fmt::print(
          "-- choice {}{}{} | mode {}{} | confidence {:.2f}{}{} | {} + {} tokens, {:.2f} s{}\n",
          r.choice, r.overridden ? " (override)" : "", probs.empty() ? "" : " [" + probs + "]",
          r.mode, r.escalated ? " (escalated by " + r.escalated_by + ")" : "", r.confidence,
          r.mode == "accurate" ? fmt::format(" ({}/{} votes)", r.votes, r.samples) : "",
          r.verifier.empty()            ? ""
          : r.verifier == "agreement" ? (r.verified ? " | a majority agrees" : " | no majority")
                                      : fmt::format(" | {} {} ({}/{} samples passed)", r.verifier,
                                                    r.verified ? "passed" : "failed", r.verify_passed, r.samples),
          r.prompt_tokens, r.gen_tokens, r.seconds,
          r.turn_id ? fmt::format(" | turn {}", r.turn_id) : "");
    }
  });
}

}  // namespace cogumi::cli
