// cogumi/data: one teacher endpoint read from a YAML mapping, for configs that embed endpoints
// (the pipeline's `data:` block) rather than naming a teachers file (data/teacher.h's
// load_teacher_config). Same fields, same checks, errors naming FILE:LINE and the key.
#pragma once

#include <filesystem>
#include <string>

#include "data/teacher.h"

namespace YAML {
class Node;
}

namespace cogumi {

// `n`: a mapping of TeacherEndpoint fields (base_url, model, api, api_key_env, ca_file, template,
// concurrency, rate_limit, max_retries, backoff_s, backoff_max_s, timeout_s, max_tokens,
// temperature, name). Relative template/CA paths resolve against `file`'s directory.
TeacherEndpoint teacher_endpoint_from_yaml(const YAML::Node& n, const std::filesystem::path& file, const std::string& key);

}  // namespace cogumi
