// cogumi/serve: the web UI. The files of web/ (plain HTML, CSS and JavaScript, no build step) are
// compiled into the library (embed_web.cmake), so `cogumi serve` serves them from the binary
// alone:
//   GET /             web/index.html      the chat: streaming answers, the router's view per
//                                          answer, override, mode switch, thumbs
//   GET /dashboard    web/dashboard.html  live charts of /metrics
//   GET /NAME         web/NAME            every other file (scripts, styles, icons)
// Responses carry the content type by extension, an ETag (a conditional GET answers 304),
// `Cache-Control: no-cache` (a rebuilt binary's files show at the next load) and a
// Content-Security-Policy allowing only this origin (the pages run no inline script).
#pragma once

#include <span>
#include <string_view>

namespace httplib {
class Server;
}

namespace cogumi {

struct WebAsset {
  std::string_view name;  // the file's name in web/
  std::string_view body;  // its bytes
};

// Every embedded file, sorted by name (generated at build time from web/).
std::span<const WebAsset> web_assets();
// The embedded file `name`, or nullptr.
const WebAsset* find_web_asset(std::string_view name);
// The Content-Type served for a file name, by extension.
std::string_view web_content_type(std::string_view name);

void add_ui_routes(httplib::Server& http);

}  // namespace cogumi
