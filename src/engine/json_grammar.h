// cogumi/engine: GBNF grammars that keep an answer valid JSON, for llama.cpp's grammar sampler
// (GenRequest::grammar). The JSON-Schema converter is llama.cpp's own
// (common/json-schema-to-grammar.cpp), compiled from the pinned source, not copied.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace cogumi {

// Both allow one space before the JSON (a model's first token often carries it).
// Any JSON object.
std::string json_object_grammar();
// JSON that validates against `schema` (types, properties/required, enum/const, arrays with
// item schemas and bounds, anyOf/oneOf/allOf, $ref to $defs, string patterns and formats).
// Throws Error with the converter's reason for a schema it cannot express.
std::string json_schema_grammar(const nlohmann::json& schema);

}  // namespace cogumi
