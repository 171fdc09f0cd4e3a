// cogumi run PIPELINE.yaml: the plan as one command (src/pipeline/stages.h).
#include <fmt/format.h>

#include <atomic>
#include <csignal>

#include "commands.h"
#include "core/error.h"
#include "engine/model.h"
#include "pipeline/gates.h"
#include "pipeline/report_html.h"
#include "pipeline/stages.h"

namespace cogumi::cli {

namespace {
std::atomic<bool> g_cancel{false};
}

void setup_run(CLI::App& sub) {
  static std::string config, dir;
  static RunOptions o;
  static bool quiet = false;
  sub.add_option("config", config, "Pipeline config (YAML), e.g. configs/nano.yaml")->required();
  sub.add_option("--dir", dir, "Work directory (default: the config's work_dir, else runs/NAME)");
  sub.add_option("--until", o.until, "Run the stages up to this one (a name, or a group: train = train.*)");
  sub.add_option("--only", o.only, "Run only this stage or group; its inputs must be finished");
  sub.add_flag("--dry-run", o.dry_run, "Print the plan and what would be reused; run nothing");
  sub.add_option("-j,--jobs", o.jobs,
                 "Stages run at once, sharing the CPU threads (1-64; default: the config's jobs, else 1)")
      ->check(CLI::Range(1, 64));
  sub.add_flag("-q,--quiet", quiet, "No progress lines");
  sub.callback([&] {
    engine_set_verbose(globals().verbose);
    PipelineConfig cfg = PipelineConfig::load(config);
    if (!dir.empty()) cfg.work_dir = dir;
    o.progress = !quiet;
    o.cancel = &g_cancel;
    // Ctrl-C: the running stage keeps what it finished (eval items, a trainer checkpoint); the next
    // run resumes it.
    auto old = std::signal(SIGINT, [](int) { g_cancel = true; });
    PipelineRun r;
    try {
      r = run_pipeline(cfg, o);
    } catch (...) {
      std::signal(SIGINT, old);
      throw;
    }
    std::signal(SIGINT, old);
    if (o.dry_run) {
      fmt::print("{}", r.summary.plan_text);
      if (!r.missing.empty()) {
        std::string m;
        for (auto& f : r.missing) m += "\n  " + f;
        fail("{} input file{} missing (give their paths in {}):{}", r.missing.size(), r.missing.size() == 1 ? " is" : "s are",
             config, m);
      }
      return;
    }
    bool reported = false;
    for (auto& st : r.summary.stages) reported |= st.name == "report" && (st.status == "ran" || st.status == "reused");
    if (reported) {  // the table a user came for, with its intervals, and the gates
      const json rep = json::parse(read_file(cfg.work_dir / "report.json"));
      fmt::print("{}\n{}\n", report_table(rep), gates_text(rep["gates"]));
    }
    fmt::print("{} stages ran, {} reused in {:.1f} s{}\n", r.summary.ran, r.summary.reused, r.summary.seconds,
               reported ? "; report " + (cfg.work_dir / "report.html").string() : "");
  });
}

}  // namespace cogumi::cli
