// The cogumi program: each subcommand registers its flags on a CLI11 sub-app and sets a
// callback that calls one library function. Errors propagate as cogumi::Error to main().
#pragma once

#include <CLI/CLI.hpp>

#include <cmath>
#include <string>

namespace cogumi::cli {

struct Command {
  const char* name;
  const char* help;
  void (*setup)(CLI::App& sub);
};

void setup_info(CLI::App& sub);
void setup_generate(CLI::App& sub);
void setup_model(CLI::App& sub);
void setup_lora(CLI::App& sub);
void setup_eval(CLI::App& sub);
void setup_failures(CLI::App& sub);
void setup_train(CLI::App& sub);
void setup_nano(CLI::App& sub);
void setup_router(CLI::App& sub);
void setup_router_calibration(CLI::App& router);  // router calibrate|adapt (cmd_calibrate.cpp)
void setup_escalation(CLI::App& sub);
void setup_critique(CLI::App& sub);
void setup_ask(CLI::App& sub);
void setup_chat(CLI::App& sub);
void setup_serve(CLI::App& sub);
void setup_fewshot(CLI::App& sub);
void setup_run(CLI::App& sub);
void setup_gates(CLI::App& sub);
void setup_compress(CLI::App& sub);        // cmd_compress.cpp
void setup_compress_quant(CLI::App& sub);  // cmd_compress_quant.cpp: imatrix, report
void setup_compress_prune(CLI::App& sub);  // cmd_compress_prune.cpp: prune
void setup_compress_pack(CLI::App& sub);   // cmd_compress_pack.cpp: pack, unpack, vocab
void setup_data(CLI::App& sub);            // cmd_data.cpp
void setup_data_dedup(CLI::App& sub);      // cmd_data_dedup.cpp: dedup, decontaminate, pairs
void setup_data_teacher(CLI::App& sub);    // cmd_data_teacher.cpp: generate, judge

// A number that is not NaN or infinite (CLI11's range checks let NaN through).
inline CLI::Validator finite_number() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        try {
          size_t used = 0;
          double v = std::stod(s, &used);
          if (used == s.size() && std::isfinite(v)) return "";
        } catch (const std::exception&) {
        }
        return "'" + s + "' is not a finite number";
      },
      "FINITE");
}

// A number >= lo (or > lo when `strict`), finite; CLI11 prefixes the message with the option's
// name. (CLI::PositiveNumber's message prints DBL_MAX in full.)
inline CLI::Validator at_least(double lo, bool strict = false) {
  const std::string bound = (strict ? "> " : ">= ") + (lo == std::floor(lo) ? std::to_string((long long)lo) : std::to_string(lo));
  return CLI::Validator(
      [lo, strict, bound](std::string& s) -> std::string {
        double v = 0;
        try {
          size_t used = 0;
          v = std::stod(s, &used);
          if (used != s.size()) return "'" + s + "' is not a number";
        } catch (const std::exception&) {
          return "'" + s + "' is not a number";
        }
        if (!std::isfinite(v)) return "'" + s + "' is not a finite number";
        if (strict ? v > lo : v >= lo) return "";
        return "must be " + bound + ", got " + s;
      },
      bound);
}
inline CLI::Validator positive_number() { return at_least(0, true); }

// Shared global flags.
struct Globals {
  bool verbose = false;
  bool json = false;
};
Globals& globals();

}  // namespace cogumi::cli
