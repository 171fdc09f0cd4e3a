// Patch 0010's fused adapter-slot op (ggml_cogumi_lora_slots): each token's own adapter rows, its scale, no
// delta for a token without an adapter, strided rows, F32 and F16 adapters, against a double-precision
// reference on the CPU backend; and the llama.cpp graph that decodes with it gives the tokens of the unfused
// form (LLAMA_ADAPTER_SLOTS_FUSED=0). The CUDA kernels are checked the same way by bench/lora_slots/check.cu.
#include <ggml-cpu.h>
#include <ggml.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include <llama.h>

#include "engine/generate.h"
#include "engine/model.h"

namespace cogumi {
namespace {

struct OpCase {
  int n_in, n_out, n;
  std::vector<int> ranks;  // one block per adapter, stacked
  ggml_type type;
  int pad;  // extra floats per row of x and y (strided rows)
  int none_every = 5;  // every none_every-th token (the last of each run) has no adapter
  int max_threads = 3;
};

// Runs the op on ggml's CPU backend and returns the largest error relative to the delta's size, or -1 when a
// token without an adapter did not get exactly its y row. (F16 adapters multiply an F16 copy of x on the CPU,
// as mul_mat does for F16 weights: ~1e-3 from the double reference.)
double op_error(const OpCase& c, unsigned seed, int threads) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  int R = 0;
  std::vector<int> offs;
  for (int r : c.ranks) offs.push_back(R), R += r;
  ggml_init_params ip{size_t(64) << 20, nullptr, false};
  ggml_context* ctx = ggml_init(ip);
  ggml_tensor* a = ggml_new_tensor_2d(ctx, c.type, c.n_in, R);
  ggml_tensor* b = ggml_new_tensor_2d(ctx, c.type, R, c.n_out);
  ggml_tensor* xs = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, c.n_in + c.pad, c.n);
  ggml_tensor* ys = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, c.n_out + c.pad, c.n);
  ggml_tensor* x = ggml_view_2d(ctx, xs, c.n_in, c.n, xs->nb[1], 0);
  ggml_tensor* y = ggml_view_2d(ctx, ys, c.n_out, c.n, ys->nb[1], 0);
  ggml_tensor* slots = ggml_new_tensor_2d(ctx, GGML_TYPE_I32, 3, c.n);
  std::vector<float> av(size_t(R) * c.n_in), bv(size_t(c.n_out) * R);
  for (auto& f : av) f = 0.1f * nd(rng);
  for (auto& f : bv) f = 0.1f * nd(rng);
  auto fill = [&](ggml_tensor* t, std::vector<float>& v) {
    if (t->type == GGML_TYPE_F16) {
      for (size_t i = 0; i < v.size(); ++i) {
        ((ggml_fp16_t*)t->data)[i] = ggml_fp32_to_fp16(v[i]);
        v[i] = ggml_fp16_to_fp32(((ggml_fp16_t*)t->data)[i]);  // the reference sees the rounded values
      }
    } else {
      std::memcpy(t->data, v.data(), v.size() * sizeof(float));
    }
  };
  fill(a, av);
  fill(b, bv);
  for (int64_t i = 0; i < ggml_nelements(xs); ++i) ((float*)xs->data)[i] = nd(rng);
  for (int64_t i = 0; i < ggml_nelements(ys); ++i) ((float*)ys->data)[i] = nd(rng);
  auto* st = (int32_t*)slots->data;
  for (int t = 0; t < c.n; ++t) {
    const int s = t % int(c.ranks.size());
    const bool none = t % c.none_every == c.none_every - 1;
    const float scale = 0.25f + 0.5f * float(t % 3);
    st[3 * t] = offs[s];
    st[3 * t + 1] = none ? 0 : c.ranks[s];
    std::memcpy(&st[3 * t + 2], &scale, sizeof(float));
  }
  int max_rank = 0;
  for (int r : c.ranks) max_rank = std::max(max_rank, r);
  ggml_tensor* out = ggml_cogumi_lora_slots(ctx, y, x, a, b, slots, max_rank);
  ggml_cgraph* gf = ggml_new_graph(ctx);
  ggml_build_forward_expand(gf, out);
  EXPECT_EQ(ggml_graph_node(gf, -1)->op, GGML_OP_COGUMI_LORA_SLOTS);
  EXPECT_EQ(ggml_graph_compute_with_ctx(ctx, gf, threads), GGML_STATUS_SUCCESS);
  double worst = 0.0;
  for (int t = 0; t < c.n; ++t) {
    const int off = st[3 * t], rank = st[3 * t + 1];
    float scale;
    std::memcpy(&scale, &st[3 * t + 2], sizeof(float));
    const float* xt = (const float*)((const char*)xs->data + t * xs->nb[1]);
    const float* yt = (const float*)((const char*)ys->data + t * ys->nb[1]);
    const float* ot = (const float*)((const char*)out->data + t * out->nb[1]);
    std::vector<double> h(rank);
    for (int r = 0; r < rank; ++r) {
      double s = 0;
      for (int i = 0; i < c.n_in; ++i) s += double(av[size_t(off + r) * c.n_in + i]) * xt[i];
      h[r] = scale * s;
    }
    double num = 0, den = 1e-30;
    for (int o = 0; o < c.n_out; ++o) {
      double d = 0;
      for (int r = 0; r < rank; ++r) d += double(bv[size_t(o) * R + off + r]) * h[r];
      if (rank == 0 && ot[o] != yt[o]) {
        ggml_free(ctx);
        return -1.0;
      }
      num += (ot[o] - (yt[o] + d)) * (ot[o] - (yt[o] + d));
      den += d * d;
    }
    if (rank > 0) worst = std::max(worst, std::sqrt(num / den));
  }
  ggml_free(ctx);
  return worst;
}

TEST(LoraSlotsOp, EachTokenGetsItsOwnAdaptersDeltaTimesItsScale) {
  const OpCase cases[] = {
      {64, 48, 10, {8, 8, 8}, GGML_TYPE_F32, 0},
      {100, 77, 13, {5, 3, 8}, GGML_TYPE_F32, 3},  // sizes not a multiple of 4, strided rows
      {256, 96, 7, {16, 4}, GGML_TYPE_F16, 2},
      {32, 500, 1, {12}, GGML_TYPE_F32, 0},  // one token: the output rows split over the threads
      {256, 704, 12, {16, 16, 16}, GGML_TYPE_F32, 0},  // the nano system's shapes
      // one token without an adapter, its 10 rows split over up to 12 threads (empty slices past the last row)
      {32, 10, 1, {4}, GGML_TYPE_F32, 0, 1, 12},
      // more tokens than a decode batch, output rows in several chunks of the expand with a tail, F16, up to 4 threads
      {48, 200, 66, {32, 8, 24}, GGML_TYPE_F16, 1, 4, 4},
  };
  unsigned seed = 1;
  for (const OpCase& c : cases) {
    for (int threads = 1; threads <= c.max_threads; ++threads) {
      const double err = op_error(c, seed, threads);
      EXPECT_GE(err, 0.0) << "a token without an adapter must keep its y row exactly (n_in " << c.n_in << ")";
      EXPECT_LT(err, c.type == GGML_TYPE_F16 ? 2e-3 : 1e-5) << "n_in " << c.n_in << ", " << threads << " threads";
    }
    ++seed;
  }
}

// One decode step of four sequences (three adapters and the base) on a llama context of its own, counting the
// fused op's nodes in the graph the scheduler computes (cb_eval asks about every node): the llama.cpp side of the
// patch, which the Generator tests cannot see.
struct StepResult {
  int fused_nodes = 0;
  std::vector<std::vector<float>> logits;
};
bool count_fused(ggml_tensor* t, bool ask, void* user) {
  if (ask && t->op == GGML_OP_COGUMI_LORA_SLOTS) ++static_cast<StepResult*>(user)->fused_nodes;
  return false;
}
StepResult slot_step(const std::shared_ptr<Model>& model, const char* fused, bool with_slots = true) {
  StepResult out;
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = 256;
  cp.n_batch = 64;
  cp.n_seq_max = 4;
  cp.n_threads = cp.n_threads_batch = 2;
  cp.cb_eval = count_fused;
  cp.cb_eval_user_data = &out;
  llama_context* ctx = llama_init_from_model(model->raw(), cp);
  EXPECT_NE(ctx, nullptr);
  if (!ctx) return out;
  std::vector<llama_adapter_lora*> ads;
  for (const char* m : {"math", "code", "reasoning"}) ads.push_back(model->raw_adapter(m));
  if (fused) setenv("LLAMA_ADAPTER_SLOTS_FUSED", fused, 1);
  EXPECT_EQ(llama_set_adapter_slots(ctx, ads.data(), 3, GGML_TYPE_COUNT), 0);
  unsetenv("LLAMA_ADAPTER_SLOTS_FUSED");
  for (int s = 0; s < 3 && with_slots; ++s) EXPECT_EQ(llama_set_seq_adapter_slot(ctx, s, s, 1.0f), 0);
  llama_batch batch = llama_batch_init(4, 0, 1);
  for (int s = 0; s < 4; ++s) {  // sequence 3: no slot
    batch.token[s] = 40 + s;
    batch.pos[s] = 0;
    batch.n_seq_id[s] = 1;
    batch.seq_id[s][0] = s;
    batch.logits[s] = 1;
  }
  batch.n_tokens = 4;
  EXPECT_EQ(llama_decode(ctx, batch), 0);
  const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model->raw()));
  for (int s = 0; s < 4; ++s) {
    const float* l = llama_get_logits_ith(ctx, s);
    out.logits.emplace_back(l, l + n_vocab);
  }
  llama_batch_free(batch);
  llama_free(ctx);
  return out;
}

// The shipped nano base with its math, code and reasoning modifiers loaded.
std::shared_ptr<Model> nano_system() {
  const std::filesystem::path models = std::filesystem::path(COGUMI_REPO_DIR) / "models";
  auto nano = Model::load(models / "nano-base.gguf");
  for (const char* m : {"math", "code", "reasoning"})
    nano->load_adapter(m, models / (std::string("nano-") + m + ".gguf"));
  return nano;
}

float max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float w = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) w = std::max(w, std::fabs(a[i] - b[i]));
  return w;
}

TEST(LoraSlotsOp, TheGraphHasOneFusedOpPerAdaptedWeightAndTheUnfusedLogits) {
  auto nano = nano_system();
  const StepResult fused = slot_step(nano, "64"), unfused = slot_step(nano, "0"), by_default = slot_step(nano, nullptr),
                   none = slot_step(nano, "64", false);
  EXPECT_EQ(fused.fused_nodes, 4 * 7) << "4 layers x 7 adapted weights";
  EXPECT_EQ(unfused.fused_nodes, 0);
  EXPECT_EQ(by_default.fused_nodes, 0) << "slots in host memory keep the unfused form by default";
  EXPECT_EQ(none.fused_nodes, 0) << "no sequence on a slot: no slot work at all";
  ASSERT_EQ(fused.logits.size(), 4u);
  for (int s = 0; s < 4; ++s) {
    EXPECT_LT(max_diff(fused.logits[s], unfused.logits[s]), 1e-2f) << "sequence " << s;
    if (s < 3) {
      EXPECT_GT(max_diff(fused.logits[s], none.logits[s]), 0.05f) << "sequence " << s << "'s adapter changes its logits";
    }
  }
  EXPECT_EQ(max_diff(fused.logits[3], none.logits[3]), 0.0f) << "the sequence without a slot gets the base's logits";
}

TEST(LoraSlotsOp, DecodingWithTheFusedOpGivesTheUnfusedTokens) {
  // The nano system's three modifiers in one batch. LLAMA_ADAPTER_SLOTS_FUSED=64 (read when the slots are stacked)
  // puts every decode step (at most 64 rows) through the fused op; =0 keeps patch 0001's four ops per weight, which
  // is also the default for slots in host memory (on the CPU the unfused GEMMs share each adapter row across the
  // batch and are faster: bench/RESULTS.md), while slots on a GPU take the fused op by default.
  auto nano = nano_system();
  std::vector<GenRequest> reqs;
  const char* prompts[] = {"What is 12 times 4?", "def add(a, b):", "Which of these is a mammal?", "Hello"};
  const char* adapters[] = {"math", "code", "reasoning", ""};
  for (int i = 0; i < 8; ++i) {
    GenRequest r;
    r.prompt = prompts[i % 4];
    r.adapter = adapters[i % 4];
    r.max_tokens = 12;
    r.ignore_eos = true;
    r.n_logprobs = 1;
    reqs.push_back(r);
  }
  auto run = [&](const char* fused) {
    if (fused) setenv("LLAMA_ADAPTER_SLOTS_FUSED", fused, 1);
    GeneratorOptions o;
    o.n_parallel = int(reqs.size());
    Generator g(nano, o);
    auto out = g.generate(reqs);
    unsetenv("LLAMA_ADAPTER_SLOTS_FUSED");
    EXPECT_EQ(g.last_stats().mixed_adapters, true) << (fused ? fused : "default");
    return out;
  };
  const auto fused = run("64"), unfused = run("0"), by_default = run(nullptr);
  ASSERT_EQ(fused.size(), unfused.size());
  ASSERT_EQ(by_default.size(), unfused.size());
  for (size_t i = 0; i < fused.size(); ++i) {
    EXPECT_EQ(by_default[i].text, unfused[i].text) << i;
    for (size_t t = 0; t < std::min(by_default[i].logprobs.size(), unfused[i].logprobs.size()); ++t)
      EXPECT_EQ(by_default[i].logprobs[t].logprob, unfused[i].logprobs[t].logprob) << "the CPU's default is the unfused form";
    EXPECT_EQ(fused[i].text, unfused[i].text) << i;
    ASSERT_EQ(fused[i].logprobs.size(), unfused[i].logprobs.size());
    for (size_t t = 0; t < fused[i].logprobs.size(); ++t)
      // another summation order: on this F16 base a last-bit change can flip the F16 rounding of a later matmul
      // input or KV-cache entry, moving a later step by multiples of 2^-10..2^-8 (measured with these requests: 0;
      // with mixed_lora_test.cpp's twelve, up to 0.0046 on top-8 alternatives, every text the same)
      EXPECT_NEAR(fused[i].logprobs[t].logprob, unfused[i].logprobs[t].logprob, 8e-3) << i << " step " << t;
  }
  // A bad limit is refused when the slots are stacked, and the Generator groups by adapter instead.
  setenv("LLAMA_ADAPTER_SLOTS_FUSED", "many", 1);
  GeneratorOptions o;
  o.n_parallel = int(reqs.size());
  Generator g(nano, o);
  auto out = g.generate(reqs);
  unsetenv("LLAMA_ADAPTER_SLOTS_FUSED");
  EXPECT_FALSE(g.last_stats().mixed_adapters);
  for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i].text, unfused[i].text) << i;
}

}  // namespace
}  // namespace cogumi
