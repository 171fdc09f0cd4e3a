// cogumi/eval: a memo of sandbox runs, so that a program already run is not run again.
//
// The improvement loop evaluates the same code answers many times: the base, each modifier and the
// routed system mostly write the same completion for a HumanEval item (in the nano main job 2,065 of
// its 2,600 sandbox runs repeat a program run before), and each run costs a fresh interpreter in a
// fresh sandbox (~45 ms on 2 cores). The cache keys a run by the program's bytes, the limits, the
// sandbox's identity (sandbox_identity(): the interpreter's resolved path, size and modification time,
// the bubblewrap command line it builds, whether we run as root, the memory-control kind). It keeps
// only runs that ended by exiting (passed or failed); timeouts, crashes, memory kills and setup errors
// depend on the machine's load and are always run again. What it assumes: a program's exit status
// depends on its text alone (true of benchmark tests, which are deterministic; a test that draws
// random numbers or reads the clock is run once per text), and on the interpreter binary, not its
// libraries: after changing the packages a program imports (site-packages, a shared libpython),
// delete the file.
//
// A code benchmark's program ends with a per-process secret (eval/score.h's pass marker), so a run is keyed
// by a text the caller names (the program without that ending) and the secret is stored in the output as a
// placeholder, given back as the reading process's own secret.
//
// One SQLite file (WAL, busy timeout), safe to share between threads and processes. It holds at most
// ExecCacheOptions::max_runs runs: past that, a store drops the runs least recently stored or looked up.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "eval/sandbox.h"

struct sqlite3;

namespace cogumi {

namespace sqlite {
struct Stmt;
}

namespace fs = std::filesystem;

struct ExecCacheOptions {
  // The most runs the file keeps (0: no limit); a store past it drops the least recently used. A run takes
  // ~300 bytes in the nano main job (636 runs in 188 KB) and at most ~8 KB (two 4-KiB output tails), so the
  // default bounds a file at ~30 MB typically, ~800 MB at worst.
  int64_t max_runs = 100000;
  void validate() const;  // 0 .. 1e9; throws Error naming the option
};

class ExecCache {
 public:
  // Opens FILE, creating it (and its directory) when missing; a file of the previous version (1, no use
  // times) is brought up to this one in place. Error naming the file when it cannot be opened or is not
  // a cache of this kind.
  static std::shared_ptr<ExecCache> open(const fs::path& file, const ExecCacheOptions& opts = {});
  ~ExecCache();
  ExecCache(const ExecCache&) = delete;
  ExecCache& operator=(const ExecCache&) = delete;

  // The key of running a program identified by `text` under `opts` (hex sha256).
  static std::string key(const std::string& text, const SandboxOptions& opts);
  // The same in two steps: what the key takes from opts (the sandbox's identity and limits; computed once
  // per batch), then the key of one text under that head.
  static std::string key_head(const SandboxOptions& opts);
  static std::string key(const std::string& head, const std::string& text);
  // The stored results of these keys (nullopt where none); the ones found count as used now.
  std::vector<std::optional<SandboxResult>> find(const std::vector<std::string>& keys);
  // Stores the results that may be reused (passed or failed; see above), in one transaction, then drops
  // the least recently used runs past max_runs.
  void put(const std::vector<std::pair<std::string, SandboxResult>>& runs);
  // Whether a result may be stored.
  static bool cacheable(const SandboxResult& r);

  struct Stats {
    int64_t hits = 0, misses = 0, stored = 0, evicted = 0;
  };
  Stats stats() const;
  const fs::path& path() const { return path_; }

 private:
  ExecCache(fs::path path, ExecCacheOptions opts);
  // BEGIN IMMEDIATE ... COMMIT; rolled back when left without commit() (an error on the way).
  class Transaction {
   public:
    Transaction(ExecCache& c, const char* doing);
    ~Transaction();
    void commit();

   private:
    ExecCache& c_;
  };
  [[noreturn]] void fail_db(int rc, const std::string& doing) const;
  void touch(const std::vector<std::string>& keys, const std::vector<std::optional<SandboxResult>>& found);
  int64_t evict();
  void exec(const char* sql, const std::string& doing);
  void prepare(sqlite::Stmt& s, const char* sql, const std::string& doing);

  fs::path path_;
  ExecCacheOptions opts_;
  sqlite3* db_ = nullptr;
  mutable std::mutex mu_;
  Stats stats_;
};

// run_python_batch with the cache: programs[i] runs unless the cache holds a run of key_texts[i] under
// opts; a key text repeated within the batch runs once; runs that may be reused are stored at the end.
// `secret` (may be empty) is what stdout carries that differs between processes (see above).
std::vector<SandboxResult> run_python_batch_cached(ExecCache& cache, const std::vector<std::string>& programs,
                                                   const std::vector<std::string>& key_texts,
                                                   const std::string& secret, const SandboxOptions& opts,
                                                   int workers);

}  // namespace cogumi
