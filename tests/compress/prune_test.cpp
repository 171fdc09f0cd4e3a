// Structured pruning on tiny random-init models: shapes llama.cpp loads (llama and deci), exact
// logits at level 0, and importance ranking on planted cases (zeroed neurons, a dead KV group,
// an identity layer are what goes first).
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <set>

#include "compress/prune.h"
#include "compress/prune_gguf.h"
#include "compress/prune_stats.h"
#include "core/io.h"
#include "engine/generate.h"
#include "engine/gguf_writer.h"
#include "engine/logits.h"
#include "engine/model_init.h"
#include "test_util.h"

namespace cogumi {
namespace {

namespace fs = std::filesystem;

// 4 layers, 64 wide, 4 heads in 2 KV groups (head size 16), FFN 256: widths step in blocks of 32.
const fs::path& base_model() {
  static fs::path p = [] {
    fs::path path = test::tmp_dir() / "prune-base.gguf";
    ModelInitOptions o;
    o.shape.n_embd = 64, o.shape.n_layer = 4, o.shape.n_head = 4, o.shape.n_head_kv = 2, o.shape.n_ff = 256;
    o.seed = 11;
    o.init_std = 0.2f;
    model_init(path, o);
    return path;
  }();
  return p;
}

const fs::path& calib_text() {
  static fs::path p = [] {
    fs::path path = test::tmp_dir() / "prune-calib.txt";
    std::string text;
    for (int i = 0; i < 60; ++i)
      text += "The quick brown fox " + std::to_string(i * 7) + " jumps over the lazy dog, and the cat sat on the mat. ";
    write_file_atomic(path, text);
    return path;
  }();
  return p;
}

// A copy of `src` with `edit(name, data, ne0, count)` applied to each (F32) tensor.
fs::path edited(const fs::path& src, const std::string& name,
                const std::function<void(const std::string&, float*, int64_t, int64_t)>& edit) {
  const fs::path out = test::tmp_dir() / name;
  PruneSource s(src);
  ggml_context* meta = nullptr;
  gguf_context* g = gguf_init_from_file(src.c_str(), {true, &meta});
  GgufWriter w;
  gguf_set_kv(w.kv(), g);
  for (int64_t i = 0; i < gguf_get_n_tensors(g); ++i) {
    const ggml_tensor* t = ggml_get_tensor(meta, gguf_get_tensor_name(g, i));
    w.add_tensor(t->name, t->type, t->ne[0], t->ne[1]);
  }
  w.write(out, [&](const std::string& n, float* d, int64_t count) {
    std::vector<float> v = s.read(n);
    std::copy(v.begin(), v.begin() + count, d);
    edit(n, d, ggml_get_tensor(meta, n.c_str())->ne[0], count);
  });
  gguf_free(g);
  ggml_free(meta);
  return out;
}

// Zeroes FFN neuron j of layer l: its rows of ffn_gate/ffn_up, its column of ffn_down.
void zero_neuron(const std::string& name, float* d, int64_t ne0, int l, const std::set<int>& neurons) {
  const std::string b = "blk." + std::to_string(l) + ".";
  for (int j : neurons) {
    if (name == b + "ffn_gate.weight" || name == b + "ffn_up.weight") std::fill(d + j * ne0, d + (j + 1) * ne0, 0.0f);
    if (name == b + "ffn_down.weight")
      for (int64_t o = 0; o < 64; ++o) d[o * ne0 + j] = 0.0f;
  }
}

PruneOptions options(const fs::path& model, const std::string& out, double level) {
  PruneOptions o;
  o.model = model;
  o.calib = calib_text();
  o.out = test::tmp_dir() / out;
  o.level = level;
  o.ctx = 32;
  o.max_chunks = 4;
  o.n_threads = 0;
  return o;
}

std::string greedy(const fs::path& model) {
  Generator gen(Model::load(model));
  GenRequest r;
  r.prompt = "The quick brown fox";
  r.max_tokens = 8;
  r.ignore_eos = true;
  auto out = gen.generate({r});
  EXPECT_EQ(out[0].finish, FinishReason::kLength) << out[0].error;
  return out[0].text;
}

TEST(Prune, LevelZeroReproducesTheLogitsExactly) {
  PruneOptions o = options(base_model(), "p0.gguf", 0.0);
  o.eval = calib_text();
  o.eval_chunks = 2;
  const PruneResult r = prune_model(o);
  EXPECT_EQ(r.arch, "llama");
  EXPECT_EQ(r.params_after, r.params_before);
  ASSERT_TRUE(r.has_quality);
  EXPECT_EQ(r.quality.kld_mean, 0.0);
  EXPECT_EQ(r.quality.top1_agree, 1.0);
  auto a = Model::load(base_model()), b = Model::load(o.out);
  const std::vector<Token> toks = a->tokenize("The quick brown fox jumps over the lazy dog");
  const std::vector<float> la = model_logits(*a, toks, "", 1.0f, 2), lb = model_logits(*b, toks, "", 1.0f, 2);
  ASSERT_EQ(la.size(), lb.size());
  EXPECT_EQ(std::memcmp(la.data(), lb.data(), la.size() * sizeof(float)), 0);
  EXPECT_TRUE(fs::exists(test::tmp_dir() / "p0.prune.json"));
}

TEST(Prune, ZeroedNeuronsArePrunedFirstAndTheRestIsKept) {
  const std::set<int> planted = {3, 17, 40, 41, 77, 90, 101, 128, 130, 150, 151, 152, 160, 170, 180, 181,
                                 190, 200, 201, 202, 210, 211, 220, 221, 230, 231, 240, 241, 250, 251, 254, 255};
  ASSERT_EQ(planted.size(), 32u);
  const fs::path m = edited(base_model(), "planted-ffn.gguf", [&](const std::string& n, float* d, int64_t ne0, int64_t) {
    for (int l = 0; l < 4; ++l) zero_neuron(n, d, ne0, l, planted);
  });
  // The scores: every planted neuron below every other one, in every layer.
  PruneSource src(m);
  auto model = Model::load(m);
  const auto scores = [&] {
    std::vector<std::vector<Token>> chunks = {model->tokenize("The quick brown fox jumps over the lazy dog again and again")};
    return prune_scores(src, collect_prune_acts(*model, chunks, 2));
  }();
  for (int l = 0; l < 4; ++l) {
    double max_planted = -1, min_other = 1e30;
    for (int j = 0; j < 256; ++j) {
      const double s = scores.neuron[size_t(l)][size_t(j)];
      if (planted.count(j)) max_planted = std::max(max_planted, s);
      else min_other = std::min(min_other, s);
    }
    EXPECT_LT(max_planted, min_other) << "layer " << l;
  }
  // One block of 32 per layer leaves: exactly the planted neurons, so the others survive untouched.
  PruneOptions o = options(m, "planted-ffn-pruned.gguf", 0.1);
  o.multiple = 32;
  const PruneResult r = prune_model(o);
  EXPECT_EQ(r.arch, "llama");
  PruneSource out(o.out);
  for (int l = 0; l < 4; ++l) {
    EXPECT_EQ(out.n_ff(l), 224);
    const std::string name = "blk." + std::to_string(l) + ".ffn_up.weight";
    const std::vector<float> before = src.read(name), after = out.read(name);
    std::vector<float> expect;
    for (int j = 0; j < 256; ++j)
      if (!planted.count(j)) expect.insert(expect.end(), before.begin() + j * 64, before.begin() + (j + 1) * 64);
    EXPECT_EQ(after, expect) << name;
  }
  EXPECT_FALSE(greedy(o.out).empty());
}

TEST(Prune, UnevenWidthsWriteADeciModelThatLlamaCppLoadsAndRuns) {
  // Layer 1 has 96 dead neurons (three blocks): global ranking takes more from it than from the rest.
  std::set<int> dead;
  for (int j = 0; j < 96; ++j) dead.insert(j * 2 + 1);
  const fs::path m = edited(base_model(), "planted-deci.gguf",
                            [&](const std::string& n, float* d, int64_t ne0, int64_t) { zero_neuron(n, d, ne0, 1, dead); });
  PruneOptions o = options(m, "deci.gguf", 0.2);
  o.multiple = 32;
  o.uniform = false;  // --uneven
  const PruneResult r = prune_model(o);
  EXPECT_EQ(r.arch, "deci");
  ASSERT_EQ(r.layers.size(), 4u);
  EXPECT_LE(r.layers[1].n_ff, 160);
  int total_ff = 0;
  for (const auto& l : r.layers) {
    EXPECT_EQ(l.n_ff % 32, 0);
    total_ff += l.n_ff;
  }
  EXPECT_EQ(total_ff, 4 * 256 - 8 * 32);  // 0.2 of the layers' parameters: 8 blocks of 32 x 3 x 64
  auto model = Model::load(o.out);
  EXPECT_EQ(model->info().arch, "deci");
  EXPECT_EQ(model->info().n_params, r.params_after);  // llama.cpp built every tensor at its per-layer shape
  EXPECT_FALSE(greedy(o.out).empty());
}

TEST(Prune, DeadKvGroupGoesFirstAndUniformHeadsStayLlama) {
  // Group 1 of every layer (query heads 2-3, key/value head 1) contributes nothing.
  const fs::path m = edited(base_model(), "planted-heads.gguf", [&](const std::string& n, float* d, int64_t ne0, int64_t) {
    if (n.find("attn_q.weight") != std::string::npos) std::fill(d + 32 * ne0, d + 64 * ne0, 0.0f);
    if (n.find("attn_k.weight") != std::string::npos || n.find("attn_v.weight") != std::string::npos)
      std::fill(d + 16 * ne0, d + 32 * ne0, 0.0f);
    if (n.find("attn_output.weight") != std::string::npos)
      for (int64_t o = 0; o < 64; ++o) std::fill(d + o * ne0 + 32, d + o * ne0 + 64, 0.0f);
  });
  PruneOptions o = options(m, "heads.gguf", 0.1);
  o.what = {"heads"};
  o.uniform = true;
  const PruneResult r = prune_model(o);
  EXPECT_EQ(r.arch, "llama");
  PruneSource src(m), out(o.out);
  for (int l = 0; l < 4; ++l) {
    EXPECT_EQ(out.n_head(l), 2);
    EXPECT_EQ(out.n_head_kv(l), 1);
    const std::string k = "blk." + std::to_string(l) + ".attn_k.weight";
    const std::vector<float> before = src.read(k);
    EXPECT_EQ(out.read(k), std::vector<float>(before.begin(), before.begin() + 16 * 64)) << k;
  }
  auto model = Model::load(o.out);
  EXPECT_EQ(model->info().n_head, 2);
  EXPECT_FALSE(greedy(o.out).empty());
}

TEST(Prune, AnIdentityLayerIsTheLayerRemoved) {
  const fs::path m = edited(base_model(), "planted-layer.gguf", [&](const std::string& n, float* d, int64_t, int64_t count) {
    if (n == "blk.2.attn_output.weight" || n == "blk.2.ffn_down.weight") std::fill(d, d + count, 0.0f);
  });
  PruneOptions o = options(m, "layers.gguf", 0.25);
  o.what = {"layers"};
  const PruneResult r = prune_model(o);
  ASSERT_EQ(r.layers.size(), 3u);
  EXPECT_EQ(r.layers[0].source_layer, 0);
  EXPECT_EQ(r.layers[1].source_layer, 1);
  EXPECT_EQ(r.layers[2].source_layer, 3);
  // Removing an identity layer changes nothing: the same logits within float noise.
  auto a = Model::load(m), b = Model::load(o.out);
  const std::vector<Token> toks = a->tokenize("The quick brown fox");
  const std::vector<float> la = model_logits(*a, toks, "", 1.0f, 2), lb = model_logits(*b, toks, "", 1.0f, 2);
  for (size_t i = 0; i < la.size(); ++i) ASSERT_NEAR(la[i], lb[i], 1e-4f) << i;
}

TEST(Prune, RecoveryFineTunesThePrunedModelAndKeepsItsShapeAndType) {
  const fs::path pairs = test::tmp_dir() / "prune-recover.jsonl";
  std::string lines;
  for (const auto& [q, a] : std::vector<std::pair<std::string, std::string>>{
           {"The quick brown fox", "jumps"}, {"The lazy dog", "sleeps"}, {"The cat sat on", "the mat"}})
    lines += nlohmann::json{{"prompt", q}, {"completion", " " + a}}.dump() + "\n";
  write_file_atomic(pairs, lines);
  // Dead neurons in layer 1 (as in the deci test above) make the widths uneven.
  std::set<int> dead;
  for (int j = 0; j < 96; ++j) dead.insert(j * 2 + 1);
  const fs::path m = edited(base_model(), "planted-recover.gguf",
                            [&](const std::string& n, float* d, int64_t ne0, int64_t) { zero_neuron(n, d, ne0, 1, dead); });
  const fs::path f16 = test::tmp_dir() / "planted-recover-f16.gguf";
  model_quantize(m, f16, "f16");
  PruneOptions o = options(f16, "recovered.gguf", 0.2);
  o.uniform = false;  // a deci model: the trainer reads per-layer shapes
  o.multiple = 32;
  o.eval = calib_text();
  o.eval_chunks = 2;
  o.recover_data = pairs;
  o.recover_steps = 40;
  o.recover_lr = 1e-2f;
  o.recover_batch = 3;
  o.recover_seq_len = 32;
  const PruneResult r = prune_model(o);
  ASSERT_TRUE(r.recovered);
  EXPECT_EQ(r.recovery.mode, "lora");
  EXPECT_EQ(r.recovery.steps, 40);
  EXPECT_LT(r.recovery.last_loss, 0.5 * r.recovery.first_loss) << r.recovery.first_loss << " -> " << r.recovery.last_loss;
  // OUT is the recovered model at the pruned shapes and type; the model before recovery is beside it.
  const fs::path before = test::tmp_dir() / "recovered.unrecovered.gguf";
  ASSERT_TRUE(fs::exists(before));
  PruneSource a(before), b(o.out);
  EXPECT_EQ(a.arch(), "deci");
  EXPECT_EQ(b.arch(), "deci");
  for (int l = 0; l < a.n_layer(); ++l) EXPECT_EQ(a.n_ff(l), b.n_ff(l)) << l;
  EXPECT_NE(a.read("blk.0.ffn_up.weight"), b.read("blk.0.ffn_up.weight"));  // the LoRA was merged in
  EXPECT_EQ(fs::file_size(before), fs::file_size(o.out));                   // F16 stays F16
  EXPECT_EQ(greedy(o.out).size() > 0, true);
  // Both qualities are measured, and the summary says what recovery did.
  EXPECT_GT(r.quality_unrecovered.n_tokens, 0);
  EXPECT_NE(r.quality.kld_mean, r.quality_unrecovered.kld_mean);
  const auto j = nlohmann::json::parse(read_file(test::tmp_dir() / "recovered.prune.json"));
  EXPECT_EQ(j["recovery"]["steps"], 40);
  EXPECT_EQ(j["recovery"]["unrecovered"], before.string());

  // Full-parameter recovery trains in F32 and stores the result back as F16, at the same shapes.
  o.out = test::tmp_dir() / "recovered-full.gguf";
  o.recover_full = true;
  o.recover_lr = 3e-3f;
  o.eval.clear();
  const PruneResult f = prune_model(o);
  EXPECT_EQ(f.recovery.mode, "full");
  EXPECT_LT(f.recovery.last_loss, 0.5 * f.recovery.first_loss) << f.recovery.first_loss << " -> " << f.recovery.last_loss;
  const fs::path before_full = test::tmp_dir() / "recovered-full.unrecovered.gguf";
  EXPECT_EQ(fs::file_size(before_full), fs::file_size(o.out));
  EXPECT_FALSE(fs::exists(test::tmp_dir() / "recovered-full.recovery.f32.gguf"));
  PruneSource c(o.out);
  EXPECT_EQ(c.arch(), "deci");
  EXPECT_NE(PruneSource(before_full).read("blk.2.ffn_down.weight"), c.read("blk.2.ffn_down.weight"));
  EXPECT_FALSE(greedy(o.out).empty());
}

TEST(Prune, BadInputIsRefusedWithItsName) {
  PruneOptions o = options(base_model(), "bad.gguf", 0.95);
  EXPECT_NE(test::error_of([&] { prune_model(o); }).find("--level"), std::string::npos);
  o.level = 0.2;
  o.what = {"ffn", "mlp"};
  EXPECT_NE(test::error_of([&] { prune_model(o); }).find("'mlp'"), std::string::npos);
  o.what = {"heads"};
  o.level = 0.9;  // heads are a fifth of these layers: 0.9 of everything cannot come from them
  EXPECT_NE(test::error_of([&] { prune_model(o); }).find("attention"), std::string::npos);
  o = options(base_model(), "bad.gguf", 0.2);
  o.recover_data = test::tmp_dir() / "no-such-data.jsonl";
  EXPECT_NE(test::error_of([&] { prune_model(o); }).find("--recover-data"), std::string::npos);
  o.recover_data = calib_text();
  o.recover_steps = 0;
  EXPECT_NE(test::error_of([&] { prune_model(o); }).find("--recover-steps"), std::string::npos);
  o.recover_steps = 10;
  o.recover_lr = 0.0f;
  EXPECT_NE(test::error_of([&] { prune_model(o); }).find("--recover-lr"), std::string::npos);
  const fs::path q = test::tmp_dir() / "prune-q8.gguf";
  model_quantize(base_model(), q, "q8_0");
  o = options(q, "bad.gguf", 0.2);
  EXPECT_NE(test::error_of([&] { prune_model(o); }).find("q8_0"), std::string::npos);
  EXPECT_FALSE(fs::exists(test::tmp_dir() / "bad.gguf"));
}

}  // namespace
}  // namespace cogumi
