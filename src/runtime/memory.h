// cogumi/runtime: session memory. One SQLite file (WAL mode, Debian's libsqlite3) holds, per
// session, every turn with its routing decision (choice, probabilities, confidence, mode,
// escalation) and the users' feedback on turns. `cogumi ask`/`chat`/`serve` append turns and
// read the last N back into the next prompt; the web UI's thumbs record feedback; `cogumi router
// adapt` reads (confidence, choice, escalated, thumbs) rows to refit its thresholds.
//
// Durability: each append is one transaction. In WAL mode a commit has written its frames to the
// WAL file before it returns, so a committed turn survives kill -9 of the process whatever the
// synchronous setting; `Durability::power_loss` adds an fsync per commit (synchronous=FULL) for
// the machine crashing too (see MemoryOptions).
//
// Concurrency: SQLite allows one writer at a time per file, readers never wait (WAL snapshots).
// The store keeps a pool of connections, one per thread in flight, so sessions on many threads
// only queue for the few microseconds of each commit; a busy file waits up to busy_timeout_ms
// and only then surfaces as an Error. Writers from several processes share the file the same way.
//
// Thread safety: every method may be called from many threads at once.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cogumi {

enum class Durability {
  process_crash,  // synchronous=NORMAL: commits survive kill -9; power loss may drop the last few
  power_loss,     // synchronous=FULL: also fsyncs the WAL at every commit (~ms each on disk)
};

struct MemoryOptions {
  Durability durability = Durability::process_crash;  // see the enum; default: the cheap one
  int busy_timeout_ms = 10000;  // how long a call waits for another writer before it throws (>= 0)
  size_t max_idle_connections = 16;  // pooled connections kept open between calls (>= 1)
  // Milliseconds since the epoch for created_at fields; injectable so tests are deterministic.
  std::function<int64_t()> now_ms;  // empty: the system clock

  // Throws Error naming the option on a value out of range.
  void validate() const;
};

// One turn of a conversation. The routing fields are empty for turns nothing routed (user,
// system, tool turns).
struct Turn {
  int64_t id = 0;  // set by the store: increasing with commit order across all sessions
  std::string session;
  std::string role;     // "system", "user", "assistant" or "tool"
  std::string content;
  std::string choice;   // the modifier the router picked ("" = none); also in decision
  nlohmann::json decision;  // the full routing decision: {choice, probabilities, ...}; null if none
  std::optional<double> confidence;  // of the answer as the runtime judged it
  std::string mode;     // "fast", "accurate", ... ("" = none)
  bool escalated = false;  // the runtime escalated this turn (bigger model, voting, critique)
  int64_t created_ms = 0;  // set by the store
};

struct SessionInfo {
  std::string id;
  nlohmann::json metadata;  // whatever create_session was given (an object)
  int64_t created_ms = 0;
  int64_t updated_ms = 0;  // the last append, or created_ms
  int64_t n_turns = 0;
};

// A feedback row joined with the turn it rates: what the router's threshold refit reads.
struct FeedbackRow {
  int64_t id = 0;  // increasing: pass the last one seen as FeedbackQuery::after_id to page on
  int64_t turn_id = 0;
  std::string session;
  int thumbs = 0;  // +1 or -1
  std::string note;
  int64_t created_ms = 0;
  // From the turn:
  std::string choice;
  std::optional<double> confidence;
  std::string mode;
  bool escalated = false;
};

struct FeedbackQuery {
  int64_t after_id = 0;  // rows with id > after_id
  size_t limit = 0;      // 0: all
  // A user can change their mind: with true, only each turn's latest rating is returned.
  bool latest_per_turn = true;
  std::string session;  // only this session's turns ("" = every session)
};

class SessionStore {
 public:
  // Opens or creates the store at `path` (its directory must exist), switches it to WAL and
  // migrates an older schema to the current one. Throws Error naming the path when the file is
  // not a SQLite database, is newer than this build knows, or cannot be opened.
  static SessionStore open(const std::filesystem::path& path, const MemoryOptions& options = {});
  SessionStore(SessionStore&&) noexcept;
  SessionStore& operator=(SessionStore&&) noexcept;
  ~SessionStore();

  // A new session with a random 128-bit id; metadata must be a JSON object (or null).
  std::string create_session(const nlohmann::json& metadata = nlohmann::json::object());
  std::optional<SessionInfo> session(const std::string& id);
  // Most recently active first; limit 0: all.
  std::vector<SessionInfo> sessions(size_t limit = 0);

  // Appends one turn (one transaction) and returns its id. Throws Error on an unknown session
  // or a role outside system/user/assistant/tool.
  int64_t append_turn(const std::string& session, const Turn& turn);
  // The session's last n turns, oldest first (ready to become the next prompt's messages).
  std::vector<Turn> last_turns(const std::string& session, size_t n);
  // One turn by id, if it exists.
  std::optional<Turn> turn(int64_t id);

  // Records a thumbs up (+1) or down (-1) on a turn, with an optional note; returns the row id.
  int64_t record_feedback(int64_t turn_id, int thumbs, const std::string& note = "");
  std::vector<FeedbackRow> feedback(const FeedbackQuery& query = {});

  const std::filesystem::path& path() const;

  struct Impl;

 private:
  explicit SessionStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The schema version this build writes (PRAGMA user_version).
int memory_schema_version();

// Chat messages ([{role, content}], oldest first) for a prompt, from last_turns().
nlohmann::json turns_to_messages(const std::vector<Turn>& turns);

}  // namespace cogumi
