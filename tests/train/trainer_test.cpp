#include "train/trainer.h"

#include <gguf.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "core/error.h"
#include "core/io.h"
#include "engine/generate.h"
#include "test_util.h"

namespace cogumi {
namespace {

const std::vector<std::pair<std::string, std::string>> kPairs = {
    {"What is two plus three?", "five"}, {"Name a red fruit.", "apple"},
    {"Which is larger, 7 or 9?", "9"},   {"Capital of France?", "Paris"}};

std::filesystem::path write_pairs() {
  auto p = test::tmp_dir() / "pairs.jsonl";
  std::ofstream f(p);
  for (auto& [q, a] : kPairs) f << json{{"instruction", q}, {"output", a}}.dump() << "\n";
  return p;
}

TEST(Trainer, LoraLearnsFixedAnswersAndLlamaCppServesThem) {
  TrainOptions o;
  o.model = test::tiny_model();
  o.data = {{write_pairs()}};
  o.out = test::tmp_dir() / "pairs-lora.gguf";
  o.lora.rank = 8;
  o.lora.alpha = 16;
  o.lora.targets = {"q", "k", "v", "o", "gate", "up", "down"};
  o.sft.max_len = 48;
  o.batch = 4;
  o.max_steps = 80;
  o.lr = 1e-2f;
  o.progress = false;
  std::vector<double> losses;
  auto r = train(o, [&](const TrainStep& s) { losses.push_back(s.loss); });
  ASSERT_EQ(r.steps, 80);
  EXPECT_LT(r.last_loss, 0.25 * r.first_loss) << r.first_loss << " -> " << r.last_loss;

  auto model = Model::load(test::tiny_model());
  model->load_adapter("pairs", o.out);
  Generator gen(model);
  std::vector<GenRequest> reqs;
  for (auto& [q, a] : kPairs) {
    GenRequest g;
    g.prompt_tokens = model->tokenize_chat({{"user", q}}).tokens;
    g.max_tokens = 8;
    g.adapter = "pairs";
    reqs.push_back(g);
  }
  auto tuned = gen.generate(reqs);
  for (auto& rq : reqs) rq.adapter.clear();
  auto base = gen.generate(reqs);
  int right = 0, base_right = 0;
  for (size_t i = 0; i < kPairs.size(); ++i) {
    right += tuned[i].text == kPairs[i].second;
    base_right += base[i].text == kPairs[i].second;
  }
  EXPECT_GE(right, 3) << tuned[0].text << " | " << tuned[1].text << " | " << tuned[2].text << " | " << tuned[3].text;
  EXPECT_EQ(base_right, 0);
}

TEST(Trainer, FullParameterLossFalls) {
  TrainOptions o;
  o.model = test::tiny_model();
  o.data = {{write_pairs()}};
  o.out = test::tmp_dir() / "pairs-full.gguf";
  o.full = true;
  o.sft.max_len = 48;
  o.max_steps = 30;
  o.lr = 3e-3f;
  o.progress = false;
  auto r = train(o);
  EXPECT_LT(r.last_loss, 0.5 * r.first_loss) << r.first_loss << " -> " << r.last_loss;
  auto m = Model::load(o.out);  // the written model loads in llama.cpp
  EXPECT_EQ(m->info().n_layer, 2);
  EXPECT_TRUE(m->has_chat_template());
}

TEST(Trainer, MaskedPositionsCarryNoLabel) {
  std::vector<std::vector<Token>> toks = {{1, 10, 11, 12, 13}};
  std::vector<std::vector<uint8_t>> tgt = {{0, 0, 0, 1, 1}};
  std::vector<int32_t> lab;
  EXPECT_EQ(make_labels(toks, tgt, 6, lab), 2u);
  ASSERT_EQ(lab.size(), 6u);
  EXPECT_EQ(lab[0], -1);  // predicts 10: prompt
  EXPECT_EQ(lab[1], -1);  // predicts 11: prompt
  EXPECT_EQ(lab[2], 12);
  EXPECT_EQ(lab[3], 13);
  EXPECT_EQ(lab[4], -1);  // nothing after the last token
  EXPECT_EQ(lab[5], -1);  // padding
  // Changing a prompt token's label changes nothing.
  std::vector<int32_t> lab2;
  toks[0][2] = 17;
  make_labels(toks, tgt, 6, lab2);
  EXPECT_EQ(lab, lab2);
}

TEST(Trainer, BadInputIsAClearError) {
  auto bad = test::tmp_dir() / "bad-sft.jsonl";
  std::ofstream(bad) << "{\"instruction\": \"q\", \"output\": \"a\"}\n{\"instruction\": \"q\"}\n";
  TrainOptions o;
  o.model = test::tiny_model();
  o.data = {{bad}};
  o.out = test::tmp_dir() / "x.gguf";
  o.max_steps = 1;
  o.progress = false;
  try {
    train(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad-sft.jsonl:2: missing field 'output'"), std::string::npos) << e.what();
  }
  o.data = {{write_pairs()}};
  o.lora.rank = 4;
  o.lora.targets = {"qkv"};
  EXPECT_THROW(train(o), Error);
  EXPECT_FALSE(std::filesystem::exists(o.out));
}

}  // namespace
}  // namespace cogumi

#include "engine/logits.h"
#include "train/lora_merge.h"

namespace cogumi {
namespace {

TEST(LoraFiles, MergedModelComputesWhatBasePlusAdapterComputes) {
  auto merged = test::tmp_dir() / "merged.gguf";
  lora_merge(test::tiny_model(), test::tiny_adapter(), merged);
  auto info = lora_info(test::tiny_adapter());
  EXPECT_EQ(info["rank"], 4);
  EXPECT_EQ(info["modules"].size(), 4u);
  auto base = Model::load(test::tiny_model());
  base->load_adapter("a", test::tiny_adapter());
  auto m = Model::load(merged);
  auto toks = base->tokenize("Which is larger, 7 or 9?");
  auto want = model_logits(*base, toks, "a");
  auto got = model_logits(*m, toks);
  double d = 0;
  for (size_t i = 0; i < want.size(); ++i) d = std::max(d, double(std::fabs(want[i] - got[i])));
  EXPECT_LT(d, 2e-3);
  EXPECT_THROW(lora_info(test::tiny_model()), Error);  // a model is not an adapter
}

}  // namespace
}  // namespace cogumi

namespace cogumi {
namespace {

TEST(Trainer, ValidationKeepsTheBestWeightsAndStopsEarly) {
  auto data = test::tmp_dir() / "facts.jsonl";
  {
    std::ofstream f(data);
    const char* words[] = {"red", "blue", "green", "seven", "apple", "Paris", "tool", "number", "books", "nine", "five", "cost"};
    for (int i = 0; i < 12; ++i)
      f << json{{"instruction", "Word " + std::to_string(i) + "?"}, {"output", words[i]}}.dump() << "\n";
  }
  TrainOptions o;
  o.model = test::tiny_model();
  o.data = {{data}};
  o.out = test::tmp_dir() / "facts-lora.gguf";
  o.log = test::tmp_dir() / "facts-log.jsonl";
  o.lora.rank = 8;
  o.lora.targets = {"q", "k", "v", "o", "gate", "up", "down"};
  o.sft.max_len = 32;
  o.batch = 3;
  o.max_steps = 300;
  o.lr = 2e-2f;
  o.schedule = "constant";
  o.val_split = 0.25;
  o.eval_steps = 5;
  o.patience = 3;
  o.progress = false;
  auto r = train(o);
  EXPECT_TRUE(r.stopped_early);
  EXPECT_LT(r.steps, 300);
  EXPECT_GT(r.best_val_loss, 0.0);
  EXPECT_GE(r.steps, r.best_step + 3 * 5);  // stopped after `patience` evaluations without improvement
  size_t with_val = 0;
  read_jsonl(o.log, [&](const json& j, size_t) { with_val += j.contains("val_loss"); });
  EXPECT_EQ(with_val, size_t(r.steps / 5));
  o.patience = 1;
  o.val_split = 0;
  EXPECT_THROW(train(o), Error);  // patience without a validation split
}

}  // namespace
}  // namespace cogumi

namespace cogumi {
namespace {

TEST(Trainer, WeightedFilesMix) {
  auto a = test::tmp_dir() / "mix-a.jsonl";
  auto b = test::tmp_dir() / "mix-b.jsonl";
  {
    std::ofstream fa(a), fb(b);
    for (int i = 0; i < 4; ++i) fa << json{{"instruction", "a" + std::to_string(i)}, {"output", "x"}}.dump() << "\n";
    for (int i = 0; i < 12; ++i) fb << json{{"prompt", "b" + std::to_string(i)}, {"completion", "y"}}.dump() << "\n";
  }
  TrainOptions o;
  o.model = test::tiny_model();
  o.data = {parse_data_source(a.string()), parse_data_source(b.string() + ":0.25")};
  EXPECT_DOUBLE_EQ(o.data[1].weight, 0.25);
  o.out = test::tmp_dir() / "mix.gguf";
  o.lora.rank = 2;
  o.lora.targets = {"q"};
  o.sft.max_len = 48;
  o.max_steps = 1;
  o.progress = false;
  auto r = train(o);
  EXPECT_EQ(r.data.n_examples, 16u);
  EXPECT_EQ(r.n_train, 4u + 3u);
  o.data = {parse_data_source(a.string() + ":2.5")};
  EXPECT_EQ(train(o).n_train, 10u);
  EXPECT_THROW(parse_data_source(a.string() + ":-1"), Error);
}

}  // namespace
}  // namespace cogumi

namespace cogumi {
namespace {

TrainOptions resume_options(const std::string& name) {
  auto data = test::tmp_dir() / "resume-data.jsonl";
  {
    std::ofstream f(data);
    for (int i = 0; i < 40; ++i)
      f << json{{"instruction", "Item " + std::to_string(i) + " is"}, {"output", std::to_string(i * 7 % 13)}}.dump() << "\n";
  }
  TrainOptions o;
  o.model = test::tiny_model();
  o.data = {{data}};
  o.out = test::tmp_dir() / (name + ".gguf");
  o.lora.rank = 4;
  o.lora.targets = {"q", "v", "up"};
  o.sft.max_len = 48;
  o.pack = true;  // rows of several examples: packing is part of the state that must resume
  o.batch = 2;
  o.grad_accum = 2;
  o.max_steps = 12;  // more than one epoch, so the reshuffle happens after the resume
  o.lr = 1e-2f;
  o.warmup = 2;
  o.val_split = 0.2;
  o.eval_steps = 3;
  o.save_steps = 4;
  o.progress = false;
  return o;
}

TEST(Trainer, ResumeFollowsTheSameLossCurve) {
  // Uninterrupted, then the same run stopped after step 5 (checkpoint written on cancel) and
  // resumed. The resumed steps must reproduce the uninterrupted losses: same data order, RNG,
  // weights, AdamW moments and step count. Tolerance 1e-6: both runs do the same float
  // operations in the same order on the same threads, so any real state loss (a reset moment,
  // a reshuffled epoch) moves the loss by far more.
  auto a = resume_options("resume-a");
  auto ra = train(a);
  ASSERT_EQ(ra.losses.size(), 12u);

  auto b = resume_options("resume-b");
  std::atomic<bool> cancel{false};
  b.cancel = &cancel;
  auto rb1 = train(b, [&](const TrainStep& s) {
    if (s.step == 5) cancel = true;
  });
  EXPECT_TRUE(rb1.interrupted);
  EXPECT_EQ(rb1.steps, 5);
  EXPECT_FALSE(std::filesystem::exists(b.out));  // nothing final written yet
  ASSERT_TRUE(std::filesystem::exists(b.out.string() + ".ckpt.gguf"));
  b.cancel = nullptr;
  b.resume = true;
  auto rb2 = train(b);
  EXPECT_EQ(rb2.resumed_from, 5);
  ASSERT_EQ(rb2.losses.size(), 7u);
  for (size_t i = 0; i < 7; ++i) EXPECT_NEAR(rb2.losses[i], ra.losses[5 + i], 1e-6) << "step " << 6 + i;
  EXPECT_NEAR(rb2.best_val_loss, ra.best_val_loss, 1e-6);
  EXPECT_EQ(rb2.best_step, ra.best_step);
  // The log holds every step once, across the interruption.
  std::vector<int> steps;
  read_jsonl(b.out.string() + ".log.jsonl", [&](const json& j, size_t) { steps.push_back(j["step"]); });
  ASSERT_EQ(steps.size(), 12u);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(steps[size_t(i)], i + 1);
  // The adapters are the same.
  EXPECT_EQ(read_file(a.out), read_file(b.out));

  // A checkpoint from another run is refused, naming the difference.
  auto c = resume_options("resume-b");
  c.resume = true;
  c.lr = 1e-2f;
  c.seed = 99;
  try {
    train(c);
    FAIL() << "resumed a checkpoint of another run";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("different run"), std::string::npos) << e.what();
  }
}

// cogumi run hands a training stage the threads of the stages beside it when they finish: the steps
// then run on more threads, with the same numbers.
TEST(Trainer, MoreThreadsMidRunGiveTheSameWeights) {
  auto a = resume_options("threads-a");
  a.n_threads = 1;
  auto ra = train(a);
  auto b = resume_options("threads-b");
  b.n_threads = 1;
  std::atomic<int> live{1};
  b.threads_live = &live;
  std::vector<int> seen;
  auto rb = train(b, [&](const TrainStep& s) {
    seen.push_back(s.threads);
    if (s.step == 4) live = 2;
  });
  ASSERT_EQ(seen.size(), 12u);
  EXPECT_EQ(seen[3], 1);  // step 4 on one thread
  EXPECT_EQ(seen[4], 2);  // from step 5 on two
  EXPECT_EQ(seen[11], 2);
  ASSERT_EQ(rb.losses.size(), ra.losses.size());
  for (size_t i = 0; i < ra.losses.size(); ++i) EXPECT_EQ(rb.losses[i], ra.losses[i]) << "step " << i + 1;
  EXPECT_EQ(read_file(a.out), read_file(b.out));
  std::vector<int> logged;
  read_jsonl(b.out.string() + ".log.jsonl", [&](const json& j, size_t) { logged.push_back(j.value("threads", 0)); });
  EXPECT_EQ(logged, seen);
}

TEST(Trainer, DivergenceIsFlaggedOnceWhenTheLossKeepsClimbing) {
  DivergenceWatch falling(5), noisy(5), climbing(5);
  int fired_at = 0, n_fired = 0;
  for (int step = 1; step <= 200; ++step) {
    EXPECT_FALSE(falling.update(step, 5.0 / step));
    EXPECT_FALSE(noisy.update(step, 2.0 + ((step % 2) ? 0.3 : -0.3)));  // bouncing, not climbing
    double loss = step < 60 ? 3.0 - step * 0.03 : 1.2 + (step - 60) * 0.1;  // falls, then climbs
    if (climbing.update(step, loss)) fired_at = step, ++n_fired;
  }
  EXPECT_EQ(n_fired, 1);
  EXPECT_GT(fired_at, 60);
  EXPECT_LT(fired_at, 100);
}

TEST(Trainer, ReportLogAndClipping) {
  auto o = resume_options("report");
  o.save_steps = 0;
  o.val_split = 0.2;
  auto r = train(o);
  // Log: loss, perplexity, grad norm, lr, tokens/s each step; validation every 3 steps.
  size_t n = 0, with_val = 0;
  read_jsonl(o.out.string() + ".log.jsonl", [&](const json& j, size_t) {
    ++n;
    EXPECT_GT(j["grad_norm"].get<double>(), 0.0);
    EXPECT_NEAR(j["ppl"].get<double>(), std::exp(j["loss"].get<double>()), 1e-6 * j["ppl"].get<double>());
    EXPECT_GT(j["tokens_per_s"].get<double>(), 0.0);
    with_val += j.contains("val_loss");
  });
  EXPECT_EQ(n, 12u);
  EXPECT_EQ(with_val, 4u);
  json sum = json::parse(read_file(o.out.string() + ".summary.json"));
  EXPECT_EQ(sum["steps"], 12);
  EXPECT_EQ(sum["mode"], "lora");
  EXPECT_EQ(sum["base_weights"], "file") << "the tiny model is F32: no 16-bit matrix to hold otherwise";
  EXPECT_EQ(r.base_weights, BaseWeights::file);
  EXPECT_DOUBLE_EQ(sum["best_val_loss"].get<double>(), r.best_val_loss);
  std::string svg = read_file(o.out.string() + ".loss.svg");
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_EQ(std::count(svg.begin(), svg.end(), '\n') > 10, true);
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
  EXPECT_NE(svg.find("<circle"), std::string::npos);  // validation points

  // Clipping: with the norm clipped to almost nothing, AdamW's steps shrink below its epsilon and
  // the loss stays where it started; without clipping the same run learns.
  auto frozen = resume_options("clip-frozen");
  frozen.save_steps = 0, frozen.val_split = 0, frozen.clip = 1e-14f;
  auto rf = train(frozen);
  auto free_ = resume_options("clip-free");
  free_.save_steps = 0, free_.val_split = 0, free_.clip = 0;
  auto rl = train(free_);
  EXPECT_NEAR(rf.losses.back(), rf.losses.front(), 0.05 * rf.losses.front());
  EXPECT_LT(rl.losses.back(), 0.8 * rl.losses.front());
}

// Overwrites the start of a tensor's data in a GGUF file with NaN.
void poison_tensor(const std::filesystem::path& path, const std::string& name) {
  gguf_init_params gp{true, nullptr};
  gguf_context* g = gguf_init_from_file(path.c_str(), gp);
  ASSERT_NE(g, nullptr);
  int64_t id = gguf_find_tensor(g, name.c_str());
  ASSERT_GE(id, 0);
  size_t off = gguf_get_data_offset(g) + gguf_get_tensor_offset(g, id);
  gguf_free(g);
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(long(off));
  const float nan = std::nanf("");
  for (int i = 0; i < 16; ++i) f.write(reinterpret_cast<const char*>(&nan), sizeof nan);
}

TEST(Trainer, NonFiniteLossStopsAndKeepsTheLastGoodCheckpoint) {
  auto model = test::tmp_dir() / "nan-base.gguf";
  std::filesystem::copy_file(test::tiny_model(), model, std::filesystem::copy_options::overwrite_existing);
  auto o = resume_options("nan");
  o.model = model;
  o.val_split = 0;
  o.save_steps = 1;
  std::atomic<bool> cancel{false};
  o.cancel = &cancel;
  train(o, [&](const TrainStep& s) { cancel = s.step == 2; });
  const std::string ckpt = o.out.string() + ".ckpt.gguf";
  const std::string good = read_file(ckpt);
  // The base's weights go bad (NaN); the resumed run must stop on the first non-finite loss.
  poison_tensor(model, "blk.0.attn_q.weight");
  o.cancel = nullptr;
  o.resume = true;
  try {
    train(o);
    FAIL() << "trained through NaN weights";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("loss became nan at step 3"), std::string::npos) << m;
    EXPECT_NE(m.find(ckpt), std::string::npos) << m;
  }
  EXPECT_EQ(read_file(ckpt), good);  // the last good checkpoint is untouched
  EXPECT_FALSE(std::filesystem::exists(o.out));
}

}  // namespace
}  // namespace cogumi
