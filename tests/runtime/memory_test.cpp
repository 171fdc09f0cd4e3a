// Session memory: round trips, concurrent sessions, kill -9 of a writer, schema migrations and
// bad files. Everything runs on real SQLite files in the test's temporary directory.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "runtime/memory.h"
#include "test_util.h"

namespace cogumi {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path fresh(const std::string& name) {
  fs::path p = test::tmp_dir() / "memory" / name;
  fs::create_directories(p.parent_path());
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(p.string() + suffix);
  return p;
}

// A raw connection, for what the store deliberately does not offer: old files, long readers.
struct RawDb {
  sqlite3* db = nullptr;
  explicit RawDb(const fs::path& p) {
    if (sqlite3_open(p.c_str(), &db) != SQLITE_OK) throw std::runtime_error(sqlite3_errmsg(db));
  }
  ~RawDb() { sqlite3_close(db); }
  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string e = err ? err : "?";
      sqlite3_free(err);
      throw std::runtime_error(sql + ": " + e);
    }
  }
  std::string text(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    std::string out = "<error>";
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
      out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return out;
  }
};

Turn user(const std::string& text) {
  Turn t;
  t.role = "user";
  t.content = text;
  return t;
}

Turn answer(const std::string& text, const std::string& choice, double conf, bool escalated) {
  Turn t;
  t.role = "assistant";
  t.content = text;
  t.choice = choice;
  t.decision = {{"choice", choice}, {"probabilities", {{choice, conf}}}, {"confidence", conf}};
  t.confidence = conf;
  t.mode = escalated ? "accurate" : "fast";
  t.escalated = escalated;
  return t;
}

TEST(Memory, RoundTripLastTurnsAndFeedback) {
  const fs::path db = fresh("roundtrip.db");
  int64_t clock = 1000;
  MemoryOptions o;
  o.now_ms = [&] { return clock++; };
  int64_t a1 = 0, a2 = 0;
  std::string s1, s2;
  {
    SessionStore st = SessionStore::open(db, o);
    s1 = st.create_session({{"user", "ann"}, {"client", "web"}});
    s2 = st.create_session();
    EXPECT_EQ(s1.size(), 32u);
    EXPECT_NE(s1, s2);
    st.append_turn(s1, user("what is 2+2?"));
    a1 = st.append_turn(s1, answer("4", "math", 0.91, false));
    st.append_turn(s2, user("write fizzbuzz"));
    st.append_turn(s1, user("and 3+3?"));
    a2 = st.append_turn(s1, answer("6", "math", 0.42, true));
    EXPECT_LT(a1, a2);

    // The last N, oldest first, only this session's.
    auto last = st.last_turns(s1, 2);
    ASSERT_EQ(last.size(), 2u);
    EXPECT_EQ(last[0].content, "and 3+3?");
    EXPECT_EQ(last[1].content, "6");
    EXPECT_EQ(st.last_turns(s1, 100).size(), 4u);
    EXPECT_EQ(st.last_turns(s2, 100).size(), 1u);
    EXPECT_EQ(turns_to_messages(last),
              json::parse(R"([{"role":"user","content":"and 3+3?"},{"role":"assistant","content":"6"}])"));

    EXPECT_EQ(st.record_feedback(a1, +1, "right"), 1);
    st.record_feedback(a2, +1);
    st.record_feedback(a2, -1, "6 is right but it took an escalation");  // changed their mind
  }
  // Everything again from a second opening of the file.
  SessionStore st = SessionStore::open(db, o);
  auto t = st.turn(a2);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->session, s1);
  EXPECT_EQ(t->role, "assistant");
  EXPECT_EQ(t->choice, "math");
  EXPECT_EQ(t->decision["probabilities"]["math"], 0.42);
  ASSERT_TRUE(t->confidence);
  EXPECT_DOUBLE_EQ(*t->confidence, 0.42);
  EXPECT_EQ(t->mode, "accurate");
  EXPECT_TRUE(t->escalated);
  EXPECT_GT(t->created_ms, 1000);
  auto u = st.last_turns(s1, 4).front();
  EXPECT_EQ(u.content, "what is 2+2?");
  EXPECT_TRUE(u.decision.is_null());
  EXPECT_FALSE(u.confidence);
  EXPECT_FALSE(st.turn(a2 + 1000));

  auto latest = st.feedback();
  ASSERT_EQ(latest.size(), 2u);
  EXPECT_EQ(latest[0].turn_id, a1);
  EXPECT_EQ(latest[0].thumbs, 1);
  EXPECT_EQ(latest[0].note, "right");
  EXPECT_EQ(latest[1].turn_id, a2);
  EXPECT_EQ(latest[1].thumbs, -1);
  EXPECT_EQ(latest[1].choice, "math");
  EXPECT_TRUE(latest[1].escalated);
  EXPECT_EQ(latest[1].mode, "accurate");
  EXPECT_EQ(latest[1].session, s1);
  ASSERT_TRUE(latest[1].confidence);
  EXPECT_DOUBLE_EQ(*latest[1].confidence, 0.42);
  FeedbackQuery all;
  all.latest_per_turn = false;
  EXPECT_EQ(st.feedback(all).size(), 3u);
  all.after_id = latest[0].id;
  all.limit = 1;
  auto page = st.feedback(all);
  ASSERT_EQ(page.size(), 1u);
  EXPECT_EQ(page[0].turn_id, a2);
  EXPECT_EQ(page[0].thumbs, 1);

  // Sessions: most recently active first, with counts and metadata.
  auto ss = st.sessions();
  ASSERT_EQ(ss.size(), 2u);
  EXPECT_EQ(ss[0].id, s1);
  EXPECT_EQ(ss[0].n_turns, 4);
  EXPECT_EQ(ss[0].metadata["user"], "ann");
  EXPECT_EQ(ss[1].n_turns, 1);
  EXPECT_GT(ss[0].updated_ms, ss[0].created_ms);
  EXPECT_EQ(st.sessions(1).size(), 1u);
  EXPECT_EQ(st.session(s2)->n_turns, 1);
  EXPECT_FALSE(st.session("nope"));
}

// An answer cut at its token limit can end mid-character: the turn is stored (its decision, which holds the
// answer, with the broken bytes replaced), not refused with a JSON error that ends the chat.
TEST(Memory, AnAnswerEndingMidCharacterIsStored) {
  SessionStore st = SessionStore::open(fresh("utf8.db"));
  const std::string s = st.create_session();
  const std::string cut = "caf\xC3";  // "café" cut after the first byte of its last character
  Turn t = answer(cut, "math", 0.5, false);
  t.decision["answer"] = cut;
  const int64_t id = st.append_turn(s, t);
  EXPECT_GT(id, 0);
  const auto last = st.last_turns(s, 1);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].content, cut);  // the text itself as the model gave it
  EXPECT_EQ(last[0].decision["answer"], "caf\xEF\xBF\xBD");  // U+FFFD in the JSON
}

TEST(Memory, RejectsBadInputNamingIt) {
  SessionStore st = SessionStore::open(fresh("bad-input.db"));
  const std::string s = st.create_session();
  auto throws_with = [](auto&& fn, const std::string& needle) {
    try {
      fn();
      ADD_FAILURE() << "no error; expected one mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  throws_with([&] { st.append_turn("no-such-session", user("hi")); }, "unknown session 'no-such-session'");
  throws_with([&] { st.last_turns("no-such-session", 3); }, "unknown session");
  Turn bad = user("hi");
  bad.role = "robot";
  throws_with([&] { st.append_turn(s, bad); }, "role");
  bad = user("hi");
  bad.decision = json::array({1, 2});
  throws_with([&] { st.append_turn(s, bad); }, "decision");
  bad = user("hi");
  bad.confidence = std::nan("");
  throws_with([&] { st.append_turn(s, bad); }, "confidence");
  const int64_t id = st.append_turn(s, user("hi"));
  throws_with([&] { st.record_feedback(id, 0); }, "thumbs");
  throws_with([&] { st.record_feedback(id + 99, 1); }, "no turn with id");
  throws_with([&] { st.create_session(json::array()); }, "metadata");
  // A failed append left nothing behind.
  EXPECT_EQ(st.last_turns(s, 10).size(), 1u);
  EXPECT_EQ(st.session(s)->n_turns, 1);
  MemoryOptions o;
  o.busy_timeout_ms = -1;
  throws_with([&] { o.validate(); }, "busy_timeout_ms");
  o = {};
  o.max_idle_connections = 0;
  throws_with([&] { o.validate(); }, "max_idle_connections");
}

// 8 threads, a session each, 200 turns each, on one store, while a reader holds a read
// transaction open the whole time. With a rollback journal instead of WAL the writers would
// wait on the reader's lock until busy_timeout and throw.
TEST(Memory, ConcurrentSessionsAndASlowReader) {
  const fs::path db = fresh("concurrent.db");
  MemoryOptions o;
  o.busy_timeout_ms = 3000;
  SessionStore st = SessionStore::open(db, o);
  const std::string s0 = st.create_session();
  st.append_turn(s0, user("before"));

  RawDb reader(db);
  reader.exec("BEGIN");
  ASSERT_EQ(reader.text("SELECT count(*) FROM turns"), "1");  // the snapshot starts here

  constexpr int kThreads = 8, kTurns = 200;
  std::vector<std::string> sessions(kThreads);
  std::vector<std::string> errors;
  std::mutex mu;
  std::vector<std::thread> pool;
  const auto t0 = std::chrono::steady_clock::now();
  for (int t = 0; t < kThreads; ++t) {
    pool.emplace_back([&, t] {
      try {
        sessions[t] = st.create_session({{"thread", t}});
        for (int k = 0; k < kTurns; ++k) {
          st.append_turn(sessions[t], k % 2 ? answer(std::to_string(k), "code", 0.5, false)
                                            : user(std::to_string(k)));
          if (k % 50 == 49) st.last_turns(sessions[t], 5);  // reads interleaved with writes
        }
      } catch (const std::exception& e) {
        std::lock_guard lock(mu);
        errors.push_back(e.what());
      }
    });
  }
  for (auto& th : pool) th.join();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(errors.empty()) << errors.size() << " errors, first: " << errors.front();
  // Still inside its transaction, the reader sees the world as it was.
  EXPECT_EQ(reader.text("SELECT count(*) FROM turns"), "1");
  reader.exec("COMMIT");
  EXPECT_EQ(reader.text("SELECT count(*) FROM turns"), std::to_string(1 + kThreads * kTurns));
  std::printf("[ memory ] %d appends on %d threads in %.2f s, reader held open throughout\n",
              kThreads * kTurns, kThreads, secs);

  for (int t = 0; t < kThreads; ++t) {
    auto turns = st.last_turns(sessions[t], kTurns + 10);
    ASSERT_EQ(turns.size(), size_t(kTurns)) << "thread " << t;
    for (int k = 0; k < kTurns; ++k) {
      EXPECT_EQ(turns[k].content, std::to_string(k)) << "thread " << t;
      EXPECT_EQ(turns[k].session, sessions[t]);
    }
    EXPECT_EQ(st.session(sessions[t])->n_turns, kTurns);
  }
  EXPECT_EQ(st.sessions().size(), size_t(kThreads + 1));
}

// Two stores on one file in one process behave like two processes: neither sees SQLITE_BUSY.
TEST(Memory, TwoStoresOnOneFile) {
  const fs::path db = fresh("two-stores.db");
  SessionStore a = SessionStore::open(db);
  SessionStore b = SessionStore::open(db);
  const std::string sa = a.create_session(), sb = b.create_session();
  std::thread ta([&] { for (int k = 0; k < 200; ++k) a.append_turn(sa, user(std::to_string(k))); });
  std::thread tb([&] { for (int k = 0; k < 200; ++k) b.append_turn(sb, user(std::to_string(k))); });
  ta.join();
  tb.join();
  EXPECT_EQ(a.last_turns(sb, 1000).size(), 200u);
  EXPECT_EQ(b.last_turns(sa, 1000).size(), 200u);
}

struct Reported {
  int64_t id;
  int thread;
  long k;
};

// Runs the writer until it has reported `kill_after` turns, SIGKILLs it, and returns every turn
// it reported (including those still in the pipe when it died).
std::vector<Reported> run_and_kill(const fs::path& db, size_t kill_after) {
  const std::string writer = COGUMI_MEMORY_WRITER;
  if (access(writer.c_str(), X_OK) != 0)
    throw std::runtime_error("the writer helper " + writer + " is missing: build cogumi_memory_writer");
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    execl(writer.c_str(), writer.c_str(), db.c_str(), "3", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  std::string buf;
  std::vector<Reported> out;
  bool killed = false;
  char chunk[4096];
  for (;;) {
    const ssize_t n = read(fds[0], chunk, sizeof chunk);
    if (n <= 0) break;  // EOF: the writer is gone
    buf.append(chunk, size_t(n));
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      std::istringstream line(buf.substr(0, nl));
      Reported r{};
      line >> r.id >> r.thread >> r.k;
      out.push_back(r);
      buf.erase(0, nl + 1);
    }
    if (!killed && out.size() >= kill_after) {
      kill(pid, SIGKILL);
      killed = true;
    }
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!killed || !WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
    throw std::runtime_error("the writer ended on its own (status " + std::to_string(status) +
                             ") after " + std::to_string(out.size()) + " turns; see its stderr");
  if (!buf.empty()) throw std::runtime_error("half a line in the pipe: " + buf);
  return out;
}

// kill -9 mid-stream, three times on the same file: every turn the writer reported as committed
// is there, with its content, and the file is intact.
TEST(Memory, EveryCommittedTurnSurvivesKill9) {
  const fs::path db = fresh("kill9.db");
  size_t total = 0;
  for (int round = 0; round < 3; ++round) {
    std::vector<Reported> reported = run_and_kill(db, 400 + 300 * size_t(round));
    ASSERT_GE(reported.size(), 400u);
    total += reported.size();
    SessionStore st = SessionStore::open(db);
    size_t missing = 0;
    for (const Reported& r : reported) {
      auto t = st.turn(r.id);
      if (!t) {
        ++missing;
        continue;
      }
      const std::string prefix = std::to_string(r.thread) + " " + std::to_string(r.k) + " ";
      EXPECT_EQ(t->content.substr(0, prefix.size()), prefix) << "turn " << r.id;
      EXPECT_EQ(t->decision["k"], r.k);
    }
    EXPECT_EQ(missing, 0u) << "round " << round << ": of " << reported.size() << " reported turns";
    RawDb raw(db);
    EXPECT_EQ(raw.text("PRAGMA integrity_check"), "ok");
    // At most one unreported commit per writer thread (killed between commit and report).
    const long in_db = std::stol(raw.text("SELECT count(*) FROM turns"));
    EXPECT_GE(in_db, long(total));
    EXPECT_LE(in_db, long(total) + 3 * (round + 1));
    total = size_t(in_db);
  }
}

// The schema as version 1 wrote it: what an old file looks like on disk.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE sessions(id TEXT PRIMARY KEY, metadata TEXT NOT NULL DEFAULT '{}',
  created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, n_turns INTEGER NOT NULL DEFAULT 0);
CREATE TABLE turns(id INTEGER PRIMARY KEY, session_id TEXT NOT NULL REFERENCES sessions(id),
  role TEXT NOT NULL, content TEXT NOT NULL, created_ms INTEGER NOT NULL);
CREATE INDEX turns_by_session ON turns(session_id, id);
INSERT INTO sessions VALUES('old', '{"from":"v1"}', 5, 6, 2);
INSERT INTO turns VALUES(1, 'old', 'user', 'hello from v1', 5);
INSERT INTO turns VALUES(2, 'old', 'assistant', 'hi', 6);
PRAGMA user_version=1;
)sql";

TEST(MemorySchema, MigratesAVersion1File) {
  const fs::path db = fresh("v1.db");
  RawDb(db).exec(kSchemaV1);
  SessionStore st = SessionStore::open(db);
  EXPECT_EQ(RawDb(db).text("PRAGMA user_version"), std::to_string(memory_schema_version()));
  EXPECT_EQ(memory_schema_version(), 2);
  auto old = st.last_turns("old", 10);
  ASSERT_EQ(old.size(), 2u);
  EXPECT_EQ(old[0].content, "hello from v1");
  EXPECT_TRUE(old[1].decision.is_null());
  EXPECT_EQ(old[1].choice, "");
  EXPECT_FALSE(old[1].escalated);
  EXPECT_EQ(st.session("old")->metadata["from"], "v1");
  // The new columns and tables work on the migrated file.
  const int64_t id = st.append_turn("old", answer("routed", "reasoning", 0.7, true));
  st.record_feedback(id, -1, "late");
  st.record_feedback(old[1].id, 1);
  auto fb = st.feedback();
  ASSERT_EQ(fb.size(), 2u);
  EXPECT_EQ(fb[0].choice, "reasoning");
  EXPECT_FALSE(fb[1].confidence);
  EXPECT_EQ(RawDb(db).text("PRAGMA integrity_check"), "ok");
}

TEST(MemorySchema, MigratesAVersion0FileKeepingItsTables) {
  const fs::path db = fresh("v0.db");
  RawDb(db).exec("CREATE TABLE notes(x TEXT); INSERT INTO notes VALUES('kept');");
  SessionStore st = SessionStore::open(db);
  st.append_turn(st.create_session(), user("hi"));
  RawDb raw(db);
  EXPECT_EQ(raw.text("PRAGMA user_version"), "2");
  EXPECT_EQ(raw.text("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(raw.text("SELECT x FROM notes"), "kept");
}

TEST(MemorySchema, AFailedStepLeavesTheFileAtItsOldVersion) {
  const fs::path db = fresh("v1-conflict.db");
  // A table in the way of step 2: the step fails half-way through its statements.
  RawDb(db).exec(std::string(kSchemaV1) + "CREATE TABLE feedback(x);");
  try {
    SessionStore::open(db);
    FAIL() << "opened a file whose migration cannot succeed";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(db.string()), std::string::npos) << m;
    EXPECT_NE(m.find("schema version 2"), std::string::npos) << m;
  }
  RawDb raw(db);
  EXPECT_EQ(raw.text("PRAGMA user_version"), "1");
  // Step 2's ALTER TABLEs ran before the failing CREATE; the rollback undid them.
  EXPECT_EQ(raw.text("SELECT count(*) FROM pragma_table_info('turns') WHERE name = 'choice'"), "0");
  EXPECT_EQ(raw.text("SELECT content FROM turns WHERE id = 1"), "hello from v1");
}

TEST(MemorySchema, NewerVersionIsAClearErrorAndTheFileIsUntouched) {
  const fs::path db = fresh("v99.db");
  RawDb(db).exec("CREATE TABLE future(x); PRAGMA user_version=99;");
  try {
    SessionStore::open(db);
    FAIL() << "opened a file from the future";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(db.string()), std::string::npos) << m;
    EXPECT_NE(m.find("schema version 99 is newer"), std::string::npos) << m;
  }
  RawDb raw(db);
  EXPECT_EQ(raw.text("PRAGMA user_version"), "99");
  EXPECT_EQ(raw.text("PRAGMA journal_mode"), "delete");
}

TEST(MemorySchema, BadFilesNameThePath) {
  const fs::path text = fresh("not-a-db.db");
  const std::string junk = "this is a text file, not a database, and it is long enough to have a header\n";
  std::ofstream(text) << junk;
  try {
    SessionStore::open(text);
    FAIL() << "opened a text file";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(text.string()), std::string::npos) << m;
    EXPECT_NE(m.find("not a SQLite database"), std::string::npos) << m;
  }
  std::ifstream in(text);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), junk);  // left as it was

  const fs::path nodir = test::tmp_dir() / "memory" / "no-such-dir" / "s.db";
  EXPECT_THROW(
      {
        try {
          SessionStore::open(nodir);
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find(nodir.string()), std::string::npos) << e.what();
          throw;
        }
      },
      Error);
  const fs::path dir = test::tmp_dir() / "memory" / "a-dir.db";
  fs::create_directories(dir);
  EXPECT_THROW(SessionStore::open(dir), Error);
}

}  // namespace
}  // namespace cogumi
