// The curriculum driver: per-domain streams, cross-split dedup, and the writers of each
// benchmark format (see synth.h). The item generators live in
// synth_{math,code,reasoning,tools}.cpp.
#include "data/synth.h"

#include <algorithm>
#include <cctype>
#include <thread>
#include <unordered_set>

#include "core/error.h"
#include "core/hash.h"
#include "core/io.h"
#include "core/parallel.h"
#include "eval/benchmark.h"
#include "eval/prompts.h"

namespace cogumi {

namespace synth {

std::vector<std::string> distinct(Rng& r, std::vector<std::string> pool, int n) {
  r.shuffle(pool);
  pool.resize(size_t(n));
  return pool;
}

std::string normalize_key(std::string_view s) {
  std::string out;
  bool gap = false;
  for (unsigned char c : s) {
    if (std::isalnum(c)) {
      if (gap && !out.empty()) out += ' ';
      out += char(std::tolower(c));
      gap = false;
    } else {
      gap = true;
    }
  }
  return out;
}

std::string cap(std::string s) {
  if (!s.empty()) s[0] = char(std::toupper(static_cast<unsigned char>(s[0])));
  return s;
}

std::string article(std::string_view word) {
  char c = word.empty() ? 'x' : char(std::tolower(static_cast<unsigned char>(word[0])));
  return std::string(c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u' ? "an" : "a");
}

}  // namespace synth

namespace {

using synth::Item;
using synth::ojson;
using synth::Rng;

constexpr const char* kSplits[3] = {"train", "dev", "test"};

struct Domain {
  const char* name;
  const char* eval_kind;  // the `cogumi eval` loader that reads it
  Item (*gen)(Rng&, int);
};

const Domain kDomains[] = {
    {"math", "gsm8k", synth::math_item},
    {"code", "humaneval", synth::code_item},
    {"reasoning", "mmlu", synth::reasoning_item},
    {"automation", "bfcl", synth::automation_item},
};

// splitmix64: decorrelates the streams of nearby seeds and of the domains of one seed.
uint64_t mix_seed(uint64_t seed, uint64_t salt) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (salt + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// How many draws in a row may bring nothing new before we call the space exhausted.
constexpr int kMaxIdleDraws = 20000;

// Items of one domain, indexed like kSplits. One stream of draws; each new item goes to the
// split its key hashes to, in proportion to the split sizes. Routing by key rather than by draw
// order matters for templates with few distinct items (a "call X" request, an is_even task):
// they spread over all three splits instead of being used up by whichever split is drawn first.
std::array<std::vector<Item>, 3> generate(const Domain& d, size_t domain_index,
                                          const SynthOptions& o) {
  Rng rng(mix_seed(o.seed, domain_index));
  const uint64_t sizes[3] = {uint64_t(o.n_train), uint64_t(o.n_dev), uint64_t(o.n_test)};
  const uint64_t total = sizes[0] + sizes[1] + sizes[2];
  std::array<std::vector<Item>, 3> out;
  for (int s = 0; s < 3; ++s) out[size_t(s)].reserve(sizes[s]);
  std::unordered_set<std::string> seen;
  uint64_t filled = 0;
  for (int idle = 0; filled < total;) {
    if (idle == kMaxIdleDraws)
      fail("synth: {} at difficulty {} ran out of distinct items: {} of {} made", d.name,
           o.difficulty_of(d.name), filled, total);
    Item it = d.gen(rng, o.difficulty_of(d.name));
    if (!seen.insert(it.key).second) {
      ++idle;
      continue;
    }
    uint64_t u = mix_seed(fnv1a(it.key), o.seed) % total;
    size_t s = u < sizes[2] ? 2 : u < sizes[2] + sizes[1] ? 1 : 0;
    if (out[s].size() == sizes[s]) {
      ++idle;
      continue;
    }
    out[s].push_back(std::move(it));
    ++filled;
    idle = 0;
  }
  return out;
}

std::string jsonl(const std::vector<ojson>& rows) {
  std::string s;
  for (const auto& r : rows) s += r.dump() + "\n";
  return s;
}

// The record with `field: id` first, as upstream files order it.
ojson with_id(const char* field, const std::string& id, const ojson& record) {
  ojson r = {{field, id}};
  for (auto& [k, v] : record.items()) r[k] = v;
  return r;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

// Writes one split of one domain; returns the path relative to out_dir.
std::string write_split(const fs::path& out_dir, const std::string& domain, const char* split,
                        const std::vector<Item>& items) {
  fs::path dir = out_dir / domain;
  std::string rel = domain + "/" + split + ".jsonl";
  if (domain == "math") {
    std::vector<ojson> rows;
    for (const auto& it : items) rows.push_back(it.record);
    write_file_atomic(dir / (std::string(split) + ".jsonl"), jsonl(rows));
  } else if (domain == "code") {
    std::vector<ojson> rows;
    for (size_t i = 0; i < items.size(); ++i)
      rows.push_back(with_id("task_id", fmt::format("SynthCode/{}/{}", split, i), items[i].record));
    write_file_atomic(dir / (std::string(split) + ".jsonl"), jsonl(rows));
  } else if (domain == "reasoning") {
    std::string text = "question,choice0,choice1,choice2,choice3,answer\n";
    for (const auto& it : items) {
      for (size_t c = 0; c < it.record.size(); ++c)
        text += (c ? "," : "") + csv_field(it.record[c].get<std::string>());
      text += "\n";
    }
    rel = domain + "/reasoning_" + split + ".csv";
    write_file_atomic(out_dir / rel, text);
  } else {
    std::vector<ojson> questions, answers;
    for (size_t i = 0; i < items.size(); ++i) {
      std::string id = fmt::format("automation_{}_{}", split, i);
      questions.push_back(with_id("id", id, items[i].record));
      answers.push_back(ojson{{"id", id}, {"ground_truth", items[i].answer}});
    }
    write_file_atomic(dir / (std::string(split) + ".jsonl"), jsonl(questions));
    write_file_atomic(dir / "possible_answer" / (std::string(split) + ".jsonl"), jsonl(answers));
  }
  return rel;
}

// One {"id","domain","split","template"} line per item, under the id `cogumi eval` gives it (read
// back through eval's own loader, which keeps file order), so a run's items.jsonl joins on id.
// A file of its own: the benchmark files stay in their upstream formats, byte for byte.
std::string template_lines(const fs::path& out_dir, const Domain& dom, const char* split,
                           const std::string& rel, const std::vector<Item>& items) {
  if (items.empty()) return "";
  auto loaded = load_benchmark(dom.eval_kind, out_dir / rel);
  if (loaded.size() != items.size())
    fail("synth: {} reads back {} items of {}, {} were written", rel, loaded.size(), dom.name, items.size());
  std::string text;
  for (size_t i = 0; i < items.size(); ++i)
    text += ojson{{"id", loaded[i].id}, {"domain", dom.name}, {"split", split}, {"template", items[i].template_name}}
                .dump() + "\n";
  return text;
}

}  // namespace

int SynthOptions::difficulty_of(const std::string& domain) const {
  auto it = domain_difficulty.find(domain);
  return it == domain_difficulty.end() ? difficulty : it->second;
}

void SynthOptions::set_difficulty(const std::string& spec) {
  auto level = [&](const std::string& v, const std::string& part) {
    size_t used = 0;
    int n = 0;
    try {
      n = std::stoi(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != v.size() || v.empty() || n < 1 || n > 4)
      fail("synth: difficulty '{}': '{}' is not a level 1..4", spec, part);
    return n;
  };
  auto trim = [](std::string x) {
    size_t a = x.find_first_not_of(" \t"), b = x.find_last_not_of(" \t");
    return a == std::string::npos ? std::string() : x.substr(a, b - a + 1);
  };
  domain_difficulty.clear();
  bool have_default = false;
  size_t start = 0;
  while (start <= spec.size()) {
    size_t end = spec.find(',', start);
    if (end == std::string::npos) end = spec.size();
    std::string part = trim(spec.substr(start, end - start));
    size_t eq = part.find('=');
    if (eq == std::string::npos) {
      if (have_default) fail("synth: difficulty '{}': more than one level for every domain", spec);
      difficulty = level(part, part);
      have_default = true;
    } else {
      std::string name = trim(part.substr(0, eq));
      const auto& ds = synth_domains();
      if (std::find(ds.begin(), ds.end(), name) == ds.end())
        fail("synth: difficulty '{}': unknown domain '{}' (math, code, reasoning, automation)", spec, name);
      if (domain_difficulty.count(name)) fail("synth: difficulty '{}': {} is given twice", spec, name);
      domain_difficulty[name] = level(trim(part.substr(eq + 1)), part);
    }
    start = end + 1;
  }
}

std::string SynthOptions::difficulty_spec() const {
  std::string s = std::to_string(difficulty);
  for (const auto& d : synth_domains())
    if (domain_difficulty.count(d) && domain_difficulty.at(d) != difficulty)
      s += fmt::format(",{}={}", d, domain_difficulty.at(d));
  return s;
}

void SynthOptions::validate() const {
  if (n_train < 0) fail("synth: n_train must be >= 0, got {}", n_train);
  if (n_dev < 0) fail("synth: n_dev must be >= 0, got {}", n_dev);
  if (n_test < 0) fail("synth: n_test must be >= 0, got {}", n_test);
  if (n_mix < 0) fail("synth: n_mix must be >= 0, got {}", n_mix);
  if (n_copy < 0 || n_copy > 1000000) fail("synth: n_copy must be in 0..1000000, got {}", n_copy);
  if (n_choice < 0 || n_choice > 1000000) fail("synth: n_choice must be in 0..1000000, got {}", n_choice);
  if (difficulty < 1 || difficulty > 4) fail("synth: difficulty must be 1..4, got {}", difficulty);
  if (threads < 0 || threads > 1024) fail("synth: threads must be in 0..1024 (0 = all cores), got {}", threads);
  const auto& ds = synth_domains();
  for (const auto& [d, n] : domain_difficulty) {
    if (std::find(ds.begin(), ds.end(), d) == ds.end()) fail("synth: difficulty given for unknown domain '{}'", d);
    if (n < 1 || n > 4) fail("synth: difficulty of {} must be 1..4, got {}", d, n);
  }
}

const std::vector<std::string>& synth_domains() {
  static const std::vector<std::string> d = {"math", "code", "reasoning", "automation"};
  return d;
}

namespace {
// What one domain adds to the curriculum: its split files (written), its template lines, its training records
// (in file order) and its counts. Domains draw from streams of their own, so they are made on threads of their own
// and merged in domain order: the same bytes at any thread count.
struct DomainFiles {
  ojson files = ojson::object(), counts = ojson::object();
  std::array<int, 3> n{};
  std::string templates;
  std::vector<json> train_rows;  // the train split asked as eval asks it
};

DomainFiles write_domain(const fs::path& out_dir, const Domain& dom, const std::array<std::vector<Item>, 3>& items) {
  DomainFiles out;
  for (int s = 0; s < 3; ++s) {
    const auto& split = items[size_t(s)];
    const std::string rel = write_split(out_dir, dom.name, kSplits[s], split);
    out.files[kSplits[s]] = rel;
    out.templates += template_lines(out_dir, dom, kSplits[s], rel, split);
    out.n[size_t(s)] = int(split.size());
    out.counts[kSplits[s]] = split.size();
  }
  // Each item of a split asked as eval asks it, read back through eval's own loader.
  auto sft_records = [&](int split) {
    std::vector<json> rows;
    if (items[size_t(split)].empty()) return rows;
    for (const auto& it : load_benchmark(dom.eval_kind, out_dir / out.files[kSplits[split]].get<std::string>())) {
      json row = training_record(it, false);
      row["category"] = dom.name;
      rows.push_back(std::move(row));
    }
    return rows;
  };
  std::string domain_text, dev_text;
  out.train_rows = sft_records(0);
  for (const auto& row : out.train_rows) domain_text += row.dump() + "\n";
  write_file_atomic(out_dir / "mix" / (std::string(dom.name) + ".jsonl"), domain_text);
  // The dev split in the same form: validation data for early stopping.
  for (auto& row : sft_records(1)) dev_text += row.dump() + "\n";
  write_file_atomic(out_dir / "mix" / "dev" / (std::string(dom.name) + ".jsonl"), dev_text);
  return out;
}
}  // namespace

SynthStats synth_write(const fs::path& out_dir, const SynthOptions& opts) {
  opts.validate();
  const size_t n_domains = std::size(kDomains);
  const int threads = opts.threads > 0 ? opts.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  // Everything is drawn before anything is written: a domain that runs out of items leaves an
  // earlier curriculum in out_dir whole rather than half replaced.
  std::vector<std::array<std::vector<Item>, 3>> all(n_domains);
  parallel_for(n_domains, threads, [&](size_t d) { all[d] = generate(kDomains[d], d, opts); });
  std::error_code ec;
  fs::create_directories(out_dir / "mix" / "dev", ec);
  if (ec) fail("synth: cannot create '{}': {}", out_dir.string(), ec.message());

  std::vector<DomainFiles> made(n_domains);
  parallel_for(n_domains, threads, [&](size_t d) { made[d] = write_domain(out_dir, kDomains[d], all[d]); });
  SynthStats stats;
  ojson files = ojson::object(), kinds = ojson::object(), counts = ojson::object();
  // The training mix: each train item asked exactly as `cogumi eval` asks it (completion mode,
  // zero-shot), read back through eval's own loaders, so what the base learns is what is measured.
  std::vector<json> mix;
  std::string templates;
  for (size_t d = 0; d < n_domains; ++d) {
    const Domain& dom = kDomains[d];
    DomainFiles& m = made[d];
    files[dom.name] = std::move(m.files);
    counts[dom.name] = std::move(m.counts);
    stats.counts[dom.name] = m.n;
    templates += m.templates;
    kinds[dom.name] = dom.eval_kind;
    const size_t take = opts.n_mix == 0 ? m.train_rows.size() : std::min(m.train_rows.size(), size_t(opts.n_mix));
    for (size_t i = 0; i < take; ++i) mix.push_back(std::move(m.train_rows[i]));
    files["mix"][dom.name] = std::string("mix/") + dom.name + ".jsonl";
  }

  // The copying items: their own stream, drawn until n_copy distinct prompts (the generator has far more).
  if (opts.n_copy > 0) {
    Rng crng(mix_seed(opts.seed, 2000));
    std::unordered_set<std::string> seen;
    std::string copy_text;
    for (int tries = 0; int(seen.size()) < opts.n_copy; ++tries) {
      if (tries > 50 * opts.n_copy + 1000) fail("synth: only {} distinct copying items for n_copy {}", seen.size(), opts.n_copy);
      synth::Item it = synth::copy_item(crng);
      if (!seen.insert(it.key).second) continue;
      json row = {{"prompt", it.instruction}, {"completion", it.output}, {"category", "copy"}, {"template", it.template_name}};
      copy_text += row.dump() + "\n";
      mix.push_back(std::move(row));
    }
    write_file_atomic(out_dir / "mix" / "copy.jsonl", copy_text);
    files["mix"]["copy"] = "mix/copy.jsonl";
  }

  // The option-lookup items: their own stream (copying items and domains draw as without them), in the
  // multiple-choice prompt eval uses, distinct by prompt.
  if (opts.n_choice > 0) {
    Rng lrng(mix_seed(opts.seed, 3000));
    std::unordered_set<std::string> seen;
    std::string choice_text;
    for (int tries = 0; int(seen.size()) < opts.n_choice; ++tries) {
      if (tries > 50 * opts.n_choice + 1000)
        fail("synth: only {} distinct option-lookup items for n_choice {}", seen.size(), opts.n_choice);
      json row = training_record(synth::choice_lookup_item(lrng, opts.difficulty_of("reasoning")), false);
      if (!seen.insert(row.at("prompt").get<std::string>()).second) continue;
      row["category"] = "choice";
      row["source_id"] = fmt::format("choice:{}", seen.size() - 1);
      choice_text += row.dump() + "\n";
      mix.push_back(std::move(row));
    }
    write_file_atomic(out_dir / "mix" / "choice.jsonl", choice_text);
    files["mix"]["choice"] = "mix/choice.jsonl";
  }

  // One shuffled stream, so any prefix of the mix holds every domain in proportion.
  Rng rng(mix_seed(opts.seed, 1000));
  rng.shuffle(mix);
  std::string mix_text;
  for (const auto& m : mix) mix_text += m.dump() + "\n";
  write_file_atomic(out_dir / "mix" / "train.jsonl", mix_text);
  // Not in the manifest: its bytes are the nano loop's record of the curriculum it used.
  write_file_atomic(out_dir / "templates.jsonl", templates);
  files["mix"]["train"] = "mix/train.jsonl";

  ojson manifest = {
      {"generator", "cogumi synth"},
      {"version", 1},
      {"seed", opts.seed},
      {"options",
       {{"n_train", opts.n_train},
        {"n_dev", opts.n_dev},
        {"n_test", opts.n_test},
        {"n_mix", opts.n_mix},
        {"difficulty", opts.difficulty_spec()}}},
      {"counts", counts},
      {"files", files},
      {"eval_kind", kinds},
  };
  if (opts.n_copy > 0) manifest["options"]["n_copy"] = opts.n_copy;  // absent at 0: the manifest as before
  if (opts.n_choice > 0) manifest["options"]["n_choice"] = opts.n_choice;
  write_file_atomic(out_dir / "manifest.json", manifest.dump(2) + "\n");
  return stats;
}

}  // namespace cogumi
