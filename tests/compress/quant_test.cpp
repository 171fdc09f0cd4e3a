// Importance matrix, quantization with it, and the quality report, on small random-init models.
#include <ggml.h>
#include <gguf.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "compress/gguf_file.h"
#include "compress/calib.h"
#include "compress/imatrix.h"
#include "compress/kld.h"
#include "compress/quantize.h"
#include "core/io.h"
#include "engine/model.h"
#include "engine/model_init.h"
#include "test_util.h"

namespace cogumi {
namespace {

namespace fs = std::filesystem;

// Wide enough for k-quants (rows of 256); large weights so the logits are far from uniform.
const fs::path& quant_model() {
  static fs::path p = [] {
    fs::path out = test::tmp_dir() / "quant-base.gguf";
    ModelInitOptions o;
    o.shape.n_embd = 256;
    o.shape.n_layer = 2;
    o.shape.n_head = 4;
    o.shape.n_head_kv = 2;
    o.shape.n_ff = 512;
    o.init_std = 0.08f;
    o.seed = 11;
    o.type = "f32";
    model_init(out, o);
    return out;
  }();
  return p;
}

const fs::path& calib_text() {
  static fs::path p = [] {
    fs::path out = test::tmp_dir() / "quant-calib.txt";
    std::ofstream f(out);
    for (int i = 0; i < 80; ++i)
      f << "Step " << i << ": the model reads " << (i * 7) % 13 << " apples and " << (i * 5) % 11
        << " pears, then answers the question about the sum.\n";
    return out;
  }();
  return p;
}

// Per-tensor ggml type names of a GGUF file.
std::map<std::string, std::string> tensor_types(const fs::path& path) {
  gguf_context* g = gguf_init_from_file(path.c_str(), {true, nullptr});
  EXPECT_NE(g, nullptr);
  std::map<std::string, std::string> out;
  for (int64_t i = 0; g && i < gguf_get_n_tensors(g); ++i)
    out[gguf_get_tensor_name(g, i)] = ggml_type_name(gguf_get_tensor_type(g, i));
  gguf_free(g);
  return out;
}

std::vector<float> read_tensor(const fs::path& path, const std::string& name) {
  ggml_context* ctx = nullptr;
  gguf_context* g = gguf_init_from_file(path.c_str(), {false, &ctx});
  ggml_tensor* t = ggml_get_tensor(ctx, name.c_str());
  EXPECT_TRUE(t && t->type == GGML_TYPE_F32);
  std::vector<float> v(static_cast<float*>(t->data), static_cast<float*>(t->data) + ggml_nelements(t));
  gguf_free(g);
  ggml_free(ctx);
  return v;
}

const fs::path& quant_imatrix() {
  static fs::path p = [] {
    ImatrixOptions o;
    o.model = quant_model();
    o.data = calib_text();
    o.out = test::tmp_dir() / "quant-imatrix.gguf";
    o.chunk = 64;
    o.n_threads = 0;
    o.progress = false;
    compute_imatrix(o);
    return o.out;
  }();
  return p;
}

// The first layer's attention input is rms_norm(token embedding) (norm weights are 1 in a
// random-init model), so its statistics follow from the embedding rows alone.
TEST(Imatrix, FirstLayerInputMatchesHandComputedStatistics) {
  engine_init();
  auto model = Model::load(quant_model());
  auto chunks = calibration_chunks(*model, load_calibration_text(calib_text()), 32, 3, 3, "calib");
  Imatrix im = collect_imatrix(*model, chunks, false, 2);

  const int n_embd = model->info().n_embd;
  std::vector<float> embd = read_tensor(quant_model(), "token_embd.weight");
  std::vector<double> expect(size_t(n_embd), 0.0);
  for (const auto& c : chunks)
    for (Token t : c) {
      const float* e = embd.data() + size_t(t) * n_embd;
      double ms = 0;
      for (int j = 0; j < n_embd; ++j) ms += double(e[j]) * e[j];
      ms = ms / n_embd + 1e-5;
      for (int j = 0; j < n_embd; ++j) expect[size_t(j)] += double(e[j]) * e[j] / ms;
    }
  for (const char* w : {"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight"}) {
    ASSERT_TRUE(im.entries.count(w)) << w;
    const ImatrixEntry& e = im.entries.at(w);
    ASSERT_EQ(e.sums.size(), size_t(n_embd));
    ASSERT_EQ(e.counts, std::vector<int64_t>{96});
    for (int j = 0; j < n_embd; ++j) ASSERT_NEAR(e.sums[size_t(j)], expect[size_t(j)], 1e-3 * expect[size_t(j)]) << w << " column " << j;
  }
  // Every matmul weight of every layer; output.weight only when asked for.
  EXPECT_EQ(im.entries.size(), 14u);
  EXPECT_EQ(im.entries.at("blk.1.ffn_down.weight").sums.size(), 512u);
  EXPECT_FALSE(im.entries.count("output.weight"));
  EXPECT_TRUE(collect_imatrix(*model, chunks, true, 2).entries.count("output.weight"));
}

TEST(Imatrix, WritesLlamaCppImatrixGguf) {
  const fs::path& p = quant_imatrix();
  gguf_context* g = gguf_init_from_file(p.c_str(), {true, nullptr});
  ASSERT_NE(g, nullptr);
  EXPECT_STREQ(gguf_get_val_str(g, gguf_find_key(g, "general.type")), "imatrix");
  EXPECT_EQ(gguf_get_val_u32(g, gguf_find_key(g, "imatrix.chunk_size")), 64u);
  EXPECT_GE(gguf_get_val_u32(g, gguf_find_key(g, "imatrix.chunk_count")), 2u);
  EXPECT_EQ(std::string(gguf_get_arr_str(g, gguf_find_key(g, "imatrix.datasets"), 0)), calib_text().string());
  EXPECT_GE(gguf_find_tensor(g, "blk.0.ffn_gate.weight.in_sum2"), 0);
  EXPECT_GE(gguf_find_tensor(g, "blk.0.ffn_gate.weight.counts"), 0);
  gguf_free(g);
  Imatrix im = read_imatrix(p);
  EXPECT_EQ(im.entries.size(), 14u);
  EXPECT_EQ(im.chunk_size, 64);
  EXPECT_NE(test::error_of([] { read_imatrix(calib_text()); }).find("not a GGUF imatrix"), std::string::npos);
}

TEST(Quantize, ImatrixAndTensorOverridesReachLlamaCpp) {
  QuantizeOptions o;
  o.in = quant_model();
  o.type = "q4_k_m";
  o.n_threads = 0;
  o.out = test::tmp_dir() / "q4-plain.gguf";
  quantize_model(o);
  o.out = test::tmp_dir() / "q4-imatrix.gguf";
  o.imatrix = quant_imatrix();
  auto r = quantize_model(o);
  EXPECT_EQ(r.n_imatrix_entries, 14);
  {  // the imatrix changes the quantized weights themselves, not only the metadata it adds
    GgufFile plain(test::tmp_dir() / "q4-plain.gguf"), weighted(o.out);
    const std::string w = "blk.0.ffn_up.weight";
    EXPECT_EQ(plain.type(plain.tensor_id(w)), weighted.type(weighted.tensor_id(w)));
    EXPECT_NE(plain.bytes(plain.tensor_id(w)), weighted.bytes(weighted.tensor_id(w)));
  }
  auto m = Model::load(o.out);
  EXPECT_EQ(m->info().metadata.at("quantize.imatrix.entries_count"), "14");

  o.out = test::tmp_dir() / "q4-override.gguf";
  o.tensor_types = {"output=q8_0", "token_embd=q8_0", "ffn_down=q6_k"};
  quantize_model(o);
  auto types = tensor_types(o.out);
  EXPECT_EQ(types.at("output.weight"), "q8_0");
  EXPECT_EQ(types.at("token_embd.weight"), "q8_0");
  EXPECT_EQ(types.at("blk.1.ffn_down.weight"), "q6_K");
  EXPECT_EQ(types.at("blk.1.ffn_up.weight"), "q4_K");
}

TEST(Quantize, VeryLowBitTypesNeedTheImatrix) {
  QuantizeOptions o;
  o.in = quant_model();
  o.type = "iq2_xs";
  o.n_threads = 0;
  o.out = test::tmp_dir() / "iq2.gguf";
  const std::string why = test::error_of([&] { quantize_model(o); });
  EXPECT_NE(why.find("failed"), std::string::npos) << why;
  EXPECT_NE(why.find("requires an imatrix"), std::string::npos) << why;  // says what is missing
  EXPECT_FALSE(fs::exists(o.out));
  o.imatrix = quant_imatrix();
  quantize_model(o);
  EXPECT_EQ(tensor_types(o.out).at("blk.0.ffn_up.weight"), "iq2_xs");
  o.type = "q4_kk";
  EXPECT_NE(test::error_of([&] { o.validate(); }).find("unknown --type 'q4_kk'"), std::string::npos);
  o.type = "q4_k_m";
  o.tensor_types = {"output"};
  EXPECT_NE(test::error_of([&] { o.validate(); }).find("PATTERN=TYPE"), std::string::npos);
}

TEST(QuantReport, KlDivergenceOfKnownDistributions) {
  const float p[] = {0.0f, 0.0f};
  const float q[] = {0.0f, float(std::log(3.0))};
  EXPECT_NEAR(kl_divergence(p, q, 2), 0.5 * std::log(2.0) + 0.5 * std::log(2.0 / 3.0), 1e-6);
  EXPECT_NEAR(kl_divergence(p, p, 2), 0.0, 1e-9);
}

TEST(QuantReport, FewerBitsCostMoreAndTheBaseCostsNothing) {
  std::vector<fs::path> cands;
  for (const char* t : {"q8_0", "q3_k_m"}) {
    QuantizeOptions q;
    q.in = quant_model();
    q.type = t;
    q.n_threads = 0;
    q.imatrix = quant_imatrix();
    q.out = test::tmp_dir() / fmt::format("report-{}.gguf", t);
    quantize_model(q);
    cands.push_back(q.out);
  }
  ReportOptions o;
  o.base = quant_model();
  o.candidates = {quant_model(), cands[0], cands[1]};
  o.data = calib_text();
  o.ctx = 64;
  o.chunks = 4;
  o.n_threads = 0;
  o.progress = false;
  ReportResult r = compress_report(o);
  ASSERT_EQ(r.candidates.size(), 3u);
  EXPECT_EQ(r.n_scored, 4 * 31);
  const auto& self = r.candidates[0];
  EXPECT_NEAR(self.kld_mean, 0.0, 1e-6);
  EXPECT_DOUBLE_EQ(self.top1_agreement, 1.0);
  EXPECT_NEAR(self.ppl_ratio, 1.0, 1e-6);
  const auto& q8 = r.candidates[1];
  const auto& q3 = r.candidates[2];
  EXPECT_GT(q8.kld_mean, 0.0);
  EXPECT_LT(q8.kld_mean, q3.kld_mean);
  EXPECT_LE(q8.kld_median, q8.kld_p99);
  EXPECT_LE(q8.kld_p99, q8.kld_max);
  EXPECT_GE(q8.top1_agreement, q3.top1_agreement);
  EXPECT_GT(q8.top1_agreement, 0.9);
  EXPECT_LT(q3.bytes, q8.bytes);
  auto j = report_json(r);
  EXPECT_EQ(j["candidates"].size(), 3u);
  EXPECT_NEAR(j["candidates"][1]["kld_mean"].get<double>(), q8.kld_mean, 1e-12);

  o.ctx = 4096;  // more than the text holds
  EXPECT_NE(test::error_of([&] { compress_report(o); }).find(calib_text().string()), std::string::npos);
}

}  // namespace
}  // namespace cogumi
