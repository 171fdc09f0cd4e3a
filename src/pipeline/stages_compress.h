// cogumi/pipeline: the compress stages (config_compress.h), after the routed system is evaluated
// and before the gates (internal to src/pipeline):
//
//   compress.prune     structured pruning of the F16 base (prune_model), when prune.level is set
//   compress.imatrix   the importance matrix of the (pruned) base on the calibration text
//   compress.quantize  the (pruned) base quantized with it and the per-tensor overrides
//   compress.lora      each modifier's rank cut by SVD (lora_shrink), when lora_rank is set
//   compress.eval      the compressed base against the base (KLD mean/median/p99, top-1 agreement,
//                      PPL ratio on the measure text), the compressed system (system.compressed.yaml)
//                      on every test set against the routed system (accuracy delta per domain), sizes
//   compress.pack      the compressed base packed losslessly (.czst), verified
//
// Each is keyed like every stage (inputs by sha256 or by their place in the curriculum, settings,
// code version), so a changed quantize type reruns compress.quantize, compress.eval, compress.pack,
// gates and report, and nothing else.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "pipeline/gates.h"
#include "pipeline/stages_detail.h"

namespace cogumi::pipeline_detail {

// Adds the compress stages when the config has a `compress:` section (after eval_system).
void add_compress_stages(Plan& plan, const std::shared_ptr<Shared>& sh);
// The compress stages the gates and the report read (empty without a compress section).
std::vector<std::string> compress_deps(const Plan& plan);
// compress.* gate metrics into m (or the reason each is missing).
void compress_metrics(const StageContext& ctx, GateMetrics& m);
// The report's "compress" part (null without a compress section).
json compress_report_part(const StageContext& ctx);
// Whether the compressed system is handed over: every gate naming a compress.* metric passed.
bool compress_gates_passed(const json& gates, std::string* why = nullptr);
// Copies system.compressed.yaml into the work directory when its gates passed (removes a stale one otherwise).
void publish_compressed(const Plan& plan);

}  // namespace cogumi::pipeline_detail
