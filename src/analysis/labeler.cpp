#include "analysis/labeler.h"

namespace cogumi {

std::string llm_label(const LabelerOptions& o, const std::vector<std::string>& examples,
                      const std::vector<std::string>& terms) {
  std::string prompt = "These problems were all answered wrongly by a model. Give a short label (3 to 6 words) for "
                       "what they have in common. Reply with the label only.\n\nDistinctive terms: ";
  for (size_t i = 0; i < terms.size(); ++i) prompt += (i ? ", " : "") + terms[i];
  prompt += "\n\nExamples:\n";
  for (const auto& e : examples) prompt += "- " + (e.size() > 400 ? e.substr(0, 400) + "..." : e) + "\n";
  std::string label = openai_chat(o, nlohmann::json::array({{{"role", "user"}, {"content", prompt}}}), 24);
  while (!label.empty() && (label.back() == '\n' || label.back() == ' ' || label.back() == '.')) label.pop_back();
  size_t a = label.find_first_not_of(" \n\"");
  return a == std::string::npos ? "" : label.substr(a);
}

}  // namespace cogumi
