// cogumi/runtime: a system file. One YAML file describes a whole modular system: the base
// GGUF, the choices a request can take (the base alone, or the base with one modifier), the
// router that picks among them, the confidence threshold and escalation path, the modes and
// their settings, and where session memory lives. The pipeline writes it; `cogumi ask`,
// `cogumi eval --system` and `cogumi serve` read it. Relative paths resolve against the
// file's own folder, so a system folder can be moved as a whole.
//
//   name: nano
//   base: nano-base.gguf
//   router: nano-router.json          # optional: without it every request takes `default`
//   default: base                     # the choice when there is no router (or for overrides)
//   choices:
//     base: {}                        # no adapter
//     math: {adapter: nano-math.gguf, ask_as: gsm8k}
//   threshold: 0.8                    # router confidence below which a request escalates
//   escalation: accurate              # accurate | base
//   modes: {default: fast, accurate: {samples: 5, temperature: 0.7, verify: true, sandboxes: 0}}
//   generation: {max_tokens: 256, parallel: 16, threads: 0}
//   history: 2                        # the last N turns of a session feed the next prompt
//   memory: sessions.db               # optional: sessions (turns, decisions, feedback)
//   detector: escalation.json         # optional: a follow-up that complains escalates
//   fewshot: {bank: bank.jsonl, k: 3, domains: [math]}  # optional: retrieved demonstrations
//   calibration: calibration.json     # optional: calibrated confidence + answer threshold
//
// `ask_as` says how a bare user request is put to that choice: a benchmark kind (gsm8k,
// humaneval, mmlu, bfcl, bbh, mbpp: the prompt the nano models were trained on) or "chat"
// (the base model's chat template) or "raw" (the text as is).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "runtime/fewshot.h"

namespace cogumi {

struct SystemChoice {
  std::string name;
  std::filesystem::path adapter;  // empty: the base alone
  std::string ask_as = "chat";
};

struct SystemConfig {
  std::filesystem::path file;  // where it was read from ("" when built in code)
  std::string name = "system";
  std::filesystem::path base;
  std::filesystem::path router;  // optional
  std::string default_choice = "base";
  std::vector<SystemChoice> choices;
  double threshold = 0.0;               // [0, 1]
  std::string escalation = "accurate";  // accurate | base
  std::string mode = "fast";            // fast | accurate
  int samples = 5;                      // accurate mode: samples per request, 1..64
  // Verification (runtime/verify.h): code run against the request's visible tests, tool calls
  // against the functions' schema; the vote prefers samples that pass. YAML modes.accurate.verify.
  bool verify = true;
  // Sandboxed checks running at once across all requests (a server finishes each request on a
  // thread of its own): 0, the CPU's cores, or 1..4096. YAML modes.accurate.sandboxes.
  int sandboxes = 0;
  // How many of a session's last turns feed the next prompt (0..64; YAML `history`).
  int history = 2;
  float temperature = 0.7f;             // accurate mode sampling temperature, (0, 2]
  int max_tokens = 256;                 // 1..32768
  int parallel = 16;                    // generator slots, 1..255
  int threads = 0;                      // 0: all cores
  bool prefix_cache = true;             // requests reuse the KV cache of earlier ones that began alike (not in YAML)
  // With prefix_cache, the engine's slots keep their caches from one ask() to the next, so a session's next turn
  // decodes only what is new (GeneratorOptions::keep_cache; not in YAML). Evaluations turn it off: an item's
  // answer must not depend on what was asked before it.
  bool keep_cache = true;
  // The engine's spare KV stream for a batch's common prompt prefix (GeneratorOptions::spare_sequence; not in
  // YAML): a server that serves continuously never asks in batches and turns it off.
  bool spare_sequence = true;
  std::filesystem::path memory;         // optional SQLite session store
  std::filesystem::path detector;       // optional escalation detector (cogumi escalation train)
  FewshotOptions fewshot;               // optional: demonstrations from a bank (fewshot.bank empty: off)
  // Optional (cogumi router calibrate): confidence becomes the calibrated P(answer correct), and
  // a fast answer below the calibration's threshold is asked again on the escalation path.
  std::filesystem::path calibration;
  // Optional (cogumi critique train): in accurate mode, samples the critique scores below its
  // min_score leave the vote when one sample scores at least that (route/critique.h).
  std::filesystem::path critique;

  // Reads and checks a system file. Errors name the file, the line and the key.
  static SystemConfig load(const std::filesystem::path& path);
  // A bare model as a system: the base alone, asked as chat (its template; plain text without one), the last
  // four exchanges of a session before each question (`cogumi serve -m`, `cogumi chat -m`).
  static SystemConfig bare_model(const std::filesystem::path& model);
  // Throws Error naming the key for anything out of range or inconsistent.
  void validate() const;
  const SystemChoice& choice(const std::string& name) const;  // throws for unknown names
  bool has_choice(const std::string& name) const;
  // The adapter name the engine knows a choice by: the choice's name, "" for the base alone, or the first
  // choice's with the same adapter file (choices sharing a file share one loaded adapter).
  std::string adapter_name(const std::string& choice) const;
};

}  // namespace cogumi
