// The trainer's own forward graph must compute what llama.cpp computes for the same model and
// adapter: otherwise we would train one function and serve another.
#include "train/model_graph.h"

#include <ggml-alloc.h>
#include <ggml-cpu.h>
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "engine/adapter.h"
#include "engine/logits.h"
#include "engine/model_init.h"
#include "test_util.h"
#include "train/batches.h"

namespace cogumi {
namespace {

// Logits of the trainer's graph for S rows of T tokens: the causal path (mask == nullptr, pos
// 0..T-1) or the masked path used for packed rows (pos per token).
std::vector<float> logits_of(ModelGraph& mg, ggml_backend_t be, int T, int S, const int32_t* toks, const int32_t* pos_data,
                             const float* mask_data) {
  ggml_init_params ip{ggml_tensor_overhead() * 16384 + ggml_graph_overhead_custom(16384, false), nullptr, true};
  ggml_context* ctx = ggml_init(ip);
  ggml_tensor* tokens = ggml_new_tensor_2d(ctx, GGML_TYPE_I32, T, S);
  ggml_tensor* pos = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, mask_data ? int64_t(T) * S : T);
  ggml_tensor* mask = mask_data ? ggml_new_tensor_4d(ctx, GGML_TYPE_F32, T, T, 1, S) : nullptr;
  for (auto* t : {tokens, pos, mask})
    if (t) ggml_set_input(t);
  ggml_tensor* logits = mg.build_logits(ctx, tokens, pos, mask);
  ggml_set_output(logits);
  ggml_cgraph* gf = ggml_new_graph_custom(ctx, 16384, false);
  ggml_build_forward_expand(gf, logits);
  ggml_gallocr_t alloc = ggml_gallocr_new(ggml_backend_get_default_buffer_type(be));
  EXPECT_TRUE(ggml_gallocr_alloc_graph(alloc, gf));
  ggml_backend_tensor_set(tokens, toks, 0, ggml_nbytes(tokens));
  ggml_backend_tensor_set(pos, pos_data, 0, ggml_nbytes(pos));
  if (mask) ggml_backend_tensor_set(mask, mask_data, 0, ggml_nbytes(mask));
  ggml_backend_graph_compute(be, gf);
  std::vector<float> out(ggml_nelements(logits));
  ggml_backend_tensor_get(logits, out.data(), 0, ggml_nbytes(logits));
  ggml_gallocr_free(alloc);
  ggml_free(ctx);
  return out;
}

std::vector<float> graph_logits(ModelGraph& mg, ggml_backend_t be, const std::vector<Token>& toks) {
  std::vector<int32_t> p(toks.size());
  for (size_t i = 0; i < p.size(); ++i) p[i] = int32_t(i);
  return logits_of(mg, be, int(toks.size()), 1, toks.data(), p.data(), nullptr);
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

class ModelGraphTest : public ::testing::Test {
 protected:
  void SetUp() override { be_ = ggml_backend_cpu_init(); }
  void TearDown() override { ggml_backend_free(be_); }
  ggml_backend_t be_ = nullptr;
};

TEST_F(ModelGraphTest, LogitsMatchLlamaCpp) {
  auto model = Model::load(test::tiny_model());
  auto toks = model->tokenize("Question: Tom has 3 apples and buys 4 more. How many apples? Answer: 7", true);
  auto ref = model_logits(*model, toks);
  ModelGraph mg(test::tiny_model(), be_);
  EXPECT_EQ(mg.hparams().n_vocab, model->n_vocab());
  auto ours = graph_logits(mg, be_, toks);
  ASSERT_EQ(ours.size(), ref.size());
  EXPECT_LT(max_abs_diff(ours, ref), 2e-3) << "logits scale: " << std::fabs(ref[0]);
}

TEST_F(ModelGraphTest, PackedExamplesSeeOnlyThemselves) {
  // Two examples packed in one row compute, token for token, what each computes alone: the mask
  // and per-example positions keep them apart, so packing changes speed and nothing else.
  auto model = Model::load(test::tiny_model());
  std::vector<SftExample> ex(2);
  ex[0].tokens = model->tokenize("Question: 2 + 3? Answer: 5", true);
  ex[1].tokens = model->tokenize("def add(a, b): return a + b", true);
  for (auto& e : ex) e.target.assign(e.tokens.size(), 1);
  const int T = int(ex[0].tokens.size() + ex[1].tokens.size()) + 3, V = model->n_vocab();
  auto rows = make_rows(ex, {0, 1}, T, true);
  ASSERT_EQ(rows.size(), 1u);
  HostBatch b;
  fill_batch(ex, rows, 0, 1, 1, T, V, 0, b);
  ModelGraph mg(test::tiny_model(), be_);
  auto packed = logits_of(mg, be_, T, 1, b.tokens.data(), b.pos.data(), b.mask.data());
  size_t offset = 0;
  for (const auto& e : ex) {
    auto alone = graph_logits(mg, be_, e.tokens);
    std::vector<float> part(packed.begin() + long(offset * V), packed.begin() + long((offset + e.tokens.size()) * V));
    EXPECT_LT(max_abs_diff(part, alone), 1e-4);
    offset += e.tokens.size();
  }
  // Without the mask the second example would read the first: the check above can fail.
  std::vector<float> unmasked = graph_logits(mg, be_, b.tokens);
  auto alone = graph_logits(mg, be_, ex[1].tokens);
  std::vector<float> part(unmasked.begin() + long(ex[0].tokens.size() * V),
                          unmasked.begin() + long((ex[0].tokens.size() + ex[1].tokens.size()) * V));
  EXPECT_GT(max_abs_diff(part, alone), 1e-3);
}

TEST_F(ModelGraphTest, LoraLogitsMatchLlamaCppWithTheSameAdapter) {
  auto model = Model::load(test::tiny_model());
  model->load_adapter("a", test::tiny_adapter());
  auto toks = model->tokenize("def add(a, b): return a + b", true);
  auto ref = model_logits(*model, toks, "a");
  auto base = model_logits(*model, toks);
  ModelGraph mg(test::tiny_model(), be_);
  LoraSpec spec;
  spec.rank = 4;
  spec.targets = {"q", "k", "v", "o"};
  mg.add_lora(spec, 1, test::tiny_adapter());
  auto ours = graph_logits(mg, be_, toks);
  EXPECT_GT(max_abs_diff(ref, base), 1e-2);  // the adapter matters...
  EXPECT_LT(max_abs_diff(ours, ref), 2e-3);  // ...and we apply it as llama.cpp does
}

TEST_F(ModelGraphTest, QuantizedBaseIsRefusedWithTheReason) {
  ModelInitOptions o;
  o.shape.n_embd = 256;
  o.shape.n_ff = 512;
  o.type = "q8_0";
  auto q = test::tmp_dir() / "graph-q8.gguf";
  model_init(q, o);
  try {
    ModelGraph mg(q, be_);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q8_0"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cogumi
