// The failure-cluster report as a user sees it: rendered by headless Chromium (Debian's
// `chromium`), its map and size chart must exist in the live DOM and the screenshot must show
// them. A machine without chromium fails this test with the reason; it is never skipped.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "analysis/partition.h"
#include "analysis/report.h"

namespace cogumi {
namespace {

namespace fs = std::filesystem;

std::string find_chromium() {
  if (const char* env = std::getenv("COGUMI_CHROMIUM"); env && *env) return env;
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
    std::string cmd = fmt::format("command -v {} 2>/dev/null", name);
    FILE* f = popen(cmd.c_str(), "r");
    char buf[512] = {0};
    std::string path = f && fgets(buf, sizeof buf, f) ? buf : "";
    if (f) pclose(f);
    while (!path.empty() && (path.back() == '\n' || path.back() == ' ')) path.pop_back();
    if (!path.empty()) return path;
  }
  return "";
}

std::string run_capture(const std::string& cmd) {
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return "";
  std::string out;
  char buf[65536];
  for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
  pclose(f);
  return out;
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = 0; (at = s.find(what, at)) != std::string::npos; at += what.size()) ++n;
  return n;
}

uint32_t be32(const unsigned char* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

// Decodes an 8-bit RGB or RGBA PNG (what Chromium writes) into RGB pixels; empty on anything else.
std::vector<std::array<unsigned char, 3>> decode_png(const std::string& bytes, uint32_t& w,
                                                     uint32_t& h) {
  std::vector<std::array<unsigned char, 3>> px;
  auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 33 || bytes.compare(1, 3, "PNG") != 0) return px;
  std::string idat;
  int channels = 0;
  for (size_t at = 8; at + 8 <= bytes.size();) {
    uint32_t len = be32(b + at);
    std::string type = bytes.substr(at + 4, 4);
    if (type == "IHDR") {
      w = be32(b + at + 8), h = be32(b + at + 12);
      if (b[at + 16] != 8 || b[at + 20] != 0) return px;  // 8-bit, not interlaced
      channels = b[at + 17] == 6 ? 4 : b[at + 17] == 2 ? 3 : 0;
    } else if (type == "IDAT") {
      idat += bytes.substr(at + 8, len);
    }
    at += 12 + len;
  }
  if (!channels) return px;
  size_t stride = size_t(w) * channels;
  std::vector<unsigned char> raw((stride + 1) * h);
  uLongf raw_len = raw.size();
  if (uncompress(raw.data(), &raw_len, reinterpret_cast<const Bytef*>(idat.data()), idat.size()) !=
      Z_OK)
    return px;
  std::vector<unsigned char> prev(stride, 0), cur(stride);
  for (uint32_t y = 0; y < h; ++y) {
    unsigned char f = raw[y * (stride + 1)];
    const unsigned char* in = &raw[y * (stride + 1) + 1];
    for (size_t x = 0; x < stride; ++x) {
      int a = x >= size_t(channels) ? cur[x - channels] : 0, up = prev[x],
          c = x >= size_t(channels) ? prev[x - channels] : 0;
      int pred = 0;
      if (f == 1) pred = a;
      if (f == 2) pred = up;
      if (f == 3) pred = (a + up) / 2;
      if (f == 4) {
        int p = a + up - c, pa = std::abs(p - a), pb = std::abs(p - up), pc = std::abs(p - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? up : c;
      }
      cur[x] = static_cast<unsigned char>(in[x] + pred);
    }
    for (uint32_t x = 0; x < w; ++x)
      px.push_back({cur[x * channels], cur[x * channels + 1], cur[x * channels + 2]});
    prev = cur;
  }
  return px;
}

TEST(ReportBrowser, ChromiumRendersTheMapAndTheSizes) {
  std::string chromium = find_chromium();
  ASSERT_FALSE(chromium.empty())
      << "headless Chromium is needed to check the report as rendered and was not "
         "found (looked for chromium, chromium-browser, google-chrome, $COGUMI_CHROMIUM); "
         "install it: apt-get install -y chromium";
  // Three groups of points in two categories, with texts and items.
  std::mt19937 rng(5);
  std::normal_distribution<float> g(0.0f, 0.3f);
  std::vector<std::vector<float>> pts;
  std::vector<std::string> groups, texts;
  std::vector<ReportItem> items;
  for (int b = 0; b < 3; ++b) {
    for (int i = 0; i < 25 + 10 * b; ++i) {
      std::vector<float> p(8);
      for (auto& x : p) x = g(rng);
      p[size_t(b)] += 5;
      pts.push_back(p);
      groups.push_back(b < 2 ? "math" : "automation");
      texts.push_back(fmt::format("problem {} of kind {} <b>bold?</b>", i, b));
      items.push_back({fmt::format("id-{}-{}", b, i), groups.back(),
                       b ? "wrong_answer" : "no_answer", texts.back(), fmt::format("t{}", b)});
    }
  }
  PartitionOptions po;
  po.min_size = 5;
  po.min_silhouette = 0.3;  // a blob in 8 dimensions splits at about 0.15: keep each blob whole
  Clustering c = partition_points(pts, groups, texts, po);
  ASSERT_EQ(c.k, 3);
  fs::path dir = fs::temp_directory_path() / fmt::format("cogumi-report-{}", ::getpid());
  fs::create_directories(dir);
  fs::path html = dir / "report.html", png = dir / "shot.png";
  std::ofstream(html) << cluster_report_html(c, items, "Browser check");

  // --no-sandbox: tests run as root in CI containers, where Chromium's sandbox refuses to start.
  std::string flags =
      "--headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1100,1400";
  std::string dom = run_capture(fmt::format(
      "timeout 120 '{}' {} --dump-dom 'file://{}' 2>/dev/null", chromium, flags, html.string()));
  ASSERT_NE(dom.find("Browser check"), std::string::npos) << "chromium gave no DOM:\n"
                                                          << dom.substr(0, 400);
  EXPECT_EQ(count(dom, "<svg"), 2u);
  EXPECT_EQ(count(dom, "<circle"), pts.size());               // the map: one point per failure
  EXPECT_EQ(count(dom, "aria-label=\"cluster sizes\""), 1u);  // the size chart
  for (const Cluster& cl : c.clusters)
    EXPECT_NE(dom.find(fmt::format(">{}</text>", cl.members.size())), std::string::npos)
        << "size of cluster " << cl.id;
  EXPECT_EQ(dom.find("<b>bold"), std::string::npos);  // item text stays text

  run_capture(fmt::format("timeout 120 '{}' {} --screenshot='{}' 'file://{}' 2>/dev/null", chromium,
                          flags, png.string(), html.string()));
  std::ifstream in(png, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  uint32_t w = 0, h = 0;
  auto px = decode_png(bytes, w, h);
  ASSERT_FALSE(px.empty()) << "no readable screenshot at " << png << " (" << bytes.size()
                           << " bytes)";
  EXPECT_EQ(w, 1100u);
  std::map<std::array<unsigned char, 3>, size_t> hist;
  for (const auto& p : px) ++hist[p];
  size_t background = 0;
  for (const auto& [col, n] : hist) background = std::max(background, n);
  EXPECT_GT(double(px.size() - background) / double(px.size()), 0.01)
      << "the screenshot is (nearly) blank";
  // The first cluster colour (#4e79a7, drawn at 75% opacity on white in the map, solid in the
  // legend and bars) shows up.
  size_t blue = 0;
  for (const auto& [col, n] : hist)
    if (std::abs(col[0] - 0x4e) < 12 && std::abs(col[1] - 0x79) < 12 &&
        std::abs(col[2] - 0xa7) < 12)
      blue += n;
  EXPECT_GT(blue, 200u) << "no pixels of cluster 0's colour";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace cogumi
