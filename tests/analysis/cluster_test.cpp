#include "analysis/cluster.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "analysis/report.h"
#include "core/error.h"

namespace cogumi {
namespace {

using Points = std::vector<std::vector<float>>;

struct Blobs {
  Points points;
  std::vector<int> truth;  // blob per point
};

// `sizes[b]` points around blob b's centre: centres are 20 apart on their own axis, the
// spread is 0.5 per dimension, so blobs never touch.
Blobs make_blobs(const std::vector<size_t>& sizes, size_t dim, uint32_t seed = 3) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.5f);
  Blobs out;
  for (size_t b = 0; b < sizes.size(); ++b) {
    for (size_t i = 0; i < sizes[b]; ++i) {
      std::vector<float> p(dim);
      for (auto& x : p) x = noise(rng);
      p[b % dim] += 20.0f;
      out.points.push_back(std::move(p));
      out.truth.push_back(static_cast<int>(b));
    }
  }
  return out;
}

std::vector<std::string> blob_texts(const std::vector<int>& truth) {
  static const char* topic[] = {"apples", "trains", "python", "weather", "chess"};
  std::vector<std::string> out;
  for (size_t i = 0; i < truth.size(); ++i) {
    out.push_back(
        fmt::format("the answer about {} was wrong again in item {}", topic[truth[i]], i));
  }
  return out;
}

// Every blob lands in exactly one cluster and no two blobs share one.
void expect_same_partition(const std::vector<int>& got, const std::vector<int>& truth) {
  ASSERT_EQ(got.size(), truth.size());
  std::map<int, int> blob_to_cluster, cluster_to_blob;
  for (size_t i = 0; i < got.size(); ++i) {
    auto [b, new_b] = blob_to_cluster.emplace(truth[i], got[i]);
    auto [c, new_c] = cluster_to_blob.emplace(got[i], truth[i]);
    ASSERT_EQ(b->second, got[i]) << "blob " << truth[i] << " is split (point " << i << ")";
    ASSERT_EQ(c->second, truth[i]) << "cluster " << got[i] << " mixes blobs (point " << i << ")";
  }
}

std::vector<ReportItem> items_for(const Blobs& b) {
  std::vector<ReportItem> items;
  auto texts = blob_texts(b.truth);
  for (size_t i = 0; i < b.points.size(); ++i) {
    items.push_back(
        {fmt::format("item-{}", i), "math", i % 3 ? "wrong_answer" : "timeout", texts[i]});
  }
  return items;
}

TEST(Cluster, RecoversSeparatedBlobs) {
  auto b = make_blobs({60, 50, 40, 30}, 16);
  ClusterOptions opts;
  opts.k = 4;
  auto c = cluster_points(b.points, blob_texts(b.truth), opts);
  ASSERT_EQ(c.k, 4);
  expect_same_partition(c.assignment, b.truth);
  // Sorted by size, ids renumbered in that order, members consistent with the assignment.
  std::vector<size_t> expected_sizes = {60, 50, 40, 30};
  for (int id = 0; id < 4; ++id) {
    const Cluster& cl = c.clusters[id];
    EXPECT_EQ(cl.id, id);
    EXPECT_EQ(cl.members.size(), expected_sizes[id]);
    for (size_t i : cl.members) EXPECT_EQ(c.assignment[i], id);
    EXPECT_GT(cl.silhouette, 0.8);
  }
  EXPECT_GT(c.silhouette, 0.8);
  EXPECT_EQ(c.clusters[0].label.rfind("apples", 0), 0u) << c.clusters[0].label;
  EXPECT_EQ(c.clusters[3].top_terms.at(0).first, "weather");
  ASSERT_EQ(c.projection.size(), b.points.size());
  for (const auto& p : c.projection) EXPECT_TRUE(std::isfinite(p[0]) && std::isfinite(p[1]));
}

TEST(Cluster, AutoKPicksFourBySilhouette) {
  auto b = make_blobs({40, 40, 40, 40}, 16);
  ClusterOptions opts;
  opts.k = 0;
  opts.k_max = 8;
  auto c = cluster_points(b.points, {}, opts);
  EXPECT_EQ(c.k, 4);
  expect_same_partition(c.assignment, b.truth);
  EXPECT_EQ(c.clusters[0].label, "cluster 0");  // no texts: placeholder labels
}

TEST(Cluster, SameSeedSameResult) {
  auto b = make_blobs({50, 50, 50}, 16);
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(-30.0f, 30.0f);
  for (int i = 0; i < 40; ++i) {  // scattered points make the k=6 solution seed-dependent
    std::vector<float> p(16);
    for (auto& x : p) x = u(rng);
    b.points.push_back(p);
  }
  ClusterOptions opts;
  opts.k = 6;
  opts.seed = 42;
  std::vector<std::string> texts(b.points.size(), "same words everywhere");
  auto a = cluster_points(b.points, texts, opts);
  auto c = cluster_points(b.points, texts, opts);
  EXPECT_EQ(a.assignment, c.assignment);
  EXPECT_EQ(a.inertia, c.inertia);
  EXPECT_EQ(a.silhouette, c.silhouette);
  ASSERT_EQ(a.projection.size(), c.projection.size());
  for (size_t i = 0; i < a.projection.size(); ++i) EXPECT_EQ(a.projection[i], c.projection[i]);
  for (size_t i = 0; i < a.clusters.size(); ++i) {
    EXPECT_EQ(a.clusters[i].representatives, c.clusters[i].representatives);
  }
}

TEST(Cluster, KIsClampedToDistinctPoints) {
  Points p = {{1, 0}, {1, 0}, {0, 1}, {0, 1}, {1, 0}};
  ClusterOptions opts;
  opts.k = 4;
  auto c = cluster_points(p, {}, opts);
  EXPECT_EQ(c.k, 2);
  EXPECT_EQ(c.clusters[0].members, (std::vector<size_t>{0, 1, 4}));
  EXPECT_EQ(c.clusters[1].members, (std::vector<size_t>{2, 3}));
  EXPECT_DOUBLE_EQ(c.inertia, 0.0);

  Points same(5, std::vector<float>{0.5f, 0.5f});
  opts.k = 0;
  auto one = cluster_points(same, {}, opts);
  EXPECT_EQ(one.k, 1);
  EXPECT_EQ(one.silhouette, 0.0);
  EXPECT_EQ(one.projection.size(), 5u);
}

TEST(Cluster, RepresentativesAreMembersNearestTheCentroid) {
  auto b = make_blobs({30, 25, 20}, 8);
  ClusterOptions opts;
  opts.k = 3;
  opts.n_representatives = 5;
  auto c = cluster_points(b.points, {}, opts);
  for (const Cluster& cl : c.clusters) {
    ASSERT_EQ(cl.representatives.size(), 5u);
    std::vector<double> mean(8, 0.0);
    for (size_t i : cl.members) {
      for (size_t j = 0; j < 8; ++j) mean[j] += b.points[i][j] / cl.members.size();
    }
    auto dist = [&](size_t i) {
      double s = 0;
      for (size_t j = 0; j < 8; ++j) s += (b.points[i][j] - mean[j]) * (b.points[i][j] - mean[j]);
      return s;
    };
    std::set<size_t> members(cl.members.begin(), cl.members.end());
    double prev = -1;
    for (size_t r : cl.representatives) {
      EXPECT_TRUE(members.count(r)) << r;
      EXPECT_GE(dist(r) + 1e-4, prev);
      prev = dist(r);
    }
    // No non-representative member is nearer than the farthest representative.
    for (size_t i : cl.members) {
      if (std::find(cl.representatives.begin(), cl.representatives.end(), i) ==
          cl.representatives.end()) {
        EXPECT_GE(dist(i) + 1e-4, prev);
      }
    }
  }
}

TEST(Cluster, BadInputThrowsNamingTheIndex) {
  auto b = make_blobs({10}, 16);
  b.points[7].pop_back();
  try {
    cluster_points(b.points, {}, ClusterOptions{});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("point 7"), std::string::npos) << e.what();
  }
  b.points[7].push_back(NAN);
  try {
    silhouette_score(b.points, std::vector<int>(10, 0));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("point 7"), std::string::npos) << e.what();
  }
  EXPECT_THROW(cluster_points({}, {}, ClusterOptions{}), Error);
  b.points[7].back() = 0.0f;
  EXPECT_THROW(cluster_points(b.points, {"too", "few"}, ClusterOptions{}), Error);
}

TEST(Silhouette, PerfectSeparationHighRandomLabelsNearZero) {
  auto b = make_blobs({50, 50, 50, 50}, 16);
  EXPECT_GT(silhouette_score(b.points, b.truth), 0.8);
  std::mt19937 rng(5);
  std::vector<int> random(b.points.size());
  for (auto& r : random) r = static_cast<int>(rng() % 4);
  EXPECT_LT(std::abs(silhouette_score(b.points, random)), 0.1);
  EXPECT_EQ(silhouette_score(b.points, std::vector<int>(b.points.size(), 0)), 0.0);
}

TEST(Silhouette, SampledEstimateTracksExactScore) {
  // 4000 points exceed the 3000-point sample; the 10-point blob is too small to be sampled
  // fully, which exercises the per-cluster top-up.
  auto b = make_blobs({1800, 1200, 990, 10}, 8);
  ClusterOptions opts;
  opts.k = 4;
  opts.n_init = 1;
  auto c = cluster_points(b.points, {}, opts);
  expect_same_partition(c.assignment, b.truth);
  double exact = silhouette_score(b.points, c.assignment);
  EXPECT_NEAR(c.silhouette, exact, 0.02);
  EXPECT_GT(c.clusters[3].silhouette, 0.8);
}

TEST(Ctfidf, PicksEachGroupsDistinguishingWord) {
  std::vector<std::string> texts = {
      "Apples are red and apples are sweet, really tasty fruit",
      "I bought apples yesterday, really good ones",
      "The apples orchard was really large",
      "Trains were late again; trains really need better schedules",
      "Two trains collided near the station, really bad",
      "My python script fails: python raised an exception, really annoying",
      "Python indentation errors in python code",
  };
  std::vector<int> assignment = {0, 0, 0, 1, 1, 2, 2};
  auto terms = ctfidf_terms(texts, assignment, 3, 3);
  ASSERT_EQ(terms.size(), 3u);
  EXPECT_EQ(terms[0].at(0).first, "apples");
  EXPECT_EQ(terms[1].at(0).first, "trains");
  EXPECT_EQ(terms[2].at(0).first, "python");
  for (const auto& list : terms) {
    EXPECT_LE(list.size(), 3u);
    for (size_t i = 1; i < list.size(); ++i) EXPECT_GE(list[i - 1].second, list[i].second);
  }
}

TEST(Ctfidf, TokenRules) {
  auto terms =
      ctfidf_terms({"The 2024 API is OK, but the API-KEY failed: ÉCLAIR éclair"}, {0}, 1, 10);
  std::set<std::string> got;
  for (const auto& [t, s] : terms[0]) got.insert(t);
  // Stopwords ("the", "but"), short tokens ("is", "ok") and pure digits ("2024") are gone;
  // UTF-8 letters stay inside their token (only ASCII is lowercased).
  EXPECT_EQ(got, (std::set<std::string>{"api", "key", "failed", "Éclair", "éclair"}));
  EXPECT_THROW(ctfidf_terms({"a"}, {3}, 2, 1), Error);
  EXPECT_THROW(ctfidf_terms({"a", "b"}, {0}, 1, 1), Error);
}

TEST(Report, HtmlIsSelfContainedWithOneCirclePerPointAndEscapedText) {
  auto b = make_blobs({12, 8, 5}, 4);
  ClusterOptions opts;
  opts.k = 3;
  opts.n_representatives = 100;  // every item's text is shown
  auto items = items_for(b);
  items[3].text = "<script>alert('x')</script> & more " + std::string(1000, 'z');
  std::vector<std::string> texts;
  for (const auto& it : items) texts.push_back(it.text);
  auto c = cluster_points(b.points, texts, opts);
  std::string html = cluster_report_html(c, items, "Failures <v1>");

  EXPECT_NE(html.find("<svg"), std::string::npos);
  size_t circles = 0;
  for (size_t at = 0; (at = html.find("<circle", at)) != std::string::npos; ++at) ++circles;
  EXPECT_EQ(circles, b.points.size());
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more"),
            std::string::npos);
  EXPECT_EQ(html.find(std::string(500, 'z')), std::string::npos);  // truncated
  EXPECT_NE(html.find("Failures &lt;v1&gt;"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  for (const Cluster& cl : c.clusters) {
    EXPECT_NE(html.find(fmt::format("id=\"cluster-{}\"", cl.id)), std::string::npos);
  }
  EXPECT_THROW(cluster_report_html(c, {items.begin(), items.end() - 1}, "x"), Error);
}

TEST(Report, MarkdownListsEveryClusterAndJsonHasTheFields) {
  auto b = make_blobs({20, 15, 10, 5}, 6);
  ClusterOptions opts;
  opts.k = 4;
  auto items = items_for(b);
  items[0].text = "a | pipe and <b>tag</b>\nnewline";
  std::vector<std::string> texts;
  for (const auto& it : items) texts.push_back(it.text);
  auto c = cluster_points(b.points, texts, opts);
  std::string md = cluster_report_markdown(c, items, "Run 7");
  EXPECT_EQ(md.rfind("# Run 7\n", 0), 0u);
  for (const Cluster& cl : c.clusters) {
    EXPECT_NE(md.find(fmt::format("## Cluster {}: {}", cl.id, cl.label)), std::string::npos);
    EXPECT_NE(md.find(fmt::format("| {} | {} | {} |", cl.id, cl.label, cl.members.size())),
              std::string::npos);
  }
  EXPECT_EQ(md.find("<b>"), std::string::npos);

  auto rows = clusters_to_json(c, items);
  ASSERT_EQ(rows.size(), 4u);
  size_t total = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    EXPECT_EQ(r["cluster"], static_cast<int>(i));
    EXPECT_EQ(r["label"], c.clusters[i].label);
    EXPECT_EQ(r["size"], r["members"].size());
    EXPECT_EQ(r["representatives"].size(), 3u);
    EXPECT_TRUE(r["terms"].is_array() && r["terms"][0].is_array());
    size_t typed = 0;
    for (const auto& [type, n] : r["failure_types"].items()) typed += n.get<size_t>();
    EXPECT_EQ(typed, r["size"].get<size_t>());
    total += r["size"].get<size_t>();
  }
  EXPECT_EQ(total, b.points.size());
  EXPECT_EQ(rows[0]["members"][0].get<std::string>().rfind("item-", 0), 0u);
}

}  // namespace
}  // namespace cogumi
