// Session memory on SQLite: connection pool, schema migrations, the store's queries.
#include "runtime/memory.h"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <mutex>
#include <random>

#include "core/error.h"
#include "core/io.h"
#include "core/sqlite_util.h"

namespace cogumi {

using nlohmann::json;

namespace {

// The schema as a list of steps; PRAGMA user_version is the last step applied (0: a new file).
// A file is never rewritten in place by hand: a change is a new step appended here. The routing
// fields are a step of their own although no version-1 file was ever released, so that every new
// file goes through an ALTER TABLE migration and the path older files take is always exercised.
struct Migration {
  int version;
  const char* what;
  const char* sql;
};

constexpr std::array kMigrations{
    Migration{1, "sessions and turns", R"sql(
CREATE TABLE sessions(
  id TEXT PRIMARY KEY,
  metadata TEXT NOT NULL DEFAULT '{}',
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  n_turns INTEGER NOT NULL DEFAULT 0);
CREATE TABLE turns(
  id INTEGER PRIMARY KEY,
  session_id TEXT NOT NULL REFERENCES sessions(id),
  role TEXT NOT NULL,
  content TEXT NOT NULL,
  created_ms INTEGER NOT NULL);
CREATE INDEX turns_by_session ON turns(session_id, id);
)sql"},
    Migration{2, "routing decisions and feedback", R"sql(
ALTER TABLE turns ADD COLUMN choice TEXT NOT NULL DEFAULT '';
ALTER TABLE turns ADD COLUMN decision TEXT;
ALTER TABLE turns ADD COLUMN confidence REAL;
ALTER TABLE turns ADD COLUMN mode TEXT NOT NULL DEFAULT '';
ALTER TABLE turns ADD COLUMN escalated INTEGER NOT NULL DEFAULT 0;
CREATE TABLE feedback(
  id INTEGER PRIMARY KEY,
  turn_id INTEGER NOT NULL REFERENCES turns(id),
  thumbs INTEGER NOT NULL CHECK(thumbs IN (-1, 1)),
  note TEXT NOT NULL DEFAULT '',
  created_ms INTEGER NOT NULL);
CREATE INDEX feedback_by_turn ON feedback(turn_id, id);
CREATE INDEX sessions_by_update ON sessions(updated_ms);
)sql"},
};

// Every query the store runs, prepared once per connection.
enum Q : size_t {
  kBegin, kCommit,
  kInsertSession, kGetSession, kListSessions, kTouchSession,
  kInsertTurn, kLastTurns, kGetTurn, kTurnExists,
  kInsertFeedback, kFeedback,
  kNumQueries
};

#define COGUMI_TURN_COLS "id, session_id, role, content, choice, decision, confidence, mode, escalated, created_ms"
#define COGUMI_SESSION_COLS "id, metadata, created_ms, updated_ms, n_turns"

constexpr std::array<const char*, kNumQueries> kSql{
    "BEGIN IMMEDIATE",
    "COMMIT",
    "INSERT INTO sessions(id, metadata, created_ms, updated_ms) VALUES(?1, ?2, ?3, ?3)",
    "SELECT " COGUMI_SESSION_COLS " FROM sessions WHERE id = ?1",
    "SELECT " COGUMI_SESSION_COLS " FROM sessions ORDER BY updated_ms DESC, rowid DESC LIMIT ?1",
    "UPDATE sessions SET n_turns = n_turns + 1, updated_ms = ?2 WHERE id = ?1",
    "INSERT INTO turns(session_id, role, content, choice, decision, confidence, mode, escalated, "
    "created_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    "SELECT " COGUMI_TURN_COLS " FROM turns WHERE session_id = ?1 ORDER BY id DESC LIMIT ?2",
    "SELECT " COGUMI_TURN_COLS " FROM turns WHERE id = ?1",
    "SELECT 1 FROM turns WHERE id = ?1",
    "INSERT INTO feedback(turn_id, thumbs, note, created_ms) VALUES(?1, ?2, ?3, ?4)",
    "SELECT f.id, f.turn_id, t.session_id, f.thumbs, f.note, f.created_ms, t.choice, t.confidence, "
    "t.mode, t.escalated FROM feedback f JOIN turns t ON t.id = f.turn_id WHERE f.id > ?1 AND "
    "(?2 = 0 OR f.id = (SELECT MAX(g.id) FROM feedback g WHERE g.turn_id = f.turn_id)) "
    "AND (?4 = '' OR t.session_id = ?4) ORDER BY f.id LIMIT ?3",
};

struct Conn {
  sqlite3* db = nullptr;
  std::array<sqlite3_stmt*, kNumQueries> stmts{};
  ~Conn() {
    for (sqlite3_stmt* s : stmts) sqlite3_finalize(s);
    sqlite3_close_v2(db);
  }
};

}  // namespace

struct SessionStore::Impl {
  std::filesystem::path path;
  MemoryOptions opts;
  std::mutex mu;
  std::vector<std::unique_ptr<Conn>> idle;  // guarded by mu
  // SQLite admits one writer per file; a writer that finds it taken polls with sleeps of up to
  // 100 ms (its busy handler). Writers of this process queue here instead and are handed the
  // lock at once; busy_timeout still covers writers in other processes.
  std::mutex write_mu;

  [[noreturn]] void fail_db(sqlite3* db, int rc, const std::string& doing) const {
    std::string why = sqlite::why(db, rc);
    if ((rc & 0xff) == SQLITE_BUSY)
      why += fmt::format(" after waiting {} ms for another writer (MemoryOptions::busy_timeout_ms)",
                         opts.busy_timeout_ms);
    fail("session store {}: {}: {}", path.string(), doing, why);
  }

  void exec(Conn& c, const char* sql, const std::string& doing) const {
    const int rc = sqlite::exec(c.db, sql);
    if (rc != SQLITE_OK) fail_db(c.db, rc, doing);
  }

  int user_version(Conn& c) const {
    int v = -1;
    const int rc = sqlite::query_int(c.db, "PRAGMA user_version", &v);
    if (rc != SQLITE_ROW) fail_db(c.db, rc, "reading the schema version");
    return v;
  }

  std::unique_ptr<Conn> connect() const {
    auto c = std::make_unique<Conn>();
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    const int rc = sqlite3_open_v2(path.c_str(), &c->db, flags, nullptr);
    if (rc != SQLITE_OK) fail_db(c->db, rc, "opening");
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, opts.busy_timeout_ms);
    // Read before anything writes: a file that is not a database, or one from a newer Cogumi,
    // must be left exactly as it was.
    check_version(user_version(*c));
    exec(*c, "PRAGMA journal_mode=WAL", "switching to WAL");
    if (query_text(*c, "PRAGMA journal_mode") != "wal")
      fail("session store {}: the file cannot use WAL mode (journal_mode is '{}'); memory needs "
           "a local file system that supports shared memory",
           path.string(), query_text(*c, "PRAGMA journal_mode"));
    exec(*c,
         opts.durability == Durability::power_loss ? "PRAGMA synchronous=FULL"
                                                   : "PRAGMA synchronous=NORMAL",
         "setting synchronous");
    exec(*c, "PRAGMA foreign_keys=ON", "enabling foreign keys");
    return c;
  }

  std::string query_text(Conn& c, const char* sql) const {
    std::string out;
    const int rc = sqlite::query_text(c.db, sql, &out);
    if (rc != SQLITE_ROW) fail_db(c.db, rc, sql);
    return out;
  }

  void check_version(int v) const {
    const int known = kMigrations.back().version;
    if (v > known)
      fail("session store {}: schema version {} is newer than this build of cogumi knows ({}); "
           "open it with a newer cogumi or use another file",
           path.string(), v, known);
    if (v < 0) fail("session store {}: negative schema version {}", path.string(), v);
  }

  // All pending steps in one write transaction: a failed step leaves the file at its old version,
  // and two processes opening a new file at once migrate it once (the second sees the new version).
  void migrate(Conn& c) const {
    exec(c, "BEGIN IMMEDIATE", "starting the schema migration");
    try {
      const int v = user_version(c);
      check_version(v);
      for (const Migration& m : kMigrations) {
        if (m.version <= v) continue;
        exec(c, m.sql, fmt::format("migrating to schema version {} ({})", m.version, m.what));
        exec(c, fmt::format("PRAGMA user_version={}", m.version).c_str(), "setting the version");
      }
      exec(c, "COMMIT", "committing the schema migration");
    } catch (...) {
      sqlite3_exec(c.db, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  sqlite3_stmt* stmt(Conn& c, Q q) const {
    if (!c.stmts[q]) {
      const int rc =
          sqlite3_prepare_v3(c.db, kSql[q], -1, SQLITE_PREPARE_PERSISTENT, &c.stmts[q], nullptr);
      if (rc != SQLITE_OK) fail_db(c.db, rc, std::string("preparing ") + kSql[q]);
    }
    return c.stmts[q];
  }

  int64_t now() const {
    if (opts.now_ms) return opts.now_ms();
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

namespace {

// A pooled connection for the duration of one call.
class Lease {
 public:
  explicit Lease(SessionStore::Impl& s) : s_(s) {
    {
      std::lock_guard lock(s.mu);
      if (!s.idle.empty()) {
        c_ = std::move(s.idle.back());
        s.idle.pop_back();
      }
    }
    if (!c_) c_ = s.connect();
  }
  ~Lease() {
    std::lock_guard lock(s_.mu);
    if (s_.idle.size() < s_.opts.max_idle_connections) s_.idle.push_back(std::move(c_));
  }
  Conn& operator*() { return *c_; }
  Conn* operator->() { return c_.get(); }

 private:
  SessionStore::Impl& s_;
  std::unique_ptr<Conn> c_;
};

// One statement's execution: binds, steps, and always resets so the connection is reusable.
class Run {
 public:
  Run(SessionStore::Impl& s, Conn& c, Q q) : s_(s), c_(c), st_(s.stmt(c, q)) {}
  ~Run() {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }
  // Text is bound without a copy: the caller's strings outlive the statement's use.
  Run& text(int i, const std::string& v) {
    return check(sqlite3_bind_text(st_, i, v.data(), int(v.size()), SQLITE_STATIC));
  }
  Run& i64(int i, int64_t v) { return check(sqlite3_bind_int64(st_, i, v)); }
  Run& real(int i, std::optional<double> v) {
    return check(v ? sqlite3_bind_double(st_, i, *v) : sqlite3_bind_null(st_, i));
  }
  Run& null(int i) { return check(sqlite3_bind_null(st_, i)); }
  // True while there is a row.
  bool step() {
    const int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) s_.fail_db(c_.db, rc, sqlite3_sql(st_));
    return false;
  }
  int64_t col_i64(int i) { return sqlite3_column_int64(st_, i); }
  bool col_null(int i) { return sqlite3_column_type(st_, i) == SQLITE_NULL; }
  std::string col_text(int i) { return sqlite::column_text(st_, i); }
  std::optional<double> col_real(int i) {
    if (col_null(i)) return std::nullopt;
    return sqlite3_column_double(st_, i);
  }

 private:
  Run& check(int rc) {
    if (rc != SQLITE_OK) s_.fail_db(c_.db, rc, "binding a parameter");
    return *this;
  }
  SessionStore::Impl& s_;
  Conn& c_;
  sqlite3_stmt* st_;
};

// BEGIN IMMEDIATE takes the write lock up front: a deferred transaction that reads, then writes,
// can fail with SQLITE_BUSY_SNAPSHOT without the busy timeout ever applying.
class Transaction {
 public:
  Transaction(SessionStore::Impl& s, Conn& c) : s_(s), c_(c), lock_(s.write_mu) {
    Run(s, c, kBegin).step();
  }
  // Never throws: a failed rollback leaves nothing to undo (SQLite rolls back on its own when
  // a statement fails badly enough to make ROLLBACK fail).
  ~Transaction() {
    if (!done_) sqlite3_exec(c_.db, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void commit() {
    Run(s_, c_, kCommit).step();
    done_ = true;
  }

 private:
  SessionStore::Impl& s_;
  Conn& c_;
  std::lock_guard<std::mutex> lock_;
  bool done_ = false;
};

json parse_json(const std::string& text, const std::string& where) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail("{}: not valid JSON", where);
  return j;
}

Turn read_turn(SessionStore::Impl& s, Run& r) {
  Turn t;
  t.id = r.col_i64(0);
  t.session = r.col_text(1);
  t.role = r.col_text(2);
  t.content = r.col_text(3);
  t.choice = r.col_text(4);
  if (!r.col_null(5))
    t.decision = parse_json(r.col_text(5), fmt::format("session store {}: turn {}: decision",
                                                       s.path.string(), t.id));
  t.confidence = r.col_real(6);
  t.mode = r.col_text(7);
  t.escalated = r.col_i64(8) != 0;
  t.created_ms = r.col_i64(9);
  return t;
}

SessionInfo read_session(SessionStore::Impl& s, Run& r) {
  SessionInfo i;
  i.id = r.col_text(0);
  i.metadata = parse_json(r.col_text(1), fmt::format("session store {}: session {}: metadata",
                                                     s.path.string(), i.id));
  i.created_ms = r.col_i64(2);
  i.updated_ms = r.col_i64(3);
  i.n_turns = r.col_i64(4);
  return i;
}

std::string random_id() {
  std::random_device rd;
  std::uniform_int_distribution<uint64_t> u;
  return fmt::format("{:016x}{:016x}", u(rd), u(rd));
}

// SQLite reads a LIMIT below 0 as "no limit".
int64_t sql_limit(size_t n) { return n == 0 ? -1 : int64_t(n); }

}  // namespace

void MemoryOptions::validate() const {
  if (busy_timeout_ms < 0) fail("memory option busy_timeout_ms must be >= 0 (got {})", busy_timeout_ms);
  if (max_idle_connections < 1)
    fail("memory option max_idle_connections must be >= 1 (got {})", max_idle_connections);
}

SessionStore SessionStore::open(const std::filesystem::path& path, const MemoryOptions& options) {
  options.validate();
  if (path.empty()) fail("session store: empty path");
  std::error_code ec;
  const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  if (!std::filesystem::is_directory(dir, ec))
    fail("session store {}: directory {} does not exist", path.string(), dir.string());
  if (std::filesystem::is_directory(path, ec))
    fail("session store {}: is a directory, not a file", path.string());
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->opts = options;
  auto c = impl->connect();
  impl->migrate(*c);
  impl->idle.push_back(std::move(c));
  return SessionStore(std::move(impl));
}

SessionStore::SessionStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SessionStore::SessionStore(SessionStore&&) noexcept = default;
SessionStore& SessionStore::operator=(SessionStore&&) noexcept = default;
SessionStore::~SessionStore() = default;

const std::filesystem::path& SessionStore::path() const { return impl_->path; }

std::string SessionStore::create_session(const json& metadata) {
  if (!metadata.is_null() && !metadata.is_object())
    fail("session store {}: session metadata must be a JSON object (got {})", impl_->path.string(),
         metadata.type_name());
  const std::string meta = metadata.is_null() ? "{}" : json_text(metadata);
  const std::string id = random_id();
  Lease c(*impl_);
  std::lock_guard lock(impl_->write_mu);
  Run(*impl_, *c, kInsertSession).text(1, id).text(2, meta).i64(3, impl_->now()).step();
  return id;
}

std::optional<SessionInfo> SessionStore::session(const std::string& id) {
  Lease c(*impl_);
  Run r(*impl_, *c, kGetSession);
  r.text(1, id);
  if (!r.step()) return std::nullopt;
  return read_session(*impl_, r);
}

std::vector<SessionInfo> SessionStore::sessions(size_t limit) {
  Lease c(*impl_);
  Run r(*impl_, *c, kListSessions);
  r.i64(1, sql_limit(limit));
  std::vector<SessionInfo> out;
  while (r.step()) out.push_back(read_session(*impl_, r));
  return out;
}

int64_t SessionStore::append_turn(const std::string& session, const Turn& turn) {
  const std::string& where = impl_->path.string();
  if (turn.role != "system" && turn.role != "user" && turn.role != "assistant" && turn.role != "tool")
    fail("session store {}: turn role must be system, user, assistant or tool (got '{}')", where,
         turn.role);
  if (!turn.decision.is_null() && !turn.decision.is_object())
    fail("session store {}: turn decision must be a JSON object or null (got {})", where,
         turn.decision.type_name());
  if (turn.confidence && !std::isfinite(*turn.confidence))
    fail("session store {}: turn confidence must be finite", where);
  const std::string decision = turn.decision.is_null() ? "" : json_text(turn.decision);  // the answer may end mid-character
  const int64_t now = impl_->now();
  Lease c(*impl_);
  Transaction tx(*impl_, *c);
  Run(*impl_, *c, kTouchSession).text(1, session).i64(2, now).step();
  if (sqlite3_changes(c->db) == 0)
    fail("session store {}: unknown session '{}'", where, session);
  {
    Run r(*impl_, *c, kInsertTurn);
    r.text(1, session).text(2, turn.role).text(3, turn.content).text(4, turn.choice);
    if (turn.decision.is_null()) r.null(5); else r.text(5, decision);
    r.real(6, turn.confidence).text(7, turn.mode).i64(8, turn.escalated ? 1 : 0).i64(9, now);
    r.step();
  }
  const int64_t id = sqlite3_last_insert_rowid(c->db);
  tx.commit();
  return id;
}

std::vector<Turn> SessionStore::last_turns(const std::string& session, size_t n) {
  std::vector<Turn> out;
  Lease c(*impl_);
  {
    Run r(*impl_, *c, kLastTurns);
    r.text(1, session).i64(2, int64_t(n));
    while (r.step()) out.push_back(read_turn(*impl_, r));
  }
  if (out.empty()) {
    Run r(*impl_, *c, kGetSession);
    r.text(1, session);
    if (!r.step()) fail("session store {}: unknown session '{}'", impl_->path.string(), session);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::optional<Turn> SessionStore::turn(int64_t id) {
  Lease c(*impl_);
  Run r(*impl_, *c, kGetTurn);
  r.i64(1, id);
  if (!r.step()) return std::nullopt;
  return read_turn(*impl_, r);
}

int64_t SessionStore::record_feedback(int64_t turn_id, int thumbs, const std::string& note) {
  if (thumbs != 1 && thumbs != -1)
    fail("session store {}: feedback thumbs must be +1 or -1 (got {})", impl_->path.string(),
         thumbs);
  Lease c(*impl_);
  {
    Run r(*impl_, *c, kTurnExists);
    r.i64(1, turn_id);
    if (!r.step()) fail("session store {}: no turn with id {}", impl_->path.string(), turn_id);
  }
  std::lock_guard lock(impl_->write_mu);
  Run(*impl_, *c, kInsertFeedback).i64(1, turn_id).i64(2, thumbs).text(3, note).i64(4, impl_->now()).step();
  return sqlite3_last_insert_rowid(c->db);
}

std::vector<FeedbackRow> SessionStore::feedback(const FeedbackQuery& q) {
  Lease c(*impl_);
  Run r(*impl_, *c, kFeedback);
  r.i64(1, q.after_id).i64(2, q.latest_per_turn ? 1 : 0).i64(3, sql_limit(q.limit)).text(4, q.session);
  std::vector<FeedbackRow> out;
  while (r.step()) {
    FeedbackRow f;
    f.id = r.col_i64(0);
    f.turn_id = r.col_i64(1);
    f.session = r.col_text(2);
    f.thumbs = int(r.col_i64(3));
    f.note = r.col_text(4);
    f.created_ms = r.col_i64(5);
    f.choice = r.col_text(6);
    f.confidence = r.col_real(7);
    f.mode = r.col_text(8);
    f.escalated = r.col_i64(9) != 0;
    out.push_back(std::move(f));
  }
  return out;
}

int memory_schema_version() { return kMigrations.back().version; }

json turns_to_messages(const std::vector<Turn>& turns) {
  json out = json::array();
  for (const Turn& t : turns) out.push_back({{"role", t.role}, {"content", t.content}});
  return out;
}

}  // namespace cogumi
