#include "pipeline/config_compress.h"

#include <algorithm>
#include <regex>
#include <set>

#include "compress/quantize.h"
#include "core/error.h"
#include "pipeline/config_reader.h"

namespace cogumi {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  return s;
}

// ggml tensor types a per-tensor override may name (llama-quantize --tensor-type).
const std::set<std::string> kTensorTypes = {"f32",  "f16",  "bf16", "q4_0", "q4_1",    "q5_0",   "q5_1",    "q8_0",
                                            "q2_k", "q3_k", "q4_k", "q5_k", "q6_k",    "iq2_xxs", "iq2_xs", "iq3_xxs",
                                            "iq1_s", "iq4_nl", "iq3_s", "iq2_s", "iq4_xs", "iq1_m",  "tq1_0",  "tq2_0"};

// Types llama.cpp refuses to make without an importance matrix.
bool needs_imatrix(const std::string& type) {
  const std::string t = lower(type);
  return t.rfind("iq1", 0) == 0 || t.rfind("iq2", 0) == 0 || t == "q2_k_s";
}

json source_json(const CompressSource& s) {
  if (s.curriculum) return "curriculum";
  if (s.file.empty()) return nullptr;
  return s.file.string();
}

}  // namespace

json CompressConfig::to_json() const {
  return {{"quantize", quantize},     {"imatrix", source_json(imatrix)}, {"tensor_types", tensor_types},
          {"prune", {{"level", prune_level}, {"what", prune_what}, {"uniform", prune_uniform},
                     {"multiple", prune_multiple}, {"calibration", source_json(prune_calib)},
                     {"recover", !recover ? json(nullptr)
                                          : json{{"data", source_json(recover_data)}, {"steps", recover_steps},
                                                 {"lr", recover_lr}, {"rank", recover_rank}, {"batch", recover_batch},
                                                 {"seq_len", recover_seq_len}, {"full", recover_full}}}}},
          {"lora_rank", lora_rank},   {"pack", pack},
          {"measure", {{"data", source_json(measure)}, {"ctx", measure_ctx}, {"chunks", measure_chunks}}},
          {"calib", {{"ctx", calib_ctx}, {"chunks", calib_chunks}}}, {"eval", eval}};
}

void CompressConfig::validate(bool curriculum) const {
  if (!enabled) return;
  if (quantize.empty() && prune_level <= 0 && lora_rank == 0 && !pack)
    fail("compress: nothing to do: give quantize, prune, lora_rank or pack");
  if (!quantize.empty()) {
    const auto names = quantize_type_names();
    if (std::find(names.begin(), names.end(), lower(quantize)) == names.end())
      fail("compress.quantize: unknown type '{}'", quantize);
    if (needs_imatrix(quantize) && imatrix.none())
      fail("compress.quantize: {} needs an importance matrix (compress.imatrix: curriculum or a file)", quantize);
  } else if (imatrix_set && !imatrix.none()) {
    fail("compress.imatrix: an importance matrix is for quantization: give compress.quantize too");
  } else if (!tensor_types.empty()) {
    fail("compress.tensor_types: per-tensor types are for quantization: give compress.quantize too");
  }
  if (!(prune_level >= 0 && prune_level <= 0.9)) fail("compress.prune.level must be in (0, 0.9], got {}", prune_level);
  if (prune_level > 0 && prune_calib.none()) fail("compress.prune.calibration: required without a curriculum");
  if (recover && recover_data.none()) fail("compress.prune.recover.data: required without a curriculum (SFT JSONL)");
  if (recover && recover_data.curriculum && !curriculum) fail("compress.prune.recover.data: 'curriculum', but the config has no curriculum");
  if (lora_rank < 0 || lora_rank > 4096) fail("compress.lora_rank must be in 1..4096, got {}", lora_rank);
  if (lora_rank > 0 && prune_level > 0)
    fail("compress.lora_rank: a pruned base takes none of the modifiers (trained on the unpruned shapes); drop one of "
         "lora_rank and prune");
  if (measure.none()) fail("compress.measure.data: required without a curriculum (text the KLD is measured on)");
  if (measure.curriculum && !curriculum) fail("compress.measure.data: 'curriculum', but the config has no curriculum");
  if ((imatrix.curriculum || prune_calib.curriculum) && !curriculum)
    fail("compress: 'curriculum' calibration, but the config has no curriculum");
  if (measure_ctx < 16 || measure_ctx > 65536) fail("compress.measure.ctx must be in 16..65536, got {}", measure_ctx);
  if (measure_chunks < 1 || measure_chunks > 4096) fail("compress.measure.chunks must be in 1..4096, got {}", measure_chunks);
  if (calib_ctx < 16 || calib_ctx > 65536) fail("compress.calib.ctx must be in 16..65536, got {}", calib_ctx);
  if (calib_chunks < 1 || calib_chunks > 4096) fail("compress.calib.chunks must be in 1..4096, got {}", calib_chunks);
}

namespace pipeline_detail {

namespace {

CompressSource read_source(const Reader& r, const YAML::Node& n, const std::string& key, bool allow_none) {
  const std::string s = r.str(n, key);
  CompressSource src;
  if (s == "curriculum") {
    src.curriculum = true;
  } else if (s == "none" || s == "false") {
    if (!allow_none) r.error(n, key, "expected 'curriculum' or a file");
  } else {
    src.file = r.path(n, key);
  }
  return src;
}

void read_tensor_types(const Reader& r, const YAML::Node& n, CompressConfig& c) {
  auto add = [&](const YAML::Node& at, const std::string& key, const std::string& pattern, const std::string& type) {
    if (pattern.empty() || type.empty()) r.error(at, key, "expected PATTERN=TYPE, e.g. output=q8_0");
    if (!kTensorTypes.count(lower(type))) r.error(at, key, fmt::format("unknown tensor type '{}' (e.g. q8_0, q6_k, q4_k, f16)", type));
    try {
      std::regex check(pattern);
    } catch (const std::regex_error& e) {
      r.error(at, key, fmt::format("'{}' is not a valid regex: {}", pattern, e.what()));
    }
    c.tensor_types.push_back(pattern + "=" + lower(type));
  };
  if (n.IsMap()) {
    for (auto it = n.begin(); it != n.end(); ++it) {
      const std::string p = it->first.as<std::string>();
      add(it->second, "compress.tensor_types." + p, p, r.str(it->second, "compress.tensor_types." + p));
    }
  } else if (n.IsSequence()) {
    for (size_t i = 0; i < n.size(); ++i) {
      const std::string key = fmt::format("compress.tensor_types[{}]", i), s = r.str(n[i], key);
      const size_t eq = s.find('=');
      if (eq == std::string::npos) r.error(n[i], key, "expected PATTERN=TYPE, e.g. output=q8_0");
      add(n[i], key, s.substr(0, eq), s.substr(eq + 1));
    }
  } else {
    r.error(n, "compress.tensor_types", "expected a mapping {PATTERN: TYPE} or a list of PATTERN=TYPE");
  }
}

void read_recover(const Reader& r, const YAML::Node& n, bool curriculum, CompressConfig& c) {
  c.recover = true;
  c.recover_data.curriculum = curriculum;
  if (n.IsNull()) return;
  r.expect_map(n, "compress.prune.recover", {"data", "steps", "lr", "rank", "batch", "seq_len", "full"});
  auto k = [](const char* f) { return std::string("compress.prune.recover.") + f; };
  if (n["data"]) c.recover_data = read_source(r, n["data"], k("data"), false);
  if (n["steps"]) c.recover_steps = r.integer(n["steps"], k("steps"), 1, 1000000);
  if (n["lr"]) c.recover_lr = r.number(n["lr"], k("lr"), 0, 1, true);
  if (n["rank"]) c.recover_rank = r.integer(n["rank"], k("rank"), 1, 4096);
  if (n["batch"]) c.recover_batch = r.integer(n["batch"], k("batch"), 1, 4096);
  if (n["seq_len"]) c.recover_seq_len = r.integer(n["seq_len"], k("seq_len"), 16, 65536);
  if (n["full"]) c.recover_full = r.boolean(n["full"], k("full"));
}

void read_prune(const Reader& r, const YAML::Node& n, bool curriculum, CompressConfig& c) {
  r.expect_map(n, "compress.prune", {"level", "what", "uniform", "multiple", "calibration", "recover"});
  if (!n["level"]) r.error(n, "compress.prune.level", "required: the fraction of the layers' parameters removed, (0, 0.9]");
  c.prune_level = r.number(n["level"], "compress.prune.level", 0, 0.9, true);
  if (const YAML::Node w = n["what"]) {
    c.prune_what.clear();
    const YAML::Node list = w.IsScalar() ? YAML::Node(std::vector<std::string>{r.str(w, "compress.prune.what")}) : w;
    if (!list.IsSequence() || list.size() == 0) r.error(w, "compress.prune.what", "expected a list of ffn, heads, layers");
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string s = r.str(list[i], "compress.prune.what");
      if (s != "ffn" && s != "heads" && s != "layers") r.error(w, "compress.prune.what", fmt::format("'{}' is not one of ffn, heads, layers", s));
      if (std::find(c.prune_what.begin(), c.prune_what.end(), s) != c.prune_what.end())
        r.error(w, "compress.prune.what", fmt::format("'{}' is named twice", s));
      c.prune_what.push_back(s);
    }
  }
  if (n["uniform"]) c.prune_uniform = r.boolean(n["uniform"], "compress.prune.uniform");
  if (n["multiple"]) c.prune_multiple = r.integer(n["multiple"], "compress.prune.multiple", 0, 65536);
  if (n["calibration"]) c.prune_calib = read_source(r, n["calibration"], "compress.prune.calibration", false);
  if (const YAML::Node v = n["recover"]) read_recover(r, v, curriculum, c);
}

void read_measure(const Reader& r, const YAML::Node& n, CompressConfig& c) {
  r.expect_map(n, "compress.measure", {"data", "ctx", "chunks"});
  if (n["data"]) c.measure = read_source(r, n["data"], "compress.measure.data", false);
  if (n["ctx"]) c.measure_ctx = r.integer(n["ctx"], "compress.measure.ctx", 16, 65536);
  if (n["chunks"]) c.measure_chunks = r.integer(n["chunks"], "compress.measure.chunks", 1, 4096);
}

}  // namespace

void read_compress(const Reader& r, const YAML::Node& n, bool curriculum, CompressConfig& c) {
  r.expect_map(n, "compress", {"quantize", "imatrix", "tensor_types", "prune", "lora_rank", "pack", "measure", "calib", "eval"});
  c.enabled = true;
  if (curriculum) c.imatrix.curriculum = c.measure.curriculum = true;
  if (n["quantize"]) {
    c.quantize = lower(r.str(n["quantize"], "compress.quantize"));
    const auto names = quantize_type_names();
    if (std::find(names.begin(), names.end(), c.quantize) == names.end()) {
      std::string known;
      for (auto& t : names) known += (known.empty() ? "" : ", ") + t;
      r.error(n["quantize"], "compress.quantize", fmt::format("unknown type '{}' (known: {})", c.quantize, known));
    }
  }
  if (n["imatrix"]) {
    c.imatrix = read_source(r, n["imatrix"], "compress.imatrix", true);
    c.imatrix_set = true;
  }
  if (c.quantize.empty() && !c.imatrix_set) c.imatrix = {};
  if (n["tensor_types"]) read_tensor_types(r, n["tensor_types"], c);
  if (n["prune"]) read_prune(r, n["prune"], curriculum, c);
  if (c.prune_level > 0 && c.prune_calib.none()) c.prune_calib = !c.imatrix.none() ? c.imatrix : CompressSource{curriculum, {}};
  if (n["lora_rank"]) c.lora_rank = r.integer(n["lora_rank"], "compress.lora_rank", 1, 4096);
  if (n["pack"]) c.pack = r.boolean(n["pack"], "compress.pack");
  if (n["measure"]) read_measure(r, n["measure"], c);
  if (const YAML::Node k = n["calib"]) {
    r.expect_map(k, "compress.calib", {"ctx", "chunks"});
    if (k["ctx"]) c.calib_ctx = r.integer(k["ctx"], "compress.calib.ctx", 16, 65536);
    if (k["chunks"]) c.calib_chunks = r.integer(k["chunks"], "compress.calib.chunks", 1, 4096);
  }
  if (n["eval"]) c.eval = r.boolean(n["eval"], "compress.eval");
  try {
    c.validate(curriculum);
  } catch (const Error& e) {
    r.error(n, "compress", e.what());
  }
}

}  // namespace pipeline_detail

}  // namespace cogumi
