// cogumi/runtime: nearest-neighbour search over unit vectors by inner product (cosine), for
// few-shot retrieval. Exact search (every vector scored, the k best kept) while a set is small;
// at `exact_below` vectors and more, an HNSW graph (Debian's header-only hnswlib) answers
// instead, and exact search stays available to check it. Vectors are stored row-major, float32.
//
// Thread safety: search() may run on many threads at once; add() and build() may not.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

namespace cogumi {

struct IndexOptions {
  size_t exact_below = 20000;  // sets smaller than this are searched exactly (0: always HNSW)
  int M = 16;                  // HNSW links per node, 2..128 (memory: ~2*M*4 bytes per vector)
  int ef_construction = 100;   // HNSW build beam, 8..2000 (build time grows with it)
  int ef_search = 64;          // HNSW query beam, 1..10000 (>= k is used; recall grows with it)
  uint64_t seed = 100;         // HNSW level draws
  int threads = 2;             // HNSW build threads, 1..256
  // Throws Error naming the field on a value out of range.
  void validate() const;
  nlohmann::json to_json() const;
  static IndexOptions from_json(const nlohmann::json& j);
};

struct Hit {
  uint32_t row = 0;  // the vector's row, in insertion order
  float score = 0;   // inner product with the query (cosine for unit vectors)
};

class VectorIndex {
 public:
  VectorIndex(int dim, IndexOptions opts = {});
  ~VectorIndex();
  VectorIndex(VectorIndex&&) noexcept;
  VectorIndex& operator=(VectorIndex&&) noexcept;

  // Appends rows (n * dim floats). Invalidates a built graph until build() runs again.
  void add(const float* rows, size_t n);
  // Builds the HNSW graph when the set has exact_below rows or more (otherwise a no-op).
  void build();

  // The k best rows, best first (ties by lower row). Uses the graph when there is one.
  std::vector<Hit> search(const float* query, size_t k) const;
  // Every row scored: the true k nearest.
  std::vector<Hit> search_exact(const float* query, size_t k) const;

  bool approximate() const;  // a graph answers search()
  size_t size() const { return n_; }
  int dim() const { return dim_; }
  const float* row(size_t i) const { return data_.data() + i * size_t(dim_); }
  const IndexOptions& options() const { return opts_; }

  // Writes `stem`.vec (the vectors) and, with a graph, `stem`.hnsw; load() reads them back
  // (a graph file that is missing or unreadable is rebuilt). Throws Error naming the file.
  void save(const std::filesystem::path& stem) const;
  static VectorIndex load(const std::filesystem::path& stem, int dim, size_t n, IndexOptions opts);

 private:
  struct Graph;
  int dim_;
  IndexOptions opts_;
  size_t n_ = 0;
  std::vector<float> data_;
  std::unique_ptr<Graph> graph_;
};

// Recall@k of `approx` against `exact`: the share of the true k nearest that were found (a hit
// scoring as high as the true k-th counts, so ties between duplicates are not misses).
double recall_at_k(const std::vector<Hit>& exact, const std::vector<Hit>& approx);

}  // namespace cogumi
