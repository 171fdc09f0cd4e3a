#include "route/router_job.h"

#include <algorithm>

#include "core/error.h"
#include "core/io.h"

namespace cogumi {

void RouterJob::validate() const {
  if (data.empty() == runs.empty()) fail("router train: give either --data or --runs");
  if (!(holdout >= 0 && holdout < 1))
    fail("router train: --holdout must be in [0, 1), got {}", holdout);
  if (out.empty()) fail("router train: -o/--out is required");
  train.validate();
}

RouterJobResult train_router_job(const RouterJob& job) {
  job.validate();
  RouteData d = job.runs.empty() ? load_route_data(job.data, job.holdout, job.limit)
                                 : load_route_runs(job.runs, job.holdout);
  if (d.choices.size() < 2)
    fail("router train: the data names only one choice ('{}')",
         d.choices.empty() ? "" : d.choices[0]);
  RouterJobResult r{
      Router::train(d.choices, d.train, job.train), d.train.size(), d.heldout.size(), {}};
  if (!d.heldout.empty()) r.heldout = evaluate_router(r.router, d.heldout);
  r.router.save(job.out);
  json report = {{"choices", d.choices},
                 {"n_train", r.n_train},
                 {"n_heldout", r.n_heldout},
                 {"holdout", job.holdout},
                 {"data", job.data},
                 {"runs", job.runs},
                 {"features", job.train.features.to_json()},
                 {"epochs", job.train.epochs},
                 {"lr", job.train.lr},
                 {"l2", job.train.l2},
                 {"balanced", job.train.balanced}};
  if (r.n_heldout) report["heldout"] = r.heldout.to_json(d.choices);
  write_file_atomic(job.out.string() + ".report.json", report.dump(2) + "\n");
  return r;
}

RouterReport eval_router_job(const std::filesystem::path& path,
                             const std::vector<std::string>& data, double holdout, size_t limit) {
  Router router = Router::load(path);
  RouteData d = load_route_data(data, holdout, limit);
  std::vector<RouterExample> ex = holdout > 0 ? d.heldout : d.train;
  // Map the data's choice indices onto the router's.
  for (auto& e : ex) {
    const std::string& name = d.choices[size_t(e.label)];
    auto it = std::find(router.choices().begin(), router.choices().end(), name);
    if (it == router.choices().end())
      fail("router eval: the data names '{}', which '{}' cannot choose", name, path.string());
    e.label = int(it - router.choices().begin());
  }
  if (ex.empty())
    fail("router eval: no queries in the {} split", holdout > 0 ? "held-out" : "whole");
  return evaluate_router(router, ex);
}

}  // namespace cogumi
