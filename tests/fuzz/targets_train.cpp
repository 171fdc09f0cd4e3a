// Targets for the trainer's inputs: SFT records (tokenized with the shipped nano model's
// vocabulary) and GGUF files through Cogumi's own readers (the trainer's ModelGraph, lora_info
// of lora merge, the checkpoint loader; all read tensor data with gguf_tensor_bytes).
#include <ggml-backend.h>
#include <ggml-cpu.h>
#include <ggml.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "core/error.h"
#include "core/threads.h"
#include "engine/model.h"
#include "fuzz.h"
#include "train/checkpoint.h"
#include "train/lora_merge.h"
#include "train/model_graph.h"
#include "train/sft_data.h"

namespace cogumi::fuzz {

namespace {

std::shared_ptr<Model> g_tok;
ggml_backend_t g_cpu = nullptr;

// The vocabulary comes from the repository's shipped model: $COGUMI_FUZZ_VOCAB, else
// models/nano-base.gguf found from the working directory or the source tree.
std::filesystem::path vocab_path() {
  if (const char* e = std::getenv("COGUMI_FUZZ_VOCAB")) return e;
  return std::filesystem::path(COGUMI_FUZZ_REPO) / "models/nano-base.gguf";
}

void quiet_log(ggml_log_level, const char*, void*) {}

}  // namespace

void init_sft() {
  ModelOptions o;
  o.vocab_only = true;
  g_tok = Model::load(vocab_path(), o);
}

// The options come from the input's length, so every combination is reached.
void target_sft(std::string_view in) {
  auto path = write_scratch("sft.jsonl", in);
  SftOptions o;
  o.max_len = 8 + int(in.size() % 57);
  o.drop_long = in.size() & 1;
  o.train_on_inputs = in.size() & 2;
  o.use_chat_template = in.size() & 4;
  SftStats st;
  auto ex = load_sft(path, *g_tok, o, &st);
  size_t n_target = 0;
  for (const auto& e : ex) {
    FUZZ_CHECK(e.tokens.size() == e.target.size(), "tokens and target differ in length at " + e.source);
    FUZZ_CHECK(!e.tokens.empty() && int(e.tokens.size()) <= o.max_len, "example length out of range at " + e.source);
    for (Token t : e.tokens) FUZZ_CHECK(t >= 0 && t < g_tok->n_vocab(), "token id outside the vocabulary at " + e.source);
    size_t nt = 0;
    for (uint8_t t : e.target) nt += t;
    FUZZ_CHECK(nt > 0, "an example with no target tokens at " + e.source);
    n_target += nt;
  }
  FUZZ_CHECK(st.n_target_tokens == n_target, "SftStats counts other target tokens than the examples hold");
  FUZZ_CHECK(st.n_examples == ex.size() + st.n_dropped, "SftStats: examples != kept + dropped");
}

void init_gguf() {
  engine_init();
  ggml_log_set(quiet_log, nullptr);  // every rejected header would print a line
  g_cpu = ggml_backend_cpu_init();
  ggml_backend_cpu_set_n_threads(g_cpu, compute_threads());  // ggml's default is 4 spinning threads
}

// One target per reader, so a defect found in one does not keep the fuzzer from the others.
void target_gguf_model(std::string_view in) {
  ModelGraph mg(write_scratch("model.gguf", in), g_cpu);
  FUZZ_CHECK(mg.hparams().n_vocab > 0 && mg.hparams().n_head > 0, "a model without a vocabulary or heads loaded");
}

void target_gguf_lora(std::string_view in) { (void)lora_info(write_scratch("adapter.gguf", in)); }

// The seeds' checkpoint holds this tensor: asking for it reaches the tensor data reader
// (gguf_tensor_bytes) with whatever size and offset the file claims.
void target_gguf_checkpoint(std::string_view in) {
  std::vector<char> lora_a;
  CheckpointTensors t;
  t.host["blk.0.attn_q.weight.lora_a"] = &lora_a;
  (void)load_checkpoint(write_scratch("checkpoint.gguf", in), t);
}

}  // namespace cogumi::fuzz
