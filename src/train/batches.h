// cogumi/train: examples -> micro-batches. A row holds one example, or with packing as many
// consecutive examples (in the epoch's shuffled order) as fit in the sequence length, kept
// apart by the attention mask and per-example positions (no example sees another), so packing
// changes speed, not what is learned.
#pragma once

#include <vector>

#include "train/sft_data.h"
#include "train/step.h"

namespace cogumi {

using Row = std::vector<size_t>;  // indices into the example set

// Rows for one epoch in `order`. Without packing, one example per row.
std::vector<Row> make_rows(const std::vector<SftExample>& ex, const std::vector<size_t>& order, int T, bool pack);

// Fills `b` with rows[first], rows[first + 1], ... (n_rows of them, at most S, never past the
// last row: an epoch's tail is a short batch, not one wrapped to the epoch's first rows, which
// could put the same example in a batch twice); the remaining rows of the batch are padding
// with no targets. Token ids, positions, mask, label ids (-1 where a position has no target).
void fill_batch(const std::vector<SftExample>& ex, const std::vector<Row>& rows, size_t first, size_t n_rows, int S, int T,
                Token pad, HostBatch& b);

// The most positions with a target in a batch of `rows` taken S at a time (as the trainer does), counted as
// fill_batch labels them. For TrainGraphOptions::loss_rows.
int64_t most_batch_targets(const std::vector<SftExample>& ex, const std::vector<Row>& rows, int T, int S);

}  // namespace cogumi
