// cogumi/analysis: failure-cluster reports. Renders a Clustering (see cluster.h) with the
// items it was computed from as Markdown, as one self-contained HTML page (inline CSS and SVG,
// no scripts, nothing fetched) and as JSONL records for other tools.
//
// The renderers only format: they return strings and leave writing to the caller
// (write_file_atomic). Item text is escaped for the target format and long texts are cut at
// a UTF-8 character boundary, so a failure that quotes HTML or Markdown cannot break the page.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "analysis/cluster.h"

namespace cogumi {

struct ReportItem {
  std::string id;
  std::string category;
  std::string failure_type;
  std::string text;
  std::string reference;  // a known label (e.g. the generator's template), shown when set
};

// Title, summary (items, k, mean silhouette), a table of clusters, and per cluster its label,
// terms, size, silhouette, failure-type counts and representatives.
// Throws Error if `items` does not match the clustering (one item per assigned point).
std::string cluster_report_markdown(const Clustering& c, const std::vector<ReportItem>& items,
                                    const std::string& title);

// Self-contained HTML: title, summary (k, silhouette, sizes), an inline SVG scatter of
// `c.projection` coloured by cluster (one <circle> per item) with a legend, a bar chart of
// cluster sizes, and per cluster its label, terms, size, failure-type counts and its
// representatives' texts (HTML-escaped, truncated to ~400 characters).
// Throws Error if `items` does not match the clustering.
std::string cluster_report_html(const Clustering& c, const std::vector<ReportItem>& items,
                                const std::string& title);

// One object per cluster, for a JSONL file:
// {"cluster":id,"label":...,"size":n,"silhouette":s,"terms":[[t,score],...],
//  "representatives":[item ids...],"members":[item ids...],"failure_types":{type:count}}
// Throws Error if `items` does not match the clustering.
std::vector<nlohmann::json> clusters_to_json(const Clustering& c,
                                             const std::vector<ReportItem>& items);

}  // namespace cogumi
