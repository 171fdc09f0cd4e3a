// cogumi train: supervised fine-tuning (LoRA or full-parameter) on ggml.
#include <fmt/format.h>

#include <atomic>
#include <csignal>

#include <sstream>

#include "commands.h"
#include "train/maml.h"
#include "train/memory.h"
#include "train/trainer.h"

namespace cogumi::cli {

void setup_train(CLI::App& sub) {
  static TrainOptions o;
  static std::string targets = "q,k,v,o,gate,up,down";  // LoraSpec's default
  static std::vector<std::string> data;
  sub.add_option("-m,--model", o.model, "Base GGUF: LoRA trains on it in its own type (F32, F16, BF16 or quantized); --full needs F32/F16/BF16 (held as F32)")->required();
  sub.add_option("-d,--data", data,
                 "JSONL file[:WEIGHT] (repeatable): {instruction,input?,output}, {messages:[...]}, or "
                 "{prompt,completion}; WEIGHT 0.3 samples 30%, 2 repeats twice")
      ->required();
  sub.add_option("-o,--out", o.out, "Output: adapter GGUF (LoRA) or model GGUF (full)")->required();
  auto* full = sub.add_flag("--full", o.full, "Full-parameter training (default: LoRA)");
  auto* rank = sub.add_option("--lora-rank", o.lora.rank, "LoRA rank (1-4096)")->capture_default_str();
  auto* alpha = sub.add_option("--lora-alpha", o.lora.alpha, "LoRA alpha (> 0; scale = alpha / rank)")->capture_default_str();
  auto* tgt = sub.add_option("--targets", targets, "LoRA target modules")->capture_default_str();
  full->excludes(rank)->excludes(alpha)->excludes(tgt);
  sub.add_option("--seq-len", o.sft.max_len, "Tokens per sequence")->capture_default_str();
  sub.add_flag("--drop-long", o.sft.drop_long, "Drop examples longer than --seq-len (default: truncate)");
  sub.add_flag("--train-on-inputs", o.sft.train_on_inputs, "Loss on prompt tokens too");
  sub.add_option("--batch", o.batch, "Sequences per micro-batch")->capture_default_str();
  sub.add_option("--grad-accum", o.grad_accum, "Micro-batches per optimizer step")->capture_default_str();
  sub.add_option("--epochs", o.epochs, "Epochs")->capture_default_str();
  sub.add_option("--max-steps", o.max_steps, "Optimizer steps (overrides --epochs)");
  sub.add_option("--lr", o.lr, "Peak learning rate")->capture_default_str();
  sub.add_option("--warmup", o.warmup, "Warm-up steps")->capture_default_str();
  sub.add_option("--schedule", o.schedule, "cosine, linear or constant")->capture_default_str();
  sub.add_option("--weight-decay", o.weight_decay, "AdamW weight decay")->capture_default_str();
  sub.add_option("--val-split", o.val_split, "Share of examples held out for validation (e.g. 0.05)");
  sub.add_option("--val-data", o.val_data, "Validate on these SFT files (a dev split) instead of --val-split");
  sub.add_option("--eval-steps", o.eval_steps, "Validate every N steps (0 = each epoch)");
  sub.add_option("--patience", o.patience, "Stop after N validations without improvement (0 = never)");
  sub.add_option("--seed", o.seed, "Seed (data order, LoRA init)")->capture_default_str();
  sub.add_option("--threads", o.n_threads, "CPU threads (0 = all)");
  sub.add_option("--log", o.log, "Write one JSON line per step here (default OUT.log.jsonl)");
  sub.add_option("--clip", o.clip, "Max global gradient norm (0 = off)")->capture_default_str();
  sub.add_flag("--pack", o.pack, "Pack several short examples into each sequence (kept apart by the attention mask)");
  sub.add_option("--save-steps", o.save_steps, "Checkpoint (OUT.ckpt.gguf) every N steps (0 = only on Ctrl-C)");
  auto* resume_opt = sub.add_flag("--resume", o.resume, "Continue from OUT.ckpt.gguf");
  sub.add_flag("--cpu", o.cpu_only, "Train on the CPU even when a GPU is present");
  sub.add_option("--device", o.device, "cpu, gpu or gpu:N (default: the first GPU if any, else the CPU)");
  auto* memory_opt = sub.add_option("--max-memory-gib", o.max_memory_gib,
                 "Refuse to start a run needing more than this on the device (0 = its free memory; 0-1048576)");
  auto* ckpt_opt = sub.add_flag("--checkpoint-activations", o.checkpoint_activations,
               "Recompute each block's activations in the backward pass: far less activation memory at long "
               "sequences, about a third more compute, the same results");
  static std::string ckpt_blocks = "0";
  auto* ckpt_blocks_opt = sub.add_option("--checkpoint-blocks", ckpt_blocks,
                 "Checkpoint only the first N blocks (0-65536, at most the model's): memory and extra compute in "
                 "between none and --checkpoint-activations (a run that does not fit names the N that does); auto: "
                 "the fewest that fit the device (none when the run fits as it is)")
      ->check(CLI::IsMember({"auto"}) | CLI::Range(0, 65536))
      ->capture_default_str()
      ->excludes(ckpt_opt);
  auto* flash_opt = sub.add_option("--flash-attn", o.flash_attn,
                 "auto, on or off: flash attention in the forward pass, the attention probabilities recomputed in the "
                 "backward (far less memory at long sequences; K and V in F16). auto: on for a GPU, off on the CPU")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  auto* fab_opt = sub.add_option("--flash-attn-backward", o.flash_attn_backward,
                 "auto, fused or recompute: with flash attention, its gradients by fused kernels (no [T, T] tensors in "
                 "the backward pass either) or from the softmax recomputed per block. auto: fused on a GPU that runs "
                 "the kernels (NVIDIA, compute capability 8.0+, head sizes 64 and 128)")
      ->check(CLI::IsMember({"auto", "fused", "recompute"}))
      ->capture_default_str();
  auto* dequant_opt = sub.add_option("--dequant-forward", o.dequant_forward,
                 "auto, on or off: a quantized base's weights multiplied as BF16 copies dequantized on the fly in the "
                 "forward pass (tensor-core GEMMs; with flash attention or checkpointing). auto: on for a GPU")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  auto* out_prod_opt = sub.add_option("--out-prod-grads", o.out_prod_grads,
                 "auto, on or off: F32 matmuls' gradients (LoRA, attention) as GEMMs reading their operands transposed "
                 "in place, no transposed copies. auto: on for a GPU, off on the CPU, where off still takes a LoRA's "
                 "A and B gradients (rank >= 16) that way, as register tiles (patch 0012)")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  auto* base_opt = sub.add_option("--base-weights", o.base_weights,
                 "auto, file, f32 or bf16: how a LoRA's F16/BF16 base is held. f32: widened at load (the same values; "
                 "F32 matmuls convert nothing); bf16: F16 rounded to BF16 (twice F32's rate on a CPU with "
                 "AVX512-BF16); file: as the file has it. auto: on the CPU bf16 where it has AVX512-BF16, else f32 "
                 "when that takes at most a quarter of its free memory and --max-memory-gib is not given; file on a GPU")
      ->check(CLI::IsMember({"auto", "file", "f32", "bf16"}))
      ->capture_default_str();
  static std::string f32_weights;
  auto* f32_opt = sub.add_option("--f32-weights", f32_weights, "auto, on or off: --base-weights auto, f32 or file")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  base_opt->excludes(f32_opt);
  static bool dry_run = false;
  auto* dry_run_opt = sub.add_flag("--dry-run", dry_run, "Print the memory the run needs (weights, LoRA, optimizer, activations) and exit");
  // First-order MAML (train/maml.h): --max-steps meta-steps, --lr the outer AdamW rate, --clip its clip.
  static MamlOptions mo;
  static bool maml = false;
  auto* maml_flag = sub.add_flag("--maml", maml, "First-order MAML on a LoRA (targets q,v unless --targets): tasks from --task-field");
  sub.add_option("--task-field", mo.task_field, "--maml: the record field naming its task")->capture_default_str();
  sub.add_option("--inner-steps", mo.inner.steps, "--maml: SGD steps on each task's support set (1-100)")->capture_default_str();
  sub.add_option("--inner-lr", mo.inner.lr, "--maml: inner SGD learning rate")->capture_default_str();
  sub.add_option("--inner-clip", mo.inner.clip, "--maml: max gradient norm of an inner step (0 = off)")->capture_default_str();
  sub.add_option("--meta-batch", mo.meta_batch, "--maml: tasks per outer update")->capture_default_str();
  sub.add_option("--shots", mo.shots, "--maml: support examples per task")->capture_default_str();
  sub.add_option("--query", mo.query, "--maml: query examples per task")->capture_default_str();
  sub.add_option("--init", mo.init, "--maml: start from this adapter (same rank and targets)");
  // MAML has no checkpoints and no memory estimate yet: these options are refused with it, not ignored.
  maml_flag->excludes(full)->excludes(resume_opt)->excludes(memory_opt)->excludes(dry_run_opt)->excludes(ckpt_opt)->excludes(ckpt_blocks_opt)->excludes(flash_opt)->excludes(fab_opt)->excludes(dequant_opt)->excludes(out_prod_opt)->excludes(base_opt)->excludes(f32_opt);
  sub.callback([&] {
    if (!f32_weights.empty()) o.base_weights = f32_weights == "on" ? "f32" : f32_weights == "off" ? "file" : "auto";
    o.checkpoint_blocks = ckpt_blocks == "auto" ? TrainOptions::kCheckpointBlocksAuto : std::stoi(ckpt_blocks);
    // Each mode's settings only with that mode: given to the other, they were silently ignored (and unchecked).
    static const char* kSftOnly[] = {"--batch",      "--grad-accum", "--epochs",   "--warmup",     "--schedule",
                                     "--weight-decay", "--val-split", "--val-data", "--eval-steps", "--patience",
                                     "--save-steps"};
    static const char* kMamlOnly[] = {"--task-field", "--inner-steps", "--inner-lr", "--inner-clip",
                                      "--meta-batch", "--shots",       "--query",    "--init"};
    for (const char* f : maml ? std::vector<const char*>(std::begin(kSftOnly), std::end(kSftOnly))
                              : std::vector<const char*>(std::begin(kMamlOnly), std::end(kMamlOnly)))
      if (sub.get_option(f)->count() > 0) {
        if (maml) fail("{} is not a --maml setting (it takes --inner-*, --meta-batch, --shots, --query, --max-steps, --lr, --clip)", f);
        fail("{} is a --maml setting: give --maml, or drop it", f);
      }
    if (maml) {
      engine_set_verbose(globals().verbose);
      mo.model = o.model, mo.out = o.out, mo.seq_len = o.sft.max_len, mo.seed = o.seed, mo.n_threads = o.n_threads;
      mo.device = o.cpu_only ? "cpu" : o.device;
      mo.data.clear();
      for (auto& d : data) mo.data.push_back(parse_data_source(d).path);
      mo.lora.rank = o.lora.rank, mo.lora.alpha = o.lora.alpha;
      if (sub.get_option("--targets")->count() > 0) {
        mo.lora.targets.clear();
        std::stringstream ss(targets);
        for (std::string t; std::getline(ss, t, ',');)
          if (!t.empty()) mo.lora.targets.push_back(t);
      }
      if (sub.get_option("--max-steps")->count() > 0) mo.meta_steps = o.max_steps;
      if (sub.get_option("--lr")->count() > 0) mo.outer_lr = o.lr;
      if (sub.get_option("--clip")->count() > 0) mo.outer_clip = o.clip;
      static std::atomic<bool> cancel{false};
      mo.cancel = &cancel;
      auto old = std::signal(SIGINT, [](int) { cancel = true; });
      MamlResult r = train_maml(mo);
      std::signal(SIGINT, old);
      fmt::print("FOMAML: {} meta-steps over {} tasks ({} with too few examples skipped), {:.0f} s{}\n"
                 "query loss after the inner steps {:.4f} -> {:.4f} (before them {:.4f} -> {:.4f})\nwrote {} (log {}.log.jsonl)\n",
                 r.steps, r.n_tasks, r.n_tasks_skipped, r.seconds, r.interrupted ? ", interrupted" : "",
                 r.first_query_loss_post, r.last_query_loss_post, r.first_query_loss_pre, r.last_query_loss_pre,
                 mo.out.string(), mo.out.string());
      return;
    }
    engine_set_verbose(globals().verbose);
    o.data.clear();
    for (auto& d : data) o.data.push_back(parse_data_source(d));
    o.lora.targets.clear();
    std::stringstream ss(targets);
    for (std::string t; std::getline(ss, t, ',');)
      if (!t.empty()) o.lora.targets.push_back(t);
    if (dry_run) {
      o.validate();  // before the estimate reads the options
      if (const std::string chose = resolve_checkpoint_blocks(o); !chose.empty()) fmt::print("{}\n", chose);
      const TrainMemory m = estimate_train_memory(o);
      fmt::print("{}\n{}\n", m.report(o), m.fits() ? "fits" : "does not fit");
      check_train_memory(m, o);
      return;
    }
    static std::atomic<bool> cancel{false};
    o.cancel = &cancel;
    auto old = std::signal(SIGINT, [](int) { cancel = true; });
    TrainResult r = train(o);
    std::signal(SIGINT, old);
    if (r.interrupted) {
      fmt::print("interrupted at step {}: checkpoint {}.ckpt.gguf; continue with --resume\n", r.steps, o.out.string());
      return;
    }
    fmt::print("{} examples read ({} truncated, {} dropped), {} trained on, {} validation; {} steps, loss {:.4f} -> {:.4f}, {:.0f} tokens/s\nwrote {}\n",
               r.data.n_examples, r.data.n_truncated, r.data.n_dropped, r.n_train, r.n_val, r.steps, r.first_loss, r.last_loss,
               r.tokens_per_s, o.out.string());
    if (r.diverged_at) fmt::print("warning: the loss diverged from step {}\n", r.diverged_at);
    fmt::print("log {0}, loss curve {1}.loss.svg, summary {1}.summary.json\n",
               o.log.empty() ? o.out.string() + ".log.jsonl" : o.log.string(), o.out.string());
    if (r.best_val_loss >= 0)
      fmt::print("best validation loss {:.4f} at step {}{}; those weights were written\n", r.best_val_loss, r.best_step,
                 r.stopped_early ? " (stopped early)" : "");
  });
}

}  // namespace cogumi::cli
