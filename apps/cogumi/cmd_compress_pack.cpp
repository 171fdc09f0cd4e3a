// cogumi compress (part): pack, unpack, verify, vocab. Registered by setup_compress (cmd_compress.cpp).
#include <fmt/format.h>

#include "commands.h"
#include "compress/pack.h"
#include "compress/vocab_trim.h"
#include "core/error.h"

namespace cogumi::cli {

namespace {

void print_pack(const std::string& out, const PackResult& r) {
  fmt::print("wrote {}: {} -> {} bytes ({:.2f}% of the original, {:.1f}% saved) in {:.1f} s\n", out, r.raw_bytes,
             r.packed_bytes, 100.0 * r.ratio(), 100.0 * (1.0 - r.ratio()), r.seconds);
  fmt::print("{:<10} {:>8} {:>14} {:>14} {:>8}\n", "type", "tensors", "raw bytes", "packed bytes", "ratio");
  for (const auto& [type, st] : r.by_type)
    fmt::print("{:<10} {:>8} {:>14} {:>14} {:>7.2f}%\n", type, st.n_tensors, st.raw_bytes, st.packed_bytes,
               100.0 * st.ratio());
  if (r.dict_bytes) fmt::print("dictionary {} bytes\n", r.dict_bytes);
  if (!r.note.empty()) fmt::print("note: {}\n", r.note);
  fmt::print("sha256 {}\n", r.sha256);
}

void setup_pack(CLI::App& compress) {
  static std::string in, out;
  static PackOptions o;
  static bool no_split = false;
  auto* pack = compress.add_subcommand("pack", "Losslessly pack a GGUF with zstd (per-tensor frames, SHA-256)");
  pack->add_option("model", in, "GGUF to pack")->required();
  pack->add_option("-o,--out", out, "Output (default MODEL.czst)");
  pack->add_option("--level", o.level, "zstd level 1..22")->capture_default_str();
  pack->add_flag("--no-split", no_split, "Compress each tensor's bytes as they are (no byte-plane split)");
  pack->add_flag("--dict", o.dict, "Train a zstd dictionary on the file and use it");
  pack->add_option("--dict-kb", o.dict_kb, "Dictionary size in KiB")->capture_default_str();
  pack->add_option("--threads", o.threads, "Planes compressed at once, one thread each (0 = COGUMI_THREADS or every core); the same bytes at any count")
      ->capture_default_str();
  pack->add_option("--window-mb", o.window_mb, "MiB of the file read ahead for the threads (memory: about twice this)")
      ->capture_default_str();
  pack->callback([&] {
    o.split = !no_split;
    const std::string dst = out.empty() ? in + ".czst" : out;
    print_pack(dst, pack_gguf(in, dst, o));
  });

  static std::string u_in, u_out;
  auto* unpack = compress.add_subcommand("unpack", "Restore a packed GGUF byte for byte (SHA-256 checked)");
  unpack->add_option("pack", u_in, "Packed file (.czst)")->required();
  unpack->add_option("-o,--out", u_out, "Output GGUF (default: the pack's name without .czst)");
  unpack->callback([&] {
    std::string dst = u_out;
    if (dst.empty()) {
      if (u_in.size() <= 5 || u_in.compare(u_in.size() - 5, 5, ".czst") != 0)
        fail("unpack: '{}' does not end in .czst; name the output with -o", u_in);
      dst = u_in.substr(0, u_in.size() - 5);
    }
    const UnpackResult r = unpack_gguf(u_in, dst);
    fmt::print("wrote {}: {} bytes, {} segments, sha256 {} (checked) in {:.1f} s\n", dst, r.raw_bytes, r.n_segments,
               r.sha256, r.seconds);
  });

  static std::string v_in;
  auto* verify = compress.add_subcommand("verify", "Check a packed file (every frame and the SHA-256) without writing");
  verify->add_option("pack", v_in, "Packed file (.czst)")->required();
  verify->callback([&] {
    const UnpackResult r = verify_pack(v_in);
    fmt::print("{}: ok, {} bytes, {} segments, sha256 {}\n", v_in, r.raw_bytes, r.n_segments, r.sha256);
  });
}

void setup_vocab(CLI::App& compress) {
  static std::string model, out;
  static std::vector<std::string> corpus;
  static VocabTrimOptions o;
  static bool no_chars = false;
  auto* vocab = compress.add_subcommand("vocab", "Trim the vocabulary to the tokens a corpus uses (tokenizer, embeddings, output)");
  vocab->add_option("-m,--model", model, "Model GGUF")->required();
  vocab->add_option("--corpus", corpus, "In-domain text: JSONL (every string value) or plain text files")->required();
  vocab->add_option("-o,--out", out, "Output GGUF")->required();
  vocab->add_option("--min-count", o.min_count, "Keep a corpus token seen at least this often")
      ->check(CLI::Range(1, 1 << 30))
      ->capture_default_str();
  vocab->add_flag("--no-chars", no_chars, "Drop one-character pieces the corpus does not use");
  vocab->add_option("--generate", o.generate,
                    "Also keep the tokens the model writes in N greedy tokens after each corpus text")
      ->check(CLI::Range(0, 4096))
      ->capture_default_str();
  static std::vector<std::string> eval_files;
  static size_t eval_texts = 200;
  vocab->add_option("--eval", eval_files, "Score these texts (JSONL or text) before and after: perplexity, bits per byte");
  vocab->add_option("--eval-texts", eval_texts, "Texts scored per --eval file (each cut to 1000 bytes)")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  vocab->callback([&] {
    o.keep_chars = !no_chars;
    o.corpus.assign(corpus.begin(), corpus.end());
    const VocabTrimResult r = vocab_trim(model, out, o);
    fmt::print("wrote {}: {} -> {} tokens ({} used by the corpus's {} tokens, {} pieces inside them); ", out,
               r.n_vocab_in, r.n_vocab_out, r.n_used, r.corpus_tokens, r.n_inner);
    if (o.generate) fmt::print("{} more written by the model; ", r.n_generated);
    if (r.n_merges_in) fmt::print("{} -> {} merges; ", r.n_merges_in, r.n_merges_out);
    fmt::print("{} -> {} bytes ({:.1f}% saved)\n", r.bytes_in, r.bytes_out,
               r.bytes_in ? 100.0 * (1.0 - double(r.bytes_out) / double(r.bytes_in)) : 0.0);
    for (const std::string& e : eval_files) {
      std::vector<std::string> texts = corpus_file_texts({e});
      if (texts.size() > eval_texts) texts.resize(eval_texts);
      const TextScore a = score_texts(model, texts), b = score_texts(out, texts);
      fmt::print("{}: {} texts, {} bytes: before {} tokens, ppl {:.3f}, {:.4f} bits/byte; after {} tokens, ppl {:.3f}, "
                 "{:.4f} bits/byte\n",
                 e, a.n_texts, a.n_bytes, a.n_tokens, a.ppl(), a.bits_per_byte(), b.n_tokens, b.ppl(), b.bits_per_byte());
    }
  });
}

}  // namespace

void setup_compress_pack(CLI::App& compress) {
  setup_pack(compress);
  setup_vocab(compress);
}

}  // namespace cogumi::cli
