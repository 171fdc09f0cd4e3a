// The sandbox-run memo on SQLite: open and check, keys, batched look-ups and stores.
#include "eval/exec_cache.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string_view>
#include <unordered_map>

#include "core/error.h"
#include "core/io.h"
#include "core/sqlite_util.h"

namespace cogumi {

// Stands for the caller's secret in stored output. A run whose own output holds it is never stored: a
// program that printed it would read back as having printed the reader's secret.
constexpr std::string_view kSecret = "\x01" "cogumi-secret\x01";  // split: \x01c would be one hex escape

namespace {

// PRAGMA user_version of a cache file; a change of the table is a new version. Version 1 (no use times) is
// brought up to 2 in place; others are refused, not rewritten (a cache is cheap to rebuild).
constexpr int kVersion = 2;
// Bumped when what a stored run means changes in a way the key's text does not show (the table's
// fields, the secret placeholder): every key changes with it. The sandbox's command line and limits are
// in the key already (sandbox_identity).
constexpr const char* kKeyVersion = "cogumi-exec-cache-v1";

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  if (from.empty()) return s;
  for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) s.replace(at, from.size(), to);
  return s;
}

using sqlite::column_text;
using sqlite::Stmt;

}  // namespace

void ExecCacheOptions::validate() const {
  if (max_runs < 0 || max_runs > 1000000000)
    fail("exec cache: max_runs {} is out of range (0 = no limit, at most 1000000000)", max_runs);
}

ExecCache::ExecCache(fs::path path, ExecCacheOptions opts) : path_(std::move(path)), opts_(opts) {}

ExecCache::~ExecCache() { sqlite3_close_v2(db_); }

void ExecCache::fail_db(int rc, const std::string& doing) const {
  fail("sandbox run cache {}: {}: {}", path_.string(), doing, sqlite::why(db_, rc));
}

void ExecCache::exec(const char* sql, const std::string& doing) {
  const int rc = sqlite::exec(db_, sql);
  if (rc != SQLITE_OK) fail_db(rc, doing);
}

void ExecCache::prepare(Stmt& s, const char* sql, const std::string& doing) {
  const int rc = sqlite3_prepare_v2(db_, sql, -1, &s.s, nullptr);
  if (rc != SQLITE_OK) fail_db(rc, doing);
}

std::shared_ptr<ExecCache> ExecCache::open(const fs::path& file, const ExecCacheOptions& opts) {
  opts.validate();
  std::shared_ptr<ExecCache> c(new ExecCache(file, opts));
  std::error_code ec;
  if (file.has_parent_path()) fs::create_directories(file.parent_path(), ec);
  if (ec) fail("sandbox run cache {}: cannot create its directory: {}", file.string(), ec.message());
  int rc = sqlite3_open_v2(file.c_str(), &c->db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) c->fail_db(rc, "opening");
  sqlite3_extended_result_codes(c->db_, 1);
  sqlite3_busy_timeout(c->db_, 30000);
  if (sqlite3_db_readonly(c->db_, "main") == 1)
    fail("sandbox run cache {}: the file is read-only; give a writable file", file.string());
  // Checked and created in one write transaction, so two processes opening a new file at once cannot
  // see each other's half-made schema.
  {
    Transaction t(*c, "checking the schema");
    int version = -1;
    rc = sqlite::query_int(c->db_, "PRAGMA user_version", &version);
    if (rc != SQLITE_ROW) c->fail_db(rc, "reading the version");
    if (version != 0 && version != 1 && version != kVersion)
      fail("sandbox run cache {}: version {}, this build reads version {}; delete the file (it is only a cache)",
           file.string(), version, kVersion);
    Stmt s;  // a new file must be empty and ours must have its table: never take over another program's database
    rc = sqlite3_prepare_v2(c->db_, "SELECT count(*), count(CASE WHEN name = 'runs' THEN 1 END) FROM sqlite_master",
                            -1, &s.s, nullptr);
    if (rc == SQLITE_OK) rc = sqlite3_step(s.s);
    if (rc != SQLITE_ROW) c->fail_db(rc, "reading the schema");
    const bool empty = sqlite3_column_int(s.s, 0) == 0, has_runs = sqlite3_column_int(s.s, 1) == 1;
    if (version == 0 ? !empty : !has_runs)
      fail("sandbox run cache {}: a SQLite database of something else (not a cache of code runs); give another file",
           file.string());
    if (version == 0)
      c->exec("CREATE TABLE runs(key TEXT PRIMARY KEY, outcome TEXT NOT NULL, exit_code INTEGER NOT NULL,"
              " stdout TEXT NOT NULL, stderr TEXT NOT NULL, wall_s REAL NOT NULL, created_ms INTEGER NOT NULL,"
              " used_ms INTEGER NOT NULL DEFAULT 0);"
              "CREATE INDEX runs_by_use ON runs(used_ms);"
              "PRAGMA user_version = 2;",
              "creating the table");
    if (version == 1)  // version 1 had no use times: a run counts as used when it was stored
      c->exec("ALTER TABLE runs ADD COLUMN used_ms INTEGER NOT NULL DEFAULT 0;"
              "UPDATE runs SET used_ms = created_ms;"
              "CREATE INDEX runs_by_use ON runs(used_ms);"
              "PRAGMA user_version = 2;",
              "bringing a version 1 file up to version 2");
    t.commit();
  }
  c->exec("PRAGMA journal_mode=WAL", "switching to WAL");
  c->exec("PRAGMA synchronous=NORMAL", "setting synchronous");
  return c;
}

std::string ExecCache::key_head(const SandboxOptions& opts) {
  const SandboxLimits& l = opts.limits;
  return fmt::format("{}\n{}\ntimeout_s={:.17g} cpu_s={} memory_mb={} max_procs={} max_file_mb={} shm_mb={}\n",
                     kKeyVersion, sandbox_identity(opts), l.timeout_s, l.cpu_s, l.memory_mb, l.max_procs,
                     l.max_file_mb, l.shm_mb);
}

std::string ExecCache::key(const std::string& head, const std::string& text) {
  return sha256_hex(head + fmt::format("{}\n", text.size()) + text);
}

std::string ExecCache::key(const std::string& text, const SandboxOptions& opts) { return key(key_head(opts), text); }

bool ExecCache::cacheable(const SandboxResult& r) {
  return (r.outcome == SandboxOutcome::kPassed || r.outcome == SandboxOutcome::kFailed) && !r.memory_exceeded &&
         r.signal == 0;
}

ExecCache::Transaction::Transaction(ExecCache& c, const char* doing) : c_(c) { c_.exec("BEGIN IMMEDIATE", doing); }

ExecCache::Transaction::~Transaction() {
  if (!sqlite3_get_autocommit(c_.db_)) sqlite3_exec(c_.db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

void ExecCache::Transaction::commit() { c_.exec("COMMIT", "committing"); }

std::vector<std::optional<SandboxResult>> ExecCache::find(const std::vector<std::string>& keys) {
  std::vector<std::optional<SandboxResult>> out(keys.size());
  std::lock_guard lock(mu_);
  Stmt s;
  prepare(s, "SELECT outcome, exit_code, stdout, stderr, wall_s FROM runs WHERE key = ?1", "preparing a look-up");
  int rc = SQLITE_OK;
  for (size_t i = 0; i < keys.size(); ++i) {
    sqlite3_reset(s.s);
    sqlite3_bind_text(s.s, 1, keys[i].data(), int(keys[i].size()), SQLITE_TRANSIENT);
    rc = sqlite3_step(s.s);
    if (rc == SQLITE_DONE) {
      ++stats_.misses;
      continue;
    }
    if (rc != SQLITE_ROW) fail_db(rc, "looking up a run");
    SandboxResult r;
    const std::string outcome = column_text(s.s, 0);
    if (outcome == "passed") {
      r.outcome = SandboxOutcome::kPassed;
    } else if (outcome == "failed") {
      r.outcome = SandboxOutcome::kFailed;
    } else {
      fail("sandbox run cache {}: a stored run has outcome '{}', which is never stored; delete the file",
           path_.string(), outcome);
    }
    r.exit_code = sqlite3_column_int(s.s, 1);
    r.stdout_tail = column_text(s.s, 2);
    r.stderr_tail = column_text(s.s, 3);
    r.wall_s = sqlite3_column_double(s.s, 4);
    out[i] = std::move(r);
    ++stats_.hits;
  }
  touch(keys, out);
  return out;
}

// The runs found count as used now (what eviction keeps longest).
void ExecCache::touch(const std::vector<std::string>& keys, const std::vector<std::optional<SandboxResult>>& found) {
  if (std::none_of(found.begin(), found.end(), [](const auto& f) { return f.has_value(); })) return;
  Transaction t(*this, "starting a write");
  Stmt s;
  prepare(s, "UPDATE runs SET used_ms = ?1 WHERE key = ?2", "preparing a use time");
  const int64_t t_ms = now_ms();
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!found[i]) continue;
    sqlite3_reset(s.s);
    sqlite3_bind_int64(s.s, 1, t_ms);
    sqlite3_bind_text(s.s, 2, keys[i].data(), int(keys[i].size()), SQLITE_TRANSIENT);
    const int rc = sqlite3_step(s.s);
    if (rc != SQLITE_DONE) fail_db(rc, "recording a use");
  }
  t.commit();
}

// Drops the least recently used runs past max_runs (inside the caller's transaction).
int64_t ExecCache::evict() {
  if (opts_.max_runs == 0) return 0;
  Stmt s;
  prepare(s,
          "DELETE FROM runs WHERE key IN (SELECT key FROM runs ORDER BY used_ms, created_ms, key "
          "LIMIT max(0, (SELECT count(*) FROM runs) - ?1))",
          "preparing an eviction");
  sqlite3_bind_int64(s.s, 1, opts_.max_runs);
  const int rc = sqlite3_step(s.s);
  if (rc != SQLITE_DONE) fail_db(rc, "dropping the least recently used runs");
  return sqlite3_changes(db_);
}

void ExecCache::put(const std::vector<std::pair<std::string, SandboxResult>>& runs) {
  std::lock_guard lock(mu_);
  if (std::none_of(runs.begin(), runs.end(), [](const auto& r) { return cacheable(r.second); })) return;
  Transaction t(*this, "starting a write");
  Stmt s;
  prepare(s,
          "INSERT OR REPLACE INTO runs(key, outcome, exit_code, stdout, stderr, wall_s, created_ms, used_ms) "
          "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
          "preparing a store");
  int rc = SQLITE_OK;
  const int64_t t_ms = now_ms();
  int64_t n = 0;
  for (const auto& [k, r] : runs) {
    if (!cacheable(r)) continue;
    sqlite3_reset(s.s);
    const char* outcome = sandbox_outcome_name(r.outcome);
    sqlite3_bind_text(s.s, 1, k.data(), int(k.size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(s.s, 2, outcome, -1, SQLITE_STATIC);
    sqlite3_bind_int(s.s, 3, r.exit_code);
    sqlite3_bind_text(s.s, 4, r.stdout_tail.data(), int(r.stdout_tail.size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(s.s, 5, r.stderr_tail.data(), int(r.stderr_tail.size()), SQLITE_TRANSIENT);
    sqlite3_bind_double(s.s, 6, r.wall_s);
    sqlite3_bind_int64(s.s, 7, t_ms);
    rc = sqlite3_step(s.s);
    if (rc != SQLITE_DONE) fail_db(rc, "storing a run");
    ++n;
  }
  const int64_t dropped = evict();
  t.commit();
  stats_.stored += n;
  stats_.evicted += dropped;
}

ExecCache::Stats ExecCache::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

std::vector<SandboxResult> run_python_batch_cached(ExecCache& cache, const std::vector<std::string>& programs,
                                                   const std::vector<std::string>& key_texts,
                                                   const std::string& secret, const SandboxOptions& opts,
                                                   int workers) {
  if (key_texts.size() != programs.size())
    fail("run_python_batch_cached: {} key texts for {} programs", key_texts.size(), programs.size());
  opts.validate();
  std::vector<SandboxResult> results(programs.size());
  std::vector<std::string> keys(programs.size());
  std::unordered_map<std::string, size_t> first;  // key -> its first program
  std::vector<std::string> distinct;
  const std::string head = ExecCache::key_head(opts);
  for (size_t i = 0; i < programs.size(); ++i) {
    keys[i] = ExecCache::key(head, key_texts[i]);
    if (first.emplace(keys[i], i).second) distinct.push_back(keys[i]);
  }
  // The cache only saves time: when it cannot be read or written, the programs run and the runs are kept
  // by the caller as always (with a warning).
  std::vector<std::optional<SandboxResult>> found(distinct.size());
  try {
    found = cache.find(distinct);
  } catch (const Error& e) {
    fmt::print(stderr, "warning: {}; running every program\n", e.what());
  }
  std::vector<std::string> todo;  // programs to run, by their first index
  std::vector<size_t> todo_idx;
  for (size_t j = 0; j < distinct.size(); ++j) {
    const size_t i = first.at(distinct[j]);
    if (found[j]) {
      results[i] = *found[j];
      results[i].stdout_tail = replace_all(results[i].stdout_tail, kSecret, secret);
    } else {
      todo.push_back(programs[i]);
      todo_idx.push_back(i);
    }
  }
  if (!todo.empty()) {
    auto ran = run_python_batch(todo, opts, workers);
    std::vector<std::pair<std::string, SandboxResult>> store;
    for (size_t j = 0; j < todo.size(); ++j) {
      SandboxResult kept = ran[j];
      if (ExecCache::cacheable(kept) && kept.stdout_tail.find(kSecret) == std::string::npos) {
        kept.stdout_tail = replace_all(kept.stdout_tail, secret, kSecret);
        store.emplace_back(keys[todo_idx[j]], std::move(kept));
      }
      results[todo_idx[j]] = std::move(ran[j]);
    }
    try {
      cache.put(store);
    } catch (const Error& e) {
      fmt::print(stderr, "warning: {}; these runs were not kept\n", e.what());
    }
  }
  for (size_t i = 0; i < programs.size(); ++i)
    if (const size_t f = first.at(keys[i]); f != i) results[i] = results[f];
  return results;
}

}  // namespace cogumi
