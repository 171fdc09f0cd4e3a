// Activation checkpointing (train/checkpoint_graph.h, TrainGraphOptions::checkpoint_activations):
// the same loss and gradients as the plain graph, for a LoRA on an F16 base and for full-parameter
// training; a much smaller compute buffer at a longer sequence; a training run with
// --checkpoint-activations logs the same losses as one without.
#include "train/checkpoint_graph.h"

#include <ggml-backend.h>
#include <ggml-cpu.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <regex>
#include <tuple>

#include "core/io.h"
#include "core/threads.h"
#include "engine/model_init.h"
#include "test_util.h"
#include "train/memory.h"
#include "train/model_graph.h"
#include "train/step.h"
#include "train/trainer.h"

namespace cogumi {
namespace {

// A 4-block llama with grouped-query attention (2 KV heads for 4) in `type`.
std::filesystem::path ckpt_model(const std::string& type) {
  const auto p = test::tmp_dir() / ("ckpt-base-" + type + ".gguf");
  if (!std::filesystem::exists(p)) {
    ModelInitOptions o;
    o.shape.n_embd = 128;
    o.shape.n_layer = 4;
    o.shape.n_ff = 384;
    o.shape.n_head = 4;
    o.shape.n_head_kv = 2;
    o.init_std = 0.05f;
    o.type = type;
    o.seed = 21;
    model_init(p, o);
  }
  return p;
}

// S rows of T tokens as packed training rows: two examples per row (a block-diagonal causal
// mask, positions restarting), a quarter of the positions without a target.
HostBatch packed_batch(int n_vocab, int T, int S, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> tok(3, n_vocab - 1);
  HostBatch b;
  const size_t n = size_t(T) * size_t(S);
  b.tokens.resize(n), b.pos.resize(n), b.labels.resize(n);
  b.mask.assign(n * size_t(T), -std::numeric_limits<float>::infinity());
  const int half = T / 2;
  for (size_t i = 0; i < n; ++i) {
    const int t = int(i % size_t(T));
    b.tokens[i] = tok(rng);
    b.pos[i] = t < half ? t : t - half;
    b.labels[i] = i % 4 == 0 ? -1 : tok(rng);
    b.n_targets += b.labels[i] >= 0;
  }
  for (int s = 0; s < S; ++s)
    for (int q = 0; q < T; ++q)
      for (int k = q < half ? 0 : half; k <= q; ++k) b.mask[(size_t(s) * T + size_t(q)) * T + size_t(k)] = 0.0f;
  b.n_tokens = n;
  return b;
}

struct StepResult {
  double loss = 0;
  std::vector<std::vector<float>> grads;
};

class CheckpointGraphTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cpu_ = ggml_backend_cpu_init();
    ggml_backend_cpu_set_n_threads(cpu_, compute_threads());
  }
  void TearDown() override { ggml_backend_free(cpu_); }

  // One micro-batch's loss and gradients (two accumulate() calls: the second batch adds to the
  // accumulators), LoRA (B non-zero, every target) or full-parameter.
  StepResult step(const std::filesystem::path& model, bool lora, bool checkpoint, int T, int S, int loss_chunk = 0) {
    TrainGraphOptions go;
    go.checkpoint_activations = checkpoint;
    go.loss_chunk_rows = loss_chunk;
    return step(model, lora, go, T, S);
  }
  StepResult step(const std::filesystem::path& model, bool lora, const TrainGraphOptions& go, int T, int S) {
    ModelGraph mg(model, cpu_, /*keep_file_types=*/lora);
    if (lora) {
      LoraSpec spec;
      spec.rank = 4;
      spec.alpha = 4;
      spec.targets = {"q", "k", "v", "o", "gate", "up", "down"};
      mg.add_lora(spec, 3, {}, 0.05f);
    }
    TrainGraph tg(mg, {cpu_}, T, S, go);
    StepResult r;
    r.loss = tg.accumulate(packed_batch(mg.hparams().n_vocab, T, S, 1));
    r.loss += tg.accumulate(packed_batch(mg.hparams().n_vocab, T, S, 2));
    for (ggml_tensor* g : tg.gradients()) {
      std::vector<float> v(size_t(ggml_nelements(g)));
      ggml_backend_tensor_get(g, v.data(), 0, ggml_nbytes(g));
      r.grads.push_back(std::move(v));
    }
    return r;
  }

  // The compute buffer TrainGraph plans at 1 x 256 for a rank-8 LoRA on ckpt_model(type).
  size_t planned_at_256(const std::string& type, const TrainGraphOptions& go = {}) {
    ModelGraph mg(ckpt_model(type), cpu_, true, /*load_data=*/false);
    LoraSpec spec;
    spec.rank = 8;
    mg.add_lora(spec, 1);
    return TrainGraph::measure(mg, {cpu_}, 256, 1, go).compute.at(0);
  }

  // Gradient k's relative L2 error, ||a - b|| / ||b|| (0 when both are zero).
  static double rel_l2(const StepResult& a, const StepResult& b, size_t k) {
    double d2 = 0, n2 = 0;
    for (size_t i = 0; i < b.grads[k].size(); ++i) {
      d2 += std::pow(double(a.grads[k][i]) - b.grads[k][i], 2);
      n2 += std::pow(double(b.grads[k][i]), 2);
    }
    return d2 == 0 ? 0.0 : std::sqrt(d2) / std::sqrt(n2);
  }

  // The largest |a - b| / max(|b|, 1e-6 * the tensor's largest |b|) over every gradient value.
  static double worst_rel(const StepResult& a, const StepResult& b) {
    double worst = 0;
    for (size_t k = 0; k < b.grads.size(); ++k) {
      double scale = 0;
      for (float x : b.grads[k]) scale = std::max(scale, double(std::fabs(x)));
      for (size_t i = 0; i < b.grads[k].size(); ++i) {
        const double d = std::fabs(double(a.grads[k][i]) - b.grads[k][i]);
        worst = std::max(worst, d / std::max(double(std::fabs(b.grads[k][i])), 1e-6 * scale + 1e-30));
      }
    }
    return worst;
  }

  ggml_backend_t cpu_ = nullptr;
};

// The recomputed activations are the same ops on the same inputs in the same order: the loss and
// every gradient value equal the plain graph's bit for bit (LoRA on F16, full-parameter F32).
TEST_F(CheckpointGraphTest, GradientsEqualThePlainGraphs) {
  for (const auto& [type, lora] : std::vector<std::pair<std::string, bool>>{{"f16", true}, {"f32", false}}) {
    SCOPED_TRACE(type + (lora ? " LoRA" : " full"));
    const StepResult plain = step(ckpt_model(type), lora, false, 32, 2);
    const StepResult ckpt = step(ckpt_model(type), lora, true, 32, 2);
    ASSERT_EQ(plain.grads.size(), ckpt.grads.size());
    ASSERT_GT(plain.grads.size(), 20u);
    EXPECT_GT(plain.loss, 1.0);
    EXPECT_EQ(ckpt.loss, plain.loss);
    size_t nonzero = 0, differ = 0;
    for (size_t k = 0; k < plain.grads.size(); ++k)
      for (size_t i = 0; i < plain.grads[k].size(); ++i) {
        nonzero += plain.grads[k][i] != 0.0f;
        differ += ckpt.grads[k][i] != plain.grads[k][i];
      }
    EXPECT_GT(nonzero, 1000u);  // gradients that say something
    EXPECT_EQ(differ, 0u) << "largest relative difference " << worst_rel(ckpt, plain);
  }
}

// Patch 0020: the trainer marks attention's products in its causal graphs, and they skip their masked half: per
// block and micro-batch, K Q^T and P V forward, dP and dS's product backward, and dV's and dK's out_prods (the
// counters move by the products that used a mark). The gradients are GradientsEqualThePlainGraphs' with the marks in both graphs; that a mark keeps every
// used output's bits is F32PanelMulMat.CausalMarksKeepTheBitsOfEveryOutputThatIsUsed, and the CLI test trains the
// same adapter byte for byte with GGML_COGUMI_CAUSAL=0.
TEST_F(CheckpointGraphTest, AttentionProductsSkipTheirMaskedHalf) {
  if (!ggml_cogumi_f32_panel_available()) GTEST_SKIP() << "no F32 panels in this build (no AVX2+FMA): nothing skips";
  const int64_t before = ggml_cogumi_causal_mul_mats(), out_prods_before = ggml_cogumi_causal_out_prods();
  const StepResult r = step(ckpt_model("f32"), true, false, 32, 2);
  EXPECT_GT(r.loss, 1.0);
  EXPECT_EQ(ggml_cogumi_causal_mul_mats() - before, 2 * 4 * 4);  // 2 micro-batches x 4 blocks x 4 products
  EXPECT_EQ(ggml_cogumi_causal_out_prods() - out_prods_before, 2 * 4 * 2);  // dV's and dK's out_prods
}

// Relative L2 distance per gradient tensor, the largest.
double worst_rel_l2(const StepResult& a, const StepResult& b) {
  double worst = 0;
  for (size_t k = 0; k < b.grads.size(); ++k) {
    double d2 = 0, n2 = 0;
    for (size_t i = 0; i < b.grads[k].size(); ++i) {
      d2 += std::pow(double(a.grads[k][i]) - b.grads[k][i], 2);
      n2 += std::pow(double(b.grads[k][i]), 2);
    }
    worst = std::max(worst, std::sqrt(d2 / std::max(n2, 1e-300)));
  }
  return worst;
}

// Flash attention in the forward pass, the probabilities recomputed in the backward: the loss and
// every gradient tensor of the plain graph up to the F16 rounding of K and V (LoRA on F16 with
// and without checkpointing, full-parameter F32).
TEST_F(CheckpointGraphTest, FlashAttentionGivesThePlainGraphsGradients) {
  struct Case {
    std::string type;
    bool lora, checkpoint;
  };
  for (const Case& c : std::vector<Case>{{"f16", true, false}, {"f16", true, true}, {"f32", false, false}}) {
    SCOPED_TRACE(c.type + (c.lora ? " LoRA" : " full") + (c.checkpoint ? ", checkpointed" : ""));
    const StepResult plain = step(ckpt_model(c.type), c.lora, false, 32, 2);
    TrainGraphOptions go;
    go.flash_attn = true;
    go.checkpoint_activations = c.checkpoint;
    const StepResult flash = step(ckpt_model(c.type), c.lora, go, 32, 2);
    ASSERT_EQ(plain.grads.size(), flash.grads.size());
    const double rel = worst_rel_l2(flash, plain);
    std::printf("flash attention vs plain: loss %.7f vs %.7f, worst gradient relative L2 %.2e\n", flash.loss,
                plain.loss, rel);
    EXPECT_NEAR(flash.loss, plain.loss, 1e-4 * plain.loss);
    EXPECT_LT(rel, 5e-3);
    EXPECT_GT(rel, 0.0);  // the forward did run flash attention (F16 K and V)
  }
}

// Patch 0009's fused flash-attention backward (ggml_cogumi_flash_attn_ext_back; here the CPU's loop, the CUDA
// kernels are checked against a double-precision reference by bench/fattn_back/check.cu on the GPU): the
// recomputed-softmax graph's loss and gradients within F16 rounding (the fused backward reads the F16 K and V
// the forward used, the recomputed graph the F32 ones), with grouped-query heads and packed documents, LoRA and
// full, plain and checkpointed; its backward graph has one FLASH_ATTN_BACK per block and no [T, T] softmax, so
// a smaller compute buffer. Bad --flash-attn-backward values are errors naming the option.
TEST_F(CheckpointGraphTest, FusedFlashAttentionBackwardGivesTheRecomputedGradients) {
  struct Case {
    std::string type;
    bool lora, checkpoint;
  };
  for (const Case& c : std::vector<Case>{{"f16", true, false}, {"f16", true, true}, {"f32", false, false}}) {
    SCOPED_TRACE(c.type + (c.lora ? " LoRA" : " full") + (c.checkpoint ? ", checkpointed" : ""));
    TrainGraphOptions recompute, fused;
    recompute.flash_attn = fused.flash_attn = true;
    recompute.checkpoint_activations = fused.checkpoint_activations = c.checkpoint;
    fused.fused_attention = true;
    const StepResult a = step(ckpt_model(c.type), c.lora, recompute, 32, 2);
    const StepResult b = step(ckpt_model(c.type), c.lora, fused, 32, 2);
    ASSERT_EQ(a.grads.size(), b.grads.size());
    const double rel = worst_rel_l2(b, a);
    std::printf("fused vs recomputed attention backward: loss %.7f vs %.7f, worst gradient relative L2 %.2e\n", b.loss,
                a.loss, rel);
    EXPECT_NEAR(b.loss, a.loss, 1e-5 * a.loss);  // the same forward
    EXPECT_LT(rel, 5e-3);
    EXPECT_GT(rel, 0.0);  // the fused op did run (F16 K and V)
  }
  LoraSpec spec;
  spec.rank = 8;
  ModelGraph mg(ckpt_model("f16"), cpu_, true);
  mg.add_lora(spec, 1);
  TrainGraphOptions recompute, fused;
  recompute.flash_attn = fused.flash_attn = true;
  fused.fused_attention = true;
  TrainGraph rg(mg, {cpu_}, 64, 1, recompute), fg(mg, {cpu_}, 64, 1, fused);
  EXPECT_EQ(fg.backward_op_count(GGML_OP_FLASH_ATTN_BACK), 4);  // one per block
  EXPECT_EQ(fg.backward_op_count(GGML_OP_SOFT_MAX_BACK), 1);    // the loss's only
  EXPECT_EQ(fg.backward_op_count(GGML_OP_SOFT_MAX), 1);
  EXPECT_EQ(rg.backward_op_count(GGML_OP_SOFT_MAX_BACK), 1 + 4);
  EXPECT_EQ(rg.backward_op_count(GGML_OP_FLASH_ATTN_BACK), 0);
  // at 1 x 1024 a block's [T, T] F32 probabilities per head (16 MiB for 4 heads) are what the plan's peak holds
  auto planned = [&](const TrainGraphOptions& go) { return TrainGraph::measure(mg, {cpu_}, 1024, 1, go).compute.at(0); };
  const size_t pr = planned(recompute), pf = planned(fused);
  std::printf("compute buffer at 1 x 1024: %.2f MiB recomputed, %.2f MiB fused\n", pr / 1048576.0, pf / 1048576.0);
  EXPECT_LT(double(pf), double(pr) - 16.0 * 1048576);
  TrainOptions o;
  o.model = "m.gguf";
  o.data = {{"d.jsonl", 1.0}};
  o.out = "o.gguf";
  o.max_steps = 1;
  o.flash_attn_backward = "fast";
  const std::string bad = test::error_of([&] { o.validate(); });
  EXPECT_NE(bad.find("--flash-attn-backward must be auto, fused or recompute, got 'fast'"), std::string::npos) << bad;
  o.flash_attn_backward = "fused";
  o.flash_attn = "off";
  const std::string off = test::error_of([&] { o.validate(); });
  EXPECT_NE(off.find("--flash-attn-backward fused differentiates flash attention"), std::string::npos) << off;
}

// A quantized base's weights as BF16 copies dequantized per matmul (--dequant-forward, with flash
// attention): the LoRA gradients of the quantized kernels' path within BF16 rounding, and the
// copies recomputed in the backward pass rather than kept (all blocks' copies: 1.5 MiB here).
TEST_F(CheckpointGraphTest, DequantizedForwardKeepsTheGradientsAndNoCopies) {
  TrainGraphOptions flash, dequant;
  flash.flash_attn = dequant.flash_attn = true;
  dequant.dequant_forward = true;
  const StepResult q = step(ckpt_model("q8_0"), true, flash, 32, 2);
  const StepResult d = step(ckpt_model("q8_0"), true, dequant, 32, 2);
  const double rel = worst_rel_l2(d, q);
  std::printf("Q8_0 base, dequantized BF16 forward vs the quantized matmuls: worst gradient relative L2 %.2e\n", rel);
  EXPECT_NEAR(d.loss, q.loss, 2e-3 * q.loss);
  EXPECT_LT(rel, 0.05);  // measured 3.3%: BF16 weights and activations against Q8_0 activations
  EXPECT_GT(rel, 0.0);   // the BF16 copies were used
  const size_t a = planned_at_256("q8_0", flash);
  const size_t b = planned_at_256("q8_0", dequant);
  std::printf("compute buffer at 1 x 256: %.2f MiB quantized matmuls, %.2f MiB dequantized\n", a / 1048576.0,
              b / 1048576.0);
  EXPECT_LT(double(b), double(a) + 0.75 * 1048576);
}

// Patch 0002's OUT_PROD gradients (the GPU default): the same gradients as the transposed-copy path
// for the plain, flash-attention and checkpointed graphs, LoRA and full training, and no transposed
// copies, so a smaller compute buffer (the [T, T] attention transposes were 21% of a 1B step on the H200).
TEST_F(CheckpointGraphTest, OutProdGradientsMatchTheTransposedCopiesAndKeepNone) {
  for (const bool lora : {true, false}) {
    for (const int variant : {0, 1, 2}) {
      TrainGraphOptions copies, out_prod;
      copies.flash_attn = out_prod.flash_attn = variant == 1;
      copies.checkpoint_activations = out_prod.checkpoint_activations = variant == 2;
      out_prod.out_prod_grads = true;
      const StepResult a = [&] {
        test::ScopedEnv whole("GGML_COGUMI_NARROW_GRADS", "0");  // the copies' path whole (patch 0012's too)
        return step(ckpt_model(lora ? "f16" : "f32"), lora, copies, 32, 2);
      }();
      const StepResult b = step(ckpt_model(lora ? "f16" : "f32"), lora, out_prod, 32, 2);
      const double rel = worst_rel_l2(b, a);
      std::printf("%s, %s: out_prod vs transposed copies, worst gradient relative L2 %.2e\n", lora ? "LoRA" : "full",
                  variant == 0 ? "plain" : variant == 1 ? "flash attention" : "checkpointed", rel);
      EXPECT_NEAR(b.loss, a.loss, 1e-6 * a.loss);
      EXPECT_LT(rel, 1e-4);  // F32 both ways: summation order only
    }
  }
  EXPECT_FALSE(ggml_cogumi_get_out_prod_grads());  // the global flag holds for a graph's build only
  // The kernels a step runs: OUT_PROD GEMMs instead of transposed copies (at least the two [T, T]
  // attention transposes per block are gone; 4 blocks).
  LoraSpec spec;
  spec.rank = 8;
  ModelGraph mg(ckpt_model("f16"), cpu_, true);
  mg.add_lora(spec, 1);
  TrainGraphOptions out_prod;
  out_prod.out_prod_grads = true;
  // the copies' path whole: patch 0012 otherwise takes the LoRA weights' (narrow) gradients as OUT_PROD on the CPU too
  std::optional<test::ScopedEnv> whole(std::in_place, "GGML_COGUMI_NARROW_GRADS", "0");
  TrainGraph copies_graph(mg, {cpu_}, 64, 1);
  whole.reset();
  TrainGraph out_prod_graph(mg, {cpu_}, 64, 1, out_prod), narrow_graph(mg, {cpu_}, 64, 1);
  const int conts = copies_graph.backward_op_count(GGML_OP_CONT), conts_op = out_prod_graph.backward_op_count(GGML_OP_CONT);
  std::printf("backward graph: %d CONT / %d OUT_PROD with copies, %d / %d with out_prod\n", conts,
              copies_graph.backward_op_count(GGML_OP_OUT_PROD), conts_op, out_prod_graph.backward_op_count(GGML_OP_OUT_PROD));
  EXPECT_EQ(copies_graph.backward_op_count(GGML_OP_OUT_PROD), 0);
  EXPECT_GT(out_prod_graph.backward_op_count(GGML_OP_OUT_PROD), 0);
  EXPECT_LE(conts_op, conts - 2 * 4);
  // the CPU default (patch 0012): each LoRA A and B gradient an OUT_PROD, and that many fewer transposed copies
  const int narrow_out_prods = narrow_graph.backward_op_count(GGML_OP_OUT_PROD);
  std::printf("CPU default: %d CONT / %d OUT_PROD\n", narrow_graph.backward_op_count(GGML_OP_CONT), narrow_out_prods);
  EXPECT_GE(narrow_out_prods, 4 * 4);  // 4 blocks: the A of the four input groups (rank 8: B keeps the copies)
  EXPECT_LE(narrow_graph.backward_op_count(GGML_OP_CONT), conts - narrow_out_prods);
}

// A shared-input group's LoRA A x per module (ModelGraph::set_split_lora_groups) or once per group:
// the same loss and gradients (the group tensor's gradient gathered from its row views).
TEST_F(CheckpointGraphTest, SplitLoraGroupsGiveTheGroupedGradients) {
  for (const bool flash : {false, true}) {
    TrainGraphOptions grouped, split;
    grouped.flash_attn = split.flash_attn = flash;
    split.split_lora_groups = true;
    const StepResult a = step(ckpt_model("f16"), true, grouped, 32, 2);
    const StepResult b = step(ckpt_model("f16"), true, split, 32, 2);
    ASSERT_EQ(a.grads.size(), b.grads.size());
    const double rel = worst_rel_l2(b, a);
    std::printf("%s: split vs grouped LoRA A, worst gradient relative L2 %.2e\n", flash ? "flash" : "plain", rel);
    EXPECT_NEAR(b.loss, a.loss, 1e-6 * a.loss);
    EXPECT_LT(rel, 1e-5);
  }
}

// --checkpoint-blocks 2 of 4: the first two blocks checkpointed, the others keep their activations. The
// plain graph's loss and gradients bit for bit (with flash attention: within its rounding), a compute buffer
// strictly between none and all, and more blocks than the model has is an error naming the option.
TEST_F(CheckpointGraphTest, PartialCheckpointingGivesThePlainGradientsInBetweenMemory) {
  for (const bool flash : {false, true}) {
    SCOPED_TRACE(flash ? "flash attention" : "plain attention");
    TrainGraphOptions none, half, all;
    none.flash_attn = half.flash_attn = all.flash_attn = flash;
    half.checkpoint_blocks = 2;
    all.checkpoint_activations = true;
    const StepResult a = step(ckpt_model("f16"), true, none, 32, 2);
    const StepResult b = step(ckpt_model("f16"), true, half, 32, 2);
    ASSERT_EQ(a.grads.size(), b.grads.size());
    EXPECT_EQ(b.loss, a.loss);
    size_t differ = 0;
    for (size_t k = 0; k < a.grads.size(); ++k) differ += a.grads[k] != b.grads[k];
    if (!flash) {
      EXPECT_EQ(differ, 0u) << "worst relative L2 " << worst_rel_l2(b, a);
    } else {  // a checkpointed block recomputes its attention exactly, where the kept ones hold flash's F16-rounded
      // output (as with --checkpoint-activations): the gradients differ by flash attention's rounding only
      EXPECT_LT(worst_rel_l2(b, a), 5e-3);  // measured 9.6e-4
    }
    const size_t m_none = planned_at_256("f16", none), m_half = planned_at_256("f16", half),
                 m_all = planned_at_256("f16", all);
    std::printf("%s: compute buffer at 1 x 256: %.2f MiB none, %.2f MiB 2 of 4 blocks, %.2f MiB all\n",
                flash ? "flash" : "plain", m_none / 1048576.0, m_half / 1048576.0, m_all / 1048576.0);
    EXPECT_LT(m_half, m_none);
    EXPECT_GT(m_half, m_all);
  }
  // A quantized base's BF16 forward copies (--dequant-forward) are recomputed, never kept, also in the blocks
  // partial checkpointing leaves alone without flash attention: the 3 uncheckpointed blocks' copies (393 KiB
  // each here) would otherwise stay allocated until their backward matmuls.
  TrainGraphOptions q_one, q_one_dq;
  q_one.checkpoint_blocks = q_one_dq.checkpoint_blocks = 1;
  q_one_dq.dequant_forward = true;
  const size_t q_partial = planned_at_256("q8_0", q_one), q_partial_dq = planned_at_256("q8_0", q_one_dq);
  std::printf("q8_0, 1 of 4 blocks checkpointed: %.2f MiB quantized matmuls, %.2f MiB dequantized forward\n",
              q_partial / 1048576.0, q_partial_dq / 1048576.0);
  EXPECT_LT(double(q_partial_dq), double(q_partial) + 400.0 * 1024);  // at most one block's copies
  TrainGraphOptions too_many;
  too_many.checkpoint_blocks = 5;
  const std::string e = test::error_of([&] { step(ckpt_model("f16"), true, too_many, 32, 2); });
  EXPECT_NE(e.find("--checkpoint-blocks 5 is more than the model's 4 blocks"), std::string::npos) << e;
}

// Every block's activations stay alive for the backward pass without checkpointing; with it only
// the block inputs do, plus one block's recomputed activations at a time.
TEST_F(CheckpointGraphTest, ComputeBufferIsMuchSmallerAtALongerSequence) {
  TrainGraphOptions on;
  on.checkpoint_activations = true;
  const size_t plain = planned_at_256("f16");
  const size_t ckpt = planned_at_256("f16", on);
  std::printf("compute buffer at 1 x 256, 4 blocks: %.1f MiB plain, %.1f MiB checkpointed\n", plain / 1048576.0,
              ckpt / 1048576.0);
  EXPECT_LT(double(ckpt), 0.45 * double(plain));  // measured 0.29 (15.9 -> 4.6 MiB)
  // A real graph reserves what was planned: the allocator frees the forward originals.
  LoraSpec spec;
  spec.rank = 8;
  ModelGraph real(ckpt_model("f16"), cpu_, true);
  real.add_lora(spec, 1);
  TrainGraph tg(real, {cpu_}, 256, 1, on);
  const HostBatch b = packed_batch(real.hparams().n_vocab, 256, 1, 3);
  EXPECT_TRUE(std::isfinite(tg.accumulate(b)));
  tg.step(AdamWParams{}, 1);
  EXPECT_TRUE(std::isfinite(tg.evaluate(b)));
  EXPECT_EQ(tg.reserved().compute.at(0), ckpt);
}

// Flash attention keeps no [T, T] probabilities nor the other cheap activations (norms, SwiGLU,
// K/V expansions) for the backward pass: at 1 x 256 the per-head probabilities dominate a small
// model's plain buffer. A real graph reserves what was planned and trains and validates.
TEST_F(CheckpointGraphTest, FlashAttentionKeepsNoAttentionProbabilities) {
  TrainGraphOptions flash;
  flash.flash_attn = true;
  const size_t plain = planned_at_256("f16");
  const size_t fa = planned_at_256("f16", flash);
  std::printf("compute buffer at 1 x 256, 4 blocks: %.1f MiB plain, %.1f MiB flash attention\n", plain / 1048576.0,
              fa / 1048576.0);
  // 4 blocks x 4 heads x 256 x 256 F32 probabilities are 4 MiB of the plain graph's.
  EXPECT_LT(double(fa), double(plain) - 4.0 * 1048576);
  LoraSpec spec;
  spec.rank = 8;
  ModelGraph real(ckpt_model("f16"), cpu_, true);
  real.add_lora(spec, 1);
  TrainGraph tg(real, {cpu_}, 256, 1, flash);
  const HostBatch b = packed_batch(real.hparams().n_vocab, 256, 1, 3);
  // Validation first (it allocated the full graph, then the forward one over its addresses: the
  // forward graph in another order than the full one's read reused memory, loss 6.98 for 7.04).
  const double before = tg.evaluate(b);
  EXPECT_NEAR(tg.accumulate(b), before, 1e-6 * before);
  tg.step(AdamWParams{}, 1);
  EXPECT_LT(tg.evaluate(b), before);
  EXPECT_EQ(tg.reserved().compute.at(0), fa);
}

// The loss a chunk of rows at a time (uneven chunks: 64 rows in 7s) gives every gradient of the
// whole-batch loss within rounding (relative L2 2e-6 per tensor): with LoRA the frozen output
// weight is padded to a vocabulary multiple of 32, so its backward matmul takes ggml's sgemm for a
// chunk of 2+ rows and its dot-product loop for the last chunk's single row (other summation
// orders; the unpadded vocabulary took the loop for every chunk and was bit for bit);
// full-parameter, the output weight's gradient is summed chunk by chunk. The loss differs only in
// its summation order. Products of 16 columns or more take patch 0019's panels (each output one FMA chain over
// its K) and a 7-row chunk's do not: on an AVX2 CPU the full-parameter F32 case's worst gradient is 1.03e-6
// with them (below 1e-6 with tinyBLAS for both); a wrong chunk's gradient is off by orders of magnitude more.
TEST_F(CheckpointGraphTest, LossInChunksGivesTheWholeBatchGradients) {
  for (const auto& [type, lora] : std::vector<std::pair<std::string, bool>>{{"f16", true}, {"f32", false}}) {
    for (bool ckpt : {false, true}) {
      SCOPED_TRACE(type + (lora ? " LoRA" : " full") + (ckpt ? ", checkpointed" : ""));
      const StepResult whole = step(ckpt_model(type), lora, false, 32, 2, 64);
      const StepResult chunked = step(ckpt_model(type), lora, ckpt, 32, 2, 7);
      ASSERT_EQ(whole.grads.size(), chunked.grads.size());
      EXPECT_NEAR(chunked.loss, whole.loss, 1e-6 * whole.loss);
      for (size_t k = 0; k < whole.grads.size(); ++k) EXPECT_LE(rel_l2(chunked, whole, k), 2e-6) << "gradient " << k;
    }
  }
  EXPECT_NE(test::error_of([&] { step(ckpt_model("f16"), true, false, 32, 2, -1); }).find("loss_chunk_rows is -1"),
            std::string::npos);
}

// TrainGraphOptions::loss_rows: the logits of the batch's target positions only (gathered), in one pass when they
// fit and in several when they do not (a quarter of packed_batch's 64 positions have none: 48 targets), with and
// without checkpointing and loss chunks: the loss and gradients of all rows; and a smaller compute buffer.
TEST_F(CheckpointGraphTest, GatheredLossRowsGiveTheWholeBatchGradients) {
  for (const auto& [type, lora] : std::vector<std::pair<std::string, bool>>{{"f16", true}, {"f32", false}}) {
    const StepResult whole = step(ckpt_model(type), lora, false, 32, 2);
    for (const auto& [rows, ckpt, chunk] : std::vector<std::tuple<int, bool, int>>{
             {48, false, 0}, {20, false, 0}, {48, true, 0}, {30, true, 7}, {1, false, 0}}) {
      SCOPED_TRACE(type + (lora ? " LoRA" : " full") + ", loss_rows " + std::to_string(rows) + (ckpt ? ", checkpointed" : "") +
                   ", chunk " + std::to_string(chunk));
      TrainGraphOptions go;
      go.loss_rows = rows;
      go.checkpoint_activations = ckpt;
      go.loss_chunk_rows = chunk;
      const StepResult gathered = step(ckpt_model(type), lora, go, 32, 2);
      ASSERT_EQ(whole.grads.size(), gathered.grads.size());
      EXPECT_NEAR(gathered.loss, whole.loss, 1e-5 * whole.loss);
      for (size_t k = 0; k < whole.grads.size(); ++k) EXPECT_LE(rel_l2(gathered, whole, k), 1e-5) << "gradient " << k;
    }
  }
  TrainGraphOptions few;
  few.loss_rows = 64;  // a quarter of 1 x 256
  EXPECT_LT(planned_at_256("f16", few), planned_at_256("f16"));
  TrainGraphOptions bad;
  bad.loss_rows = -1;
  EXPECT_NE(test::error_of([&] { step(ckpt_model("f16"), true, bad, 32, 2); }).find("loss_rows is -1"), std::string::npos);
}

// With the Llama-3 vocabulary (128,256 entries) the loss's F32 logits and probabilities dominate a
// small model's step: checkpointed, the chunked loss keeps one chunk of them alive, not all rows.
TEST_F(CheckpointGraphTest, ChunkedLossKeepsOneChunkOfLogitsWithCheckpointing) {
  const auto p = test::tmp_dir() / "ckpt-bigvocab.gguf";
  if (!std::filesystem::exists(p)) {
    ModelInitOptions o;
    o.shape.n_embd = 64;
    o.shape.n_layer = 2;
    o.shape.n_ff = 128;
    o.vocab_from = std::filesystem::path(COGUMI_LLAMA_SRC) / "models/ggml-vocab-llama-bpe.gguf";
    o.type = "f16";
    model_init(p, o);
  }
  ModelGraph mg(p, cpu_, true, /*load_data=*/false);
  LoraSpec spec;
  spec.rank = 8;
  mg.add_lora(spec, 1);
  TrainGraphOptions whole, chunked;
  whole.checkpoint_activations = chunked.checkpoint_activations = true;
  whole.loss_chunk_rows = 256;
  chunked.loss_chunk_rows = 32;
  const size_t a = TrainGraph::measure(mg, {cpu_}, 256, 1, whole).compute.at(0);
  const size_t b = TrainGraph::measure(mg, {cpu_}, 256, 1, chunked).compute.at(0);
  const size_t logits = size_t(256) * 128256 * 4;
  std::printf("compute buffer at 1 x 256, 128K vocabulary, checkpointed: %.1f MiB whole loss, %.1f MiB in chunks "
              "of 32 rows (all rows' F32 logits: %.1f MiB)\n", a / 1048576.0, b / 1048576.0, logits / 1048576.0);
  EXPECT_GT(double(a), 2.0 * double(logits));  // logits, probabilities and their gradients for all rows
  // Measured 376.0 -> 78.7 MiB: a chunk's logits, probabilities and their gradients (15.7 MiB each), not all rows'.
  EXPECT_LT(double(b), 0.3 * double(a));
  EXPECT_LT(double(b), 6.0 * double(logits) / 8);
  // Automatic chunks come with checkpointing only: 512 rows (256 MiB of logits) at this vocabulary.
  TrainGraphOptions auto_ckpt, all_rows;
  auto_ckpt.checkpoint_activations = all_rows.checkpoint_activations = true;
  all_rows.loss_chunk_rows = 2048;
  const size_t c = TrainGraph::measure(mg, {cpu_}, 2048, 1, auto_ckpt).compute.at(0);
  const size_t d = TrainGraph::measure(mg, {cpu_}, 2048, 1, all_rows).compute.at(0);
  const size_t e = TrainGraph::measure(mg, {cpu_}, 2048, 1).compute.at(0);  // no checkpointing: one chunk
  std::printf("at 1 x 2048: %.1f MiB automatic chunks, %.1f MiB one chunk (checkpointed), %.1f MiB plain\n",
              c / 1048576.0, d / 1048576.0, e / 1048576.0);
  EXPECT_LT(double(c), 0.4 * double(d));
  EXPECT_GT(double(e), double(d));
}

std::vector<json> log_lines(const std::filesystem::path& p) {
  std::vector<json> out;
  std::ifstream f(p);
  for (std::string line; std::getline(f, line);)
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

// A 6-step rank-4 LoRA run on ckpt_model("f16") over 12 short pairs, `set` applied to its options last;
// returns its log lines (empty when it did not run all 6 steps).
std::vector<json> short_run(const std::string& name, const std::function<void(TrainOptions&)>& set) {
  const auto data = test::tmp_dir() / "ckpt-pairs.jsonl";
  if (!std::filesystem::exists(data)) {
    std::ofstream f(data);
    for (int i = 0; i < 12; ++i)
      f << json{{"instruction", "count to " + std::to_string(i)}, {"output", std::to_string(i) + " and done"}}.dump() << "\n";
  }
  TrainOptions o;
  o.model = ckpt_model("f16");
  o.data = {{data, 1.0}};
  o.out = test::tmp_dir() / (name + ".gguf");
  o.lora.rank = 4;
  o.sft.max_len = 32;
  o.batch = 2;
  o.max_steps = 6;
  o.lr = 1e-2f;
  o.n_threads = 0;
  o.progress = false;
  set(o);
  if (train(o).steps != 6) return {};
  return log_lines(o.out.string() + ".log.jsonl");
}

// A short LoRA run with --checkpoint-activations logs the plain run's losses and gradient norms,
// step for step, and validates to the same loss.
TEST_F(CheckpointGraphTest, TrainingRunLogsTheSameLosses) {
  std::vector<std::vector<json>> logs;
  for (bool ckpt : {false, true}) {
    logs.push_back(short_run(ckpt ? "ckpt-on" : "ckpt-off", [&](TrainOptions& o) {
      o.val_split = 0.2;
      o.eval_steps = 3;
      o.checkpoint_activations = ckpt;
    }));
  }
  ASSERT_EQ(logs[0].size(), 6u);
  ASSERT_EQ(logs[1].size(), logs[0].size());
  for (size_t i = 0; i < logs[0].size(); ++i) {
    SCOPED_TRACE("step " + std::to_string(i + 1));
    EXPECT_EQ(logs[1][i].at("loss"), logs[0][i].at("loss"));
    EXPECT_EQ(logs[1][i].at("grad_norm"), logs[0][i].at("grad_norm"));
    EXPECT_EQ(logs[1][i].value("val_loss", -1.0), logs[0][i].value("val_loss", -1.0));
  }
  EXPECT_LT(logs[0].back().at("loss").get<double>(), logs[0].front().at("loss").get<double>());
}

// `cogumi train --flash-attn on --flash-attn-backward fused` through train(): the option reaches the graph (the
// run's gradient norms differ from the recomputed path's in rounding only, so not bit for bit) and the run
// learns as the recomputed one does: the same first loss, later ones within 0.2%, gradient norms within 1%.
TEST_F(CheckpointGraphTest, TrainingRunWithTheFusedAttentionBackwardLogsTheRecomputedLosses) {
  std::vector<std::vector<json>> logs;
  for (const char* backward : {"recompute", "fused"}) {
    logs.push_back(short_run(fmt::format("fab-{}", backward), [&](TrainOptions& o) {
      o.flash_attn = "on";
      o.flash_attn_backward = backward;
      o.base_weights = "f32";  // the attention backwards compared, not BF16's rounding of the base matmuls' inputs
    }));
  }
  ASSERT_EQ(logs[0].size(), 6u);
  ASSERT_EQ(logs[1].size(), logs[0].size());
  bool any_differs = false;
  for (size_t i = 0; i < logs[0].size(); ++i) {
    SCOPED_TRACE("step " + std::to_string(i + 1));
    const double l0 = logs[0][i].at("loss"), l1 = logs[1][i].at("loss");
    const double g0 = logs[0][i].at("grad_norm"), g1 = logs[1][i].at("grad_norm");
    // the first step's forward is the same; after updates from gradients 1e-3 apart the weights drift that much
    EXPECT_NEAR(l1, l0, (i == 0 ? 1e-6 : 2e-3) * l0);
    EXPECT_NEAR(g1, g0, 1e-2 * g0);
    any_differs = any_differs || g1 != g0;
  }
  EXPECT_TRUE(any_differs) << "the fused backward did not run: every gradient norm equals the recomputed path's";
  EXPECT_LT(logs[1].back().at("loss").get<double>(), logs[1].front().at("loss").get<double>());
}

// The estimate with checkpointing is smaller, and a run that does not fit names the option, with
// its estimate, among the ways to need less (and not once it is on).
TEST_F(CheckpointGraphTest, OutOfMemoryErrorNamesCheckpointing) {
  TrainOptions o;
  o.model = ckpt_model("f16");
  o.data = {{test::tmp_dir() / "no-such-data.jsonl", 1.0}};  // never read: the check comes first
  o.out = test::tmp_dir() / "ckpt-oom.gguf";
  o.sft.max_len = 256;
  o.batch = 2;
  o.max_steps = 1;
  o.progress = false;
  o.max_memory_gib = 0.001;
  const TrainMemory plain = estimate_train_memory(o, {cpu_});
  TrainOptions on = o;
  on.checkpoint_activations = true;
  const TrainMemory ckpt = estimate_train_memory(on, {cpu_});
  EXPECT_LT(double(ckpt.activations), 0.65 * double(plain.activations));
  EXPECT_EQ(ckpt.weights, plain.weights);
  EXPECT_NE(ckpt.report(on).find("--checkpoint-activations"), std::string::npos) << ckpt.report(on);
  const std::string e = test::error_of([&] { train(o); });
  EXPECT_NE(e.find("--checkpoint-activations (each block's activations recomputed"), std::string::npos) << e;
  EXPECT_NE(e.find(fmt::format("the same results): {:.2f} GiB", double(ckpt.device_total()) / (1 << 30))),
            std::string::npos) << e;
  const std::string e2 = test::error_of([&] { train(on); });
  EXPECT_NE(e2.find("needs"), std::string::npos) << e2;
  EXPECT_EQ(e2.find("- --checkpoint-activations"), std::string::npos) << e2;
  // A limit between all blocks checkpointed and none: the error names the fewest --checkpoint-blocks that fit,
  // and a run with them fits.
  TrainOptions mid = o;
  mid.max_memory_gib = (0.25 * double(plain.device_total()) + 0.75 * double(ckpt.device_total())) / (1 << 30);
  const std::string e3 = test::error_of([&] { train(mid); });
  std::smatch k;
  ASSERT_TRUE(std::regex_search(e3, k, std::regex("--checkpoint-blocks ([0-9]+) \\(the first [0-9]+ of the 4 blocks")))
      << e3;
  TrainOptions fix = mid;
  fix.checkpoint_blocks = std::stoi(k[1]);
  EXPECT_GT(fix.checkpoint_blocks, 0);
  EXPECT_LT(fix.checkpoint_blocks, 4);
  EXPECT_TRUE(estimate_train_memory(fix, {cpu_}).fits()) << estimate_train_memory(fix, {cpu_}).report(fix);
  fix.checkpoint_blocks -= 1;  // the fewest: one block fewer does not fit
  EXPECT_FALSE(estimate_train_memory(fix, {cpu_}).fits());
  // --checkpoint-blocks auto picks that same fewest N; none when the run fits as it is; every block when only all
  // fit; and leaves the run to the error above when even every block does not fit.
  TrainOptions a = mid;
  a.checkpoint_blocks = TrainOptions::kCheckpointBlocksAuto;
  EXPECT_NE(resolve_checkpoint_blocks(a, {cpu_}).find("the fewest that fit"), std::string::npos);
  EXPECT_EQ(a.checkpoint_blocks, fix.checkpoint_blocks + 1);
  EXPECT_FALSE(a.checkpoint_activations);
  TrainOptions roomy = o;
  roomy.max_memory_gib = 2 * double(plain.device_total()) / (1 << 30);
  roomy.checkpoint_blocks = TrainOptions::kCheckpointBlocksAuto;
  resolve_checkpoint_blocks(roomy, {cpu_});
  EXPECT_EQ(roomy.checkpoint_blocks, 0);
  EXPECT_FALSE(roomy.checkpoint_activations);
  TrainOptions tight = o;
  tight.max_memory_gib = double(ckpt.device_total()) / (1 << 30);
  tight.checkpoint_blocks = TrainOptions::kCheckpointBlocksAuto;
  TrainOptions three = tight;
  three.checkpoint_blocks = 3;
  EXPECT_FALSE(estimate_train_memory(three, {cpu_}).fits());  // only all blocks fit in exactly all's memory
  resolve_checkpoint_blocks(tight, {cpu_});
  EXPECT_TRUE(tight.checkpoint_activations);
  EXPECT_EQ(tight.checkpoint_blocks, 0);
  TrainOptions none = o;  // 0.001 GiB: nothing fits
  none.checkpoint_blocks = TrainOptions::kCheckpointBlocksAuto;
  EXPECT_NE(resolve_checkpoint_blocks(none, {cpu_}).find("even every block does not fit"), std::string::npos);
  none.checkpoint_blocks = TrainOptions::kCheckpointBlocksAuto;
  EXPECT_NE(test::error_of([&] { train(none); }).find("--checkpoint-activations (each block"), std::string::npos);
  TrainOptions auto_and_all = o;
  auto_and_all.checkpoint_blocks = TrainOptions::kCheckpointBlocksAuto;
  auto_and_all.checkpoint_activations = true;
  EXPECT_NE(test::error_of([&] { auto_and_all.validate(); }).find("give one"), std::string::npos);
  // both checkpointing options at once is an error naming them
  TrainOptions both = o;
  both.checkpoint_activations = true;
  both.checkpoint_blocks = 2;
  EXPECT_NE(test::error_of([&] { both.validate(); }).find("give one"), std::string::npos);
}

}  // namespace
}  // namespace cogumi
