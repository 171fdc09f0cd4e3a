// cogumi info MODEL: what a GGUF is.
#include <fmt/format.h>

#include "commands.h"
#include "core/io.h"
#include "engine/model.h"

namespace cogumi::cli {

static json info_json(const ModelInfo& i) {
  json types = json::array();
  for (auto& t : i.tensor_types) types.push_back({{"type", t.type}, {"tensors", t.n_tensors}, {"bytes", t.n_bytes}});
  return {{"path", i.path},         {"arch", i.arch},          {"name", i.name},
          {"description", i.description}, {"file_type", i.file_type}, {"n_params", i.n_params},
          {"size_bytes", i.size_bytes}, {"file_bytes", i.file_bytes}, {"n_ctx_train", i.n_ctx_train},
          {"n_embd", i.n_embd},     {"n_layer", i.n_layer},    {"n_head", i.n_head},
          {"n_head_kv", i.n_head_kv}, {"n_vocab", i.n_vocab},  {"vocab_type", i.vocab_type},
          {"bos", i.bos},           {"eos", i.eos},            {"eot", i.eot},
          {"chat_template", i.chat_template}, {"tensor_types", types}, {"metadata", i.metadata}};
}

void setup_info(CLI::App& sub) {
  static std::string path;
  static bool json_out = false, show_meta = false;
  sub.add_option("model", path, "GGUF model file")->required();
  sub.add_flag("--json", json_out, "Machine-readable output");
  sub.add_flag("--metadata", show_meta, "Also list every GGUF key");
  sub.callback([&] {
    engine_set_verbose(globals().verbose);
    ModelOptions mo;
    mo.n_gpu_layers = 0;
    auto m = Model::load(path, mo);
    const ModelInfo& i = m->info();
    if (json_out) {
      fmt::print("{}\n", info_json(i).dump(2));
      return;
    }
    fmt::print("model        {}\n", i.path);
    fmt::print("arch         {} ({})\n", i.arch, i.description);
    fmt::print("name         {}\n", i.name);
    fmt::print("parameters   {} ({:.2f} M)\n", i.n_params, i.n_params / 1e6);
    fmt::print("size         {:.2f} MiB tensors, {:.2f} MiB file, type {}\n", i.size_bytes / 1048576.0,
               i.file_bytes / 1048576.0, i.file_type);
    fmt::print("shape        n_embd {}  n_layer {}  n_head {}  n_head_kv {}  n_ctx_train {}\n", i.n_embd, i.n_layer,
               i.n_head, i.n_head_kv, i.n_ctx_train);
    fmt::print("vocabulary   {} tokens ({}), bos {} eos {} eot {}\n", i.n_vocab, i.vocab_type, i.bos, i.eos, i.eot);
    for (auto& t : i.tensor_types)
      fmt::print("tensors      {:>6} x {:<6} {:.2f} MiB\n", t.n_tensors, t.type, t.n_bytes / 1048576.0);
    fmt::print("chat         {}\n", i.chat_template.empty() ? "(no template)" : i.chat_template.substr(0, 120));
    if (show_meta)
      for (auto& [k, v] : i.metadata) fmt::print("  {} = {}\n", k, v);
  });
}

}  // namespace cogumi::cli
