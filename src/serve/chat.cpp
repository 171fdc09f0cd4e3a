#include "serve/chat.h"

#include <fmt/format.h>

#include <istream>
#include <ostream>

#include "core/error.h"
#include "core/io.h"
#include "runtime/memory.h"
#include "runtime/runtime.h"

namespace cogumi {
namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// "-- choice math [math 0.91, code 0.05, ...] | mode fast | confidence 0.91 | 12 + 30 tokens".
std::string decision_line(const AskResponse& r, const std::vector<std::string>& router_choices) {
  std::string probs;
  for (size_t i = 0; i < r.route.probs.size() && i < router_choices.size(); ++i)
    probs += fmt::format("{}{} {:.2f}", probs.empty() ? "" : ", ", router_choices[i],
                         r.route.probs[i]);
  std::string esc;
  if (r.escalated)
    esc = r.escalated_by == "detector"
              ? fmt::format(" | escalated by detector (p {:.2f})", r.escalation_probability)
              : " | escalated by " + r.escalated_by;
  // the prompt's tokens taken from the cache an earlier turn left (SystemConfig::keep_cache)
  const std::string cached = r.cached_tokens > 0 ? fmt::format(" ({} cached)", r.cached_tokens) : "";
  return fmt::format("-- choice {}{}{} | mode {} | confidence {:.2f}{}{} | {}{} + {} tokens, {:.2f} s",
                     r.choice, r.overridden ? " (override)" : "",
                     probs.empty() ? "" : " [" + probs + "]", r.mode, r.confidence,
                     r.mode == "accurate" ? fmt::format(" ({}/{} votes)", r.votes, r.samples) : "",
                     esc, r.prompt_tokens, cached, r.gen_tokens, r.seconds);
}

struct ChatState {
  Runtime& rt;
  std::ostream& out;
  std::ostream& info;
  ChatOptions opts;
  ChatStats stats;
  int64_t last_turn = 0;
};

const char* kHelp =
    "commands: /choice NAME|auto, /mode fast|accurate|auto, /up, /down, /session, /help, /quit\n";

// Runs one '/' command; returns false for /quit.
bool command(ChatState& st, const std::string& line) {
  const size_t sp = line.find(' ');
  const std::string cmd = line.substr(0, sp);
  const std::string arg = sp == std::string::npos ? "" : trim(line.substr(sp + 1));
  auto error = [&](const std::string& msg) {
    st.info << "error: " << msg << "\n";
    ++st.stats.failed;
  };
  if (cmd == "/quit" || cmd == "/exit") return false;
  if (cmd == "/help") {
    st.info << kHelp;
  } else if (cmd == "/session") {
    st.info << "session " << (st.stats.session.empty() ? "(none)" : st.stats.session) << "\n";
  } else if (cmd == "/choice") {
    if (arg.empty()) return error("/choice needs a choice name or 'auto'"), true;
    if (arg != "auto" && !st.rt.config().has_choice(arg)) {
      std::string names;
      for (const auto& c : st.rt.config().choices) names += (names.empty() ? "" : ", ") + c.name;
      return error(fmt::format("/choice: unknown choice '{}' (the system has: {})", arg, names)),
             true;
    }
    st.opts.choice = arg == "auto" ? "" : arg;
    st.info << "choice " << (arg == "auto" ? "chosen by the router" : arg) << "\n";
  } else if (cmd == "/mode") {
    if (arg != "fast" && arg != "accurate" && arg != "auto")
      return error("/mode takes fast, accurate or auto (got '" + arg + "')"), true;
    st.opts.mode = arg == "auto" ? "" : arg;
    st.info << "mode " << (arg == "auto" ? "the system's" : arg) << "\n";
  } else if (cmd == "/up" || cmd == "/down") {
    if (st.stats.session.empty()) return error(cmd + ": no session memory to record it in"), true;
    if (!st.last_turn) return error(cmd + ": no answer to rate yet"), true;
    st.rt.memory().record_feedback(st.last_turn, cmd == "/up" ? 1 : -1);
    st.info << "feedback " << (cmd == "/up" ? "up" : "down") << " on turn " << st.last_turn << "\n";
  } else {
    error("unknown command '" + cmd + "' (/help lists them)");
  }
  return true;
}

void answer(ChatState& st, const std::string& text) {
  AskRequest q;
  q.text = text;
  q.choice = st.opts.choice;
  q.mode = st.opts.mode;
  q.max_tokens = st.opts.max_tokens;
  q.session = st.stats.session;
  const std::vector<std::string> rc =
      st.rt.router() ? st.rt.router()->choices() : std::vector<std::string>{};
  try {
    const AskResponse r = st.rt.ask({q}).at(0);
    st.last_turn = r.turn_id;
    ++st.stats.answered;
    if (st.opts.json)
      st.out << json_text(r.to_json(rc)) << "\n";
    else
      st.out << r.text << "\n" << decision_line(r, rc) << "\n";
    st.out.flush();
  } catch (const Error& e) {
    st.info << "error: " << e.what() << "\n";
    ++st.stats.failed;
  }
}

}  // namespace

void ChatOptions::validate() const {
  if (max_tokens < 0 || max_tokens > 32768)
    fail("chat: --max-tokens must be in 0..32768 (got {})", max_tokens);
  if (!mode.empty() && mode != "fast" && mode != "accurate")
    fail("chat: --mode must be fast or accurate (got '{}')", mode);
  if (session.empty()) fail("chat: --session must be 'new', 'none' or a session id");
}

ChatStats run_chat(Runtime& rt, std::istream& in, std::ostream& out, std::ostream& info,
                   const ChatOptions& options) {
  options.validate();
  ChatState st{rt, out, info, options, {}, 0};
  if (!st.opts.choice.empty()) rt.config().choice(st.opts.choice);  // throws naming unknown ones
  if (options.session == "new") {
    if (!rt.config().memory.empty()) st.stats.session = rt.memory().create_session({{"via", "chat"}});
  } else if (options.session != "none") {
    if (!rt.memory().session(options.session))
      fail("chat: --session '{}': no such session in {}", options.session,
           rt.memory().path().string());
    st.stats.session = options.session;
  }
  info << "session " << (st.stats.session.empty() ? "(none: the system has no memory)" : st.stats.session)
       << "\n";
  std::string line;
  while (true) {
    if (st.opts.show_prompt) out << "> " << std::flush;
    if (!std::getline(in, line)) break;
    line = trim(line);
    if (line.empty()) continue;
    if (line[0] == '/') {
      if (!command(st, line)) break;
      continue;
    }
    answer(st, line);
  }
  return st.stats;
}

}  // namespace cogumi
