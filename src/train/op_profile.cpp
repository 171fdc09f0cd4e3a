#include "train/op_profile.h"

#include <fmt/format.h>
#include <ggml.h>

#include <algorithm>
#include <cstdlib>
#include <string_view>
#include <vector>

namespace cogumi {

bool OpProfile::requested() {
  const char* env = std::getenv("COGUMI_TRAIN_PROFILE");
  return env && std::string_view(env) == "1";
}

void OpProfile::attach(ggml_backend_sched_t sched) {
  ggml_backend_sched_set_eval_callback(sched, &OpProfile::on_node, this);
}

namespace {
std::string shape(const ggml_tensor* t) {
  if (!t) return "-";
  int dims = GGML_MAX_DIMS;
  while (dims > 1 && t->ne[dims - 1] == 1) --dims;  // trailing 1s only: [T,T,1,S] stays whole
  std::string s = fmt::format("{}[{}", ggml_type_name(t->type), t->ne[0]);
  for (int d = 1; d < dims; ++d) s += fmt::format(",{}", t->ne[d]);
  if (!ggml_is_contiguous(t)) s += ",nc";
  return s + "]";
}
}  // namespace

// ggml's scheduler asks before each node (ask: true; answering true makes it compute the graph up
// to that node alone) and then reports it done (ask: false): the time between is that node's.
bool OpProfile::on_node(ggml_tensor* t, bool ask, void* self) {
  auto* p = static_cast<OpProfile*>(self);
  const auto now = std::chrono::steady_clock::now();
  if (ask) {
    p->started_ = now;
    return true;
  }
  Row& r = p->rows_[fmt::format("{} {} x {} -> {}", ggml_op_desc(t), shape(t->src[0]), shape(t->src[1]),
                                 ggml_type_name(t->type))];
  r.seconds += std::chrono::duration<double>(now - p->started_).count();
  ++r.calls;
  return true;
}

void OpProfile::report(int top) const {
  if (rows_.empty()) return;
  std::vector<std::pair<std::string, Row>> v(rows_.begin(), rows_.end());
  std::sort(v.begin(), v.end(),
            [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  double total = 0;
  for (const auto& [k, r] : v) total += r.seconds;
  fmt::print(stderr, "train profile: {:.2f} s in {} kinds of node (COGUMI_TRAIN_PROFILE=1)\n",
             total, v.size());
  for (int i = 0; i < int(v.size()) && i < top; ++i)
    fmt::print(stderr, "  {:5.1f}% {:8.3f} s {:6} x  {}\n", 100.0 * v[i].second.seconds / total,
               v[i].second.seconds, v[i].second.calls, v[i].first);
}

}  // namespace cogumi
