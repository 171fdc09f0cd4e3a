// cogumi/train: where a training step's time goes, op by op (COGUMI_TRAIN_PROFILE=1).
//
// With the variable set, the trainer's scheduler computes its graphs one node at a time (ggml's
// eval callback) and this times each node, summed per op and shape; the table goes to stderr when
// the graph is freed. Every node then waits for its own thread-pool round trip, so the total is a
// little above a normal step's; the shares are what to read. Off (the default) costs nothing.
#pragma once

#include <ggml-backend.h>

#include <chrono>
#include <map>
#include <string>

namespace cogumi {

class OpProfile {
 public:
  // True when COGUMI_TRAIN_PROFILE is 1.
  static bool requested();
  // Times every node `sched` computes from now on; `this` must outlive the scheduler's use.
  void attach(ggml_backend_sched_t sched);
  // The per-op table, largest first (`top` rows), on stderr; nothing when no node was timed.
  void report(int top = 30) const;

 private:
  struct Row {
    double seconds = 0;
    long calls = 0;
  };
  static bool on_node(ggml_tensor* t, bool ask, void* self);
  std::map<std::string, Row> rows_;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace cogumi
