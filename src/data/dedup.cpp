#include "data/dedup.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <unordered_map>

#include "core/error.h"
#include "core/parallel.h"
#include "core/io.h"
#include "core/progress.h"
#include "core/threads.h"
#include "data/line_io.h"
#include "data/minhash.h"
#include "data/record_text.h"

namespace cogumi {

void DedupOptions::validate() const {
  if (inputs.empty()) fail("no input files given");
  if (output.empty()) fail("no output file given (-o)");
  for (const auto& in : inputs)
    if (fs::exists(output) && fs::exists(in) && fs::equivalent(in, output))
      fail("-o '{}' is also an input: write the output elsewhere", output.string());
  if (!(threshold > 0 && threshold < 1)) fail("--threshold must be in (0, 1), got {}", threshold);
  if (num_perm < 8 || num_perm > 1024) fail("--num-perm must be in 8..1024, got {}", num_perm);
  if (shingle < 1 || shingle > 64) fail("--shingle must be in 1..64, got {}", shingle);
  if ((bands == 0) != (rows == 0)) fail("--bands and --rows go together (or neither: chosen for --threshold)");
  if (bands < 0 || rows < 0 || size_t(bands) * size_t(rows) > size_t(num_perm))
    fail("--bands x --rows must be at most --num-perm ({}), got {} x {}", num_perm, bands, rows);
  if (threads < 0 || threads > 256) fail("--threads must be in 0..256, got {}", threads);
  if (examples < 0 || examples > 1000) fail("--examples must be in 0..1000, got {}", examples);
  if (!decontam.benches.empty()) decontam.validate();
  static_cast<void>(TextFields(field));  // throws on a malformed --field
}

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

enum Reason : uint8_t { kKept = 0, kContaminated, kExact, kNear };
const char* reason_name(uint8_t r) {
  static const char* names[] = {"kept", "contaminated", "exact", "near_duplicate"};
  return names[r];
}

struct ContamHit {
  ContaminationMatch match;
  std::string ngram;  // the matching words as they appear in the record
};

// Signatures in fixed chunks: growing never copies (a doubling vector would peak at 3x).
class SignatureStore {
 public:
  static constexpr size_t kChunk = 8192;
  int num_perm = 0;
  void resize(size_t n) {
    while (chunks_.size() * kChunk < n) chunks_.push_back(std::make_unique<uint16_t[]>(kChunk * size_t(num_perm)));
  }
  uint16_t* at(size_t i) { return chunks_[i / kChunk].get() + (i % kChunk) * size_t(num_perm); }
  const uint16_t* at(size_t i) const { return chunks_[i / kChunk].get() + (i % kChunk) * size_t(num_perm); }

 private:
  std::vector<std::unique_ptr<uint16_t[]>> chunks_;
};

// Pass 1's product: per record a few bytes and a signature, never the text.
struct Scan {
  int num_perm = 0;
  SignatureStore sigs;
  std::vector<uint64_t> exact;      // normalized hash
  std::vector<uint32_t> line;       // 1-based line in its file
  std::vector<uint8_t> has_words;   // 0: empty text (exact dedup only)
  std::vector<size_t> file_end;     // records before the end of each input
  std::map<uint32_t, ContamHit> contam;
  size_t size() const { return exact.size(); }
  const uint16_t* sig(size_t i) const { return sigs.at(i); }
};

struct Batch {
  std::vector<std::string> lines;
  std::vector<size_t> line_nos;
};

struct Worker {
  const TextFields& fields;
  const MinHasher& hasher;
  const ContaminationIndex* index;
  const fs::path& path;
};

struct BatchOut {
  std::vector<std::optional<ContamHit>> hits;
  size_t error_line = SIZE_MAX;
  std::string error;
};

std::string matched_words(const std::string& text, const ContaminationMatch& m) {
  std::vector<std::pair<uint32_t, uint32_t>> spans;
  word_spans(text, spans);
  if (m.position + m.length > spans.size()) return "";
  uint32_t b = spans[m.position].first, e = spans[m.position + m.length - 1].second;
  return text.substr(b, e - b);
}

// Records [lo, hi) of a batch whose first record is number `base`.
void process_range(const Worker& w, const Batch& batch, size_t lo, size_t hi, size_t base, Scan& scan, BatchOut& out) {
  std::vector<uint64_t> words, scratch;
  for (size_t i = lo; i < hi; ++i) {
    const std::string at = fmt::format("{}:{}", w.path.string(), batch.line_nos[i]);
    try {
      json j;
      try {
        j = json::parse(batch.lines[i]);
      } catch (const json::exception& e) {
        fail("{}: invalid JSON: {}", at, e.what());
      }
      if (!j.is_object()) fail("{}: expected a JSON object, got {}", at, j.type_name());
      std::string text = w.fields.text(j, at);
      word_hashes(text, words);
      const size_t k = base + i;
      scan.exact[k] = normalized_hash(words);
      scan.has_words[k] = !words.empty();
      if (!words.empty()) w.hasher.signature(words, scan.sigs.at(k), scratch);
      if (w.index)
        if (auto m = w.index->find(words)) out.hits[i] = ContamHit{*m, matched_words(text, *m)};
    } catch (const std::exception& e) {
      if (batch.line_nos[i] < out.error_line) out.error_line = batch.line_nos[i], out.error = e.what();
      return;
    }
  }
}

void process_batch(const Worker& w, const Batch& batch, int threads, Scan& scan) {
  const size_t base = scan.size(), n = batch.lines.size();
  scan.exact.resize(base + n);
  scan.has_words.resize(base + n);
  scan.sigs.resize(base + n);
  for (size_t ln : batch.line_nos) scan.line.push_back(uint32_t(ln));
  const size_t t = std::max<size_t>(1, std::min<size_t>(size_t(threads), n / 64 + 1));
  std::vector<BatchOut> outs(t);
  parallel_for(t, int(t), [&](size_t p) {
    outs[p].hits.resize(n);
    process_range(w, batch, n * p / t, n * (p + 1) / t, base, scan, outs[p]);
  });
  const BatchOut* first = nullptr;
  for (const auto& o : outs)
    if (o.error_line != SIZE_MAX && (!first || o.error_line < first->error_line)) first = &o;
  if (first) throw Error(first->error);
  for (const auto& o : outs)
    for (size_t i = 0; i < n; ++i)
      if (o.hits[i]) scan.contam[uint32_t(base + i)] = *o.hits[i];
}

Scan scan_inputs(const DedupOptions& o, const ContaminationIndex* index, int threads) {
  Scan scan;
  scan.num_perm = scan.sigs.num_perm = o.num_perm;
  TextFields fields(o.field);
  MinHasher hasher(o.num_perm, o.shingle, o.seed);
  uint64_t total = 0, done = 0;
  for (const auto& p : o.inputs) {
    if (!fs::exists(p)) fail("'{}': no such file", p.string());
    total += fs::file_size(p);
  }
  Progress prog("dedup: reading MiB", int64_t(total >> 20), o.progress);
  const auto start = Clock::now();
  for (const auto& p : o.inputs) {
    LineReader reader(p);
    Worker w{fields, hasher, index, p};
    Batch batch;
    std::string line;
    bool more = true;
    while (more) {
      batch.lines.clear();
      batch.line_nos.clear();
      while (batch.lines.size() < 8192 && (more = reader.next(line))) {
        if (blank_line(line)) continue;
        batch.lines.push_back(std::move(line));
        batch.line_nos.push_back(reader.line_no());
        line = std::string();
      }
      if (o.cancel && *o.cancel) fail("interrupted: nothing written, '{}' unchanged", o.output.string());
      if (scan.size() + batch.lines.size() > UINT32_MAX) fail("more than {} records: split the input", UINT32_MAX);
      process_batch(w, batch, threads, scan);
      double el = since(start);
      prog.update(int64_t((done + reader.bytes_read()) >> 20),
                  fmt::format("{} records, {:.0f}/s", scan.size(), el > 0 ? double(scan.size()) / el : 0.0));
    }
    done += fs::file_size(p);
    scan.file_end.push_back(scan.size());
  }
  prog.finish(fmt::format("{} records", scan.size()));
  return scan;
}

class UnionFind {
 public:
  explicit UnionFind(size_t n) : parent_(n) {
    for (size_t i = 0; i < n; ++i) parent_[i] = uint32_t(i);
  }
  uint32_t find(uint32_t x) {
    while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
    return x;
  }
  // The smaller index stays the root: a component's root is its first record.
  void unite(uint32_t a, uint32_t b) {
    a = find(a), b = find(b);
    if (a != b) (a < b ? parent_[b] = a : parent_[a] = b);
  }

 private:
  std::vector<uint32_t> parent_;
};

struct Decisions {
  std::vector<uint8_t> reason;
  std::vector<uint32_t> twin;  // the kept record a duplicate was removed for
  size_t candidates = 0, joined = 0;
};

void mark_exact(const Scan& scan, Decisions& d) {
  std::unordered_map<uint64_t, uint32_t> first;
  first.reserve(scan.size());
  for (uint32_t i = 0; i < scan.size(); ++i) {
    if (d.reason[i] != kKept) continue;
    auto [it, inserted] = first.emplace(scan.exact[i], i);
    if (!inserted) d.reason[i] = kExact, d.twin[i] = it->second;
  }
}

// Records sharing a band are candidates; a candidate joins the first record of its bucket (or
// the one before it in the bucket) when their estimated Jaccard reaches the threshold.
void mark_near(const Scan& scan, const LshParams& lsh, double threshold, Decisions& d) {
  const size_t n = scan.size();
  UnionFind uf(n);
  std::vector<std::pair<uint64_t, uint32_t>> keys;
  keys.reserve(n);
  auto close = [&](uint32_t a, uint32_t b) { return estimated_jaccard(scan.sig(a), scan.sig(b), scan.num_perm) >= threshold; };
  for (int band = 0; band < lsh.bands; ++band) {
    keys.clear();
    for (uint32_t i = 0; i < n; ++i)
      if (d.reason[i] == kKept && scan.has_words[i]) keys.emplace_back(band_hash(scan.sig(i), band, lsh.rows), i);
    std::sort(keys.begin(), keys.end());
    for (size_t g = 0; g < keys.size();) {
      size_t e = g + 1;
      while (e < keys.size() && keys[e].first == keys[g].first) ++e;
      const uint32_t head = keys[g].second;
      for (size_t k = g + 1; k < e; ++k) {
        const uint32_t m = keys[k].second, prev = keys[k - 1].second;
        if (uf.find(m) == uf.find(head)) continue;
        d.candidates++;
        if (close(head, m)) {
          uf.unite(head, m);
          d.joined++;
        } else if (prev != head && close(prev, m)) {
          uf.unite(prev, m);
          d.joined++;
        }
      }
      g = e;
    }
  }
  for (uint32_t i = 0; i < n; ++i) {
    if (d.reason[i] != kKept || !scan.has_words[i]) continue;
    uint32_t r = uf.find(i);
    if (r != i) d.reason[i] = kNear, d.twin[i] = r;
  }
}

struct Located {
  const DedupOptions& o;
  const Scan& scan;
  std::string operator()(size_t k) const {
    size_t f = size_t(std::upper_bound(scan.file_end.begin(), scan.file_end.end(), k) - scan.file_end.begin());
    return fmt::format("{}:{}", o.inputs[f].string(), scan.line[k]);
  }
};

std::string snippet(const std::string& s, size_t max = 300) {
  if (s.size() <= max) return s;
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 character
  return s.substr(0, cut) + "...";
}

// Pass 2: the kept lines, unchanged, into the output; the texts of the records in `want`.
std::map<uint32_t, std::string> write_kept(const DedupOptions& o, const Scan& scan, const Decisions& d,
                                           const std::set<uint32_t>& want) {
  std::map<uint32_t, std::string> texts;
  TextFields fields(o.field);
  AtomicLineWriter out(o.output);
  Progress prog("dedup: writing", int64_t(scan.size()), o.progress);
  size_t k = 0;
  std::string line;
  for (size_t f = 0; f < o.inputs.size(); ++f) {
    LineReader reader(o.inputs[f]);
    while (reader.next(line)) {
      if (blank_line(line)) continue;
      if (k >= scan.file_end[f] || scan.line[k] != reader.line_no())
        fail("'{}' changed while dedup ran (line {}): run again", o.inputs[f].string(), reader.line_no());
      if (d.reason[k] == kKept) out.write_line(line);
      if (want.count(uint32_t(k))) texts[uint32_t(k)] = snippet(fields.text(json::parse(line), ""));
      if (++k % 65536 == 0) {
        prog.update(int64_t(k));
        if (o.cancel && *o.cancel) fail("interrupted: nothing written, '{}' unchanged", o.output.string());
      }
    }
    if (k != scan.file_end[f]) fail("'{}' changed while dedup ran (fewer records): run again", o.inputs[f].string());
  }
  out.commit();
  prog.finish();
  return texts;
}

json s_curve(const LshParams& lsh, double threshold) {
  json c = json::object();
  for (double j : {0.3, 0.5, 0.6, 0.7, threshold, 0.8, 0.9, 0.95})
    c[fmt::format("{:.2f}", j)] = std::round(lsh.probability(j) * 1e4) / 1e4;
  return c;
}

struct Timing {
  double scan = 0, index = 0, write = 0;
};

json build_report(const DedupOptions& o, const Scan& scan, const Decisions& d, const LshParams& lsh,
                  const ContaminationIndex* index, const std::map<uint32_t, std::string>& texts, const Timing& t) {
  Located loc{o, scan};
  json contaminated = json::array();
  std::unique_ptr<AtomicLineWriter> removed;  // every removed record, one JSON line each
  if (!o.removed.empty()) removed = std::make_unique<AtomicLineWriter>(o.removed);
  auto list = [&](const json& row) {
    if (removed) removed->write_line(row.dump(-1, ' ', false, json::error_handler_t::replace));
  };
  json examples = {{"exact", json::array()}, {"near_duplicate", json::array()}, {"contaminated", json::array()}};
  std::map<std::string, size_t> by_bench;
  auto text_of = [&](uint32_t k) { auto it = texts.find(k); return it == texts.end() ? std::string() : it->second; };
  for (uint32_t k = 0; k < scan.size(); ++k) {
    if (d.reason[k] == kKept) continue;
    json& ex = examples[reason_name(d.reason[k])];
    const bool show = ex.size() < size_t(o.examples);
    if (d.reason[k] == kContaminated) {
      const ContamHit& h = scan.contam.at(k);
      const BenchItemRef& item = index->items()[h.match.item];
      const BenchSpec& b = index->options().benches[item.bench];
      std::string bench = fmt::format("{}={}", b.kind, b.path.string());
      by_bench[bench]++;
      json row = {{"record", loc(k)}, {"benchmark", bench}, {"item", item.id}, {"ngram", h.ngram}};
      contaminated.push_back(row);
      list(json{{"record", row["record"]}, {"reason", "contaminated"}, {"benchmark", bench}, {"item", item.id}});
      if (show) {
        row.update(json{{"text", text_of(k)}, {"item_question", snippet(item.question)}});
        ex.push_back(row);
      }
      continue;
    }
    json row = {{"record", loc(k)}, {"reason", reason_name(d.reason[k])}, {"kept", loc(d.twin[k])}};
    if (d.reason[k] == kNear)
      row["jaccard"] = std::round(estimated_jaccard(scan.sig(k), scan.sig(d.twin[k]), scan.num_perm) * 1e3) / 1e3;
    list(row);
    if (show) {
      row.update(json{{"text", text_of(k)}, {"kept_text", text_of(d.twin[k])}});
      ex.push_back(row);
    }
  }
  size_t n_kept = size_t(std::count(d.reason.begin(), d.reason.end(), uint8_t(kKept)));
  auto count = [&](Reason r) { return size_t(std::count(d.reason.begin(), d.reason.end(), uint8_t(r))); };
  std::vector<std::string> inputs;
  for (const auto& p : o.inputs) inputs.push_back(p.string());
  json rep = {{"inputs", inputs},
              {"output", o.output.string()},
              {"field", o.field},
              {"records", scan.size()},
              {"kept", n_kept},
              {"removed", {{"contaminated", count(kContaminated)}, {"exact", count(kExact)}, {"near_duplicate", count(kNear)}}},
              {"minhash",
               {{"enabled", o.near},
                {"num_perm", o.num_perm},
                {"shingle_words", o.shingle},
                {"threshold", o.threshold},
                {"bands", lsh.bands},
                {"rows", lsh.rows},
                {"seed", o.seed},
                {"candidate_probability_at_threshold", std::round(lsh.probability(o.threshold) * 1e4) / 1e4},
                {"s_curve", s_curve(lsh, o.threshold)},
                {"candidate_pairs_checked", d.candidates},
                {"pairs_joined", d.joined}}},
              {"removed_list", o.removed.string()},
              {"examples", examples},
              {"timing_s", {{"scan", t.scan}, {"lsh", t.index}, {"write", t.write}}},
              {"records_per_second_scan", t.scan > 0 ? double(scan.size()) / t.scan : 0.0}};
  if (index)
    rep["decontamination"] = {{"ngram", o.decontam.ngram},
                              {"min_words", o.decontam.min_words},
                              {"benchmarks", index->summary()},
                              {"removed_by_benchmark", by_bench},
                              {"records", contaminated}};
  if (removed) removed->commit();
  return rep;
}

std::set<uint32_t> example_records(const Decisions& d, int per_reason) {
  std::set<uint32_t> want;
  size_t seen[4] = {0, 0, 0, 0};
  for (uint32_t k = 0; k < d.reason.size(); ++k) {
    uint8_t r = d.reason[k];
    if (r == kKept || seen[r] >= size_t(per_reason)) continue;
    seen[r]++;
    want.insert(k);
    if (r != kContaminated) want.insert(d.twin[k]);
  }
  return want;
}

}  // namespace

DedupResult run_dedup(const DedupOptions& o) {
  o.validate();
  const auto start = Clock::now();
  Timing t;
  const int threads = compute_threads(o.threads);  // 0: COGUMI_THREADS or every core, as ggml jobs
  std::unique_ptr<ContaminationIndex> index;
  if (!o.decontam.benches.empty()) index = std::make_unique<ContaminationIndex>(o.decontam);
  LshParams lsh = o.bands > 0 ? LshParams{o.bands, o.rows} : choose_lsh(o.threshold, o.num_perm);

  auto t0 = Clock::now();
  Scan scan = scan_inputs(o, index.get(), threads);
  t.scan = since(t0);
  t0 = Clock::now();
  Decisions d;
  d.reason.assign(scan.size(), kKept);
  d.twin.assign(scan.size(), UINT32_MAX);
  for (const auto& [k, h] : scan.contam) d.reason[k] = kContaminated;
  if (o.exact) mark_exact(scan, d);
  if (o.near) mark_near(scan, lsh, o.threshold, d);
  for (auto& tw : d.twin)  // an exact duplicate's first copy may itself be a near duplicate
    if (tw != UINT32_MAX && d.reason[tw] == kNear) tw = d.twin[tw];
  t.index = since(t0);
  t0 = Clock::now();
  auto texts = write_kept(o, scan, d, example_records(d, o.examples));
  t.write = since(t0);

  DedupResult r;
  r.n_in = scan.size();
  for (uint8_t x : d.reason) {
    r.n_kept += x == kKept;
    r.n_exact += x == kExact;
    r.n_near += x == kNear;
    r.n_contaminated += x == kContaminated;
  }
  r.report = build_report(o, scan, d, lsh, index.get(), texts, t);
  r.seconds = since(start);
  r.report["seconds"] = r.seconds;
  if (!o.report.empty()) write_file_atomic(o.report, r.report.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
  return r;
}

}  // namespace cogumi
