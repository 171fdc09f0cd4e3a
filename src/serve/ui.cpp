#include "serve/ui.h"

#include <fmt/format.h>
#include <httplib.h>

#include <string>

#include "core/hash.h"

namespace cogumi {
namespace {

constexpr std::string_view kCsp =
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

std::string etag_of(std::string_view body) {
  return fmt::format("\"{:016x}-{}\"", fnv1a(body), body.size());
}

// httplib matches routes as regular expressions: escape the file name's dots.
std::string route_of(std::string_view name) {
  std::string out = "/";
  for (char c : name) {
    if (c == '.' || c == '-') out += '\\';
    out += c;
  }
  return out;
}

void serve_asset(const WebAsset& a, const httplib::Request& req, httplib::Response& res) {
  const std::string etag = etag_of(a.body);
  res.set_header("ETag", etag);
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Content-Security-Policy", std::string(kCsp));
  if (req.get_header_value("If-None-Match") == etag) {
    res.status = 304;
    return;
  }
  res.status = 200;
  res.set_content(std::string(a.body), std::string(web_content_type(a.name)));
}

}  // namespace

const WebAsset* find_web_asset(std::string_view name) {
  for (const WebAsset& a : web_assets())
    if (a.name == name) return &a;
  return nullptr;
}

std::string_view web_content_type(std::string_view name) {
  auto ends = [&](std::string_view ext) {
    return name.size() >= ext.size() && name.substr(name.size() - ext.size()) == ext;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".json")) return "application/json";
  return "application/octet-stream";
}

void add_ui_routes(httplib::Server& http) {
  auto page = [&http](const std::string& route, std::string_view file) {
    const WebAsset* a = find_web_asset(file);
    if (!a) return;  // checked by the tests: every page ships
    http.Get(route, [a](const httplib::Request& req, httplib::Response& res) {
      serve_asset(*a, req, res);
    });
  };
  page("/", "index.html");
  page("/dashboard", "dashboard.html");
  for (const WebAsset& a : web_assets()) page(route_of(a.name), a.name);
}

}  // namespace cogumi
