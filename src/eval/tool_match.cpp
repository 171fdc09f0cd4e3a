// Tool-call matching with BFCL's AST checker rules (berkeley-function-call-leaderboard,
// bfcl/eval_checker/ast_eval/ast_checker.py), on calls that arrive as JSON:
//   - ground truth: [{func_name: {param: [accepted values...]}}]; "" among the accepted values
//     makes the parameter optional;
//   - a parameter must be declared by the function and named by the ground truth; the function's
//     required parameters must be given;
//   - types follow the function's declared type: an int is accepted where a float is declared;
//     when the accepted values have another type than the declared one (BFCL's "variable"
//     answers) a value of the answers' type is accepted; JSON has one number type, so an
//     integral number (10.0) is an integer, as JSON Schema says;
//   - strings compare after BFCL's standardization (drop " ,./-_*^", lowercase, ' -> ");
//     lists compare element-wise with their string elements standardized; a dict parameter's
//     accepted values are dicts whose keys list accepted values (a value that is itself a list,
//     such as a hand of cards, is one accepted value); a list of dicts matches dict by dict;
//     anything else compares by value (1 == 1.0);
//   - parallel calls: every expected call matches a distinct produced call, in any order, found
//     as a bipartite matching (BFCL's own loop is first-fit, which can miss a valid pairing).
#include <algorithm>
#include <cmath>
#include <functional>

#include <fmt/format.h>

#include "eval/score.h"

namespace cogumi {

namespace {

struct Call {
  std::string name;
  json args;
};

// One produced call, from the shapes models write: {"name","arguments"|"parameters"},
// {"function": {...}} (OpenAI tool_calls), or {func_name: {args}}.
bool parse_call(const json& c, size_t i, Call* out, std::string* why) {
  if (!c.is_object()) {
    *why = fmt::format("call {} is {}, not an object", i, c.type_name());
    return false;
  }
  const json& call = c.contains("function") && c["function"].is_object() ? c["function"] : c;
  if (call.contains("name")) {
    const json& name = call["name"];
    if (!name.is_string()) {
      *why = fmt::format("call {}: 'name' must be a string, got {}", i, name.dump());
      return false;
    }
    out->name = name.get<std::string>();
    auto a = call.find("arguments");
    if (a == call.end()) a = call.find("parameters");
    out->args = a == call.end() ? json::object() : *a;
    if (out->args.is_string()) {
      out->args = json::parse(out->args.get<std::string>(), nullptr, false);
      if (out->args.is_discarded()) {
        *why = fmt::format("call {} ('{}'): 'arguments' is a string that is not JSON", i, out->name);
        return false;
      }
    }
    if (!out->args.is_object()) {
      *why = fmt::format("call {} ('{}'): arguments must be an object, got {}", i, out->name, out->args.type_name());
      return false;
    }
    return true;
  }
  if (call.size() == 1 && call.begin().value().is_object()) {
    out->name = call.begin().key();
    out->args = call.begin().value();
    return true;
  }
  *why = fmt::format("call {} has no 'name'", i);
  return false;
}

bool parse_calls(const json& j, std::vector<Call>* out, std::string* why) {
  const json* list = &j;
  if (j.is_object() && j.contains("tool_calls")) {
    list = &j["tool_calls"];
    if (!list->is_array()) {
      *why = "'tool_calls' must be a list";
      return false;
    }
  }
  if (!list->is_array()) {
    out->emplace_back();
    return parse_call(*list, 0, &out->back(), why);
  }
  for (size_t i = 0; i < list->size(); ++i) {
    out->emplace_back();
    if (!parse_call((*list)[i], i, &out->back(), why)) return false;
  }
  return true;
}

// BFCL's standardize_string.
std::string standardize(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == ' ' || c == ',' || c == '.' || c == '/' || c == '-' || c == '_' || c == '*' || c == '^') continue;
    out += c == '\'' ? '"' : char(std::tolower(c));
  }
  return out;
}

json standardized(const json& v) { return v.is_string() ? json(standardize(v.get<std::string>())) : v; }

// A list with its string elements standardized (one level, as BFCL's list_checker).
json standardized_list(const json& v) {
  if (!v.is_array()) return standardized(v);
  json out = json::array();
  for (const auto& x : v) out.push_back(standardized(x));
  return out;
}

bool is_optional_marker(const json& x) { return x.is_string() && x.get<std::string>().empty(); }

bool optional(const json& accepted) {
  return accepted.is_array() && std::any_of(accepted.begin(), accepted.end(), is_optional_marker);
}

// Accepted values of a parameter: the ground truth lists them; a bare value is the only one.
json accepted_list(const json& accepted) { return accepted.is_array() ? accepted : json::array({accepted}); }

enum class PType { kAny, kString, kInteger, kFloat, kBoolean, kArray, kDict };

PType param_type(const json* spec) {
  if (!spec || !spec->is_object() || !spec->contains("type") || !(*spec)["type"].is_string()) return PType::kAny;
  const std::string t = (*spec)["type"].get<std::string>();
  if (t == "string") return PType::kString;
  if (t == "integer" || t == "int") return PType::kInteger;
  if (t == "float" || t == "number") return PType::kFloat;
  if (t == "boolean" || t == "bool") return PType::kBoolean;
  if (t == "array" || t == "tuple" || t == "list") return PType::kArray;
  if (t == "dict" || t == "object") return PType::kDict;
  return PType::kAny;
}

bool has_type(const json& v, PType t) {
  switch (t) {
    case PType::kAny: return true;
    case PType::kString: return v.is_string();
    case PType::kInteger:
      return v.is_number_integer() || (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>());
    case PType::kFloat: return v.is_number();
    case PType::kBoolean: return v.is_boolean();
    case PType::kArray: return v.is_array();
    case PType::kDict: return v.is_object();
  }
  return false;
}

bool same_json_kind(const json& a, const json& b) {
  return (a.is_number() && b.is_number()) || a.type() == b.type();
}

// BFCL's dict_checker: `got` against each accepted dict until one fits.
bool dict_matches(const json& got, const json& accepted, std::string* why) {
  *why = "no accepted value";
  for (const auto& cand : accepted_list(accepted)) {
    if (is_optional_marker(cand)) continue;
    if (!cand.is_object()) {
      *why = "ground truth value is not a dict";
      continue;
    }
    bool ok = true;
    for (auto& [k, v] : got.items()) {
      if (!cand.contains(k)) {
        *why = fmt::format("unexpected key '{}'", k);
        ok = false;
        break;
      }
      json sv = standardized(v);
      json want = accepted_list(cand[k]);
      if (!std::any_of(want.begin(), want.end(), [&](const json& x) { return standardized(x) == sv; })) {
        *why = fmt::format("key '{}' = {} not in {}", k, v.dump(), want.dump());
        ok = false;
        break;
      }
    }
    for (auto it = cand.begin(); ok && it != cand.end(); ++it)
      if (!got.contains(it.key()) && !optional(it.value())) {
        *why = fmt::format("missing key '{}'", it.key());
        ok = false;
      }
    if (ok) return true;
  }
  return false;
}

// BFCL's list_dict_checker: same length, dict i against accepted dict i.
bool list_of_dicts_matches(const json& got, const json& accepted, std::string* why) {
  *why = "no accepted value";
  for (const auto& cand : accepted_list(accepted)) {
    if (!cand.is_array()) continue;
    if (cand.size() != got.size()) {
      *why = fmt::format("{} dicts, expected {}", got.size(), cand.size());
      continue;
    }
    bool ok = true;
    for (size_t i = 0; i < got.size() && ok; ++i) {
      std::string sub;
      ok = got[i].is_object() && dict_matches(got[i], json::array({cand[i]}), &sub);
      if (!ok) *why = fmt::format("item {}: {}", i, got[i].is_object() ? sub : "not a dict");
    }
    if (ok) return true;
  }
  return false;
}

// One argument against its accepted values; `spec` is its declaration (may be null).
bool argument_matches(const std::string& k, const json& v, const json& accepted, const json* spec, std::string* why) {
  PType t = param_type(spec);
  json want = accepted_list(accepted);
  bool variable = false;
  if (!has_type(v, t)) {
    auto first = std::find_if(want.begin(), want.end(), [](const json& x) { return !is_optional_marker(x); });
    variable = first != want.end() && !has_type(*first, t) && same_json_kind(v, *first);
    if (!variable) {
      *why = fmt::format("argument '{}' = {} has the wrong type (declared {})", k, v.dump(),
                         spec ? spec->value("type", json("?")).dump() : "?");
      return false;
    }
  }
  std::string sub;
  bool ok;
  if (!variable && v.is_object() && (t == PType::kDict || t == PType::kAny)) {
    ok = dict_matches(v, want, &sub);
  } else if (!variable && v.is_array() && !v.empty() && v[0].is_object() &&
             (t == PType::kArray || t == PType::kAny)) {
    ok = list_of_dicts_matches(v, want, &sub);
  } else if (v.is_array()) {
    json sv = standardized_list(v);
    ok = std::any_of(want.begin(), want.end(), [&](const json& x) { return standardized_list(x) == sv; });
  } else {
    json sv = standardized(v);
    ok = std::any_of(want.begin(), want.end(), [&](const json& x) {
      return !is_optional_marker(x) && standardized(x) == sv;
    });
  }
  if (!ok)
    *why = sub.empty() ? fmt::format("argument '{}' = {} not in {}", k, v.dump(), want.dump())
                       : fmt::format("argument '{}' = {}: {}", k, v.dump(), sub);
  return ok;
}

bool names_match(const std::string& got, const std::string& want) {
  if (got == want) return true;
  std::string w = want;
  std::replace(w.begin(), w.end(), '.', '_');
  return got == w;
}

const json* find_function(const json& functions, const std::string& name) {
  if (functions.is_object()) return functions.value("name", "") == name ? &functions : nullptr;
  if (!functions.is_array()) return nullptr;
  for (const auto& f : functions)
    if (f.is_object() && f.value("name", json()).is_string() && f["name"].get<std::string>() == name) return &f;
  return nullptr;
}

bool call_matches(const Call& c, const std::string& gt_name, const json& gt_args, const json& functions,
                  std::string* why) {
  if (!names_match(c.name, gt_name)) {
    *why = "function '" + c.name + "' instead of '" + gt_name + "'";
    return false;
  }
  const json* fn = find_function(functions, gt_name);
  const json* props = nullptr;
  if (fn && (*fn).contains("parameters") && (*fn)["parameters"].is_object()) {
    const json& params = (*fn)["parameters"];
    if (params.contains("properties") && params["properties"].is_object()) props = &params["properties"];
    if (params.contains("required") && params["required"].is_array())
      for (const auto& r : params["required"])
        if (r.is_string() && !c.args.contains(r.get<std::string>())) {
          *why = "missing argument '" + r.get<std::string>() + "'";
          return false;
        }
  }
  for (auto& [k, v] : c.args.items()) {
    if (!gt_args.contains(k) || (props && !props->contains(k))) {
      *why = "unexpected argument '" + k + "'";
      return false;
    }
    const json* spec = props ? &(*props)[k] : nullptr;
    if (!argument_matches(k, v, gt_args[k], spec, why)) return false;
  }
  for (auto& [k, accepted] : gt_args.items())
    if (!c.args.contains(k) && !optional(accepted)) {
      *why = "missing argument '" + k + "'";
      return false;
    }
  return true;
}

// Kuhn's augmenting paths: expected call i takes produced call j; true if every expected call
// gets a distinct produced one.
bool perfect_matching(const std::vector<std::vector<bool>>& ok, size_t* unmatched) {
  const size_t n = ok.size();
  std::vector<int> owner(n, -1);
  std::vector<bool> seen;
  std::function<bool(size_t)> augment = [&](size_t i) {
    for (size_t j = 0; j < n; ++j) {
      if (!ok[i][j] || seen[j]) continue;
      seen[j] = true;
      if (owner[j] < 0 || augment(size_t(owner[j]))) {
        owner[j] = int(i);
        return true;
      }
    }
    return false;
  };
  for (size_t i = 0; i < n; ++i) {
    seen.assign(n, false);
    if (!augment(i)) {
      *unmatched = i;
      return false;
    }
  }
  return true;
}

}  // namespace

CallMatch check_tool_calls(const json& output, const json& ground_truth, const json& functions, std::string* why) {
  std::string dummy;
  if (!why) why = &dummy;
  std::vector<Call> got;
  if (!parse_calls(output, &got, why)) return CallMatch::kMalformed;
  if (!ground_truth.is_array()) {
    *why = "ground truth is not a list";
    return CallMatch::kMismatch;
  }
  for (const auto& gt : ground_truth)
    if (!gt.is_object() || gt.size() != 1 || !gt.begin().value().is_object()) {
      *why = "malformed ground truth entry " + gt.dump();
      return CallMatch::kMismatch;
    }
  if (got.size() != ground_truth.size()) {
    *why = fmt::format("{} call(s), expected {}", got.size(), ground_truth.size());
    return CallMatch::kMismatch;
  }
  const size_t n = got.size();
  std::vector<std::vector<bool>> ok(n, std::vector<bool>(n));
  std::vector<std::string> first_why(n);
  for (size_t i = 0; i < n; ++i) {
    const auto& gt = *ground_truth[i].begin();
    for (size_t j = 0; j < n; ++j) {
      std::string w;
      ok[i][j] = call_matches(got[j], ground_truth[i].begin().key(), gt, functions, &w);
      // Report the mismatch against a call of the same function when there is one.
      if (!ok[i][j] && (first_why[i].empty() || names_match(got[j].name, ground_truth[i].begin().key()))) first_why[i] = w;
    }
  }
  size_t unmatched = 0;
  if (perfect_matching(ok, &unmatched)) return CallMatch::kMatched;
  const std::string& reason =
      first_why[unmatched].empty() ? "the calls it matches are needed by other expected calls" : first_why[unmatched];
  *why = n == 1 ? reason
                : fmt::format("expected call {} ('{}') matches no remaining call: {}", unmatched,
                              ground_truth[unmatched].begin().key(), reason);
  return CallMatch::kMismatch;
}

bool match_tool_calls(const json& calls, const json& ground_truth, const json& functions, std::string* why) {
  return check_tool_calls(calls, ground_truth, functions, why) == CallMatch::kMatched;
}

}  // namespace cogumi

namespace cogumi {

bool check_call_schema(const json& calls, const json& functions, std::string* why) {
  std::string dummy;
  if (!why) why = &dummy;
  std::vector<Call> got;
  if (!parse_calls(calls, &got, why)) return false;
  for (size_t i = 0; i < got.size(); ++i) {
    const Call& c = got[i];
    const json* fn = nullptr;
    if (functions.is_array())
      for (const auto& f : functions)
        if (f.is_object() && f.value("name", json()).is_string() && names_match(c.name, f["name"].get<std::string>()))
          fn = &f;
    if (!fn) {
      *why = fmt::format("call {}: no function named '{}'", i, c.name);
      return false;
    }
    const json params = fn->value("parameters", json::object());
    const json props = params.is_object() ? params.value("properties", json::object()) : json::object();
    if (params.is_object() && params.contains("required") && params["required"].is_array())
      for (const auto& r : params["required"])
        if (r.is_string() && !c.args.contains(r.get<std::string>())) {
          *why = fmt::format("call {} ('{}'): missing required argument '{}'", i, c.name, r.get<std::string>());
          return false;
        }
    for (auto& [k, v] : c.args.items()) {
      if (!props.is_object() || !props.contains(k)) {
        *why = fmt::format("call {} ('{}'): argument '{}' is not declared", i, c.name, k);
        return false;
      }
      if (!has_type(v, param_type(&props[k]))) {
        *why = fmt::format("call {} ('{}'): argument '{}' = {} is not of the declared type {}", i, c.name, k, v.dump(),
                           props[k].value("type", json("?")).dump());
        return false;
      }
    }
  }
  if (got.empty()) {
    *why = "no call";
    return false;
  }
  return true;
}

}  // namespace cogumi
