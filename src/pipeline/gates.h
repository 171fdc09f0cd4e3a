// cogumi/pipeline: quality gates. A gate is one comparison a run's result must pass:
//
//   math >= base + 10                 the math modifier on math, vs the base on math
//   every domain >= base + 10         each domain's own modifier, vs the base there
//   every other domain >= base - 5    each modifier on each other domain, vs the base there
//   routed every domain >= best       the routed system vs the best single configuration
//   routed math >= own - 2            the routed system on math vs the math modifier
//   router.accuracy >= 0.97           scalar metrics: router.accuracy (0..1, held out),
//   ece <= 0.05                       ece (router calibration error, 0..1), size_mb (base +
//   size_mb <= 20                     modifiers + router, 10^6 bytes)
//   compress.kld <= 0.05              the compress stages' metrics (config_compress.h): compress.kld,
//   compress.agreement >= 0.95        compress.kld_p99, compress.agreement (0..1), compress.ppl_ratio,
//   compress.accuracy_delta >= -2     compress.size_mb, compress.packed_mb, compress.accuracy_delta (points)
//
// Left: a subject; right: a sum of numbers and names (a + b - 3). In a domain's context the
// names base, own, best and routed are that domain's accuracies in percentage points (0..100);
// scalar names work anywhere. Operators: >=, <=, >, <, ==. A gate whose metric was not measured
// (a domain without a modifier, a calibration that was skipped) fails with the reason.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/io.h"

namespace cogumi {

enum class GateSubject { kScalar, kDomain, kEveryDomain, kEveryOtherDomain, kRoutedDomain, kRoutedEveryDomain };

struct GateTerm {
  double sign = 1;
  double number = 0;
  std::string name;  // empty: the number
};

struct Gate {
  std::string text;
  int line = 0;  // in the config file (0: not from a file)
  GateSubject subject = GateSubject::kScalar;
  std::string subject_name;  // scalar metric or domain
  std::string op;
  std::vector<GateTerm> rhs;
};

// Parses one gate; `domains` are the config's domain names. Throws Error saying what is wrong
// (the caller adds the file and line).
Gate parse_gate(const std::string& text, const std::vector<std::string>& domains);
// Names a domain may not take (they mean something in a gate).
bool gate_reserved_name(const std::string& name);

// What gates are evaluated on. Domain accuracies in points (0..100).
struct GateMetrics {
  std::map<std::string, double> base, routed;                       // domain -> accuracy
  std::map<std::string, std::map<std::string, double>> with;       // modifier -> domain -> accuracy
  std::map<std::string, double> scalars;                           // router.accuracy, ece, size_mb
  std::map<std::string, std::string> missing_reason;               // scalar -> why it is absent
  json to_json() const;
};

struct GateCheck {
  std::string what;  // "math with math", "routed code", "router.accuracy"
  double value = 0, threshold = 0;
  bool passed = false;
};

struct GateResult {
  std::string text;
  bool passed = false;
  std::string error;  // a metric was not measured
  std::vector<GateCheck> checks;
  json to_json() const;
};

std::vector<GateResult> evaluate_gates(const std::vector<Gate>& gates, const GateMetrics& m);

// `cogumi gates RUN_DIR`: RUN_DIR/gates.json as lines "PASS|FAIL  gate  (values)". Returns
// true when every gate passed. Throws Error when the directory holds no gates.json.
bool print_gates(const fs::path& run_dir, std::string& text);
// The lines for results already in memory.
std::string gates_text(const json& gates);

}  // namespace cogumi
