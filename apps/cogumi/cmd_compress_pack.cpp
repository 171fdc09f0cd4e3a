// cogumi compress (part): pack, unpack, verify, vocab. Registered by setup_compress (cmd_compress.cpp).
#include <fmt/format.h>

#include "commands.h"
#include "compress/pack.h"

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
  pack->add_option("--threads", o.threads, "zstd worker threads (0 = none)")->capture_default_str();
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
        throw CLI::ValidationError("-o", "give -o: '" + u_in + "' does not end in .czst");
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

}  // namespace

void setup_compress_pack(CLI::App& compress) { setup_pack(compress); }

}  // namespace cogumi::cli
