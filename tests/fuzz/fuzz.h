// Fuzz targets for Cogumi's readers of untrusted input: what a target may do, and the helpers
// they share.
//
// A target feeds one input to a reader. cogumi::Error is the reader's documented way to refuse
// bad input, so it ends the run quietly. Everything else is a finding and aborts, which libFuzzer
// records as a crash with the input saved: sanitizer reports, asserts (GGML_ASSERT), any other
// exception (a nlohmann type_error says nothing of the file or line), and a failed CHECK, which
// a target uses to state a property every result must have (a letter among the choices, a
// parallel tool call matched in any order).
//
// COGUMI_FUZZ_STRICT=0 narrows findings to memory errors, UB and aborts: stray exceptions are
// ignored and CHECKs not evaluated, so a long run can go on past a known, reported error-handling
// or scoring defect to look for memory errors. The default (and the corpus replay) is strict.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace cogumi::fuzz {

using Target = void (*)(std::string_view input);

struct TargetInfo {
  const char* name;
  Target run;
  void (*init)();  // once per process before the first input; may be null
};

// Registered targets (fuzz_main.cpp lists them).
const TargetInfo* find_target(std::string_view name);

bool strict();

// Aborts with the message when strict mode is on and `ok` is false.
void check(bool ok, std::string_view what);
// The message is only built when the check fails.
#define FUZZ_CHECK(cond, what)                           \
  do {                                                   \
    if (!(cond)) ::cogumi::fuzz::check(false, (what));   \
  } while (0)

// A private scratch directory in /dev/shm (or $TMPDIR when /dev/shm is absent), made once.
const std::filesystem::path& scratch_dir();
// Writes `data` to scratch_dir()/name (creating parent folders) and returns the path.
std::filesystem::path write_scratch(const std::string& name, std::string_view data);

// The input split at its first NUL byte: a target that reads two files (BFCL questions and
// answers, tool calls and ground truth) takes one from each side.
std::pair<std::string_view, std::string_view> split_nul(std::string_view input);

// Targets, one per reader (targets_*.cpp).
void target_jsonl(std::string_view);
void target_csv(std::string_view);
void target_load_gsm8k(std::string_view);
void target_load_mmlu(std::string_view);
void target_load_humaneval(std::string_view);
void target_load_mbpp(std::string_view);
void target_load_bbh(std::string_view);
void target_load_bfcl(std::string_view);
void target_load_jsonl(std::string_view);
void target_extract(std::string_view);
void target_tool_calls(std::string_view);
void init_sft();
void target_sft(std::string_view);
void init_gguf();
void target_gguf_model(std::string_view);
void target_gguf_lora(std::string_view);
void target_gguf_checkpoint(std::string_view);

}  // namespace cogumi::fuzz
