// What the trainer must never get wrong: the examples each step sees, the options it accepts, the
// checkpoints it keeps (a bad step or a full disk must not replace a good one), and what it
// resumes (only the run that wrote the checkpoint).
#include <gguf.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "core/io.h"
#include "engine/gguf_writer.h"
#include "engine/model_init.h"
#include "test_util.h"
#include "train/batches.h"
#include "train/lora_merge.h"
#include "train/trainer.h"

namespace cogumi {
namespace {

std::filesystem::path write_items(const std::string& name, int n, int answer_offset = 0) {
  auto p = test::tmp_dir() / name;
  std::ofstream f(p);
  for (int i = 0; i < n; ++i)
    f << json{{"instruction", "Item " + std::to_string(i) + " is"}, {"output", std::to_string((i + answer_offset) * 7 % 13)}}.dump()
      << "\n";
  return p;
}

TrainOptions small_options(const std::string& name, const std::filesystem::path& data) {
  TrainOptions o;
  o.model = test::tiny_model();
  o.data = {{data}};
  o.out = test::tmp_dir() / (name + ".gguf");
  o.lora.rank = 4;
  o.lora.targets = {"q", "v"};
  o.sft.max_len = 32;
  o.batch = 2;
  o.max_steps = 4;
  o.lr = 1e-2f;
  o.progress = false;
  return o;
}

using test::error_of;

// ---- the epoch's tail ------------------------------------------------------------------------

TEST(TrainerTrust, EpochTailIsAShortBatchNotARepeat) {
  // 5 examples in batches of 4: the second batch holds the fifth example and padding. Wrapping to
  // the epoch's first rows would train three examples twice in one epoch (and could put one
  // example twice in a batch); the token count in the log shows which happened.
  auto data = write_items("tail.jsonl", 5);
  auto tok = Model::load(test::tiny_model(), [] { ModelOptions m; m.vocab_only = true; return m; }());
  SftOptions so;
  so.max_len = 32;
  size_t epoch_tokens = 0;
  for (auto& e : load_sft(data, *tok, so)) epoch_tokens += std::min<size_t>(e.tokens.size(), 32);
  struct Case {
    int batch, grad_accum, epochs, steps;
  };
  for (Case c : {Case{4, 1, 1, 2}, Case{2, 2, 1, 2}, Case{4, 1, 2, 4}, Case{2, 1, 1, 3}}) {
    auto o = small_options("tail", data);
    o.batch = c.batch, o.grad_accum = c.grad_accum, o.epochs = c.epochs, o.max_steps = 0;
    auto r = train(o);
    EXPECT_EQ(r.steps, c.steps) << c.batch << "x" << c.grad_accum;
    size_t tokens = 0;
    read_jsonl(o.out.string() + ".log.jsonl", [&](const json& j, size_t) { tokens = j["tokens"]; });
    EXPECT_EQ(tokens, epoch_tokens * size_t(c.epochs)) << c.batch << "x" << c.grad_accum;
  }
}

TEST(TrainerTrust, FillBatchPadsTheTailAndNeverWraps) {
  std::vector<SftExample> ex(5);
  for (int i = 0; i < 5; ++i) {
    ex[size_t(i)].tokens.assign(size_t(3 + i), Token(10 + i));
    ex[size_t(i)].target.assign(ex[size_t(i)].tokens.size(), 1);
  }
  auto rows = make_rows(ex, {0, 1, 2, 3, 4}, 16, false);
  HostBatch b;
  fill_batch(ex, rows, 4, 1, 4, 16, 0, b);
  EXPECT_EQ(b.n_tokens, 7u);   // only the fifth example
  EXPECT_EQ(b.n_targets, 6u);  // its 7 tokens predict 6 targets
  EXPECT_THROW(fill_batch(ex, rows, 4, 2, 4, 16, 0, b), Error);
}

// most_batch_targets (the trainer's loss_rows): the most target positions in a batch, counted as fill_batch labels
// them, against the batches actually filled, packed or not, with an example cut to the row length.
TEST(TrainerTrust, MostBatchTargetsCountWhatFillBatchLabels) {
  std::vector<SftExample> ex(6);
  for (int i = 0; i < 6; ++i) {
    SftExample& e = ex[size_t(i)];
    e.tokens.assign(size_t(4 + 2 * i), Token(10 + i));
    e.target.assign(e.tokens.size(), 0);
    for (size_t k = e.tokens.size() - size_t(1 + i % 3); k < e.tokens.size(); ++k) e.target[k] = 1;  // 1-3 targets
  }
  ex[5].tokens.resize(40, Token(3));  // longer than a row: cut to 16 tokens
  ex[5].target.resize(40, 1);
  for (bool pack : {false, true}) {
    for (int S : {1, 2, 3}) {
      const auto rows = make_rows(ex, {5, 0, 1, 2, 3, 4}, 16, pack);
      size_t most = 0;
      HostBatch b;
      for (size_t first = 0; first < rows.size(); first += size_t(S)) {
        fill_batch(ex, rows, first, std::min<size_t>(size_t(S), rows.size() - first), S, 16, 0, b);
        most = std::max(most, b.n_targets);
      }
      EXPECT_EQ(most_batch_targets(ex, rows, 16, S), int64_t(most)) << (pack ? "packed" : "one per row") << ", S " << S;
      EXPECT_GT(most, 0u);
    }
  }
}

// On the CPU a run computes logits only where its batches have targets, sized from the run's own shuffled batches
// (validation's too): the prompts here are most of each row, nothing takes a second pass, and the summary says so.
TEST(TrainerTrust, CpuRunsComputeLogitsOnlyForTheirTargets) {
  for (bool pack : {false, true}) {
    auto o = small_options(pack ? "rows-packed" : "rows", write_items("rows.jsonl", 40));
    o.pack = pack, o.batch = 3, o.epochs = 4, o.max_steps = 0, o.val_split = 0.2, o.eval_steps = 5;
    const TrainResult r = train(o);
    EXPECT_GT(r.steps, 20);
    EXPECT_GT(r.loss_rows, 0) << "the loss computed every position";
    EXPECT_LT(r.loss_rows, int64_t(o.sft.max_len) * o.batch / 2) << "most positions are prompt or padding";
    EXPECT_EQ(r.loss_extra_passes, 0) << "a batch held more targets than loss_rows";
    const json sum = json::parse(read_file(o.out.string() + ".summary.json"));
    EXPECT_EQ(sum["loss_rows"]["per_batch"], r.loss_rows);
    EXPECT_EQ(sum["loss_rows"]["extra_passes"], 0);
  }
}

// ---- options ---------------------------------------------------------------------------------

TEST(TrainerTrust, NumericOptionsAreRangeCheckedByName) {
  auto data = write_items("opts.jsonl", 4);
  const std::vector<std::pair<std::function<void(TrainOptions&)>, std::string>> cases = {
      {[](TrainOptions& o) { o.lora.rank = -1; }, "--lora-rank"},
      {[](TrainOptions& o) { o.lora.rank = 0; }, "--lora-rank"},
      {[](TrainOptions& o) { o.lora.alpha = 0; }, "--lora-alpha"},
      {[](TrainOptions& o) { o.lora.alpha = NAN; }, "--lora-alpha"},
      {[](TrainOptions& o) { o.batch = 0; }, "--batch"},
      {[](TrainOptions& o) { o.grad_accum = -2; }, "--grad-accum"},
      {[](TrainOptions& o) { o.sft.max_len = 4; }, "--seq-len"},
      {[](TrainOptions& o) { o.lr = NAN; }, "--lr"},
      {[](TrainOptions& o) { o.lr = -1e-3f; }, "--lr"},
      {[](TrainOptions& o) { o.weight_decay = -0.1f; }, "--weight-decay"},
      {[](TrainOptions& o) { o.warmup = -1; }, "--warmup"},
      {[](TrainOptions& o) { o.clip = -1; }, "--clip"},
      {[](TrainOptions& o) { o.clip = INFINITY; }, "--clip"},
      {[](TrainOptions& o) { o.epochs = -1; }, "--epochs"},
      {[](TrainOptions& o) { o.max_steps = -5; }, "--max-steps"},
      {[](TrainOptions& o) { o.eval_steps = -1; }, "--eval-steps"},
      {[](TrainOptions& o) { o.patience = -1; }, "--patience"},
      {[](TrainOptions& o) { o.save_steps = -1; }, "--save-steps"},
      {[](TrainOptions& o) { o.n_threads = -1; }, "--threads"},
      {[](TrainOptions& o) { o.val_split = 1.0; }, "--val-split"},
      {[](TrainOptions& o) { o.data[0].weight = INFINITY; }, "weight"},
  };
  for (auto& [mutate, option] : cases) {
    auto o = small_options("opts", data);
    mutate(o);
    std::string msg = error_of([&] { o.validate(); });
    EXPECT_NE(msg.find(option), std::string::npos) << option << ": '" << msg << "'";
  }
  // Full training ignores the LoRA settings.
  auto o = small_options("opts", data);
  o.full = true, o.lora.rank = 0;
  EXPECT_NO_THROW(o.validate());
}

TEST(TrainerTrust, DefaultIsLoraRank16AndFullIsExplicit) {
  auto data = write_items("default.jsonl", 4);
  TrainOptions o;
  o.model = test::tiny_model();
  o.data = {{data}};
  o.out = test::tmp_dir() / "default-lora.gguf";
  o.max_steps = 1;
  o.progress = false;
  train(o);
  auto info = lora_info(o.out);
  EXPECT_EQ(info["rank"], 16);
  EXPECT_EQ(info["modules"].size(), 7u);
  o.full = true;
  o.out = test::tmp_dir() / "default-full.gguf";
  train(o);
  EXPECT_THROW(lora_info(o.out), Error);  // a model, not an adapter
  EXPECT_EQ(Model::load(o.out)->info().n_layer, 2);
}

TEST(TrainerTrust, FullTrainingLeavesRopeFreqsAlone) {
  ModelInitOptions mi;
  mi.shape.rope_llama3_factor = 8.0f;
  mi.shape.rope_orig_ctx = 32;
  auto base = test::tmp_dir() / "rope-full-base.gguf";
  model_init(base, mi);
  auto o = small_options("rope-full", write_items("rope-full.jsonl", 4));
  o.model = base;
  o.full = true;
  o.max_steps = 2;
  train(o);
  auto freqs = [](const std::filesystem::path& p) {
    gguf_init_params gp{true, nullptr};
    gguf_context* g = gguf_init_from_file(p.c_str(), gp);
    EXPECT_NE(g, nullptr);
    auto b = gguf_tensor_bytes(p, g, gguf_find_tensor(g, "rope_freqs.weight"));
    gguf_free(g);
    return b;
  };
  EXPECT_EQ(freqs(o.out), freqs(base));
}

// ---- resume ----------------------------------------------------------------------------------

TEST(TrainerTrust, ResumeRefusesACheckpointOfAnotherRun) {
  auto data = write_items("fp.jsonl", 8);
  auto o = small_options("fp", data);
  std::atomic<bool> cancel{true};  // checkpoint after the first step
  o.cancel = &cancel;
  ASSERT_TRUE(train(o).interrupted);
  o.cancel = nullptr;
  o.resume = true;
  const std::vector<std::pair<std::function<void(TrainOptions&)>, std::string>> cases = {
      {[](TrainOptions& o) { o.lr = 2e-2f; }, "lr"},
      {[](TrainOptions& o) { o.schedule = "linear"; }, "schedule"},
      {[](TrainOptions& o) { o.warmup = 2; }, "warmup"},
      {[](TrainOptions& o) { o.lora.rank = 8; }, "lora"},
      {[](TrainOptions& o) { o.lora.alpha = 8; }, "lora"},
      {[](TrainOptions& o) { o.lora.targets = {"q", "k"}; }, "lora"},
      {[](TrainOptions& o) { o.max_steps = 9; }, "max_steps"},
  };
  for (auto& [mutate, key] : cases) {
    auto c = o;
    mutate(c);
    std::string msg = error_of([&] { train(c); });
    EXPECT_NE(msg.find("different run"), std::string::npos) << key << ": '" << msg << "'";
    EXPECT_NE(msg.find(key), std::string::npos) << key << ": '" << msg << "'";
  }
  // Same path, same size, other contents: the data's hash tells.
  write_items("fp.jsonl", 8, 1);
  std::string msg = error_of([&] { train(o); });
  EXPECT_NE(msg.find("different run (differing: data)"), std::string::npos) << msg;
  write_items("fp.jsonl", 8);
  auto r = train(o);  // the run itself resumes
  EXPECT_EQ(r.resumed_from, 1);
  EXPECT_EQ(r.steps, 4);
}

// How a 16-bit base is held (F32 or BF16) changes the rounding, so it belongs to the run a checkpoint continues:
// an explicit other choice is refused by name, and auto keeps the checkpoint's (which auto may not choose here).
TEST(TrainerTrust, ResumeKeepsTheBaseWeightsItStartedWith) {
  ModelInitOptions mi;
  mi.shape = model_shape_preset("tiny");
  mi.seed = 7;
  mi.type = "f16";
  const auto f16 = test::tmp_dir() / "tiny-f16-resume.gguf";
  model_init(f16, mi);
  auto o = small_options("bw", write_items("bw.jsonl", 8));
  o.model = f16;
  o.base_weights = "f32";
  std::atomic<bool> cancel{true};  // checkpoint after the first step
  o.cancel = &cancel;
  const TrainResult first = train(o);
  ASSERT_TRUE(first.interrupted);
  o.cancel = nullptr;
  o.resume = true;
  auto c = o;
  c.base_weights = "bf16";
  const std::string msg = error_of([&] { train(c); });
  EXPECT_NE(msg.find("different run (differing: base_weights)"), std::string::npos) << msg;
  c.base_weights = "auto";
  const auto r = train(c);
  EXPECT_EQ(r.resumed_from, 1);
  EXPECT_EQ(r.steps, 4);
  EXPECT_EQ(r.base_weights, BaseWeights::f32);
  EXPECT_EQ(r.memory_estimate, first.memory_estimate) << "the memory check counts the weights the run holds";
}

// The benchmark switches that change the floats' order are part of what a resume checks, in both directions: a run
// resumed under another switch is refused naming it, as is one resumed without the switch it started with (the
// message listed "format" before: only the current run's keys were compared).
TEST(TrainerTrust, ResumeChecksTheForwardAndBackwardSwitches) {
  test::ScopedEnv no_split("COGUMI_LORA_GROUP_FORWARD", nullptr);  // the defaults, whatever the caller set
  test::ScopedEnv no_bwd("GGML_COGUMI_BACKWARD_WEIGHT_TYPE", nullptr);
  auto o = small_options("switches", write_items("switches.jsonl", 8));
  std::atomic<bool> cancel{true};  // checkpoint after the first step
  o.cancel = &cancel;
  ASSERT_TRUE(train(o).interrupted);
  o.cancel = nullptr;
  o.resume = true;
  {
    test::ScopedEnv split("COGUMI_LORA_GROUP_FORWARD", "split");
    const std::string msg = error_of([&] { train(o); });
    EXPECT_NE(msg.find("different run (differing: lora_forward)"), std::string::npos) << msg;
  }
  {
    test::ScopedEnv bwd("GGML_COGUMI_BACKWARD_WEIGHT_TYPE", "bf16");
    const std::string msg = error_of([&] { train(o); });
    EXPECT_NE(msg.find("different run (differing: backward_weight_type)"), std::string::npos) << msg;
  }
  {
    test::ScopedEnv bwd("GGML_COGUMI_BACKWARD_WEIGHT_TYPE", "auto");  // the default, named
    const TrainResult r = train(o);
    EXPECT_EQ(r.resumed_from, 1);
  }
  // started with split forwards, resumed without
  auto s = small_options("switches-split", write_items("switches-split.jsonl", 8));
  s.cancel = &cancel;
  {
    test::ScopedEnv split("COGUMI_LORA_GROUP_FORWARD", "split");
    ASSERT_TRUE(train(s).interrupted);
  }
  s.cancel = nullptr;
  s.resume = true;
  const std::string msg = error_of([&] { train(s); });
  EXPECT_NE(msg.find("different run (differing: lora_forward)"), std::string::npos) << msg;
}

// ---- non-finite gradients --------------------------------------------------------------------

// Overwrites a checkpoint tensor's values in place.
void set_tensor(const std::filesystem::path& path, const std::string& name, float value) {
  gguf_init_params gp{true, nullptr};
  gguf_context* g = gguf_init_from_file(path.c_str(), gp);
  ASSERT_NE(g, nullptr);
  int64_t id = gguf_find_tensor(g, name.c_str());
  ASSERT_GE(id, 0) << name;
  const size_t off = gguf_get_data_offset(g) + gguf_get_tensor_offset(g, id), n = gguf_get_tensor_size(g, id) / 4;
  gguf_free(g);
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(long(off));
  for (size_t i = 0; i < n; ++i) f.write(reinterpret_cast<const char*>(&value), sizeof value);
}

TEST(TrainerTrust, NonFiniteGradientNormSkipsTheUpdateAndIsNeverCheckpointed) {
  // A huge LoRA A with a zero B leaves the forward pass (and the loss) as it was, while B's
  // gradient, (A x) times the output's gradient, overflows: a finite loss with an infinite norm.
  auto o = small_options("inf-norm", write_items("inf-norm.jsonl", 8));
  o.save_steps = 1;
  o.max_steps = 12;
  std::atomic<bool> cancel{false};
  o.cancel = &cancel;
  train(o, [&](const TrainStep& s) { cancel = s.step == 2; });
  const std::string ckpt = o.out.string() + ".ckpt.gguf";
  set_tensor(ckpt, "p.blk.0.attn_qkv.lora_a", 1e30f);  // q's and v's A (one tensor: they read the same input)
  set_tensor(ckpt, "p.blk.0.attn_q.weight.lora_b", 0.0f);
  set_tensor(ckpt, "p.blk.0.attn_v.weight.lora_b", 0.0f);
  const std::string poisoned = read_file(ckpt);
  o.cancel = nullptr;
  o.resume = true;
  std::vector<TrainStep> steps;
  std::string msg = error_of([&] { train(o, [&](const TrainStep& s) { steps.push_back(s); }); });
  ASSERT_FALSE(steps.empty());
  for (auto& s : steps) {
    EXPECT_TRUE(std::isfinite(s.loss)) << s.step;
    EXPECT_FALSE(std::isfinite(s.grad_norm)) << s.step;
    EXPECT_TRUE(s.skipped) << s.step;
  }
  EXPECT_NE(msg.find("in a row"), std::string::npos) << msg;
  EXPECT_NE(msg.find(ckpt), std::string::npos) << msg;
  EXPECT_EQ(read_file(ckpt), poisoned);  // no skipped step became the "last good" checkpoint
  size_t skipped_lines = 0;
  read_jsonl(o.out.string() + ".log.jsonl", [&](const json& j, size_t) { skipped_lines += j.value("skipped", false); });
  EXPECT_EQ(skipped_lines, steps.size());
}

// ---- a full disk -----------------------------------------------------------------------------

TEST(TrainerTrust, FullDiskNeverReplacesAGoodCheckpoint) {
  // A small tmpfs, filled so the next checkpoint cannot fit: the write must fail loudly and the
  // previous checkpoint stay byte for byte (a buffered tail that fails only at fflush/fclose is
  // the case an unchecked close would miss).
  auto dir = test::tmp_dir() / "full-disk";
  std::filesystem::create_directories(dir);
  ASSERT_EQ(::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=1m"), 0)
      << "cannot mount a tmpfs at " << dir << ": " << std::strerror(errno) << " (this test needs root)";
  struct Unmount {
    std::filesystem::path d;
    ~Unmount() { ::umount2(d.c_str(), MNT_DETACH); }
  } unmount{dir};
  auto o = small_options("unused", write_items("full-disk.jsonl", 8));
  o.out = dir / "adapter.gguf";
  o.log = test::tmp_dir() / "full-disk.log.jsonl";
  o.save_steps = 1;
  std::atomic<bool> cancel{false};
  o.cancel = &cancel;
  train(o, [&](const TrainStep& s) { cancel = s.step == 2; });
  const auto ckpt = std::filesystem::path(o.out.string() + ".ckpt.gguf");
  const std::string good = read_file(ckpt);
  // Leave a little less room than one checkpoint needs (tmpfs counts whole 4 KiB pages).
  struct statvfs sv {};
  ASSERT_EQ(::statvfs(dir.c_str(), &sv), 0);
  const size_t free_bytes = size_t(sv.f_bavail) * sv.f_frsize, room = (good.size() - 1024) / 4096 * 4096;
  ASSERT_GT(free_bytes, room);
  {
    std::ofstream filler(dir / "filler", std::ios::binary);
    std::string block(free_bytes - room, 'x');
    filler.write(block.data(), long(block.size()));
  }
  ASSERT_EQ(::statvfs(dir.c_str(), &sv), 0);
  ASSERT_LT(size_t(sv.f_bavail) * sv.f_frsize, good.size());
  o.cancel = nullptr;
  o.resume = true;
  std::string msg = error_of([&] { train(o); });
  EXPECT_NE(msg.find("No space left"), std::string::npos) << msg;
  EXPECT_NE(msg.find("is unchanged"), std::string::npos) << msg;
  EXPECT_EQ(read_file(ckpt), good);
  for (auto& e : std::filesystem::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".part."), std::string::npos) << e.path();
}

}  // namespace
}  // namespace cogumi
