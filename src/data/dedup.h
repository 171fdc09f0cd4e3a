// cogumi/data: deduplication and decontamination of training JSONL (`cogumi data dedup`).
//
// Two streaming passes over the inputs, memory bounded by the record count, not the text:
//   1. each record's text (data/record_text.h) -> normalized words -> an exact hash, a MinHash
//      signature (data/minhash.h; 16-bit values, num_perm per record) and a contamination check
//      (data/decontam.h). Both cores compute signatures (std::thread over batches of lines).
//   2. removal, in this order: contaminated (shares an n-gram with a benchmark item), exact
//      duplicate (same normalized text as an earlier record), near duplicate: records sharing an
//      LSH band are candidates, a candidate pair at estimated Jaccard >= threshold is joined, and
//      each connected component keeps its first record.
//   3. the inputs are read again and the kept lines copied unchanged to the output, written
//      atomically (a temp file renamed over the output at the end): an interrupted or failed run
//      leaves no partial output and an existing output untouched.
// Memory per record: num_perm * 2 bytes of signature + about 30 bytes (1M records at 112
// permutations: about 260 MB). The list of removed records is streamed to its own JSONL.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "data/decontam.h"

namespace cogumi {

struct DedupOptions {
  std::vector<std::filesystem::path> inputs;  // JSONL (.gz read too)
  std::filesystem::path output;               // kept records, lines unchanged
  std::filesystem::path report;               // optional JSON report: counts, examples, contamination
  std::filesystem::path removed;              // optional JSONL: every removed record and why
  std::string field = "auto";                 // see TextFields
  bool exact = true;                          // exact dedup by normalized hash
  bool near = true;                           // MinHash LSH near dedup
  double threshold = 0.75;                    // Jaccard threshold (0, 1)
  int num_perm = 112;                         // 8..1024
  int shingle = 5;                            // words per shingle, 1..64
  int bands = 0, rows = 0;                    // 0: chosen for the threshold (choose_lsh)
  uint64_t seed = 42;
  DecontamOptions decontam;                   // benchmarks to remove overlap with
  int threads = 0;                            // 0: COGUMI_THREADS or every core (compute_threads)
  int examples = 5;                           // examples per reason in the report, 0..1000
  bool progress = true;
  const std::atomic<bool>* cancel = nullptr;  // set (e.g. on SIGINT): stop, write nothing, throw
  void validate() const;                      // throws Error naming the option
};

struct DedupResult {
  size_t n_in = 0, n_kept = 0, n_exact = 0, n_near = 0, n_contaminated = 0;
  double seconds = 0;
  nlohmann::json report;  // what was written to opts.report
};

// Throws Error naming the file and line of a malformed record, before anything is written; throws
// Error "interrupted" when *opts.cancel is set, leaving the output as it was.
DedupResult run_dedup(const DedupOptions& opts);

}  // namespace cogumi
