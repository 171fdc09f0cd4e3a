// Session memory latency: append (both durability settings, one thread and eight), last-N reads
// on a store of 50,000 turns, feedback writes and the router-adapt scan. Prints a Markdown table.
//   cogumi-bench-memory [DIR]   (DIR: where the store files go; default: the temp directory)
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "runtime/memory.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(p * double(v.size())))];
}

void row(const char* what, const std::vector<double>& us, double total_s) {
  std::printf("| %s | %zu | %.1f | %.1f | %.1f | %.0f |\n", what, us.size(), pct(us, 0.5),
              pct(us, 0.99), pct(us, 1.0), double(us.size()) / total_s);
}

cogumi::Turn make_turn(long k) {
  cogumi::Turn t;
  t.role = k % 2 ? "assistant" : "user";
  t.content = "turn " + std::to_string(k) + ": " + std::string(400, 'x');  // a short chat message
  if (k % 2) {
    t.choice = "math";
    t.decision = {{"choice", "math"},
                  {"probabilities", {{"base", 0.05}, {"math", 0.9}, {"code", 0.05}}},
                  {"confidence", 0.9}};
    t.confidence = 0.9;
    t.mode = "fast";
  }
  return t;
}

fs::path fresh(const fs::path& dir, const std::string& name) {
  fs::path p = dir / name;
  for (const char* s : {"", "-wal", "-shm"}) fs::remove(p.string() + s);
  return p;
}

void bench_append(const fs::path& dir, cogumi::Durability d, const char* label, int n) {
  cogumi::MemoryOptions o;
  o.durability = d;
  auto st = cogumi::SessionStore::open(fresh(dir, "append.db"), o);
  const std::string s = st.create_session();
  std::vector<double> us;
  const auto t0 = Clock::now();
  for (int k = 0; k < n; ++k) {
    const auto t = Clock::now();
    st.append_turn(s, make_turn(k));
    us.push_back(us_since(t));
  }
  row(label, us, us_since(t0) / 1e6);
}

void bench_append_threads(const fs::path& dir, int threads, int n) {
  auto st = cogumi::SessionStore::open(fresh(dir, "threads.db"));
  std::vector<double> us;
  std::mutex mu;
  std::vector<std::thread> pool;
  const auto t0 = Clock::now();
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      const std::string s = st.create_session();
      std::vector<double> mine;
      for (int k = 0; k < n; ++k) {
        const auto t1 = Clock::now();
        st.append_turn(s, make_turn(k));
        mine.push_back(us_since(t1));
      }
      std::lock_guard lock(mu);
      us.insert(us.end(), mine.begin(), mine.end());
    });
  }
  for (auto& th : pool) th.join();
  const std::string label = "append, " + std::to_string(threads) + " threads, a session each (NORMAL)";
  row(label.c_str(), us, us_since(t0) / 1e6);
}

void bench_reads(const fs::path& dir) {
  const int n_sessions = 1000, n_turns = 50;
  auto st = cogumi::SessionStore::open(fresh(dir, "reads.db"));
  std::vector<std::string> sessions;
  std::vector<int64_t> assistant_turns;
  for (int i = 0; i < n_sessions; ++i) sessions.push_back(st.create_session());
  // Interleaved, as a server writes them: a session's turns are scattered through the file.
  for (int k = 0; k < n_turns; ++k)
    for (const auto& s : sessions) {
      const int64_t id = st.append_turn(s, make_turn(k));
      if (k % 2) assistant_turns.push_back(id);
    }
  std::mt19937 rng(1);
  std::vector<double> us;
  auto t0 = Clock::now();
  for (int i = 0; i < 5000; ++i) {
    const auto& s = sessions[rng() % sessions.size()];
    const auto t = Clock::now();
    auto turns = st.last_turns(s, 20);
    us.push_back(us_since(t));
    if (turns.size() != 20) std::abort();
  }
  row("last_turns(session, 20), 50,000 turns in 1,000 sessions", us, us_since(t0) / 1e6);

  us.clear();
  t0 = Clock::now();
  for (int i = 0; i < 10000; ++i) {
    const auto t = Clock::now();
    st.record_feedback(assistant_turns[rng() % assistant_turns.size()], rng() % 2 ? 1 : -1);
    us.push_back(us_since(t));
  }
  row("record_feedback", us, us_since(t0) / 1e6);

  us.clear();
  t0 = Clock::now();
  size_t rows = 0;
  for (int i = 0; i < 20; ++i) {
    const auto t = Clock::now();
    rows = st.feedback().size();
    us.push_back(us_since(t));
  }
  std::printf("| feedback() scan, latest per turn: %zu rows of 10,000 | %zu | %.1f | %.1f | %.1f | %.0f |\n",
              rows, us.size(), pct(us, 0.5), pct(us, 0.99), pct(us, 1.0),
              double(us.size()) / (us_since(t0) / 1e6));
}

}  // namespace

int main(int argc, char** argv) {
  const fs::path base = argc > 1 ? fs::path(argv[1]) : fs::temp_directory_path();
  const fs::path dir = base / ("cogumi-memory-bench-" + std::to_string(getpid()));
  fs::create_directories(dir);
  try {
    std::printf("| operation | calls | p50 us | p99 us | max us | calls/s |\n|---|---:|---:|---:|---:|---:|\n");
    bench_append(dir, cogumi::Durability::process_crash, "append, 1 thread, synchronous=NORMAL", 5000);
    bench_append(dir, cogumi::Durability::power_loss, "append, 1 thread, synchronous=FULL", 1000);
    bench_append_threads(dir, 8, 1000);
    bench_reads(dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "memory bench: %s\n", e.what());
    fs::remove_all(dir);
    return 1;
  }
  fs::remove_all(dir);
  return 0;
}
