#include "analysis/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string_view>
#include <utility>

#include "core/error.h"

namespace cogumi {
namespace {

constexpr size_t kTextChars = 400;  // representative text shown per item
constexpr size_t kLabelChars = 48;  // cluster label in the legend and bar chart

// Tableau 10, then golden-angle hues: neighbouring ids stay far apart on the colour wheel.
std::string cluster_color(int id) {
  static const char* palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                  "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
  if (id >= 0 && id < 10) return palette[id];
  return fmt::format("hsl({:.0f},60%,45%)", std::fmod(id * 137.508, 360.0));
}

// Cuts to at most `max_chars` UTF-8 characters, never inside one, marking the cut with "…".
std::string truncate_utf8(std::string_view s, size_t max_chars) {
  size_t chars = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) continue;  // continuation byte
    if (chars++ == max_chars) return std::string(s.substr(0, i)) + "\u2026";
  }
  return std::string(s);
}

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += ch;
    }
  }
  return out;
}

// Markdown inline text: one line, with the characters that start markup escaped so a failure
// quoting code renders as written. '<' and '>' become entities because Markdown passes raw
// HTML through.
std::string md_escape(std::string_view s) {
  std::string out;
  bool space = false;
  for (char ch : s) {
    if (ch == '\n' || ch == '\r' || ch == '\t' || ch == ' ') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    switch (ch) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '\\':
      case '`':
      case '*':
      case '_':
      case '[':
      case ']':
      case '|':
      case '#':
        out += '\\';
        out += ch;
        break;
      default:
        out += ch;
    }
  }
  return out;
}

void check_items(const Clustering& c, const std::vector<ReportItem>& items, const char* who) {
  if (items.size() != c.assignment.size()) {
    fail("{}: {} items for a clustering of {} points", who, items.size(), c.assignment.size());
  }
  for (const Cluster& cl : c.clusters) {
    for (const auto* list : {&cl.members, &cl.representatives, &cl.borderline}) {
      for (size_t i : *list) {
        if (i >= items.size())
          fail("{}: cluster {} refers to item {} of {}", who, cl.id, i, items.size());
      }
    }
  }
}

size_t total_members(const Clustering& c) {
  size_t n = 0;
  for (const Cluster& cl : c.clusters) n += cl.members.size();
  return n;
}

double share(size_t part, size_t whole) {
  return whole ? 100.0 * static_cast<double>(part) / static_cast<double>(whole) : 0.0;
}

// Failure types of a cluster's members, most frequent first (ties by name).
std::vector<std::pair<std::string, size_t>> failure_types(const Cluster& cl,
                                                          const std::vector<ReportItem>& items) {
  std::map<std::string, size_t> counts;
  for (size_t i : cl.members) {
    const std::string& t = items[i].failure_type;
    ++counts[t.empty() ? "(none)" : t];
  }
  std::vector<std::pair<std::string, size_t>> out(counts.begin(), counts.end());
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  return out;
}

// The most common value of a field among a cluster's members and its share: how pure the
// cluster is by benchmark, failure type or reference label.
std::pair<std::string, double> top_share(const Cluster& cl, const std::vector<ReportItem>& items,
                                         std::string ReportItem::*field) {
  std::map<std::string, size_t> counts;
  for (size_t i : cl.members) ++counts[items[i].*field];
  std::pair<std::string, size_t> best{"", 0};
  for (const auto& [v, n] : counts)
    if (n > best.second) best = {v, n};
  return {best.first, cl.members.empty() ? 0.0 : double(best.second) / double(cl.members.size())};
}

bool has_reference(const std::vector<ReportItem>& items) {
  return std::any_of(items.begin(), items.end(), [](const ReportItem& it) { return !it.reference.empty(); });
}

// Size-weighted purity over all clusters.
double overall_purity(const Clustering& c, const std::vector<ReportItem>& items,
                      std::string ReportItem::*field) {
  double s = 0;
  size_t n = 0;
  for (const Cluster& cl : c.clusters) {
    s += top_share(cl, items, field).second * double(cl.members.size());
    n += cl.members.size();
  }
  return n ? s / double(n) : 0.0;
}

// One line a user can trust: how the grouping lines up with what is already known.
std::string quality_line(const Clustering& c, const std::vector<ReportItem>& items) {
  size_t largest = c.clusters.empty() ? 0 : c.clusters[0].members.size();
  std::string out = fmt::format(
      "purity by benchmark {:.2f}, by failure type {:.2f}; largest cluster {:.1f}% of the failures",
      overall_purity(c, items, &ReportItem::category), overall_purity(c, items, &ReportItem::failure_type),
      share(largest, items.size()));
  if (has_reference(items))
    out += fmt::format("; purity by reference label {:.2f}", overall_purity(c, items, &ReportItem::reference));
  return out;
}

// ---- HTML pieces --------------------------------------------------------------------------

const char* kStyle = R"(
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;
max-width:1040px;padding:0 16px;color:#222}
h1{font-size:24px;margin-bottom:4px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
.summary{color:#555}svg{display:block;max-width:100%;height:auto}svg text{font:12px sans-serif}
section{border:1px solid #e3e3e3;border-radius:6px;padding:8px 16px;margin:16px 0}
h3{font-size:16px;margin:8px 0}.swatch{display:inline-block;width:12px;height:12px;
border-radius:2px;margin-right:6px;vertical-align:baseline}
table{border-collapse:collapse}td,th{padding:2px 10px 2px 0;text-align:left}
td.n{text-align:right}.terms code{background:#f3f3f3;padding:1px 4px;border-radius:3px}
.meta{color:#666;font-size:12px}pre{white-space:pre-wrap;word-break:break-word;
background:#f7f7f7;padding:6px 8px;border-radius:4px;margin:2px 0 10px}
)";

// Scatter of the 2-D projection (equal scale on both axes, so distances look right) with a
// legend beside it. Legend swatches are rects: one <circle> per item, exactly.
std::string scatter_svg(const Clustering& c, const std::vector<ReportItem>& items) {
  const double plot = 560, pad = 16, legend_w = 320;
  double legend_h = 24.0 + 20.0 * c.clusters.size();
  double height = std::max(plot, legend_h);
  std::string out = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0:.0f}\" height=\"{1:.0f}\" "
      "viewBox=\"0 0 {0:.0f} {1:.0f}\" role=\"img\" aria-label=\"2-D projection of the "
      "items\">\n<rect x=\"0.5\" y=\"0.5\" width=\"{2:.0f}\" height=\"{2:.0f}\" fill=\"#fff\" "
      "stroke=\"#ccc\"/>\n",
      plot + legend_w, height, plot - 1);
  double lo_x = 0, hi_x = 0, lo_y = 0, hi_y = 0;
  for (size_t i = 0; i < c.projection.size(); ++i) {
    auto [x, y] = c.projection[i];
    lo_x = i ? std::min<double>(lo_x, x) : x;
    hi_x = i ? std::max<double>(hi_x, x) : x;
    lo_y = i ? std::min<double>(lo_y, y) : y;
    hi_y = i ? std::max<double>(hi_y, y) : y;
  }
  double span = std::max(hi_x - lo_x, hi_y - lo_y);
  double scale = span > 0 ? (plot - 2 * pad) / span : 0;
  // Centre the cloud: the shorter axis gets the slack on both sides.
  double off_x = pad + ((plot - 2 * pad) - scale * (hi_x - lo_x)) / 2;
  double off_y = pad + ((plot - 2 * pad) - scale * (hi_y - lo_y)) / 2;
  for (const Cluster& cl : c.clusters) {
    std::string color = cluster_color(cl.id), label = html_escape(cl.label);
    for (size_t i : cl.members) {
      auto [x, y] = c.projection[i];
      out += fmt::format(
          "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.5\" fill=\"{}\" fill-opacity=\"0.75\">"
          "<title>{} (cluster {}: {})</title></circle>\n",
          off_x + scale * (x - lo_x), plot - off_y - scale * (y - lo_y), color,
          html_escape(items[i].id), cl.id, label);
    }
  }
  for (size_t r = 0; r < c.clusters.size(); ++r) {
    const Cluster& cl = c.clusters[r];
    double y = 24.0 + 20.0 * static_cast<double>(r);
    out += fmt::format(
        "<rect x=\"{:.0f}\" y=\"{:.0f}\" width=\"12\" height=\"12\" rx=\"2\" fill=\"{}\"/>"
        "<text x=\"{:.0f}\" y=\"{:.0f}\">{} {} ({})</text>\n",
        plot + 16, y - 10, cluster_color(cl.id), plot + 34, y, cl.id,
        html_escape(truncate_utf8(cl.label, kLabelChars)), cl.members.size());
  }
  return out + "</svg>\n";
}

// Horizontal bars, one per cluster, largest first (the clusters' own order).
std::string sizes_svg(const Clustering& c) {
  const double label_w = 340, bar_w = 480, row = 22;
  size_t largest = 1;
  for (const Cluster& cl : c.clusters) largest = std::max(largest, cl.members.size());
  double width = label_w + bar_w + 60, height = row * c.clusters.size() + 8;
  std::string out = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0:.0f}\" height=\"{1:.0f}\" "
      "viewBox=\"0 0 {0:.0f} {1:.0f}\" role=\"img\" aria-label=\"cluster sizes\">\n",
      width, height);
  for (size_t r = 0; r < c.clusters.size(); ++r) {
    const Cluster& cl = c.clusters[r];
    double y = 4 + row * static_cast<double>(r);
    double w = bar_w * static_cast<double>(cl.members.size()) / static_cast<double>(largest);
    out += fmt::format(
        "<text x=\"{:.0f}\" y=\"{:.0f}\" text-anchor=\"end\">{} {}</text>"
        "<rect x=\"{:.0f}\" y=\"{:.0f}\" width=\"{:.1f}\" height=\"{:.0f}\" fill=\"{}\"/>"
        "<text x=\"{:.1f}\" y=\"{:.0f}\">{}</text>\n",
        label_w - 8, y + 15, cl.id, html_escape(truncate_utf8(cl.label, kLabelChars)), label_w,
        y + 3, std::max(w, 1.0), row - 6, cluster_color(cl.id), label_w + std::max(w, 1.0) + 6,
        y + 15, cl.members.size());
  }
  return out + "</svg>\n";
}

std::string purity_text(const Cluster& cl, const std::vector<ReportItem>& items) {
  auto [cat, cat_share] = top_share(cl, items, &ReportItem::category);
  auto [type, type_share] = top_share(cl, items, &ReportItem::failure_type);
  std::string out = fmt::format("{:.0f}% {}, {:.0f}% {}", 100 * cat_share, cat.empty() ? "(none)" : cat,
                                100 * type_share, type.empty() ? "(none)" : type);
  if (has_reference(items)) {
    auto [ref, ref_share] = top_share(cl, items, &ReportItem::reference);
    out += fmt::format(", {:.0f}% reference {}", 100 * ref_share, ref);
  }
  return out;
}

std::string member_list_html(const char* title, const std::vector<size_t>& list,
                             const std::vector<ReportItem>& items) {
  if (list.empty()) return "";
  std::string out = fmt::format("<h4>{}</h4>\n<ol>\n", title);
  for (size_t i : list) {
    const ReportItem& it = items[i];
    out += fmt::format("<li><div class=\"meta\">{}", html_escape(it.id));
    if (!it.category.empty()) out += " &middot; " + html_escape(it.category);
    if (!it.failure_type.empty()) out += " &middot; " + html_escape(it.failure_type);
    out += fmt::format("</div><pre>{}</pre></li>\n", html_escape(truncate_utf8(it.text, kTextChars)));
  }
  return out + "</ol>\n";
}

std::string cluster_section_html(const Cluster& cl, const std::vector<ReportItem>& items,
                                 size_t n_items) {
  std::string out = fmt::format(
      "<section id=\"cluster-{0}\">\n<h3><span class=\"swatch\" style=\"background:{1}\">"
      "</span>{0}. {2}</h3>\n<p>{3} items ({4:.1f}%), silhouette {5:.3f}</p>\n",
      cl.id, cluster_color(cl.id), html_escape(cl.label), cl.members.size(),
      share(cl.members.size(), n_items), cl.silhouette);
  out += "<p class=\"purity\">" + html_escape(purity_text(cl, items)) + "</p>\n";
  if (!cl.top_terms.empty()) {
    out += "<p class=\"terms\">Terms:";
    for (const auto& [term, score] : cl.top_terms) {
      out += fmt::format(" <code>{}</code> {:.3f}", html_escape(term), score);
    }
    out += "</p>\n";
  }
  out += "<table><tr><th>Failure type</th><th>Items</th></tr>\n";
  for (const auto& [type, count] : failure_types(cl, items)) {
    out += fmt::format("<tr><td>{}</td><td class=\"n\">{}</td></tr>\n", html_escape(type), count);
  }
  out += "</table>\n";
  out += member_list_html("Representatives", cl.representatives, items);
  out += member_list_html("Borderline (nearest another cluster)", cl.borderline, items);
  return out + "</section>\n";
}

}  // namespace

std::string cluster_report_markdown(const Clustering& c, const std::vector<ReportItem>& items,
                                    const std::string& title) {
  check_items(c, items, "cluster_report_markdown");
  size_t n = items.size();
  std::string out = fmt::format("# {}\n\n{} items in {} clusters, mean silhouette {:.3f}; {}.\n\n",
                                md_escape(title), n, c.clusters.size(), c.silhouette,
                                md_escape(quality_line(c, items)));
  out += "| Cluster | Label | Size | Share | Silhouette | Purity |\n";
  out += "|---:|---|---:|---:|---:|---|\n";
  for (const Cluster& cl : c.clusters) {
    out += fmt::format("| {} | {} | {} | {:.1f}% | {:.3f} | {} |\n", cl.id, md_escape(cl.label),
                       cl.members.size(), share(cl.members.size(), n), cl.silhouette,
                       md_escape(purity_text(cl, items)));
  }
  for (const Cluster& cl : c.clusters) {
    out += fmt::format("\n## Cluster {}: {}\n\n{} items ({:.1f}%), silhouette {:.3f}.\n\n", cl.id,
                       md_escape(cl.label), cl.members.size(), share(cl.members.size(), n),
                       cl.silhouette);
    if (!cl.top_terms.empty()) {
      out += "Terms:";
      for (const auto& [term, score] : cl.top_terms) {
        out += fmt::format(" {} ({:.3f}),", md_escape(term), score);
      }
      out.back() = '\n';
      out += '\n';
    }
    out += "Failure types:";
    for (const auto& [type, count] : failure_types(cl, items)) {
      out += fmt::format(" {} {},", md_escape(type), count);
    }
    out.back() = '\n';
    for (auto [title, list] : {std::pair{"Representatives", &cl.representatives},
                               {"Borderline (nearest another cluster)", &cl.borderline}}) {
      if (!list->empty()) out += fmt::format("\n{}:\n\n", title);
      for (size_t i : *list) {
        const ReportItem& it = items[i];
        std::string meta = md_escape(it.id);
        if (!it.category.empty()) meta += ", " + md_escape(it.category);
        if (!it.failure_type.empty()) meta += ", " + md_escape(it.failure_type);
        out += fmt::format("- **{}**: {}\n", meta, md_escape(truncate_utf8(it.text, kTextChars)));
      }
    }
  }
  return out;
}

std::string cluster_report_html(const Clustering& c, const std::vector<ReportItem>& items,
                                const std::string& title) {
  check_items(c, items, "cluster_report_html");
  if (!c.projection.empty() && c.projection.size() != items.size()) {
    fail("cluster_report_html: {} projected points for {} items", c.projection.size(),
         items.size());
  }
  size_t n = items.size();
  std::string sizes;
  for (const Cluster& cl : c.clusters)
    sizes += fmt::format("{}{}", sizes.empty() ? "" : ", ", cl.members.size());
  std::string out = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<title>{0}</title>\n<style>{1}</style>\n</head>\n<body>\n<h1>{0}</h1>\n"
      "<p class=\"summary\">{2} items in <b>{3}</b> clusters &middot; mean silhouette "
      "<b>{4:.3f}</b> &middot; sizes {5}</p>\n<p class=\"summary quality\">{6}</p>\n",
      html_escape(title), kStyle, n, c.clusters.size(), c.silhouette, sizes,
      html_escape(quality_line(c, items)));
  if (total_members(c) != n) {
    out += fmt::format("<p class=\"summary\">{} items belong to no cluster.</p>\n",
                       n - std::min(n, total_members(c)));
  }
  out += "<h2>Map</h2>\n";
  if (c.projection.empty()) {
    out += "<p class=\"summary\">No projection was computed.</p>\n";
  } else {
    out +=
        "<p class=\"summary\">Items projected onto their two principal components; hover "
        "a point for its id.</p>\n" +
        scatter_svg(c, items);
  }
  out += "<h2>Cluster sizes</h2>\n" + sizes_svg(c) + "<h2>Clusters</h2>\n";
  for (const Cluster& cl : c.clusters) out += cluster_section_html(cl, items, n);
  return out + "</body>\n</html>\n";
}

std::vector<nlohmann::json> clusters_to_json(const Clustering& c,
                                             const std::vector<ReportItem>& items) {
  check_items(c, items, "clusters_to_json");
  std::vector<nlohmann::json> out;
  for (const Cluster& cl : c.clusters) {
    nlohmann::json terms = nlohmann::json::array(), reps = nlohmann::json::array(),
                   members = nlohmann::json::array(), types = nlohmann::json::object();
    for (const auto& [term, score] : cl.top_terms) terms.push_back({term, score});
    nlohmann::json border = nlohmann::json::array();
    for (size_t i : cl.representatives) reps.push_back(items[i].id);
    for (size_t i : cl.borderline) border.push_back(items[i].id);
    for (size_t i : cl.members) members.push_back(items[i].id);
    for (const auto& [type, count] : failure_types(cl, items)) types[type] = count;
    out.push_back({{"cluster", cl.id},
                   {"label", cl.label},
                   {"size", cl.members.size()},
                   {"silhouette", cl.silhouette},
                   {"terms", std::move(terms)},
                   {"representatives", std::move(reps)},
                   {"members", std::move(members)},
                   {"borderline", std::move(border)},
                   {"group", cl.group},
                   {"failure_types", std::move(types)}});
  }
  return out;
}

}  // namespace cogumi
