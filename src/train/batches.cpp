#include "train/batches.h"

#include <limits>

#include "core/error.h"

namespace cogumi {

std::vector<Row> make_rows(const std::vector<SftExample>& ex, const std::vector<size_t>& order, int T, bool pack) {
  std::vector<Row> rows;
  size_t used = 0;
  for (size_t i : order) {
    size_t n = std::min<size_t>(ex[i].tokens.size(), size_t(T));
    if (!pack || rows.empty() || used + n > size_t(T)) {
      rows.push_back({});
      used = 0;
    }
    rows.back().push_back(i);
    used += n;
  }
  return rows;
}

void fill_batch(const std::vector<SftExample>& ex, const std::vector<Row>& rows, size_t first, size_t n_rows, int S, int T,
                Token pad, HostBatch& b) {
  if (n_rows > size_t(S) || first + n_rows > rows.size())
    fail("internal: rows {}..{} of {} for a batch of {}", first, first + n_rows, rows.size(), S);
  const size_t TS = size_t(T) * S;
  b.tokens.assign(TS, pad);
  b.pos.assign(TS, 0);
  b.mask.assign(TS * T, -std::numeric_limits<float>::infinity());
  b.labels.assign(TS, -1);
  b.n_targets = b.n_tokens = 0;
  std::vector<int> seg(static_cast<size_t>(T));
  for (int s = 0; s < S; ++s) {
    const size_t base = size_t(s) * T;
    int used = 0;
    if (size_t(s) < n_rows) {
      const Row& row = rows[first + size_t(s)];
      for (size_t k = 0; k < row.size(); ++k) {
        const SftExample& e = ex[row[k]];
        const int n = std::min<int>(int(e.tokens.size()), T - used);
        for (int i = 0; i < n; ++i) {
          b.tokens[base + size_t(used + i)] = e.tokens[size_t(i)];
          b.pos[base + size_t(used + i)] = i;
          seg[size_t(used + i)] = int(k);
          // Position i predicts token i + 1 of the same example when that token is a target.
          if (i + 1 < n && e.target[size_t(i) + 1]) {
            b.labels[base + size_t(used + i)] = e.tokens[size_t(i) + 1];
            ++b.n_targets;
          }
        }
        used += n;
      }
      b.n_tokens += size_t(used);
    }
    for (int q = used; q < T; ++q) {
      seg[size_t(q)] = -1 - q;  // padding attends to itself only
      b.pos[base + size_t(q)] = 0;
    }
    float* m = b.mask.data() + base * T;
    for (int q = 0; q < T; ++q)
      for (int k = 0; k <= q; ++k)
        if (seg[size_t(k)] == seg[size_t(q)]) m[size_t(q) * T + size_t(k)] = 0.0f;
  }
}

int64_t most_batch_targets(const std::vector<SftExample>& ex, const std::vector<Row>& rows, int T, int S) {
  // Example e's labels as fill_batch sets them: its first n = min(size, T) tokens (a packed row never cuts an
  // example that is not alone in it), position i labelled when token i + 1 < n is a target.
  auto labels = [&](const SftExample& e) {
    const int64_t n = std::min<int64_t>(int64_t(e.tokens.size()), T);
    int64_t c = 0;
    for (int64_t i = 1; i < n; ++i) c += e.target[size_t(i)] != 0;
    return c;
  };
  int64_t most = 0;
  for (size_t first = 0; first < rows.size(); first += size_t(S)) {
    int64_t sum = 0;
    for (size_t r = first; r < std::min(rows.size(), first + size_t(S)); ++r)
      for (size_t i : rows[r]) sum += labels(ex[i]);
    most = std::max(most, sum);
  }
  return most;
}

}  // namespace cogumi
