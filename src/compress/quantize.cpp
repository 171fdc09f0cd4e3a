#include "compress/quantize.h"

#include <ggml.h>
#include <llama.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <regex>

#include "compress/imatrix.h"
#include "core/error.h"
#include "core/threads.h"
#include "engine/model.h"

namespace cogumi {

namespace {

const std::vector<std::pair<std::string, llama_ftype>>& ftypes() {
  static const std::vector<std::pair<std::string, llama_ftype>> k = {
      {"q4_0", LLAMA_FTYPE_MOSTLY_Q4_0},       {"q4_1", LLAMA_FTYPE_MOSTLY_Q4_1},
      {"q5_0", LLAMA_FTYPE_MOSTLY_Q5_0},       {"q5_1", LLAMA_FTYPE_MOSTLY_Q5_1},
      {"iq2_xxs", LLAMA_FTYPE_MOSTLY_IQ2_XXS}, {"iq2_xs", LLAMA_FTYPE_MOSTLY_IQ2_XS},
      {"iq2_s", LLAMA_FTYPE_MOSTLY_IQ2_S},     {"iq2_m", LLAMA_FTYPE_MOSTLY_IQ2_M},
      {"iq1_s", LLAMA_FTYPE_MOSTLY_IQ1_S},     {"iq1_m", LLAMA_FTYPE_MOSTLY_IQ1_M},
      {"tq1_0", LLAMA_FTYPE_MOSTLY_TQ1_0},     {"tq2_0", LLAMA_FTYPE_MOSTLY_TQ2_0},
      {"q2_k", LLAMA_FTYPE_MOSTLY_Q2_K},       {"q2_k_s", LLAMA_FTYPE_MOSTLY_Q2_K_S},
      {"iq3_xxs", LLAMA_FTYPE_MOSTLY_IQ3_XXS}, {"iq3_s", LLAMA_FTYPE_MOSTLY_IQ3_S},
      {"iq3_m", LLAMA_FTYPE_MOSTLY_IQ3_M},     {"q3_k", LLAMA_FTYPE_MOSTLY_Q3_K_M},
      {"iq3_xs", LLAMA_FTYPE_MOSTLY_IQ3_XS},   {"q3_k_s", LLAMA_FTYPE_MOSTLY_Q3_K_S},
      {"q3_k_m", LLAMA_FTYPE_MOSTLY_Q3_K_M},   {"q3_k_l", LLAMA_FTYPE_MOSTLY_Q3_K_L},
      {"iq4_nl", LLAMA_FTYPE_MOSTLY_IQ4_NL},   {"iq4_xs", LLAMA_FTYPE_MOSTLY_IQ4_XS},
      {"q4_k", LLAMA_FTYPE_MOSTLY_Q4_K_M},     {"q4_k_s", LLAMA_FTYPE_MOSTLY_Q4_K_S},
      {"q4_k_m", LLAMA_FTYPE_MOSTLY_Q4_K_M},   {"q5_k", LLAMA_FTYPE_MOSTLY_Q5_K_M},
      {"q5_k_s", LLAMA_FTYPE_MOSTLY_Q5_K_S},   {"q5_k_m", LLAMA_FTYPE_MOSTLY_Q5_K_M},
      {"q6_k", LLAMA_FTYPE_MOSTLY_Q6_K},       {"q8_0", LLAMA_FTYPE_MOSTLY_Q8_0},
      {"f16", LLAMA_FTYPE_MOSTLY_F16},         {"bf16", LLAMA_FTYPE_MOSTLY_BF16},
      {"f32", LLAMA_FTYPE_ALL_F32},
  };
  return k;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

llama_ftype parse_ftype(const std::string& name) {
  for (const auto& [n, t] : ftypes())
    if (n == lower(name)) return t;
  std::string known;
  for (const auto& [n, _] : ftypes()) known += (known.empty() ? "" : ", ") + n;
  fail("quantize: unknown --type '{}' (known: {})", name, known);
}

// A ggml tensor type by name (q8_0, Q6_K, f16, ...), as llama-quantize's --tensor-type reads it.
ggml_type parse_ggml_type(const std::string& name, const std::string& option) {
  for (int i = 0; i < GGML_TYPE_COUNT; ++i) {
    const char* n = ggml_type_name(ggml_type(i));
    if (n && lower(n) == lower(name) && ggml_type_size(ggml_type(i)) > 0) return ggml_type(i);
  }
  fail("quantize: {}: unknown tensor type '{}' (e.g. q8_0, q6_k, q4_k, iq4_xs, f16)", option, name);
}

struct TensorOverride {
  std::string pattern;
  ggml_type type;
};

TensorOverride parse_override(const std::string& spec) {
  auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    fail("quantize: --tensor-type '{}': expected PATTERN=TYPE (e.g. output=q8_0)", spec);
  TensorOverride o{lower(spec.substr(0, eq)), parse_ggml_type(spec.substr(eq + 1), "--tensor-type '" + spec + "'")};
  try {
    std::regex check(o.pattern);
  } catch (const std::regex_error& e) {
    fail("quantize: --tensor-type '{}': '{}' is not a valid regex: {}", spec, o.pattern, e.what());
  }
  return o;
}

llama_model_kv_override kv_str(const char* key, const std::string& v) {
  llama_model_kv_override o{};
  o.tag = LLAMA_KV_OVERRIDE_TYPE_STR;
  std::snprintf(o.key, sizeof(o.key), "%s", key);
  std::snprintf(o.val_str, sizeof(o.val_str), "%s", v.c_str());
  return o;
}

llama_model_kv_override kv_int(const char* key, int64_t v) {
  llama_model_kv_override o{};
  o.tag = LLAMA_KV_OVERRIDE_TYPE_INT;
  std::snprintf(o.key, sizeof(o.key), "%s", key);
  o.val_i64 = v;
  return o;
}

// The keys llama-quantize records in a model quantized with an imatrix; ends with an empty key.
std::vector<llama_model_kv_override> imatrix_metadata(const std::string& file, const Imatrix& im) {
  std::vector<llama_model_kv_override> kv = {kv_str("quantize.imatrix.file", file)};
  if (!im.datasets.empty()) kv.push_back(kv_str("quantize.imatrix.dataset", im.datasets[0]));
  kv.push_back(kv_int("quantize.imatrix.entries_count", int64_t(im.entries.size())));
  if (im.chunk_count > 0) kv.push_back(kv_int("quantize.imatrix.chunks_count", im.chunk_count));
  kv.emplace_back();
  kv.back().key[0] = 0;
  return kv;
}

}  // namespace

std::vector<std::string> quantize_type_names() {
  std::vector<std::string> v;
  for (const auto& [n, _] : ftypes()) v.push_back(n);
  return v;
}

void QuantizeOptions::validate() const {
  if (in.empty()) fail("quantize: the input model is required");
  if (out.empty()) fail("quantize: the output path is required");
  if (!fs::exists(in)) fail("quantize: model file not found: '{}'", in.string());
  if (fs::exists(out) && fs::equivalent(in, out)) fail("quantize: input and output are the same file: '{}'", in.string());
  parse_ftype(type);
  if (!imatrix.empty() && !fs::exists(imatrix)) fail("quantize: --imatrix file not found: '{}'", imatrix.string());
  for (const auto& s : tensor_types) parse_override(s);
  if (!output_type.empty()) parse_ggml_type(output_type, "--output-type");
  if (!token_embd_type.empty()) parse_ggml_type(token_embd_type, "--token-embd-type");
  if (n_threads < 0 || n_threads > 4096) fail("quantize: --threads must be in [0, 4096] (got {})", n_threads);
}

QuantizeResult quantize_model(const QuantizeOptions& opts) {
  opts.validate();
  auto t0 = std::chrono::steady_clock::now();
  engine_init();
  llama_model_quantize_params qp = llama_model_quantize_default_params();
  qp.ftype = parse_ftype(opts.type);
  qp.nthread = compute_threads(opts.n_threads);
  qp.pure = opts.pure;
  const std::string t = lower(opts.type);
  qp.allow_requantize = opts.allow_requantize || t == "f32" || t == "f16" || t == "bf16";
  if (!opts.output_type.empty()) qp.output_tensor_type = parse_ggml_type(opts.output_type, "--output-type");
  if (!opts.token_embd_type.empty()) qp.token_embedding_type = parse_ggml_type(opts.token_embd_type, "--token-embd-type");

  // Both arrays end with a null entry; the strings they point into outlive the call.
  std::map<std::string, std::vector<float>> importance;
  std::vector<llama_model_imatrix_data> im_data;
  std::vector<llama_model_kv_override> kv;
  if (!opts.imatrix.empty()) {
    Imatrix im = read_imatrix(opts.imatrix);
    importance = im.importance();
    for (const auto& [name, v] : importance) im_data.push_back({name.c_str(), v.data(), v.size()});
    im_data.push_back({nullptr, nullptr, 0});
    qp.imatrix = im_data.data();
    kv = imatrix_metadata(opts.imatrix.string(), im);
    qp.kv_overrides = kv.data();
  }
  std::vector<TensorOverride> overrides;
  std::vector<llama_model_tensor_override> tt;
  for (const auto& s : opts.tensor_types) overrides.push_back(parse_override(s));
  for (const auto& o : overrides) tt.push_back({o.pattern.c_str(), o.type});
  if (!tt.empty()) {
    tt.push_back({nullptr, GGML_TYPE_COUNT});
    qp.tt_overrides = tt.data();
  }
  if (!opts.out.parent_path().empty()) fs::create_directories(opts.out.parent_path());
  fs::path tmp = opts.out.string() + ".part." + std::to_string(getpid());
  if (llama_model_quantize(opts.in.c_str(), tmp.c_str(), &qp) != 0) {
    fs::remove(tmp);
    fail("quantizing '{}' to {} failed: {}", opts.in.string(), opts.type, engine_last_error());
  }
  fs::rename(tmp, opts.out);
  QuantizeResult r;
  r.in_bytes = fs::file_size(opts.in);
  r.out_bytes = fs::file_size(opts.out);
  r.n_imatrix_entries = int(importance.size());
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace cogumi
