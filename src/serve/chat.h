// cogumi/serve/chat: `cogumi chat`, a terminal conversation over the same Runtime that serves
// the API. Each line read is one request; each answer is printed with the decision behind it
// (choice, router probabilities, mode, confidence, escalation). Turns go to the system's session
// memory, so a complaining follow-up ("that's wrong") escalates the next answer, and /up /down
// rate the last answer as the web UI's thumbs do.
//
// Lines starting with '/' are commands:
//   /choice NAME | /choice auto   answer with this choice (manual override) / let the router pick
//   /mode fast|accurate|auto      the mode for the next requests (auto: the system's)
//   /up, /down                    thumbs on the last answer (needs session memory)
//   /session                      print the session id
//   /help, /quit
// A failing request (an unknown choice, ...) prints the error and the chat goes on.
#pragma once

#include <iosfwd>
#include <string>

namespace cogumi {

class Runtime;

struct ChatOptions {
  // "new": start a session in the system's memory (when it has one); "none": keep no memory;
  // anything else: the id of a session to continue.
  std::string session = "new";
  std::string mode;        // "" = the system's; fast | accurate
  std::string choice;      // "" = the router decides
  int max_tokens = 0;      // tokens per answer, 0 = the system's; 0..32768
  bool json = false;       // one JSON object per answer instead of text + decision line
  bool show_prompt = false;  // print "> " before reading each line (interactive terminals)
  // Throws Error naming the option on a value out of range.
  void validate() const;
};

struct ChatStats {
  int answered = 0;  // requests answered
  int failed = 0;    // requests or commands that printed an error
  std::string session;  // the session the turns went to ("" = none)
};

// Runs the conversation until end of input or /quit. Answers go to `out`, everything else
// (session id, errors, help) to `info`.
ChatStats run_chat(Runtime& rt, std::istream& in, std::ostream& out, std::ostream& info,
                   const ChatOptions& options);

}  // namespace cogumi
