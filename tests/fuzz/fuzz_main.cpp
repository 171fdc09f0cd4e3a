// The libFuzzer entry points: picks the target named by the program's file name (fuzz_<target>,
// or $COGUMI_FUZZ_TARGET) and applies fuzz.h's rules on what counts as a finding.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <typeinfo>

#include "core/error.h"
#include "fuzz.h"

namespace cogumi::fuzz {

namespace {

const TargetInfo kTargets[] = {
    {"jsonl", target_jsonl, nullptr},
    {"csv", target_csv, nullptr},
    {"load_gsm8k", target_load_gsm8k, nullptr},
    {"load_mmlu", target_load_mmlu, nullptr},
    {"load_humaneval", target_load_humaneval, nullptr},
    {"load_mbpp", target_load_mbpp, nullptr},
    {"load_bbh", target_load_bbh, nullptr},
    {"load_bfcl", target_load_bfcl, nullptr},
    {"load_jsonl", target_load_jsonl, nullptr},
    {"extract", target_extract, nullptr},
    {"tool_calls", target_tool_calls, nullptr},
    {"sft", target_sft, init_sft},
    {"gguf_model", target_gguf_model, init_gguf},
    {"gguf_lora", target_gguf_lora, init_gguf},
    {"gguf_checkpoint", target_gguf_checkpoint, init_gguf},
};

const TargetInfo* g_target = nullptr;

}  // namespace

const TargetInfo* find_target(std::string_view name) {
  for (const auto& t : kTargets)
    if (name == t.name) return &t;
  return nullptr;
}

bool strict() {
  static const bool s = [] {
    const char* e = std::getenv("COGUMI_FUZZ_STRICT");
    return !(e && std::strcmp(e, "0") == 0);
  }();
  return s;
}

void check(bool ok, std::string_view what) {
  if (ok || !strict()) return;
  std::fprintf(stderr, "\nFUZZ CHECK FAILED (%s): %.*s\n", g_target ? g_target->name : "?", int(what.size()),
               what.data());
  std::abort();
}

const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    std::filesystem::path root = std::filesystem::exists("/dev/shm") ? std::filesystem::path("/dev/shm")
                                                                      : std::filesystem::temp_directory_path();
    auto d = root / ("cogumi-fuzz-" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

std::filesystem::path write_scratch(const std::string& name, std::string_view data) {
  auto p = scratch_dir() / name;
  std::filesystem::create_directories(p.parent_path());
  std::FILE* f = std::fopen(p.c_str(), "wb");
  if (!f || std::fwrite(data.data(), 1, data.size(), f) != data.size()) {
    std::fprintf(stderr, "fuzz: cannot write scratch file %s\n", p.c_str());
    std::abort();
  }
  std::fclose(f);
  return p;
}

std::pair<std::string_view, std::string_view> split_nul(std::string_view in) {
  size_t z = in.find('\0');
  if (z == std::string_view::npos) return {in, {}};
  return {in.substr(0, z), in.substr(z + 1)};
}

}  // namespace cogumi::fuzz

namespace {
void remove_scratch() {
  std::error_code ec;
  std::filesystem::remove_all(cogumi::fuzz::scratch_dir(), ec);
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  using namespace cogumi::fuzz;
  std::string_view self = (*argc > 0) ? (*argv)[0] : "";
  if (auto slash = self.rfind('/'); slash != std::string_view::npos) self.remove_prefix(slash + 1);
  std::string_view name = self.starts_with("fuzz_") ? self.substr(5) : std::string_view{};
  if (const char* e = std::getenv("COGUMI_FUZZ_TARGET")) name = e;
  g_target = find_target(name);
  if (!g_target) {
    std::fprintf(stderr, "cogumi_fuzz: run as fuzz_<target> or set COGUMI_FUZZ_TARGET; targets:");
    for (const auto& t : kTargets) std::fprintf(stderr, " %s", t.name);
    std::fprintf(stderr, "\n");
    std::exit(2);
  }
  if (g_target->init) g_target->init();
  std::atexit(remove_scratch);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cogumi::fuzz;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  try {
    g_target->run(in);
  } catch (const cogumi::Error&) {
    // The reader refused the input with its own error: the expected outcome for bad input.
  } catch (const std::exception& e) {
    if (strict()) {
      std::fprintf(stderr, "\nFUZZ UNCAUGHT %s (%s): %s\n", typeid(e).name(), g_target->name, e.what());
      std::abort();
    }
  }
  return 0;
}
