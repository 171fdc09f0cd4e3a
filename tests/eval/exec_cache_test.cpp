// The sandbox-run memo: a second evaluation of the same answers takes every code run from the cache
// and scores exactly as a fresh one; what is not deterministic is never kept; the file is checked.
#include "eval/exec_cache.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>
#include <chrono>
#include <functional>
#include <thread>

#include "core/error.h"
#include "core/io.h"
#include "eval/run.h"
#include "eval/score.h"
#include "runtime/memory.h"
#include "test_util.h"

namespace cogumi {
namespace {

const fs::path kData = fs::path(COGUMI_DATASETS);

#define REQUIRE_SANDBOX()                                                                  \
  do {                                                                                     \
    std::string why;                                                                       \
    ASSERT_TRUE(sandbox_available(&why)) << "the code tests need the bubblewrap sandbox: " << why; \
  } while (0)

fs::path fresh(const std::string& name) {
  fs::path p = test::tmp_dir() / "exec_cache" / name;
  fs::remove_all(p);
  fs::create_directories(p.parent_path());
  return p;
}

// items.jsonl without the per-item latency (the only field a cached run changes).
std::vector<json> items_of(const fs::path& run) {
  std::vector<json> v = load_jsonl(run / "items.jsonl");
  for (auto& j : v) j.erase("latency_ms");
  return v;
}

TEST(ExecCache, ASecondEvaluationTakesEveryRunFromTheCacheAndScoresAsAFreshOne) {
  REQUIRE_SANDBOX();
  const fs::path he = kData / "humaneval/HumanEval.jsonl.gz";
  auto items = load_benchmark("humaneval", he);
  // Right, wrong, raising and early-exiting answers (an exit 0 before the tests is no pass, from the cache
  // too), and one that prints the cache's placeholder for the secret marker, then exits early: 24 items, 9
  // right.
  std::string resp;
  for (size_t i = 0; i < 24; ++i) {
    std::string out = items[i].solution;
    if (i % 4 == 1) out = "    return None\n";
    if (i % 4 == 2) out = "    raise ValueError('no')\n";
    if (i % 8 == 3) out = "    import sys\n    sys.exit(0)\n";
    if (i == 19) out = "    import os\n    os.write(1, b'\\x01cogumi-secret\\x01\\n')\n    os._exit(0)\n";
    resp += json{{"task_id", items[i].id}, {"completion", out}}.dump() + "\n";
  }
  const fs::path responses = fresh("responses.jsonl");
  std::ofstream(responses) << resp;
  auto run = [&](const std::string& out, std::shared_ptr<ExecCache> cache) {
    EvalOptions o;
    o.benches = {{"humaneval", he}};
    o.responses = responses;
    o.limit = 24;
    o.out_dir = fresh(out);
    o.progress = false;
    o.exec_cache = std::move(cache);
    return run_eval(o);
  };
  const fs::path db = fresh("runs.sqlite");
  const json plain = run("plain", nullptr);
  EXPECT_FALSE(plain["run"].contains("sandbox"));
  const json first = run("first", ExecCache::open(db));
  EXPECT_EQ(first["run"]["sandbox"]["programs"], 24);
  EXPECT_EQ(first["run"]["sandbox"]["cached"], 0);
  EXPECT_EQ(first["run"]["sandbox"]["ran"], 24);
  // Opened again, as another process would.
  const json second = run("second", ExecCache::open(db));
  EXPECT_EQ(second["run"]["sandbox"]["cached"], 23);
  EXPECT_EQ(second["run"]["sandbox"]["ran"], 1);  // the one that printed the placeholder is never kept
  EXPECT_EQ(plain["benchmarks"], second["benchmarks"]);
  EXPECT_EQ(plain["benchmarks"]["humaneval"]["correct"], 9);
  const fs::path dir = test::tmp_dir() / "exec_cache";
  const auto a = items_of(dir / "plain"), b = items_of(dir / "second");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << i;  // the failures' details too
}

TEST(ExecCache, TheSecretOfTheRunThatStoredItIsGivenBackAsTheReadersOwn) {
  REQUIRE_SANDBOX();
  auto cache = ExecCache::open(fresh("secret.sqlite"));
  SandboxOptions so;
  const std::string body = "print('result', 42)\n";
  auto r1 = run_python_batch_cached(*cache, {body + "print('S1-abc')\n"}, {body}, "S1-abc", so, 1);
  ASSERT_EQ(r1[0].outcome, SandboxOutcome::kPassed) << r1[0].stderr_tail;
  EXPECT_NE(r1[0].stdout_tail.find("S1-abc"), std::string::npos);
  EXPECT_EQ(cache->stats().stored, 1);
  auto r2 = run_python_batch_cached(*cache, {body + "print('S2-xyz')\n"}, {body}, "S2-xyz", so, 1);
  EXPECT_EQ(cache->stats().hits, 1);
  EXPECT_NE(r2[0].stdout_tail.find("result 42"), std::string::npos) << r2[0].stdout_tail;
  EXPECT_NE(r2[0].stdout_tail.find("S2-xyz"), std::string::npos) << r2[0].stdout_tail;
  EXPECT_EQ(r2[0].stdout_tail.find("S1-abc"), std::string::npos) << r2[0].stdout_tail;
}

TEST(ExecCache, OnlyRunsThatExitedAreKeptAndARepeatedProgramRunsOnce) {
  REQUIRE_SANDBOX();
  auto cache = ExecCache::open(fresh("kinds.sqlite"));
  SandboxOptions so, quick;
  quick.limits.timeout_s = 0.5;
  const std::vector<std::string> progs = {"import sys\nsys.exit(3)\n", "print(1)\n", "print(1)\n", "print(1)\n"};
  const std::vector<std::string> loop = {"while True:\n    pass\n"};
  auto r1 = run_python_batch_cached(*cache, progs, progs, "", so, 2);
  EXPECT_EQ(r1[0].outcome, SandboxOutcome::kFailed);
  EXPECT_EQ(r1[0].exit_code, 3);
  for (size_t i = 1; i < 4; ++i) EXPECT_EQ(r1[i].outcome, SandboxOutcome::kPassed) << i;
  EXPECT_EQ(cache->stats().misses, 2);  // two distinct programs looked up
  EXPECT_EQ(cache->stats().stored, 2);
  EXPECT_EQ(run_python_batch_cached(*cache, loop, loop, "", quick, 1)[0].outcome, SandboxOutcome::kTimeout);
  EXPECT_EQ(cache->stats().stored, 2);  // the timeout is not kept
  auto r2 = run_python_batch_cached(*cache, progs, progs, "", so, 2);
  EXPECT_EQ(cache->stats().hits, 2);
  EXPECT_EQ(r2[0].exit_code, 3);
  EXPECT_EQ(r2[3].stdout_tail, r1[1].stdout_tail);
  EXPECT_EQ(run_python_batch_cached(*cache, loop, loop, "", quick, 1)[0].outcome, SandboxOutcome::kTimeout);
  EXPECT_EQ(cache->stats().misses, 4);  // the timeout ran again
}

TEST(ExecCache, KeysCoverTheTextTheLimitsAndTheInterpreter) {
  REQUIRE_SANDBOX();
  const SandboxOptions a;
  const std::string k = ExecCache::key("print(1)\n", a);
  EXPECT_EQ(k, ExecCache::key("print(1)\n", a));
  EXPECT_NE(k, ExecCache::key("print(2)\n", a));
  const std::vector<std::function<void(SandboxOptions&)>> changes = {
      [](SandboxOptions& o) { o.limits.timeout_s += 1; },   [](SandboxOptions& o) { o.limits.cpu_s += 1; },
      [](SandboxOptions& o) { o.limits.memory_mb /= 2; },   [](SandboxOptions& o) { o.limits.max_procs += 1; },
      [](SandboxOptions& o) { o.limits.max_file_mb += 1; }, [](SandboxOptions& o) { o.limits.shm_mb += 1; },
      [](SandboxOptions& o) { o.python = "no-such-python-3"; },
  };
  for (size_t i = 0; i < changes.size(); ++i) {
    SandboxOptions b = a;
    changes[i](b);
    EXPECT_NE(k, ExecCache::key("print(1)\n", b)) << "change " << i;
  }
}

TEST(ExecCache, RefusesAFileThatIsNotItsOwnAndLeavesItAsItWas) {
  const fs::path text = fresh("notes.sqlite");
  std::ofstream(text) << "my notes, not a database\n";
  std::string e = test::error_of([&] { ExecCache::open(text); });
  EXPECT_NE(e.find(text.string()), std::string::npos) << e;
  EXPECT_NE(e.find("not a SQLite database"), std::string::npos) << e;
  EXPECT_EQ(read_file(text), "my notes, not a database\n");
  // Another program's database (here the session memory's).
  const fs::path other = fresh("memory.sqlite");
  { SessionStore::open(other); }
  const std::string before = sha256_file(other);
  e = test::error_of([&] { ExecCache::open(other); });
  EXPECT_NE(e.find(other.string()), std::string::npos) << e;
  EXPECT_EQ(sha256_file(other), before);
  // A cache of another version.
  const fs::path old = fresh("old.sqlite");
  ExecCache::open(old).reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(old.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 7", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  e = test::error_of([&] { ExecCache::open(old); });
  EXPECT_NE(e.find(old.string() + ": version 7, this build reads version 2; delete the file"), std::string::npos) << e;
}

// The file stays bounded: past max_runs a store drops the runs least recently stored or looked up, and a
// dropped program simply runs again.
TEST(ExecCache, KeepsAtMostMaxRunsDroppingTheLeastRecentlyUsed) {
  REQUIRE_SANDBOX();
  ExecCacheOptions o;
  o.max_runs = 3;
  auto cache = ExecCache::open(fresh("bounded.sqlite"), o);
  SandboxOptions so;
  auto prog = [](int i) { return fmt::format("print({})\n", i); };
  auto run = [&](int i) {
    const std::vector<std::string> p = {prog(i)};
    return run_python_batch_cached(*cache, p, p, "", so, 1)[0];
  };
  for (int i = 0; i < 3; ++i) {
    run(i);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // distinct use times
  }
  EXPECT_EQ(cache->stats().evicted, 0);
  run(0);  // a hit: program 0 is now the most recently used
  EXPECT_EQ(cache->stats().hits, 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  run(3);  // a fourth run: program 1, the least recently used, goes
  EXPECT_EQ(cache->stats().evicted, 1);
  const auto found = cache->find({ExecCache::key(prog(0), so), ExecCache::key(prog(1), so),
                                  ExecCache::key(prog(2), so), ExecCache::key(prog(3), so)});
  EXPECT_TRUE(found[0].has_value());
  EXPECT_FALSE(found[1].has_value());
  EXPECT_TRUE(found[2].has_value());
  EXPECT_TRUE(found[3].has_value());
  EXPECT_EQ(run(1).stdout_tail, "1\n");  // dropped: it runs again, same answer
  ExecCacheOptions bad;
  bad.max_runs = -1;
  EXPECT_NE(test::error_of([&] { ExecCache::open(fresh("bad.sqlite"), bad); }).find("max_runs -1 is out of range"),
            std::string::npos);
}

// A file made by the previous version (no use times) keeps its runs and is brought up to date in place.
TEST(ExecCache, AVersionOneFileKeepsItsRuns) {
  REQUIRE_SANDBOX();
  const fs::path f = fresh("v1.sqlite");
  SandboxOptions so;
  const std::string k = ExecCache::key("print(7)\n", so);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(f.c_str(), &db), SQLITE_OK);
  const std::string sql = "CREATE TABLE runs(key TEXT PRIMARY KEY, outcome TEXT NOT NULL, exit_code INTEGER NOT NULL,"
                          " stdout TEXT NOT NULL, stderr TEXT NOT NULL, wall_s REAL NOT NULL, created_ms INTEGER NOT NULL);"
                          "INSERT INTO runs VALUES('" + k + "', 'passed', 0, 'stored 7\n', '', 0.05, 1);"
                          "PRAGMA user_version = 1;";
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto cache = ExecCache::open(f);
  const std::vector<std::string> p = {"print(7)\n"};
  EXPECT_EQ(run_python_batch_cached(*cache, p, p, "", so, 1)[0].stdout_tail, "stored 7\n");  // from the file
  EXPECT_EQ(cache->stats().hits, 1);
  cache.reset();
  EXPECT_EQ(ExecCache::open(f)->find({k})[0]->stdout_tail, "stored 7\n");  // reopened as version 2
}

}  // namespace
}  // namespace cogumi
