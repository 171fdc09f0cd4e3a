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

namespace cogumi {
namespace {

std::vector<float> graph_logits(ModelGraph& mg, ggml_backend_t be, const std::vector<Token>& toks) {
  const int T = int(toks.size());
  ggml_init_params ip{ggml_tensor_overhead() * 16384 + ggml_graph_overhead_custom(16384, false), nullptr, true};
  ggml_context* ctx = ggml_init(ip);
  ggml_tensor* tokens = ggml_new_tensor_2d(ctx, GGML_TYPE_I32, T, 1);
  ggml_tensor* pos = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, T);
  ggml_set_input(tokens);
  ggml_set_input(pos);
  ggml_tensor* logits = mg.build_logits(ctx, tokens, pos);
  ggml_set_output(logits);
  ggml_cgraph* gf = ggml_new_graph_custom(ctx, 16384, false);
  ggml_build_forward_expand(gf, logits);
  ggml_gallocr_t alloc = ggml_gallocr_new(ggml_backend_get_default_buffer_type(be));
  EXPECT_TRUE(ggml_gallocr_alloc_graph(alloc, gf));
  std::vector<int32_t> p(T);
  for (int i = 0; i < T; ++i) p[i] = i;
  ggml_backend_tensor_set(tokens, toks.data(), 0, T * sizeof(int32_t));
  ggml_backend_tensor_set(pos, p.data(), 0, T * sizeof(int32_t));
  ggml_backend_graph_compute(be, gf);
  std::vector<float> out(ggml_nelements(logits));
  ggml_backend_tensor_get(logits, out.data(), 0, ggml_nbytes(logits));
  ggml_gallocr_free(alloc);
  ggml_free(ctx);
  return out;
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
