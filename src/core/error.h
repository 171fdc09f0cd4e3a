// cogumi/core: the one error type that crosses module boundaries.
//
// Expected failures (bad input, missing file, model too large for the context) throw
// cogumi::Error. The message names the file, line or field at fault; the command boundary
// (apps/cogumi) prints it and maps it to exit code 1. Bugs are not Errors: they assert.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace cogumi {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// Throws Error with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace cogumi
