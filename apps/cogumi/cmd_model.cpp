// cogumi model init|quantize: models made by Cogumi.
#include <fmt/format.h>

#include "commands.h"
#include "compress/quantize.h"
#include "core/io.h"
#include "engine/model.h"
#include "engine/model_init.h"

namespace cogumi::cli {

void setup_model(CLI::App& sub) {
  sub.require_subcommand(1);
  {
    static std::string out, preset = "tiny";
    static ModelInitOptions o;
    static ModelShape over;  // -1 sentinel via flags below
    static int n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, n_ff = 0, n_ctx = 0;
    auto* init = sub.add_subcommand("init", "Write a llama-architecture GGUF with seeded random weights");
    init->add_option("out", out, "Output GGUF path")->required();
    init->add_option("--shape", preset,
                     "Shape preset: tiny, nano, 1b (Llama-3.2-1B), 8b (Llama-3.1-8B); 1b and 8b carry their llama3 "
                     "RoPE scaling (rope_freqs.weight)")
        ->capture_default_str();
    init->add_option("--n-embd", n_embd, "Override: embedding width")->check(CLI::Range(1, 65536));
    init->add_option("--n-layer", n_layer, "Override: layers")->check(CLI::Range(1, 1024));
    init->add_option("--n-head", n_head, "Override: attention heads")->check(CLI::Range(1, 1024));
    init->add_option("--n-head-kv", n_head_kv, "Override: key/value heads")->check(CLI::Range(1, 1024));
    init->add_option("--n-ff", n_ff, "Override: feed-forward width")->check(CLI::Range(1, 1048576));
    init->add_option("--n-ctx", n_ctx, "Override: training context length")->check(CLI::Range(1, 1048576));
    init->add_option("--type", o.type, "f32, f16, bf16 or a quantization (q8_0, q4_k_m, ...)")->capture_default_str();
    init->add_option("--seed", o.seed, "Weight seed")->capture_default_str();
    init->add_option("--std", o.init_std, "Weight standard deviation")->capture_default_str();
    init->add_option("--vocab", o.vocab_from, "Copy the tokenizer from this GGUF (default: built-in vocabulary)");
    init->add_option("--vocab-train", o.vocab_train,
                     "Fit the built-in vocabulary to these files (JSONL: every string value) with byte-pair merges");
    init->add_option("--vocab-merges", o.vocab_merges, "Merges learned with --vocab-train")->capture_default_str();
    init->add_flag("--vocab-split-punct", o.vocab_split_punct,
                   "With --vocab-train: no merge joins letters to punctuation (\"B. Mia\" -> [B][.][ Mia])");
    static std::string template_file;
    init->add_option("--chat-template", template_file,
                     "The chat template (a Jinja file, e.g. llama.cpp's models/templates/*.jinja) in place of the "
                     "tokenizer's")
        ->check(CLI::ExistingFile);
    init->add_option("--name", o.name, "general.name")->capture_default_str();
    init->add_option("--threads", o.n_threads, "Threads (0 = all)")->check(CLI::Range(0, 4096));
    init->callback([&] {
      engine_set_verbose(globals().verbose);
      o.shape = model_shape_preset(preset);
      if (!template_file.empty()) o.chat_template = read_file(template_file);
      if (n_embd) o.shape.n_embd = n_embd;
      if (n_layer) o.shape.n_layer = n_layer;
      if (n_head) o.shape.n_head = n_head;
      if (n_head_kv) o.shape.n_head_kv = n_head_kv;
      if (n_ff) o.shape.n_ff = n_ff;
      if (n_ctx) o.shape.n_ctx_train = n_ctx;
      auto r = model_init(out, o);
      fmt::print("wrote {}: {:.2f} M parameters, vocabulary {}, {:.2f} MiB ({})\n", out, r.n_params / 1e6, r.n_vocab,
                 r.file_bytes / 1048576.0, o.type);
    });
  }
  {
    static QuantizeOptions qo;
    static std::string tensor_types;
    auto* q = sub.add_subcommand("quantize", "Quantize a GGUF model with llama.cpp (optionally with an importance matrix)");
    q->add_option("in", qo.in, "Input GGUF")->required();
    q->add_option("out", qo.out, "Output GGUF")->required();
    q->add_option("--type", qo.type,
                  "q8_0, q6_k, q5_k_m, q4_k_m, iq4_xs, q3_k_m, iq2_xs, ... (f32/f16/bf16 also dequantize a quantized model)")
        ->capture_default_str();
    q->add_option("--imatrix", qo.imatrix, "Importance matrix GGUF (cogumi compress imatrix, or llama-imatrix's)");
    q->add_option("--tensor-type", tensor_types,
                  "Per-tensor types, PATTERN=TYPE[,PATTERN=TYPE...] (PATTERN: regex on tensor names), e.g. "
                  "output=q8_0,token_embd=q8_0");
    q->add_option("--output-type", qo.output_type, "Type of output.weight (e.g. q8_0)");
    q->add_option("--token-embd-type", qo.token_embd_type, "Type of token_embd.weight (e.g. q8_0)");
    q->add_flag("--allow-requantize", qo.allow_requantize, "Accept an already quantized input (the loss compounds)");
    q->add_flag("--pure", qo.pure, "Every tensor at --type (no mixes)");
    q->add_option("--threads", qo.n_threads, "Threads (0 = all)")->check(CLI::Range(0, 4096));
    q->callback([&] {
      engine_set_verbose(globals().verbose);
      for (size_t b = 0; !tensor_types.empty();) {
        size_t e = tensor_types.find(',', b);
        qo.tensor_types.push_back(tensor_types.substr(b, e == std::string::npos ? std::string::npos : e - b));
        if (e == std::string::npos) break;
        b = e + 1;
      }
      auto r = quantize_model(qo);
      fmt::print("wrote {} ({:.2f} MiB, {}{})\n", qo.out.string(), r.out_bytes / 1048576.0, qo.type,
                 r.n_imatrix_entries ? fmt::format(", imatrix: {} weights", r.n_imatrix_entries) : "");
    });
  }
}

}  // namespace cogumi::cli
