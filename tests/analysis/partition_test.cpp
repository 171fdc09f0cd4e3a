// Failure clustering on planted structure: failures drawn from known templates, with embeddings
// that look like a causal LM's (one dominant direction whose length varies for reasons unrelated
// to the failure), must come back as one cluster per template.
#include "analysis/partition.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <set>

#include "analysis/failure_features.h"
#include "core/eigen_setup.h"
#include "core/error.h"

namespace cogumi {
namespace {

using Points = std::vector<std::vector<float>>;

struct Planted {
  std::vector<FailureText> items;
  std::vector<std::string> category, tmpl;
  Points embeddings;
};

// Five templates over two categories, sizes as given; `outliers` extra math items of a sixth,
// one-off kind.
Planted plant(std::vector<size_t> sizes, size_t outliers, uint32_t seed = 7) {
  static const char* kNames[] = {"Ann", "Bob", "Cleo", "Dev", "Eli", "Fay"};
  static const char* kThings[] = {"apples", "cards", "stamps", "shells"};
  static const char* kCities[] = {"Paris", "Lima", "Oslo", "Quito", "Rome"};
  std::mt19937 rng(seed);
  auto num = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto any = [&](const auto& xs) { return xs[size_t(num(0, int(std::size(xs)) - 1))]; };
  const size_t dim = 48;
  std::normal_distribution<float> noise(0.0f, 0.08f);
  std::vector<std::vector<float>> dirs(7, std::vector<float>(dim));
  for (auto& d : dirs)
    for (auto& x : d) x = noise(rng) * 12.5f;  // roughly unit length
  Planted p;
  auto add = [&](int t, const std::string& cat, FailureText ft) {
    p.items.push_back(std::move(ft));
    p.category.push_back(cat);
    p.tmpl.push_back(fmt::format("t{}", t));
    std::vector<float> e(dim);
    // Direction 0 dominates every vector, with a length that varies item to item.
    float common = 8.0f + 3.0f * std::abs(noise(rng)) * 12.5f;
    for (size_t j = 0; j < dim; ++j)
      e[j] = common * dirs[0][j] + 0.6f * dirs[size_t(t)][j] + noise(rng);
    p.embeddings.push_back(std::move(e));
  };
  for (int t = 1; t <= 5; ++t) {
    for (size_t i = 0; i < sizes[size_t(t - 1)]; ++i) {
      std::string n = any(kNames), th = any(kThings);
      int a = num(5, 40), b = num(2, 9);
      switch (t) {
        case 1:
          add(t, "math",
              {fmt::format("{} has {} {}. {} sells all of them for {} dollars each. How many "
                           "dollars does {} get?",
                           n, a, th, n, b, n),
               fmt::format("{} + {} = {}\n#### {}", a, b, a + b, a + b),
               fmt::format("{} * {} = {}\n#### {}", a, b, a * b, a * b), "wrong_answer"});
          break;
        case 2:
          add(t, "math",
              {fmt::format("{} has {} {}. {} shares them equally among {} friends. How many {} "
                           "does each friend get?",
                           n, a * b, th, n, b, th),
               fmt::format("{} * {} = {}\n#### {}", a * b, b, a * b * b, a * b * b),
               fmt::format("{} / {} = {}\n#### {}", a * b, b, a, a), "wrong_answer"});
          break;
        case 3:
          add(t, "math",
              {fmt::format("{} has {} {}. Then {} finds {} more. How many {} does {} have now?", n,
                           a, th, n, b, th, n),
               fmt::format("{} has {} {}", n, a, th),
               fmt::format("{} + {} = {}\n#### {}", a, b, a + b, a + b), "no_answer"});
          break;
        case 4: {
          std::string c = any(kCities);
          add(t, "automation",
              {fmt::format("What is the weather like in {} today?", c),
               fmt::format("{{\"name\": \"set_timer\", \"arguments\": {{\"minutes\": {}}}}}", b),
               fmt::format("[{{\"get_weather\": {{\"city\": [\"{}\"]}}}}]", c), "wrong_answer"});
          break;
        }
        default:
          add(t, "automation",
              {fmt::format("Set a timer for {} minutes, please.", a),
               fmt::format("{{\"name\": \"set_timer\", \"arguments\": {{\"minutes\": \"{} min", a),
               fmt::format("[{{\"set_timer\": {{\"minutes\": [{}]}}}}]", a), "malformed_json"});
      }
    }
  }
  for (size_t i = 0; i < outliers; ++i)
    add(6, "math",
        {fmt::format(
             "A train leaves at {} and travels {} miles at a steady speed; when does it arrive?",
             num(1, 12), num(50, 500)),
         "", fmt::format("#### {}", num(1, 12)), "empty_or_refusal"});
  return p;
}

std::vector<int> codes(const std::vector<std::string>& labels) {
  std::map<std::string, int> ids;
  std::vector<int> out;
  for (const auto& l : labels) out.push_back(ids.emplace(l, int(ids.size())).first->second);
  return out;
}

std::vector<std::string> questions(const Planted& p) {
  std::vector<std::string> q;
  for (const auto& it : p.items) q.push_back(it.question);
  return q;
}

TEST(Agreement, AdjustedRandIndexAndPurityMatchKnownValues) {
  // scikit-learn: adjusted_rand_score([0,0,1,1],[0,0,1,2]) = 0.5714285714285715
  EXPECT_NEAR(adjusted_rand_index({0, 0, 1, 1}, {0, 0, 1, 2}), 0.5714285714285715, 1e-12);
  EXPECT_NEAR(adjusted_rand_index({0, 0, 1, 1}, {5, 5, 3, 3}), 1.0, 1e-12);  // names do not matter
  // By hand: index 2, expected 36/15, max 6, so (2 - 2.4) / (6 - 2.4) = -1/9 (below chance).
  EXPECT_NEAR(adjusted_rand_index({0, 0, 0, 1, 1, 1}, {0, 1, 0, 1, 0, 1}), -1.0 / 9.0, 1e-12);
  EXPECT_NEAR(purity({0, 0, 0, 1, 1, 1}, {0, 0, 1, 1, 1, 1}), 5.0 / 6.0, 1e-12);
  EXPECT_NEAR(purity({0, 0, 0, 0}, {0, 1, 2, 3}), 0.25, 1e-12);
  EXPECT_THROW(purity({0, 1}, {0}), Error);
}

TEST(Features, TokensKeepOperatorsIdentifiersAndNumbersAsOne) {
  EXPECT_EQ(feature_tokens("12 * 5 = 60\n#### 60"),
            (std::vector<std::string>{"0", "*", "0", "=", "0", "#", "#", "#", "#", "0"}));
  EXPECT_EQ(feature_tokens("get_weather(City2)"),
            (std::vector<std::string>{"get_weather", "(", "city2", ")"}));
}

TEST(Features, WhiteningTakesTheWeightOffTheDominantDirection) {
  auto p = plant({30, 30, 30, 30, 30}, 0);
  // Raw: the first principal direction (the varying common length) carries most of the spread.
  auto raw = project_rows(p.embeddings, 4);
  auto white = whiten_rows(p.embeddings, 8);
  auto spread = [](const Points& rows, size_t j) {
    double m = 0, v = 0;
    for (const auto& r : rows) m += r[j];
    m /= double(rows.size());
    for (const auto& r : rows) v += (r[j] - m) * (r[j] - m);
    return v / double(rows.size());
  };
  double top = spread(raw, 0), rest = 0;
  for (size_t j = 1; j < 4; ++j) rest += spread(raw, j);
  EXPECT_GT(top, 3 * rest);
  ASSERT_EQ(white[0].size(), 8u);
  for (const auto& r : white) {
    double n = 0;
    for (float x : r) n += double(x) * x;
    EXPECT_NEAR(n, 1.0, 1e-4);
  }
  FailureFeatureOptions bad;
  bad.whiten_dims = 1;
  EXPECT_THROW(bad.validate(), Error);
  bad = {};
  bad.w_embed = bad.w_text = bad.w_type = 0;
  EXPECT_THROW(bad.validate(), Error);
}

// Sparse rows (a hashed TF-IDF bag: ~40 of 1,024 values set, a few shared by many rows) project through the Gram
// matrix applied implicitly, centring included; the coordinates must be the dense way's up to rotation, so the
// projected rows' Gram matrices agree. (A centring left out, or a row's values applied to the wrong row, moves
// them by far more.)
TEST(Features, SparseRowsProjectAsTheDenseWayDoes) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> bucket(0, 1023), common(0, 7);
  std::normal_distribution<float> value(0.0f, 1.0f);
  Points rows(300, std::vector<float>(1024, 0.0f));
  for (size_t i = 0; i < rows.size(); ++i) {
    for (int t = 0; t < 36; ++t) rows[i][size_t(bucket(rng))] += value(rng);
    for (int t = 0; t < 4; ++t) rows[i][size_t(common(rng))] += 1.0f + 0.1f * value(rng);  // shared: a large mean
  }
  const Points sparse = project_rows(rows, 16, true), dense = project_rows(rows, 16, false);
  ASSERT_EQ(sparse.size(), rows.size());
  ASSERT_EQ(sparse[0].size(), 16u);
  ASSERT_EQ(dense[0].size(), 16u);
  double worst = 0, scale = 0;
  for (size_t i = 0; i < rows.size(); i += 7)
    for (size_t j = 0; j < rows.size(); j += 5) {
      double gs = 0, gd = 0;
      for (size_t c = 0; c < 16; ++c) gs += double(sparse[i][c]) * sparse[j][c], gd += double(dense[i][c]) * dense[j][c];
      worst = std::max(worst, std::abs(gs - gd));
      scale = std::max(scale, std::abs(gd));
    }
  EXPECT_LT(worst, 1e-4 * scale) << "largest Gram entry " << scale;
  // Eigen's blocking (the order of its sums) follows fixed cache sizes, not this CPU's: the same bits on any machine.
  const EigenCacheSizes cs = eigen_cache_sizes();
  EXPECT_EQ(cs.l1, 32L << 10);
  EXPECT_EQ(cs.l2, 256L << 10);
  EXPECT_EQ(cs.l3, 2L << 20);
}

struct Scores {
  double ari, purity, largest;
  int k;
};

Scores run(const Planted& p, const FailureFeatureOptions& fo, const PartitionOptions& po) {
  Clustering c =
      partition_points(failure_features(p.items, p.embeddings, fo), p.category, questions(p), po);
  auto truth = codes(p.tmpl);
  return {adjusted_rand_index(c.assignment, truth), purity(c.assignment, truth),
          double(c.clusters[0].members.size()) / double(p.items.size()), c.k};
}

TEST(Partition, RecoversPlantedTemplatesWithinEachCategory) {
  auto p = plant({60, 45, 30, 50, 35}, 0);
  Clustering c =
      partition_points(failure_features(p.items, p.embeddings, {}), p.category, questions(p), {});
  auto truth = codes(p.tmpl);
  EXPECT_EQ(c.k, 5);
  EXPECT_GE(purity(c.assignment, truth), 0.95);
  EXPECT_GE(adjusted_rand_index(c.assignment, truth), 0.9);
  for (const Cluster& cl : c.clusters) {
    for (size_t i : cl.members)
      EXPECT_EQ(p.category[i], cl.group) << "cluster " << cl.id << " mixes categories";
    EXPECT_EQ(cl.label.rfind(cl.group + ": ", 0), 0u);
    EXPECT_EQ(cl.representatives.size(), 3u);
    ASSERT_EQ(cl.borderline.size(), 3u);
    for (size_t i : cl.borderline) {
      EXPECT_EQ(c.assignment[i], cl.id);
      EXPECT_EQ(std::count(cl.representatives.begin(), cl.representatives.end(), i), 0);
    }
  }
}

TEST(Partition, EachFeatureBlockAloneAndTheEmbeddingsRawAreScored) {
  auto p = plant({60, 45, 30, 50, 35}, 0);
  FailureFeatureOptions text_only;
  text_only.w_embed = 0;
  text_only.w_type = 0;
  EXPECT_GE(run(p, text_only, {}).purity, 0.95);
  FailureFeatureOptions embed_only;
  embed_only.w_text = embed_only.w_type = 0;
  Scores whitened = run(p, embed_only, {});
  EXPECT_GE(whitened.purity, 0.6) << "ari " << whitened.ari;
  // Today's method: raw embeddings, one k-means across categories, k fixed: clusters may mix
  // categories; the default never does (checked above), whatever the embeddings say.
  embed_only.whiten = false;
  PartitionOptions before;
  before.by_group = false;
  before.k = 5;
  before.min_size = 1;
  Scores raw = run(p, embed_only, before);
  EXPECT_EQ(raw.k, 5);
  RecordProperty("purity_whitened", std::to_string(whitened.purity));
  RecordProperty("purity_raw", std::to_string(raw.purity));
}

TEST(Partition, OutliersCannotBuyClustersOfTheirOwn) {
  auto p = plant({60, 45, 30, 50, 35}, 3);
  PartitionOptions po;
  po.min_size = 5;
  Clustering c =
      partition_points(failure_features(p.items, p.embeddings, {}), p.category, questions(p), po);
  for (const Cluster& cl : c.clusters) EXPECT_GE(cl.members.size(), 5u) << cl.label;
  EXPECT_EQ(c.k, 5);
  EXPECT_GE(purity(c.assignment, codes(p.tmpl)), 0.95);
}

TEST(Partition, OneShapelessGroupStaysOneCluster) {
  std::mt19937 rng(3);
  std::normal_distribution<float> g(0.0f, 1.0f);
  Points pts(80, std::vector<float>(16));
  for (auto& r : pts)
    for (auto& x : r) x = g(rng);
  Clustering c = partition_points(pts, std::vector<std::string>(80, "code"), {}, {});
  EXPECT_EQ(c.k, 1);
  EXPECT_EQ(c.clusters[0].members.size(), 80u);
  // A fixed k is clamped to the distinct points, as cluster_points does.
  PartitionOptions fixed;
  fixed.k = 10;
  fixed.min_size = 1;
  Points three = {{0, 0}, {0, 0}, {5, 5}, {9, 0}};
  EXPECT_EQ(partition_points(three, std::vector<std::string>(4, "x"), {}, fixed).k, 3);
  PartitionOptions bad;
  bad.k_max = 0;
  EXPECT_THROW(bad.validate(), Error);
  EXPECT_THROW(partition_points(pts, {"a"}, {}, {}), Error);
}

}  // namespace
}  // namespace cogumi
