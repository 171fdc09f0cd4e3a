// cogumi/route: `cogumi router train|eval` as library calls: load labelled queries, train,
// report on the held-out split, write the router file and its report.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "route/data.h"
#include "route/router.h"

namespace cogumi {

struct RouterJob {
  std::vector<std::string> data;  // by domain: CHOICE=KIND:PATH or CHOICE=PATH (route/data.h)
  std::vector<std::string> runs;  // or by outcome: CHOICE=RUN_DIR, the base first
  double holdout = 0.2;           // share of queries held out for the report [0, 1)
  size_t limit = 0;               // queries per source (0 = all)
  RouterTrainOptions train;
  std::filesystem::path out;  // router file; OUT.report.json beside it

  // Throws Error naming the option.
  void validate() const;
};

struct RouterJobResult {
  Router router;
  size_t n_train = 0, n_heldout = 0;
  RouterReport heldout;  // empty (n = 0) when holdout is 0
};

RouterJobResult train_router_job(const RouterJob& job);

// Evaluates a saved router on the held-out part (holdout > 0) or all (holdout = 0 means every
// query) of the given data. Choice names in the data must be the router's.
RouterReport eval_router_job(const std::filesystem::path& router,
                             const std::vector<std::string>& data, double holdout, size_t limit);

}  // namespace cogumi
