#include "runtime/fewshot_index.h"

#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "core/parallel.h"
#include "core/io.h"

namespace cogumi {

void IndexOptions::validate() const {
  if (M < 2 || M > 128) fail("fewshot index: M must be 2..128, got {}", M);
  if (ef_construction < 8 || ef_construction > 2000)
    fail("fewshot index: ef_construction must be 8..2000, got {}", ef_construction);
  if (ef_search < 1 || ef_search > 10000)
    fail("fewshot index: ef_search must be 1..10000, got {}", ef_search);
  if (threads < 1 || threads > 256) fail("fewshot index: threads must be 1..256, got {}", threads);
  if (exact_below > (size_t(1) << 32))
    fail("fewshot index: exact_below must be at most 2^32, got {}", exact_below);
}

nlohmann::json IndexOptions::to_json() const {
  return {{"exact_below", exact_below},
          {"M", M},
          {"ef_construction", ef_construction},
          {"ef_search", ef_search},
          {"seed", seed}};
}

IndexOptions IndexOptions::from_json(const nlohmann::json& j) {
  IndexOptions o;
  if (!j.is_object()) fail("fewshot index options: expected an object");
  for (auto& [k, v] : j.items()) {
    if (!v.is_number_unsigned() && !v.is_number_integer())
      fail("fewshot index options: '{}' must be an integer", k);
    if (k == "exact_below")
      o.exact_below = v.get<size_t>();
    else if (k == "M")
      o.M = v.get<int>();
    else if (k == "ef_construction")
      o.ef_construction = v.get<int>();
    else if (k == "ef_search")
      o.ef_search = v.get<int>();
    else if (k == "seed")
      o.seed = v.get<uint64_t>();
    else if (k == "threads")
      o.threads = v.get<int>();
    else
      fail("fewshot index options: unknown field '{}'", k);
  }
  o.validate();
  return o;
}

struct VectorIndex::Graph {
  explicit Graph(int dim) : space(size_t(dim)) {}
  hnswlib::InnerProductSpace space;
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> hnsw;
};

VectorIndex::VectorIndex(int dim, IndexOptions opts) : dim_(dim), opts_(opts) {
  if (dim < 1 || dim > 65536) fail("fewshot index: dimension must be 1..65536, got {}", dim);
  opts_.validate();
}
VectorIndex::~VectorIndex() = default;
VectorIndex::VectorIndex(VectorIndex&&) noexcept = default;
VectorIndex& VectorIndex::operator=(VectorIndex&&) noexcept = default;

void VectorIndex::add(const float* rows, size_t n) {
  data_.insert(data_.end(), rows, rows + n * size_t(dim_));
  n_ += n;
  graph_.reset();
}

bool VectorIndex::approximate() const {
  return graph_ && graph_->hnsw;
}

void VectorIndex::build() {
  graph_.reset();
  if (n_ == 0 || n_ < opts_.exact_below) return;
  auto g = std::make_unique<Graph>(dim_);
  g->hnsw = std::make_unique<hnswlib::HierarchicalNSW<float>>(
      &g->space, n_, size_t(opts_.M), size_t(opts_.ef_construction), size_t(opts_.seed));
  // hnswlib's addPoint is thread-safe; the first point goes alone so the others find an entry.
  g->hnsw->addPoint(row(0), 0);
  parallel_for(n_ - 1, opts_.threads, [&](size_t i) { g->hnsw->addPoint(row(i + 1), hnswlib::labeltype(i + 1)); });
  g->hnsw->setEf(size_t(opts_.ef_search));
  graph_ = std::move(g);
}

namespace {
bool better(const Hit& a, const Hit& b) {
  return a.score != b.score ? a.score > b.score : a.row < b.row;
}

// Eight partial sums: independent chains the compiler can keep in vector lanes (a single float
// accumulator must add in order).
float dot(const float* a, const float* b, size_t d) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t j = 0;
  for (; j + 8 <= d; j += 8)
    for (size_t l = 0; l < 8; ++l) acc[l] += a[j + l] * b[j + l];
  float s = 0;
  for (; j < d; ++j) s += a[j] * b[j];
  for (float x : acc) s += x;
  return s;
}
}  // namespace

std::vector<Hit> VectorIndex::search_exact(const float* q, size_t k) const {
  k = std::min(k, n_);
  if (k == 0) return {};
  const size_t d = size_t(dim_);
  // The k best so far in a heap whose top is the worst of them: one comparison per row.
  std::vector<Hit> heap;
  heap.reserve(k + 1);
  for (size_t i = 0; i < n_; ++i) {
    const float s = dot(data_.data() + i * d, q, d);
    if (heap.size() == k && !better(Hit{uint32_t(i), s}, heap.front())) continue;
    heap.push_back({uint32_t(i), s});
    std::push_heap(heap.begin(), heap.end(), better);
    if (heap.size() > k) {
      std::pop_heap(heap.begin(), heap.end(), better);
      heap.pop_back();
    }
  }
  std::sort(heap.begin(), heap.end(), better);
  return heap;
}

std::vector<Hit> VectorIndex::search(const float* q, size_t k) const {
  if (!approximate()) return search_exact(q, k);
  k = std::min(k, n_);
  if (k == 0) return {};
  auto pq = graph_->hnsw->searchKnn(q, k);
  std::vector<Hit> out;
  out.reserve(pq.size());
  for (; !pq.empty(); pq.pop())  // hnswlib's distance is 1 - dot
    out.push_back({uint32_t(pq.top().second), 1.0f - pq.top().first});
  std::sort(out.begin(), out.end(), better);
  return out;
}

void VectorIndex::save(const std::filesystem::path& stem) const {
  const std::string vec = stem.string() + ".vec";
  std::FILE* f = std::fopen(vec.c_str(), "wb");
  if (!f) fail("cannot write '{}'", vec);
  const size_t want = data_.size();
  const size_t wrote = want ? std::fwrite(data_.data(), sizeof(float), want, f) : 0;
  if (std::fclose(f) != 0 || wrote != want) fail("cannot write '{}'", vec);
  const std::string hnsw = stem.string() + ".hnsw";
  if (approximate()) {
    graph_->hnsw->saveIndex(hnsw);
    // hnswlib reads a graph file without checks: its size is recorded, and a file of another
    // size is rebuilt rather than read.
    std::error_code ec;
    const uintmax_t bytes = std::filesystem::file_size(hnsw, ec);
    if (ec) fail("cannot write '{}'", hnsw);
    write_file_atomic(hnsw + ".bytes", std::to_string(bytes) + "\n");
  } else {
    std::filesystem::remove(hnsw);
  }
}

VectorIndex VectorIndex::load(const std::filesystem::path& stem, int dim, size_t n,
                              IndexOptions opts) {
  VectorIndex ix(dim, opts);
  const std::string vec = stem.string() + ".vec";
  std::error_code ec;
  const uintmax_t bytes = std::filesystem::file_size(vec, ec);
  if (ec || bytes != n * size_t(dim) * sizeof(float))
    fail("'{}': expected {} vectors of {} floats", vec, n, dim);
  ix.data_.resize(n * size_t(dim));
  std::FILE* f = std::fopen(vec.c_str(), "rb");
  if (!f) fail("cannot read '{}'", vec);
  const size_t got = n ? std::fread(ix.data_.data(), sizeof(float), ix.data_.size(), f) : 0;
  std::fclose(f);
  if (got != ix.data_.size()) fail("'{}': short read", vec);
  ix.n_ = n;
  if (n == 0 || n < opts.exact_below) return ix;
  const std::string hnsw = stem.string() + ".hnsw";
  std::string recorded;
  try {
    recorded = read_file(hnsw + ".bytes");
  } catch (const Error&) {
  }
  const uintmax_t graph_bytes = std::filesystem::file_size(hnsw, ec);
  if (!ec && !recorded.empty() && std::to_string(graph_bytes) + "\n" == recorded) {
    try {
      auto g = std::make_unique<Graph>(dim);
      g->hnsw = std::make_unique<hnswlib::HierarchicalNSW<float>>(&g->space, hnsw, false, n);
      if (g->hnsw->cur_element_count == n) {
        g->hnsw->setEf(size_t(opts.ef_search));
        ix.graph_ = std::move(g);
        return ix;
      }
    } catch (const std::exception&) {  // unreadable graph: rebuilt below
    }
  }
  ix.build();
  return ix;
}

double recall_at_k(const std::vector<Hit>& exact, const std::vector<Hit>& approx) {
  if (exact.empty()) return 1.0;
  // An approximate hit scoring as high as the true k-th counts: among equal scores (duplicate
  // examples) any one is a right answer.
  const float kth = exact.back().score - 1e-6f;
  size_t found = 0;
  for (auto& h : approx) found += h.score >= kth;
  return double(std::min(found, exact.size())) / double(exact.size());
}

}  // namespace cogumi
