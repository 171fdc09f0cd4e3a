#include "engine/json_grammar.h"

#include <json-schema-to-grammar.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.h"

namespace cogumi {

namespace {

// JSON text may start with whitespace (RFC 8259: ws value ws), and a model's first token often
// carries it: the nano writes ' {"name": ...' as ' {"' + ..., and forced to a bare '{' first it
// derailed ('{"}} return not' + spaces until max_tokens). The converter's root rule becomes
// cogumi-json-root, and root allows one leading space before it (a $ref "#" to root stays valid JSON).
std::string allow_leading_space(const std::string& gbnf) {
  const std::string def = "root ::=";
  const size_t at = gbnf.rfind(def, 0) == 0 ? 0 : gbnf.find("\n" + def);
  if (at == std::string::npos) fail("internal: the JSON grammar has no root rule");
  const size_t name = at == 0 ? 0 : at + 1;
  std::string body = "cogumi-json-root";  // a name no rule of the converter's has ($defs keys become rule names)
  while (gbnf.find(body + " ::=") != std::string::npos) body += "-x";
  return "root ::= \" \"? " + body + "\n" + gbnf.substr(0, name) + body + " ::=" + gbnf.substr(name + def.size());
}

// The converter lets JSON put a newline and up to 20 spaces or tabs between any two tokens, and a small model
// greedily spends its token budget there: the nano base forced to call a tool wrote '{"arguments"\n\n :\n\n' +
// 20 spaces ... and ran out of 100 tokens before the call closed. Between tokens one optional space is enough
// for valid (compact) JSON, so the converter's whitespace rule becomes that.
std::string compact_whitespace(std::string gbnf) {
  const std::string def = "space ::= ";
  size_t at = gbnf.rfind(def, 0) == 0 ? 0 : gbnf.find("\n" + def);
  if (at == std::string::npos) return gbnf;  // no objects or arrays: no whitespace rule
  if (at != 0) ++at;
  const size_t end = gbnf.find('\n', at);
  gbnf.replace(at, (end == std::string::npos ? gbnf.size() : end) - at, def + "\" \"?");
  return gbnf;
}

}  // namespace

std::string json_object_grammar() {
  static const std::string g = json_schema_grammar({{"type", "object"}});
  return g;
}

std::string json_schema_grammar(const nlohmann::json& schema) {
  if (!schema.is_object() && !schema.is_boolean()) fail("a JSON schema must be an object, got {}", schema.type_name());
  try {
    return allow_leading_space(
        compact_whitespace(json_schema_to_grammar(common_json::parse(schema.dump()), /*force_gbnf=*/true)));
  } catch (const std::exception& e) {
    std::string why = e.what();
    const std::string lead = "JSON schema conversion failed:\n";
    if (why.rfind(lead, 0) == 0) why = why.substr(lead.size());
    while (!why.empty() && why.back() == '\n') why.pop_back();
    fail("{}", why);
  }
}

}  // namespace cogumi
