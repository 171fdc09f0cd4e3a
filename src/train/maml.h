// cogumi/train: first-order MAML (FOMAML) on a LoRA adapter, the plan's Phase 7A, and the few-shot
// evaluation that decides whether it earns its keep (`cogumi train --maml`, bench/maml.sh).
//
// Meta-training. Training records carry a task name (a field, by default "category": the nano
// curriculum's domain; the bench uses the curriculum's generator templates, its task families).
// Each meta-step draws `meta_batch` tasks; for each, `shots` support and `query` query examples
// of that task (distinct). From the meta weights theta the adapter takes `inner_steps` plain SGD
// steps on the support loss (theta' = theta - inner_lr * grad), then the gradient of the query
// loss at theta' is taken. First-order MAML: that gradient is used as is for theta (the second-
// order term through the inner steps is dropped, as in Finn et al. 2017's FOMAML). The mean over
// the meta-batch goes through the trainer's own AdamW step (TrainGraph::step: clipping, skipped
// non-finite updates) with the outer learning rate. Not Reptile: Reptile would move theta toward
// theta' itself; here the update is the query gradient at theta'.
//
// Few-shot evaluation (maml_fewshot_eval): for each held-out task, episodes of k support examples
// (k in `shots`) and `query` query examples from that task. Each method answers the same query
// items after seeing the same k examples:
//   maml       the meta-trained adapter after `inner_steps` SGD steps on the k examples
//   multitask  a plainly fine-tuned adapter (same data) after the same steps on the k examples
//   retrieval  the base with the k examples in the prompt (the runtime's demonstration_text)
// plus, once per episode, each adapter and the base without the examples (k = 0). An answer is
// right when greedy decoding reproduces the reference completion exactly, which is checked in
// one forward pass: every completion token is the argmax after the tokens before it (teacher
// forcing equals greedy decoding until the first miss). The end-of-text token is not required.
#pragma once

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "train/lora_spec.h"

namespace cogumi {

// The inner loop: plain SGD on the support loss.
struct InnerOptions {
  int steps = 3;           // 1..100
  float lr = 1.0f;         // (0, 100]; 1.0 was the better of {0.3, 1.0} on the nano's dev families (by noise-level margins)
  float clip = 1.0f;       // max gradient norm of each inner step, 0: off; [0, 1e6]
};

struct MamlOptions {
  std::filesystem::path model;                // base GGUF (kept in its own type)
  std::vector<std::filesystem::path> data;    // JSONL records with a task field
  std::filesystem::path out;                  // the meta-trained adapter GGUF
  std::filesystem::path init;                 // start from this adapter (same rank/targets), or fresh
  std::string task_field = "category";        // the record field naming its task
  LoraSpec lora{16, 16.0f, {"q", "v"}};
  InnerOptions inner;
  int meta_steps = 100;        // outer updates, 1..1e6
  int meta_batch = 4;          // tasks per outer update, 1..1024
  int shots = 5;               // support examples per task, 1..256
  int query = 8;               // query examples per task, 1..1024
  float outer_lr = 1e-3f;      // AdamW, (0, 10]
  float outer_clip = 1.0f;     // [0, 1e6], 0: off
  int seq_len = 128;           // tokens per row, 8..65536
  uint64_t seed = 1;
  int n_threads = 0;           // 0: all cores
  std::string device;          // "", "cpu", "gpu", "gpu:N" as `cogumi train --device`
  const std::atomic<bool>* cancel = nullptr;  // set: stop after the current meta-step, write the adapter
  bool progress = true;
  // Every option in its range; errors name the command-line option.
  void validate() const;
};

struct MamlResult {
  int steps = 0;
  size_t n_tasks = 0, n_tasks_skipped = 0;  // tasks used; tasks with fewer than shots + query examples
  size_t n_examples = 0;
  // Means over the first / last 10% of meta-steps (at least one step each).
  double first_query_loss_pre = 0, first_query_loss_post = 0;  // query loss at theta / at theta'
  double last_query_loss_pre = 0, last_query_loss_post = 0;
  bool interrupted = false;
  double seconds = 0;
};

// Meta-trains and writes opts.out (an adapter llama.cpp loads), OUT.log.jsonl (per meta-step: the
// support loss before and after the inner steps, the query loss at theta and at theta') and
// OUT.summary.json.
MamlResult train_maml(const MamlOptions& opts);

struct FewshotEvalOptions {
  std::filesystem::path model;
  std::filesystem::path maml_adapter;        // required
  std::filesystem::path multitask_adapter;   // optional (skipped when empty)
  std::vector<std::filesystem::path> data;   // held-out tasks' records ({prompt, completion} + task field)
  std::string task_field = "task";
  LoraSpec lora{16, 16.0f, {"q", "v"}};      // both adapters' rank and targets
  std::vector<int> shots{1, 3, 5};           // each 1..64
  int episodes = 4;                          // per task and k, 1..10000
  int query = 16;                            // query items per episode, 1..4096
  InnerOptions maml_inner, multitask_inner;  // test-time adaptation of each adapter
  bool retrieval = true;
  int seq_len = 128;                         // rows of the adapters' graphs; retrieval rows grow to fit
  uint64_t seed = 1;
  int n_threads = 0;
  std::filesystem::path out;                 // JSONL, one line per (task, k, episode, method)
  bool progress = true;
  void validate() const;
};

// Runs every episode, writes opts.out, returns the number of lines written.
size_t maml_fewshot_eval(const FewshotEvalOptions& opts);

// The nano curriculum's items of one split as {prompt, completion, category, source_id, task}
// records, asked as `cogumi eval` asks them, task = the generator template (templates.jsonl).
// `families` keeps only those templates (empty: all); `exclude` drops these. Returns the count.
size_t write_nano_family_tasks(const std::filesystem::path& curriculum, const std::string& split,
                               const std::vector<std::string>& families, const std::vector<std::string>& exclude,
                               const std::filesystem::path& out);

}  // namespace cogumi
