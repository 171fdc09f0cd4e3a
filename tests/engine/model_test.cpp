#include "engine/model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "engine/adapter.h"
#include "engine/gguf_writer.h"
#include "engine/model_init.h"
#include "test_util.h"

namespace cogumi {
namespace {

using test::error_of;

TEST(Model, ReportsShapeAndVocabulary) {
  auto m = Model::load(test::tiny_model());
  const ModelInfo& i = m->info();
  EXPECT_EQ(i.arch, "llama");
  EXPECT_EQ(i.n_embd, 64);
  EXPECT_EQ(i.n_layer, 2);
  EXPECT_EQ(i.n_head, 4);
  EXPECT_EQ(i.n_head_kv, 2);
  EXPECT_EQ(i.n_ctx_train, 512);
  EXPECT_EQ(i.vocab_type, "spm");
  EXPECT_GT(i.n_vocab, 500);
  EXPECT_GT(i.n_params, 100000u);
  ASSERT_EQ(i.tensor_types.size(), 1u);
  EXPECT_EQ(i.tensor_types[0].type, "f32");
  EXPECT_TRUE(m->has_chat_template());
  EXPECT_EQ(i.metadata.at("general.architecture"), "llama");
}

TEST(Model, TokenizeRoundTrips) {
  auto m = Model::load(test::tiny_model());
  for (std::string text : {"The answer is 42.", "def add(a, b):\n    return a + b", "héllo wörld ✓"}) {
    auto toks = m->tokenize(text, false, false);
    EXPECT_EQ(m->detokenize(toks), text);
  }
  // Whole words are single tokens, so text compresses.
  EXPECT_LT(m->tokenize("the answer is the number", false).size(), 10u);
  auto with_bos = m->tokenize("x", true);
  EXPECT_EQ(with_bos.front(), m->info().bos);
}

TEST(Model, ChatTemplateIsChatML) {
  auto m = Model::load(test::tiny_model());
  std::string p = m->apply_chat_template({{"system", "Be brief."}, {"user", "Hi"}}, true);
  EXPECT_EQ(p, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  auto toks = m->tokenize(p, false, true);
  EXPECT_EQ(m->token_to_piece(toks[0], true), "<|im_start|>");
  EXPECT_TRUE(m->is_eog(m->info().eot));
}

TEST(Model, MissingFileIsAClearError) {
  auto msg = error_of([] { Model::load("/nonexistent/model.gguf"); });
  EXPECT_NE(msg.find("model file not found: '/nonexistent/model.gguf'"), std::string::npos) << msg;
}

TEST(Model, NonGgufIsAClearError) {
  auto p = test::tmp_dir() / "not-a-model.gguf";
  std::ofstream(p) << "hello, I am a text file";
  auto msg = error_of([&] { Model::load(p); });
  EXPECT_NE(msg.find("not a GGUF file"), std::string::npos) << msg;
}

TEST(Model, TruncatedGgufIsAClearError) {
  auto p = test::tmp_dir() / "truncated.gguf";
  {
    std::ifstream in(test::tiny_model(), std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(p, std::ios::binary) << data.substr(0, data.size() / 2);
  }
  auto msg = error_of([&] { Model::load(p); });
  EXPECT_NE(msg.find("failed to load model"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated.gguf"), std::string::npos) << msg;
}

TEST(Model, AdapterLoadsAndUnknownNamesAreErrors) {
  auto m = Model::load(test::tiny_model());
  m->load_adapter("code", test::tiny_adapter());
  EXPECT_TRUE(m->has_adapter("code"));
  auto msg = error_of([&] { m->raw_adapter("math"); });
  EXPECT_EQ(msg, "unknown adapter 'math' (loaded: code)");
  EXPECT_NE(error_of([&] { m->load_adapter("x", "/nonexistent.gguf"); }).find("adapter file not found"),
            std::string::npos);
}

TEST(Model, AdapterForAnotherShapeIsRejected) {
  auto other = test::tmp_dir() / "other.gguf";
  ModelInitOptions o;
  o.shape = model_shape_preset("tiny");
  o.shape.n_embd = 32;
  model_init(other, o);
  auto m = Model::load(other);
  auto msg = error_of([&] { m->load_adapter("code", test::tiny_adapter()); });
  EXPECT_NE(msg.find("failed to load LoRA adapter"), std::string::npos) << msg;
}

TEST(Model, UnknownLoraTargetIsAnError) {
  AdapterInitOptions o;
  o.targets = {"q", "qkv"};
  auto msg = error_of([&] { adapter_init(test::tiny_model(), test::tmp_dir() / "bad.gguf", o); });
  EXPECT_NE(msg.find("unknown LoRA target module 'qkv'"), std::string::npos) << msg;
}

TEST(ModelInit, SameSeedSameFileOtherSeedDiffers) {
  ModelInitOptions o;
  o.seed = 11;
  auto a = test::tmp_dir() / "a.gguf", b = test::tmp_dir() / "b.gguf", c = test::tmp_dir() / "c.gguf";
  model_init(a, o);
  model_init(b, o);
  o.seed = 12;
  model_init(c, o);
  auto slurp = [](const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  EXPECT_EQ(slurp(a), slurp(b));
  EXPECT_NE(slurp(a), slurp(c));
}

TEST(ModelInit, F16AndQuantizedModelsLoad) {
  ModelInitOptions o;
  o.shape.n_embd = 256;  // k-quants need rows that are multiples of 256
  o.shape.n_ff = 512;
  o.type = "f16";
  auto f16 = test::tmp_dir() / "m-f16.gguf";
  model_init(f16, o);
  auto q = test::tmp_dir() / "m-q4km.gguf";
  model_quantize(f16, q, "q4_k_m");
  auto m = Model::load(q);
  bool has_q4k = false;
  for (auto& t : m->info().tensor_types) has_q4k |= t.type == "q4_K";
  EXPECT_TRUE(has_q4k);
  EXPECT_LT(fs::file_size(q), fs::file_size(f16));
  EXPECT_NE(error_of([&] { model_quantize(f16, q, "q9_z"); }).find("unknown model type 'q9_z'"), std::string::npos);
}

TEST(ModelInit, TokenizerFromAnotherGguf) {
  fs::path vocab = fs::path(COGUMI_LLAMA_SRC) / "models/ggml-vocab-llama-bpe.gguf";
  ASSERT_TRUE(fs::exists(vocab)) << vocab;
  ModelInitOptions o;
  o.vocab_from = vocab;
  auto p = test::tmp_dir() / "bpe.gguf";
  model_init(p, o);
  auto m = Model::load(p);
  EXPECT_EQ(m->info().n_vocab, 128256);
  EXPECT_EQ(m->info().vocab_type, "bpe");
  EXPECT_EQ(m->detokenize(m->tokenize("Hello world", false)), "Hello world");
}

// A vocabulary fitted to text (--vocab-train), as llama.cpp tokenizes it. By default merges may join letters to
// punctuation, so an option line's "B." and a premise's "Bob." are pieces of their own; with vocab_split_punct
// (issue 13: the nano base copies names and option letters between such contexts) no piece mixes them, and a name
// is the same token in the premise, the option and the answer.
TEST(ModelInit, FittedVocabularyCanKeepPunctuationApart) {
  const fs::path corpus = test::tmp_dir() / "vocab-corpus.jsonl";
  {
    std::ofstream f(corpus);
    for (int i = 0; i < 40; ++i)
      f << R"({"prompt": "Mia is older than Bob. Who is the oldest?\nA. Cannot tell\nB. Mia\nC. Bob\nAnswer:", )"
        << R"("completion": " Mia\nAnswer: B"})" << "\n";
  }
  auto pieces = [&](bool split) {
    ModelInitOptions o;
    o.vocab_train = {corpus};
    o.vocab_merges = 200;
    o.vocab_split_punct = split;
    const fs::path p = test::tmp_dir() / (split ? "vocab-split.gguf" : "vocab-joined.gguf");
    model_init(p, o);
    auto m = Model::load(p);
    std::vector<std::string> out;
    for (Token t : m->tokenize(" than Bob.\nB. Mia\nAnswer: B", false)) out.push_back(m->token_to_piece(t));
    EXPECT_EQ(m->detokenize(m->tokenize("than Bob.\nB. Mia", false)), "than Bob.\nB. Mia");
    return out;
  };
  const auto joined = pieces(false), split = pieces(true);
  ModelInitOptions nofit;
  nofit.vocab_split_punct = true;  // shapes a fitted vocabulary only: alone it is a mistake, not a silent no-op
  EXPECT_NE(error_of([&] { model_init(test::tmp_dir() / "vocab-nofit.gguf", nofit); }).find("give vocab_train"),
            std::string::npos);
  EXPECT_NE(std::find(joined.begin(), joined.end(), " Bob."), joined.end()) << testing::PrintToString(joined);
  EXPECT_NE(std::find(joined.begin(), joined.end(), "B."), joined.end()) << testing::PrintToString(joined);
  EXPECT_EQ(split, (std::vector<std::string>{" than", " Bob", ".", "\n", "B", ".", " Mia", "\n", "Answer", ":", " B"}))
      << testing::PrintToString(split);
}

TEST(ModelInit, Llama31ShapesCarryRopeFreqsAsTheConverterWritesThem) {
  // Llama 3.1's rope_scaling: factor 8, low_freq_factor 1, high_freq_factor 4, original context
  // 8192, theta 500000, head size 128: 29 pairs keep their frequency, 29 are divided by 8, and
  // 6 are smoothed between (conversion/llama.py's rule).
  ModelShape s8 = model_shape_preset("8b");
  EXPECT_EQ(s8.rope_llama3_factor, 8.0f);
  EXPECT_EQ(s8.rope_orig_ctx, 8192);
  auto f = llama3_rope_freqs(128, 500000.0f, 8.0f, 1.0f, 4.0f, 8192);
  ASSERT_EQ(f.size(), 64u);
  int ones = 0, eights = 0, between = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    ones += f[i] == 1.0f, eights += f[i] == 8.0f, between += f[i] > 1.0f && f[i] < 8.0f;
    if (i > 0) {
      EXPECT_GE(f[i], f[i - 1]);
    }
  }
  EXPECT_EQ(ones, 29);
  EXPECT_EQ(eights, 29);
  EXPECT_EQ(between, 6);
  EXPECT_EQ(model_shape_preset("1b").rope_llama3_factor, 32.0f);  // Llama 3.2
  EXPECT_EQ(model_shape_preset("tiny").rope_llama3_factor, 0.0f);

  // The 8b preset's RoPE on a model small enough for a test (head size 128 kept): the GGUF holds
  // rope_freqs.weight with those values and llama.cpp loads it.
  ModelInitOptions o;
  o.shape = s8;
  o.shape.n_embd = 256, o.shape.n_head = 2, o.shape.n_head_kv = 1, o.shape.n_layer = 1, o.shape.n_ff = 256;
  auto p = test::tmp_dir() / "llama31-rope.gguf";
  model_init(p, o);
  gguf_init_params gp{true, nullptr};
  gguf_context* g = gguf_init_from_file(p.c_str(), gp);
  ASSERT_NE(g, nullptr);
  int64_t id = gguf_find_tensor(g, "rope_freqs.weight");
  ASSERT_GE(id, 0);
  EXPECT_EQ(gguf_get_tensor_type(g, id), GGML_TYPE_F32);
  auto raw = gguf_tensor_bytes(p, g, id);
  gguf_free(g);
  ASSERT_EQ(raw.size(), f.size() * sizeof(float));
  std::vector<float> got(f.size());
  std::memcpy(got.data(), raw.data(), raw.size());
  EXPECT_EQ(got, f);
  auto m = Model::load(p);
  EXPECT_EQ(m->info().n_embd, 256);
}

TEST(ModelInit, Bf16ModelsAreWrittenDirectly) {
  ModelInitOptions o;
  o.type = "bf16";
  auto p = test::tmp_dir() / "m-bf16.gguf";
  model_init(p, o);
  auto m = Model::load(p);
  bool has_bf16 = false;
  for (auto& t : m->info().tensor_types) has_bf16 |= t.type == "bf16";
  EXPECT_TRUE(has_bf16);
}

TEST(ModelInit, BadShapeIsAnError) {
  ModelInitOptions o;
  o.shape.n_head = 5;
  EXPECT_NE(error_of([&] { model_init(test::tmp_dir() / "bad.gguf", o); }).find("multiple of n_head"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(test::tmp_dir() / "bad.gguf"));
}

}  // namespace
}  // namespace cogumi

namespace cogumi {
namespace {

// Denormal floats are flushed in the thread that initialised the engine and in the threads started from it
// afterwards (ggml's CPU workers): attention's softmax tails below FLT_MIN made a CPU training step's attention
// matmuls 57x slower per call (bench/RESULTS.md, "Denormals").
TEST(EngineInit, FlushesDenormalsHereAndInThreadsStartedLater) {
  engine_init();
#if defined(__x86_64__) || defined(__SSE__)
  EXPECT_TRUE(engine_flushes_denormals());
  float product = -1.0f;
  std::thread worker([&] {
    volatile float tiny = 1e-40f, one = 1.0f;  // a denormal: read as 0 under DAZ
    product = tiny * one;
  });
  worker.join();
  EXPECT_EQ(product, 0.0f) << "a thread started after engine_init() still computes with denormals";
#else
  EXPECT_FALSE(engine_flushes_denormals());  // no such mode on this CPU: nothing to check beyond the answer
#endif
}

}  // namespace
}  // namespace cogumi
