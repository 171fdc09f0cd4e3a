// cogumi compress vocab: a model trimmed to the tokens of an in-domain corpus loads in llama.cpp,
// tokenizes in-domain text into the same pieces and gives the same greedy output; other text
// still round-trips (in more, shorter pieces).
#include <gtest/gtest.h>

#include "compress/vocab_trim.h"
#include "core/io.h"
#include "engine/generate.h"
#include "engine/model_init.h"
#include "test_util.h"

namespace cogumi {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kPrompts = {
    "Question: Tom has 3 apples and buys 5 more. How many apples does he have?\nAnswer:",
    "Question: A box holds 12 pencils. How many pencils are in 4 boxes?\nAnswer:",
    "Question: Sara had 20 dollars and spent 7. How much money is left?\nAnswer:",
};

fs::path random_model(const std::string& name, const fs::path& vocab, const std::string& type) {
  ModelInitOptions o;
  o.shape = model_shape_preset("tiny");
  o.vocab_from = vocab;
  o.type = type;
  o.seed = 5;
  o.init_std = 0.2f;  // peaked distributions: greedy ties are rare
  const fs::path p = test::tmp_dir() / name;
  model_init(p, o);
  return p;
}

std::vector<std::string> greedy(const fs::path& model) {
  auto m = Model::load(model);
  Generator g(m);
  std::vector<GenRequest> reqs;
  for (const auto& p : kPrompts) {
    GenRequest r;
    r.prompt = p;
    r.max_tokens = 16;
    r.ignore_eos = true;
    reqs.push_back(r);
  }
  std::vector<std::string> out;
  for (const auto& r : g.generate(reqs)) out.push_back(r.text);
  return out;
}

std::vector<std::string> pieces(const Model& m, const std::string& text) {
  std::vector<std::string> p;
  for (Token t : m.tokenize(text, true, false)) p.push_back(m.token_to_piece(t, true));
  return p;
}

// The corpus: the prompts and what the model answers to them (the domain's text as it writes it).
// `generate`: also keep what the model writes after each corpus text (the random nano-vocabulary
// model writes words in pieces its tokenizer never makes from text, see VocabTrimOptions).
void check_trim(const fs::path& model, double max_kept_fraction, int generate = 0) {
  const std::vector<std::string> before = greedy(model);
  const fs::path corpus = test::tmp_dir() / (model.stem().string() + "-corpus.jsonl");
  {
    JsonlWriter w(corpus);
    for (size_t i = 0; i < kPrompts.size(); ++i) w.write({{"prompt", kPrompts[i]}, {"completion", before[i]}});
  }
  VocabTrimOptions o;
  o.corpus = {corpus};
  o.generate = generate;
  const fs::path out = test::tmp_dir() / (model.stem().string() + "-trim.gguf");
  const VocabTrimResult r = vocab_trim(model, out, o);
  EXPECT_LT(r.n_vocab_out, int(max_kept_fraction * r.n_vocab_in)) << r.n_vocab_out << " of " << r.n_vocab_in;
  EXPECT_LT(r.bytes_out, r.bytes_in);
  auto a = Model::load(model), b = Model::load(out);  // stock llama.cpp loads the trimmed model
  EXPECT_EQ(b->n_vocab(), r.n_vocab_out);
  for (const auto& p : kPrompts) EXPECT_EQ(pieces(*a, p), pieces(*b, p)) << p;
  EXPECT_EQ(greedy(out), before);
  // Out-of-domain text: the same text back, in at least as many pieces.
  const std::string other = "The zebra quietly juggled seventeen xylophones in Kyoto.";
  EXPECT_EQ(b->detokenize(b->tokenize(other, false, false)), a->detokenize(a->tokenize(other, false, false)));
  EXPECT_GT(pieces(*b, other).size(), pieces(*a, other).size());
}

TEST(VocabTrim, NanoVocabularyKeepsInDomainGreedyOutput) {
  check_trim(random_model("vt-nano.gguf", fs::path(COGUMI_REPO_DIR) / "models/nano-base.gguf", "f32"), 0.5, 16);
}

TEST(VocabTrim, Llama3BpeVocabularyKeepsInDomainGreedyOutput) {
  const fs::path bpe = fs::path(COGUMI_LLAMA_SRC) / "models/ggml-vocab-llama-bpe.gguf";
  ASSERT_TRUE(fs::exists(bpe)) << bpe;
  check_trim(random_model("vt-bpe.gguf", bpe, "f16"), 0.05);
}

TEST(VocabTrim, BadInputNamesTheProblem) {
  VocabTrimOptions o;
  EXPECT_NE(test::error_of([&] { vocab_trim(test::tiny_model(), test::tmp_dir() / "x.gguf", o); }).find("--corpus"),
            std::string::npos);
  const fs::path bad = test::tmp_dir() / "bad-corpus.jsonl";
  write_file_atomic(bad, "{\"text\": \"ok\"}\nnot json\n");
  o.corpus = {bad};
  EXPECT_NE(test::error_of([&] { vocab_trim(test::tiny_model(), test::tmp_dir() / "x.gguf", o); }).find("bad-corpus.jsonl:2"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(test::tmp_dir() / "x.gguf"));
}

}  // namespace
}  // namespace cogumi
