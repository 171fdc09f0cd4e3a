// First-order MAML (train/maml.h) on a tiny random model: inner adaptation lowers the support
// loss; the meta-gradient is the query gradient at the adapted weights (an explicit computation
// and finite differences), and the meta-update is the AdamW step on it; the exact-match metric
// follows the argmax; option and data errors name what is wrong.
#include <ggml-backend.h>
#include <ggml-cpu.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/threads.h"
#include "engine/model.h"
#include "test_util.h"
#include "train/maml.h"
#include "train/maml_core.h"
#include "train/model_graph.h"
#include "train/step.h"

namespace cogumi {
namespace {

constexpr int kT = 16, kS = 4;
using maml::Params;

// n examples of random tokens: a prompt of 6, a target of 6 (position 0 never has a target).
std::vector<SftExample> random_examples(int n, int n_vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> tok(3, n_vocab - 1);
  std::vector<SftExample> out(static_cast<size_t>(n));
  for (auto& e : out) {
    for (int i = 0; i < 12; ++i) e.tokens.push_back(tok(rng)), e.target.push_back(i >= 6);
  }
  return out;
}

LoraSpec qv(int rank) { return LoraSpec{rank, float(rank), {"q", "v"}}; }

class MamlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cpu_ = ggml_backend_cpu_init();
    ggml_backend_cpu_set_n_threads(cpu_, compute_threads());
    mg_ = std::make_unique<ModelGraph>(test::tiny_model(), cpu_, true);
    mg_->add_lora(qv(4), 5, {}, 0.05f);  // B non-zero: every A and B has a gradient
    tg_ = std::make_unique<TrainGraph>(*mg_, std::vector<ggml_backend_t>{cpu_}, kT, kS);
    runner_ = std::make_unique<maml::Runner>(*tg_, kT, kS, 0);
  }
  void TearDown() override {
    runner_.reset();
    tg_.reset();
    mg_.reset();
    ggml_backend_free(cpu_);
  }
  int vocab() const { return mg_->hparams().n_vocab; }
  ggml_backend_t cpu_ = nullptr;
  std::unique_ptr<ModelGraph> mg_;
  std::unique_ptr<TrainGraph> tg_;
  std::unique_ptr<maml::Runner> runner_;
};

TEST_F(MamlTest, InnerAdaptationLowersSupportLoss) {
  const auto support = random_examples(3, vocab(), 1);
  const double before = runner_->loss(support);
  const double first = runner_->adapt(support, InnerOptions{5, 0.5f, 1.0f});
  const double after = runner_->loss(support);
  EXPECT_NEAR(first, before, 1e-4);
  EXPECT_LT(after, before - 0.05) << "5 SGD steps on 3 examples must fit them";
  // And the accumulators are left empty: the next gradient starts from zero.
  for (const auto& g : maml::read_grads(*tg_)) EXPECT_EQ(maml::norm({g}), 0.0);
}

TEST_F(MamlTest, MetaGradientIsTheQueryGradientAtTheAdaptedWeights) {
  const auto support = random_examples(3, vocab(), 2), query = random_examples(4, vocab(), 3);
  const InnerOptions inner{2, 0.3f, 0.0f};
  const Params theta = maml::read_params(*tg_);
  maml::TaskLosses l;
  const Params g = maml::task_gradient(*runner_, theta, support, query, inner, &l);
  EXPECT_LT(l.support_post, l.support_pre);

  // Explicitly: two SGD steps by hand from theta, then the query gradient there.
  maml::write_params(*tg_, theta);
  Params w = theta;
  for (int s = 0; s < inner.steps; ++s) {
    const Params gs = runner_->gradient(support);
    for (size_t i = 0; i < w.size(); ++i)
      for (size_t j = 0; j < w[i].size(); ++j) w[i][j] -= inner.lr * gs[i][j];
    maml::write_params(*tg_, w);
  }
  double lq = 0;
  const Params expect = runner_->gradient(query, &lq);
  EXPECT_NEAR(lq, l.query_post, 1e-6);
  double diff = 0, scale = 0;
  for (size_t i = 0; i < g.size(); ++i)
    for (size_t j = 0; j < g[i].size(); ++j) diff = std::max(diff, double(std::fabs(g[i][j] - expect[i][j]))),
                                             scale = std::max(scale, double(std::fabs(expect[i][j])));
  EXPECT_LT(diff, 1e-5 * scale + 1e-9);
  EXPECT_GT(scale, 1e-3);

  // It is not the query gradient at theta (what MAML without the inner loop would use).
  maml::write_params(*tg_, theta);
  const Params at_theta = runner_->gradient(query);
  double apart = 0;
  for (size_t i = 0; i < g.size(); ++i)
    for (size_t j = 0; j < g[i].size(); ++j) apart = std::max(apart, double(std::fabs(g[i][j] - at_theta[i][j])));
  EXPECT_GT(apart, 0.05 * scale);

  // Finite differences of the query loss at the adapted weights along a random direction.
  std::mt19937_64 rng(9);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Params d = w;
  double dot = 0, dn = 0;
  for (size_t i = 0; i < d.size(); ++i)
    for (size_t j = 0; j < d[i].size(); ++j) d[i][j] = nd(rng), dn += double(d[i][j]) * d[i][j];
  for (size_t i = 0; i < d.size(); ++i)
    for (size_t j = 0; j < d[i].size(); ++j) d[i][j] /= float(std::sqrt(dn)), dot += double(d[i][j]) * g[i][j];
  const float eps = 1e-2f;
  auto loss_at = [&](float t) {
    Params x = w;
    for (size_t i = 0; i < x.size(); ++i)
      for (size_t j = 0; j < x[i].size(); ++j) x[i][j] += t * d[i][j];
    maml::write_params(*tg_, x);
    return runner_->loss(query);
  };
  const double fd = (loss_at(eps) - loss_at(-eps)) / (2.0 * eps);
  EXPECT_NEAR(fd, dot, 0.05 * std::fabs(dot) + 2e-4);
}

TEST_F(MamlTest, MetaUpdateIsTheAdamWStepOnTheMetaGradient) {
  const auto support = random_examples(2, vocab(), 4), query = random_examples(3, vocab(), 5);
  const Params theta = maml::read_params(*tg_);
  const Params g = maml::task_gradient(*runner_, theta, support, query, InnerOptions{1, 0.3f, 0.0f});
  const float lr = 1e-3f;
  maml::meta_update(*tg_, theta, g, AdamWParams{lr});
  const Params after = maml::read_params(*tg_);
  // First AdamW step, no weight decay: m_hat = g, v_hat = g^2, so theta -= lr * g / (|g| + eps).
  size_t moved = 0;
  for (size_t i = 0; i < g.size(); ++i)
    for (size_t j = 0; j < g[i].size(); ++j) {
      const double want = theta[i][j] - lr * g[i][j] / (std::fabs(g[i][j]) + 1e-8);
      ASSERT_NEAR(after[i][j], want, 1e-6) << i << "," << j;
      moved += after[i][j] != theta[i][j];
    }
  EXPECT_GT(moved, 100u);
  EXPECT_EQ(tg_->steps_done(), 1);
}

TEST_F(MamlTest, ExactMatchFollowsTheArgmax) {
  maml::ArgmaxGraph ag(*mg_, {cpu_}, kT, 2);
  auto ex = random_examples(1, vocab(), 6);
  // Make the answer the model's own greedy continuation: each target token the argmax after the
  // tokens before it (causal, so fixing positions left to right is enough).
  std::vector<uint8_t> per;
  for (size_t p = 6; p < 12; ++p) ex[0].tokens[p] = ag.argmax(ex[0])[p - 1];
  EXPECT_EQ(ag.argmax(ex[0]).size(), size_t(kT));
  EXPECT_EQ(ag.exact_matches(ex, 0, -1, &per), 1u);
  EXPECT_EQ(per, std::vector<uint8_t>{1});
  ex[0].tokens[9] = ex[0].tokens[9] == 3 ? 4 : 3;  // one wrong token anywhere in the answer
  EXPECT_EQ(ag.exact_matches(ex, 0, -1), 0u);
  auto too_long = random_examples(1, vocab(), 7);
  too_long[0].tokens.resize(kT + 4, 5), too_long[0].target.resize(kT + 4, 1);
  EXPECT_EQ(ag.exact_matches(too_long, 0, -1), 0u) << "an example longer than the row counts as wrong";
}

// MAML's first call is a forward-only loss: a TrainGraph whose first graph is the forward one
// used to crash (or give NaN) on the next backward pass. Same loss and gradients either way.
TEST(TrainGraphOrder, EvaluateBeforeAnyAccumulate) {
  ggml_backend_t cpu = ggml_backend_cpu_init();
  ggml_backend_cpu_set_n_threads(cpu, compute_threads());
  double ref_loss = 0, loss = 0, eval_loss = 0;
  Params ref, got;
  const std::vector<SftExample> ex = [&] {
    ModelGraph mg(test::tiny_model(), cpu, true);
    return random_examples(3, mg.hparams().n_vocab, 8);
  }();
  {
    ModelGraph mg(test::tiny_model(), cpu, true);
    mg.add_lora(qv(4), 5, {}, 0.05f);
    TrainGraph tg(mg, {cpu}, kT, kS);
    maml::Runner r(tg, kT, kS, 0);
    ref = r.gradient(ex, &ref_loss);
  }
  {
    ModelGraph mg(test::tiny_model(), cpu, true);
    mg.add_lora(qv(4), 5, {}, 0.05f);
    TrainGraph tg(mg, {cpu}, kT, kS);
    maml::Runner r(tg, kT, kS, 0);
    eval_loss = r.loss(ex);  // the forward graph first
    got = r.gradient(ex, &loss);
    EXPECT_NEAR(r.loss(ex), eval_loss, 1e-6);
  }
  ggml_backend_free(cpu);
  EXPECT_NEAR(eval_loss, ref_loss, 1e-5);
  EXPECT_NEAR(loss, ref_loss, 1e-5);
  ASSERT_EQ(got.size(), ref.size());
  for (size_t i = 0; i < ref.size(); ++i)
    for (size_t j = 0; j < ref[i].size(); ++j) ASSERT_NEAR(got[i][j], ref[i][j], 1e-6) << i << "," << j;
}

TEST(MamlOptions, ValidationNamesTheOption) {
  MamlOptions o;
  o.model = "m.gguf", o.data = {"d.jsonl"}, o.out = "o.gguf";
  EXPECT_EQ(test::error_of([&] { o.validate(); }), "");
  auto err = [&](auto change) {
    MamlOptions c = o;
    change(c);
    return test::error_of([&] { c.validate(); });
  };
  {
    EXPECT_NE(err([](MamlOptions& c) { c.inner.steps = 0; }).find("--inner-steps"), std::string::npos);
    EXPECT_NE(err([](MamlOptions& c) { c.inner.steps = 101; }).find("--inner-steps"), std::string::npos);
    EXPECT_NE(err([](MamlOptions& c) { c.inner.lr = 0; }).find("--inner-lr"), std::string::npos);
    EXPECT_NE(err([](MamlOptions& c) { c.inner.lr = NAN; }).find("--inner-lr"), std::string::npos);
    EXPECT_NE(err([](MamlOptions& c) { c.outer_lr = -1; }).find("--lr"), std::string::npos);
    EXPECT_NE(err([](MamlOptions& c) { c.meta_batch = 0; }).find("--meta-batch"), std::string::npos);
    EXPECT_NE(err([](MamlOptions& c) { c.shots = 0; }).find("--shots"), std::string::npos);
    EXPECT_NE(err([](MamlOptions& c) { c.query = 2000; }).find("--query"), std::string::npos);
    EXPECT_NE(err([](MamlOptions& c) { c.meta_steps = 0; }).find("--max-steps"), std::string::npos);
    EXPECT_NE(err([](MamlOptions& c) { c.lora.rank = 0; }).find("--lora-rank"), std::string::npos);
    EXPECT_NE(err([](MamlOptions& c) { c.task_field = ""; }).find("--task-field"), std::string::npos);
    EXPECT_NE(err([](MamlOptions& c) { c.device = "tpu"; }).find("--device"), std::string::npos);
  }
  FewshotEvalOptions f;
  f.model = "m.gguf", f.maml_adapter = "a.gguf", f.data = {"d.jsonl"}, f.out = "o.jsonl";
  EXPECT_EQ(test::error_of([&] { f.validate(); }), "");
  f.shots = {1, 0};
  EXPECT_NE(test::error_of([&] { f.validate(); }).find("--shots"), std::string::npos);
  f.shots = {1};
  f.multitask_inner.steps = 200;
  EXPECT_NE(test::error_of([&] { f.validate(); }).find("--multitask-inner-steps"), std::string::npos);
}

TEST(MamlData, TaskFieldErrorsNameFileAndLine) {
  const auto path = test::tmp_dir() / "maml-tasks.jsonl";
  std::ofstream(path) << R"({"prompt":"a","completion":" b","task":"t1"})" "\n"
                      << R"({"prompt":"c","completion":" d"})" "\n";
  ModelOptions mo;
  mo.vocab_only = true;
  engine_init();
  auto tok = Model::load(test::tiny_model(), mo);
  const std::string e = test::error_of([&] { maml::load_tasks({path}, "task", *tok, SftOptions{}); });
  EXPECT_NE(e.find("maml-tasks.jsonl:2"), std::string::npos) << e;
  EXPECT_NE(e.find("'task'"), std::string::npos) << e;
  std::ofstream(path) << R"({"prompt":"a","completion":" b","task":"t1"})" "\n"
                      << R"({"prompt":"c","completion":" d","task":"t2"})" "\n"
                      << R"({"prompt":"e","completion":" f","task":"t1"})" "\n";
  auto tasks = maml::load_tasks({path}, "task", *tok, SftOptions{});
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(tasks["t1"].size(), 2u);
  EXPECT_EQ(tasks["t2"].size(), 1u);
}

// The command end to end on a tiny model: two meta-steps write an adapter that loads back with the
// same rank and targets, and a log line per step; too few examples per task is an error.
TEST(MamlTrain, WritesAnAdapterAndALog) {
  const auto data = test::tmp_dir() / "maml-train.jsonl";
  {
    std::ofstream f(data);
    for (int i = 0; i < 24; ++i)
      f << nlohmann::json{{"prompt", "q " + std::to_string(i)}, {"completion", " a " + std::to_string(i % 5)},
                          {"category", i % 2 ? "odd" : "even"}}.dump()
        << "\n";
  }
  MamlOptions o;
  o.model = test::tiny_model(), o.data = {data}, o.out = test::tmp_dir() / "maml.gguf";
  o.lora = qv(4), o.meta_steps = 2, o.meta_batch = 2, o.shots = 3, o.query = 4, o.seq_len = 32;
  o.device = "cpu", o.n_threads = 0, o.progress = false;
  MamlResult r = train_maml(o);
  EXPECT_EQ(r.steps, 2);
  EXPECT_EQ(r.n_tasks, 2u);
  EXPECT_TRUE(std::filesystem::exists(o.out.string() + ".log.jsonl"));
  EXPECT_TRUE(std::filesystem::exists(o.out.string() + ".summary.json"));
  ggml_backend_t cpu = ggml_backend_cpu_init();
  ggml_backend_cpu_set_n_threads(cpu, compute_threads());
  {
    ModelGraph mg(test::tiny_model(), cpu, true);
    mg.add_lora(qv(4), 0, o.out);
    EXPECT_EQ(mg.lora_tensors().size(), 2u * size_t(mg.hparams().n_layer) * 2u);
  }
  ggml_backend_free(cpu);
  o.query = 20;
  EXPECT_NE(test::error_of([&] { train_maml(o); }).find("no task has 23 examples"), std::string::npos);
}

}  // namespace
}  // namespace cogumi
