// cogumi/route: labelled queries for training and testing a router.
//
// Two ways to label, both from data a user already has:
//  - by domain: each choice's own queries ("math=gsm8k:datasets/gsm8k/train.jsonl"): a benchmark
//    file read by eval's loaders, or a JSONL of requests ("code=my_requests.jsonl", records with
//    "text", "question", "instruction", "prompt" or chat "messages");
//  - by outcome: eval runs of the base and of every modifier on the same items
//    ("base=runs/base", "math=runs/with-math", ...): each item's label is the first choice, in
//    the order given, that answered it correctly; items no choice answered go to the first
//    (ties go to the base when it is listed first).
// The held-out split is chosen by a hash of the query text, so it never depends on file order,
// and an identical query can never sit on both sides.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "eval/benchmark.h"
#include "route/router.h"

namespace cogumi {

struct RouteSource {
  std::string choice;
  std::string kind;  // a benchmark kind (gsm8k, mmlu, humaneval, mbpp, bbh, bfcl) or "requests"
  std::filesystem::path path;
};

// "CHOICE=KIND:PATH" or "CHOICE=PATH" (a JSONL of requests). Throws Error naming the spec.
RouteSource parse_route_source(const std::string& spec);

// What a user would send for this item: the question, with its options for multiple choice,
// the function stub for code.
std::string query_text(const EvalItem& item);

// The texts of one source, in file order (at most `limit`, 0 = all).
std::vector<std::string> load_route_texts(const RouteSource& src, size_t limit = 0);

// True for the queries that belong to the held-out split (a fraction in [0, 1)).
bool in_holdout(std::string_view text, double fraction);

struct RouteData {
  std::vector<std::string> choices;  // in the order first named
  std::vector<RouterExample> train, heldout;
};

// By domain: specs as parse_route_source reads them; several specs may name the same choice.
RouteData load_route_data(const std::vector<std::string>& specs, double holdout,
                          size_t limit_per_source = 0);

// By outcome: "CHOICE=RUN_DIR" specs (eval run directories with items.jsonl).
RouteData load_route_runs(const std::vector<std::string>& specs, double holdout);

}  // namespace cogumi
