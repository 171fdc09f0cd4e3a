// One HTTP exchange with a teacher endpoint (data/teacher.h): cpp-httplib, built with OpenSSL.
#ifdef COGUMI_HAVE_HTTPLIB
#include <httplib.h>
#endif

#include <optional>

#include "core/error.h"
#include "data/teacher.h"

namespace cogumi {

HttpReply teacher_post(const TeacherEndpoint& ep, const std::string& api_key, const std::string& path,
                       const std::string& payload) {
#ifndef COGUMI_HAVE_HTTPLIB
  (void)api_key, (void)path, (void)payload;
  fail("this build of cogumi has no HTTP client (cpp-httplib); cannot reach '{}'", ep.base_url);
#else
  const std::string& url = ep.base_url;
  const size_t scheme = url.find("://");
  const size_t path_at = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  const std::string host = path_at == std::string::npos ? url : url.substr(0, path_at);
  std::string prefix = path_at == std::string::npos ? "" : url.substr(path_at);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  std::optional<httplib::Client> client;
  try {
    client.emplace(host);
  } catch (const std::exception& e) {
    fail("tier '{}': base_url '{}': {}", ep.name, url, e.what());
  }
  httplib::Client& cli = *client;
  const auto ms = std::chrono::milliseconds(int64_t(ep.timeout_s * 1000));
  cli.set_connection_timeout(ms);
  cli.set_read_timeout(ms);
  cli.set_write_timeout(ms);
  if (!ep.ca_file.empty()) cli.set_ca_cert_path(ep.ca_file);
  cli.enable_server_certificate_verification(true);
  httplib::Headers headers;
  if (!api_key.empty()) headers.emplace("Authorization", "Bearer " + api_key);
  auto res = cli.Post(prefix + path, headers, payload, "application/json");
  HttpReply r;
  if (!res) {
    const auto err = res.error();
    r.transport_error = httplib::to_string(err);
    r.tls_error = err == httplib::Error::SSLConnection || err == httplib::Error::SSLLoadingCerts ||
                  err == httplib::Error::SSLServerVerification;
    return r;
  }
  r.status = res->status;
  r.body = std::move(res->body);
  if (res->has_header("Retry-After")) {
    const std::string v = res->get_header_value("Retry-After");
    char* end = nullptr;
    const double s = std::strtod(v.c_str(), &end);
    if (end != v.c_str() && s >= 0 && s < 86400) r.retry_after_s = s;  // an HTTP date is ignored
  }
  return r;
#endif
}

}  // namespace cogumi
