#include "runtime/fewshot.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <map>
#include <mutex>

#include "core/error.h"
#include "core/io.h"
#include "engine/embed.h"
#include "engine/model.h"
#include "route/features.h"

namespace cogumi {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr int kIndexFormat = 1;

// 64-bit mix (splitmix64's finaliser): spreads a feature bucket over the folded dimensions.
uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void normalize(float* v, size_t d) {
  double s = 0;
  for (size_t i = 0; i < d; ++i) s += double(v[i]) * v[i];
  if (s <= 0) return;
  const float inv = float(1.0 / std::sqrt(s));
  for (size_t i = 0; i < d; ++i) v[i] *= inv;
}

const char* embedding_name(Embedding e) {
  return e == Embedding::model ? "model" : "hashed";
}

}  // namespace

void FewshotOptions::validate() const {
  if (k < 0 || k > 32) fail("fewshot.k must be 0..32, got {}", k);
  if (dim < 16 || dim > 4096) fail("fewshot.dim must be 16..4096, got {}", dim);
  if (max_chars < 1 || max_chars > 1000000)
    fail("fewshot.max_chars must be 1..1000000, got {}", max_chars);
  for (auto& d : domains)
    if (d.empty()) fail("fewshot.domains: an empty domain name");
  index.validate();
}

bool FewshotOptions::covers(const std::string& domain) const {
  return k > 0 &&
         (domains.empty() || std::find(domains.begin(), domains.end(), domain) != domains.end());
}

std::string normalize_prompt(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  bool space = false;
  for (unsigned char c : s) {
    if (std::isspace(c)) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += char(std::tolower(c));
  }
  return out;
}

std::vector<BankEntry> read_bank(const fs::path& path) {
  if (!fs::exists(path))
    fail("fewshot bank '{}' does not exist (cogumi fewshot build writes one)", path.string());
  std::vector<BankEntry> out;
  read_jsonl(path, [&](const json& o, size_t line) {
    const std::string at = fmt::format("{}:{}", path.string(), line);
    BankEntry e;
    e.line = line;
    e.domain = get_string(o, "domain", at);
    if (e.domain.empty()) fail("{}: 'domain' is empty", at);
    const bool chat = o.contains("instruction") || o.contains("output");
    e.prompt = get_string(o, chat ? "instruction" : "prompt", at);
    e.completion = get_string(o, chat ? "output" : "completion", at);
    if (normalize_prompt(e.prompt).empty())
      fail("{}: '{}' is empty", at, chat ? "instruction" : "prompt");
    if (o.contains("id")) e.id = o["id"].is_string() ? o["id"].get<std::string>() : o["id"].dump();
    if (e.id.empty()) e.id = fmt::format("{}:{}", path.filename().string(), line);
    if (o.contains("source")) e.source = get_string(o, "source", at);
    out.push_back(std::move(e));
  });
  return out;
}

void write_bank(const fs::path& path, const std::vector<BankEntry>& entries) {
  std::string text;
  for (auto& e : entries) {
    json o = {
        {"domain", e.domain}, {"prompt", e.prompt}, {"completion", e.completion}, {"id", e.id}};
    if (!e.source.empty()) o["source"] = e.source;
    text += o.dump() + "\n";
  }
  write_file_atomic(path, text);
}

std::vector<float> hashed_embedding(const std::string& text, int dim) {
  static const FeatureOptions fo = [] {
    FeatureOptions f;
    f.hash_bits = 24;  // wide, so folding (not the router's table) decides the collisions
    return f;
  }();
  std::vector<float> v(size_t(dim), 0.0f);
  for (auto& [bucket, value] : featurize(text, fo)) {
    const uint64_t h = mix64(bucket);
    v[size_t(h % uint64_t(dim))] += (h >> 63) ? -value : value;  // signed: inner products unbiased
  }
  normalize(v.data(), v.size());
  return v;
}

TextEmbedder::TextEmbedder(Embedding kind, int dim, std::shared_ptr<Model> model)
    : kind_(kind), dim_(dim), model_(std::move(model)) {
  if (kind_ == Embedding::model) {
    if (!model_) fail("fewshot.embedding: model needs the system's base model");
    EmbedOptions eo;
    eo.n_ctx_per_text = 256;
    embedder_ = std::make_unique<Embedder>(model_, eo);
    dim_ = embedder_->dim();
  } else if (dim_ < 16 || dim_ > 4096) {
    fail("fewshot.dim must be 16..4096, got {}", dim_);
  }
}

TextEmbedder::~TextEmbedder() = default;

std::vector<float> TextEmbedder::embed(const std::string& text) const {
  return embed_many({text});
}

std::vector<float> TextEmbedder::embed_many(const std::vector<std::string>& texts) const {
  std::vector<float> out;
  out.reserve(texts.size() * size_t(dim_));
  if (kind_ == Embedding::hashed) {
    for (auto& t : texts) {
      auto v = hashed_embedding(t, dim_);
      out.insert(out.end(), v.begin(), v.end());
    }
    return out;
  }
  static std::mutex mu;  // one llama context: one caller at a time
  std::lock_guard lock(mu);
  for (auto& v : embedder_->embed(texts)) {
    if (int(v.size()) != dim_)
      fail("fewshot: the model gave a {}-float embedding, expected {}", v.size(), dim_);
    normalize(v.data(), v.size());
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

json TextEmbedder::signature() const {
  json j = {{"embedding", embedding_name(kind_)}, {"dim", dim_}};
  if (model_)
    j["model"] = {{"name", model_->info().name},
                  {"file_bytes", model_->info().file_bytes},
                  {"n_params", model_->info().n_params}};
  if (kind_ == Embedding::hashed) j.erase("model");
  return j;
}

fs::path bank_index_dir(const fs::path& bank) {
  return fs::path(bank.string() + ".index");
}

struct FewshotBank::Impl {
  FewshotOptions opts;
  std::vector<BankEntry> entries;
  std::vector<uint64_t> prompt_hash;  // of normalize_prompt(prompt), for the duplicate check
  std::map<std::string, std::vector<uint32_t>> rows;  // domain -> entry indices, index row order
  std::map<std::string, VectorIndex> index;
  std::unique_ptr<TextEmbedder> embedder;
  BankStats stats;
  std::string sha;

  json meta() const {
    json d = json::object();
    for (auto& [name, r] : rows) d[name] = r.size();
    return {{"format", kIndexFormat},
            {"bank_sha256", sha},
            {"embedder", embedder->signature()},
            {"index", opts.index.to_json()},
            {"domains", d}};
  }
  bool load_index();
  void build_index();
};

// The saved index when its meta.json matches this bank and these settings.
bool FewshotBank::Impl::load_index() {
  const fs::path dir = bank_index_dir(opts.bank);
  json saved;
  try {
    saved = json::parse(read_file(dir / "meta.json"));
  } catch (const std::exception&) {
    return false;
  }
  if (saved != meta()) return false;
  try {
    size_t i = 0;
    for (auto& [name, r] : rows)
      index.emplace(name, VectorIndex::load(dir / fmt::format("d{}", i++), embedder->dim(),
                                            r.size(), opts.index));
  } catch (const Error&) {
    index.clear();
    return false;
  }
  return true;
}

void FewshotBank::Impl::build_index() {
  for (auto& [name, r] : rows) {
    std::vector<std::string> texts;
    texts.reserve(r.size());
    for (uint32_t e : r) texts.push_back(entries[e].prompt);
    VectorIndex ix(embedder->dim(), opts.index);
    const std::vector<float> vecs = embedder->embed_many(texts);
    ix.add(vecs.data(), r.size());
    ix.build();
    index.emplace(name, std::move(ix));
  }
  stats.rebuilt = true;
  // Written to a fresh folder and renamed into place, so a reader never sees half an index. A
  // bank in a folder it cannot write to (a read-only install) still serves from memory.
  const fs::path dir = bank_index_dir(opts.bank);
  const fs::path tmp = fs::path(dir.string() + fmt::format(".tmp-{}", ::getpid()));
  try {
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    size_t i = 0;
    for (auto& [name, r] : rows) index.at(name).save(tmp / fmt::format("d{}", i++));
    write_file_atomic(tmp / "meta.json", meta().dump(2) + "\n");
    fs::remove_all(dir);
    fs::rename(tmp, dir);
    stats.saved = true;
  } catch (const std::exception&) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
  }
}

FewshotBank FewshotBank::open(const FewshotOptions& opts, std::shared_ptr<Model> model) {
  opts.validate();
  if (opts.bank.empty()) fail("fewshot.bank is required");
  const auto t0 = std::chrono::steady_clock::now();
  auto im = std::make_unique<Impl>();
  im->opts = opts;
  im->entries = read_bank(opts.bank);
  im->sha = sha256_file(opts.bank);
  im->embedder = std::make_unique<TextEmbedder>(opts.embedding, opts.dim, std::move(model));
  for (uint32_t i = 0; i < im->entries.size(); ++i) {
    im->rows[im->entries[i].domain].push_back(i);
    im->prompt_hash.push_back(std::hash<std::string>{}(normalize_prompt(im->entries[i].prompt)));
  }
  if (!im->load_index()) im->build_index();
  im->stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return FewshotBank(std::move(im));
}

FewshotBank::FewshotBank(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FewshotBank::FewshotBank(FewshotBank&&) noexcept = default;
FewshotBank& FewshotBank::operator=(FewshotBank&&) noexcept = default;
FewshotBank::~FewshotBank() = default;

std::vector<Retrieved> FewshotBank::retrieve(const std::string& domain, const std::string& prompt,
                                             size_t k, bool exact) const {
  auto it = impl_->index.find(domain);
  if (it == impl_->index.end() || k == 0) return {};
  const std::string norm = normalize_prompt(prompt);
  const uint64_t h = std::hash<std::string>{}(norm);
  const std::vector<float> q = impl_->embedder->embed(prompt);
  const std::vector<uint32_t>& rows = impl_->rows.at(domain);
  // Duplicates of the query are dropped after the search: ask for a few more than k.
  for (size_t want = k + 4;; want *= 4) {
    std::vector<Retrieved> out;
    const auto hits =
        exact ? it->second.search_exact(q.data(), want) : it->second.search(q.data(), want);
    for (const Hit& hit : hits) {
      const uint32_t e = rows[hit.row];
      if (impl_->prompt_hash[e] == h && normalize_prompt(impl_->entries[e].prompt) == norm)
        continue;
      out.push_back({&impl_->entries[e], hit.score});
      if (out.size() == k) return out;
    }
    if (hits.size() < want) return out;  // the whole domain was searched
  }
}

std::vector<Retrieved> FewshotBank::demonstrations(const std::string& domain,
                                                   const std::string& prompt) const {
  if (!impl_->opts.covers(domain)) return {};
  std::vector<Retrieved> out = retrieve(domain, prompt, size_t(impl_->opts.k));
  size_t chars = 0, keep = 0;
  for (; keep < out.size(); ++keep) {
    chars += out[keep].entry->prompt.size() + out[keep].entry->completion.size() + 2;
    if (chars > impl_->opts.max_chars) break;
  }
  out.resize(keep);
  return out;
}

const FewshotOptions& FewshotBank::options() const {
  return impl_->opts;
}
const std::vector<BankEntry>& FewshotBank::entries() const {
  return impl_->entries;
}
std::vector<std::string> FewshotBank::domains() const {
  std::vector<std::string> out;
  for (auto& [name, r] : impl_->rows) out.push_back(name);
  return out;
}
size_t FewshotBank::size(const std::string& domain) const {
  auto it = impl_->rows.find(domain);
  return it == impl_->rows.end() ? 0 : it->second.size();
}
const VectorIndex* FewshotBank::index(const std::string& domain) const {
  auto it = impl_->index.find(domain);
  return it == impl_->index.end() ? nullptr : &it->second;
}
const TextEmbedder& FewshotBank::embedder() const {
  return *impl_->embedder;
}
const BankStats& FewshotBank::stats() const {
  return impl_->stats;
}
std::string FewshotBank::sha256() const {
  return impl_->sha;
}

std::string demonstration_text(const std::vector<Retrieved>& demos) {
  std::string s;
  // Farthest first: the nearest example sits right before the query.
  for (auto it = demos.rbegin(); it != demos.rend(); ++it)
    s += it->entry->prompt + it->entry->completion + "\n\n";
  return s;
}

std::vector<ChatMessage> demonstration_messages(const std::vector<Retrieved>& demos,
                                                const std::vector<ChatMessage>& history,
                                                const std::string& text) {
  std::vector<ChatMessage> msgs;
  for (auto it = demos.rbegin(); it != demos.rend(); ++it) {
    msgs.push_back({"user", it->entry->prompt});
    msgs.push_back({"assistant", it->entry->completion});
  }
  msgs.insert(msgs.end(), history.begin(), history.end());
  msgs.push_back({"user", text});
  return msgs;
}

}  // namespace cogumi
