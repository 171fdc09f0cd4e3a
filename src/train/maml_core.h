// cogumi/train: the pieces of MAML (maml.h) on the trainer's own graph, open to tests. Includes
// ggml through step.h: for src/train and tests only.
#pragma once

#include <ggml-backend.h>
#include <ggml.h>

#include <map>
#include <string>
#include <vector>

#include "train/maml.h"
#include "train/sft_data.h"
#include "train/step.h"

namespace cogumi::maml {

// Host copies of the trainable tensors (or of their gradients), in TrainGraph::params() order.
using Params = std::vector<std::vector<float>>;

Params read_params(const TrainGraph& tg);
void write_params(const TrainGraph& tg, const Params& p);
Params read_grads(const TrainGraph& tg);
void write_grads(const TrainGraph& tg, const Params& g);
void zero_grads(const TrainGraph& tg);
double norm(const Params& p);

// Examples through a TrainGraph of S rows of T tokens, one example per row, in micro-batches.
class Runner {
 public:
  Runner(TrainGraph& tg, int T, int S, Token pad) : tg_(tg), T_(T), S_(S), pad_(pad) {}
  // Mean loss over the examples' target tokens (forward only).
  double loss(const std::vector<SftExample>& ex);
  // The gradient of the loss: the mean over micro-batches of each one's mean-over-targets
  // gradient (one micro-batch when ex fits in S rows: exactly the gradient of loss(ex)).
  // The accumulators are zero afterwards. `loss_out`: the loss at the current weights.
  Params gradient(const std::vector<SftExample>& ex, double* loss_out = nullptr);
  // `o.steps` SGD steps on ex from the current weights; returns the loss before the first step.
  double adapt(const std::vector<SftExample>& ex, const InnerOptions& o);
  TrainGraph& graph() { return tg_; }

 private:
  TrainGraph& tg_;
  int T_, S_;
  Token pad_;
  HostBatch batch_;
};

struct TaskLosses {
  double support_pre = 0, support_post = 0, query_pre = 0, query_post = 0;
};

// FOMAML for one task: from theta, o.steps SGD steps on `support`, then the gradient of the query
// loss at the adapted weights theta'. The graph is left at theta'. `losses` (optional) gets the
// support loss before and after adaptation and the query loss at theta and theta'.
Params task_gradient(Runner& r, const Params& theta, const std::vector<SftExample>& support,
                     const std::vector<SftExample>& query, const InnerOptions& o, TaskLosses* losses = nullptr);

// The outer update: theta through TrainGraph::step (AdamW, clip) with `grad` as the gradient.
// Returns the gradient norm the step saw.
double meta_update(TrainGraph& tg, const Params& theta, const Params& grad, const AdamWParams& p);

// Forward pass to the argmax token at every position, S rows of T tokens.
class ArgmaxGraph {
 public:
  ArgmaxGraph(const ModelGraph& mg, const std::vector<ggml_backend_t>& backends, int T, int S);
  ~ArgmaxGraph();
  ArgmaxGraph(const ArgmaxGraph&) = delete;
  ArgmaxGraph& operator=(const ArgmaxGraph&) = delete;
  // How many examples greedy decoding answers exactly: every target token but a final
  // end-of-text one is the argmax after the tokens before it. Examples longer than T count as wrong.
  size_t exact_matches(const std::vector<SftExample>& ex, Token pad, Token end, std::vector<uint8_t>* per_example = nullptr);
  // The argmax token at each of the T positions of one example's row (padding past its end).
  std::vector<int32_t> argmax(const SftExample& ex);
  int seq_len() const { return T_; }

 private:
  int T_, S_;
  ggml_context* ctx_in_ = nullptr;
  ggml_backend_buffer_t buf_in_ = nullptr;
  ggml_context* ctx_g_ = nullptr;
  ggml_backend_sched_t sched_ = nullptr;
  ggml_cgraph* gf_ = nullptr;
  ggml_tensor *tokens_ = nullptr, *pos_ = nullptr, *mask_ = nullptr, *out_ = nullptr;
  HostBatch batch_;
  void run(std::vector<int32_t>& out);  // batch_ through the graph
};

// Records grouped by task: load_sft's examples of each file, each under its line's task field.
// Errors name FILE:LINE and the field.
std::map<std::string, std::vector<SftExample>> load_tasks(const std::vector<std::filesystem::path>& files,
                                                          const std::string& field, const Model& tok,
                                                          const SftOptions& sft);

}  // namespace cogumi::maml
