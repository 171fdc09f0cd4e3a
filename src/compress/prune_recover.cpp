#include "compress/prune_recover.h"

#include <gguf.h>

#include <chrono>

#include "core/error.h"
#include "engine/model_init.h"
#include "train/lora_merge.h"
#include "train/trainer.h"

namespace cogumi {

namespace {

fs::path beside(const fs::path& out, const std::string& suffix) {
  fs::path p = out;
  p.replace_extension(suffix);
  return p;
}

// "f16" / "bf16" when the model's matrices are stored so (full SFT writes F32; the recovered model
// keeps the pruned one's size), "" for F32.
std::string matrix_type(const fs::path& model) {
  gguf_context* g = gguf_init_from_file(model.c_str(), {true, nullptr});
  if (!g) fail("'{}' is not a readable GGUF file", model.string());
  const int64_t id = gguf_find_tensor(g, "blk.0.ffn_up.weight");
  const ggml_type t = id >= 0 ? gguf_get_tensor_type(g, id) : GGML_TYPE_F32;
  gguf_free(g);
  return t == GGML_TYPE_F16 ? "f16" : t == GGML_TYPE_BF16 ? "bf16" : "";
}

}  // namespace

fs::path unrecovered_path(const fs::path& out) { return beside(out, ".unrecovered.gguf"); }

PruneRecovery recover_pruned(const fs::path& pruned, const fs::path& out, const PruneOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  TrainOptions t;
  t.model = pruned;
  t.data = {{o.recover_data, 1.0}};
  t.full = o.recover_full;
  t.lora.rank = o.recover_rank;
  t.lora.alpha = float(o.recover_rank);  // scale 1, as cogumi train's default
  t.max_steps = o.recover_steps;
  t.lr = o.recover_lr;
  t.warmup = std::max(1, o.recover_steps / 10);
  t.batch = o.recover_batch;
  t.sft.max_len = o.recover_seq_len;
  t.pack = true;
  t.n_threads = o.n_threads;
  t.seed = o.recover_seed;
  const std::string type = matrix_type(pruned);
  // LoRA: the adapter, merged into the pruned weights. Full: the trained F32 model, stored back
  // in the pruned model's type.
  t.out = beside(out, o.recover_full ? ".recovery.f32.gguf" : ".recovery.lora.gguf");
  const TrainResult r = train(t);
  if (r.interrupted) fail("recovery training of '{}' was interrupted", pruned.string());
  if (o.recover_full) {
    if (type.empty()) {
      fs::rename(t.out, out);
    } else {
      model_quantize(t.out, out, type, o.n_threads);
      fs::remove(t.out);  // as large as the model in F32
    }
  } else {
    lora_merge(pruned, t.out, out);
  }
  PruneRecovery rec;
  rec.mode = o.recover_full ? "full" : "lora";
  rec.steps = r.steps;
  rec.first_loss = r.first_loss;
  rec.last_loss = r.last_loss;
  rec.n_skipped = r.n_skipped;
  if (!o.recover_full) rec.adapter = t.out;
  rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rec;
}

}  // namespace cogumi
