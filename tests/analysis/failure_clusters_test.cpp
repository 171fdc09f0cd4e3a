// `cogumi failures cluster` end to end on a run directory without a model (text and failure
// type only): grouping by benchmark, scoring against a reference file the clusterer never
// reads, LLM labels from a real local HTTP server (python3's http.server) with the API key
// taken from the environment variable the options name.
#include "analysis/failure_clusters.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "core/io.h"

namespace cogumi {
namespace {

// A one-file OpenAI-compatible endpoint: answers every chat request with a label that quotes
// the Authorization header it got, so the test sees which key was sent.
const char* kServer = R"PY(
import http.server, json, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
        assert self.path == '/v1/chat/completions', self.path
        text = 'Label ' + (self.headers.get('Authorization') or 'none')
        out = json.dumps({'choices': [{'message': {'role': 'assistant', 'content': text}}]}).encode()
        self.send_response(200); self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(out))); self.end_headers(); self.wfile.write(out)
    def log_message(self, *a): pass
s = http.server.HTTPServer(('127.0.0.1', 0), H)
open(sys.argv[1] + '.tmp', 'w').write(str(s.server_address[1]))
os.replace(sys.argv[1] + '.tmp', sys.argv[1])  # whole: the test reads it as soon as it exists
s.serve_forever()
)PY";

struct Server {
  pid_t pid = -1;
  int port = 0;
  explicit Server(const fs::path& dir) {
    write_file_atomic(dir / "server.py", kServer);
    fs::path port_file = dir / "port";
    std::string cmd = fmt::format("python3 '{}' '{}' >/dev/null 2>&1 & echo $!",
                                  (dir / "server.py").string(), port_file.string());
    FILE* f = popen(cmd.c_str(), "r");
    if (f && fscanf(f, "%d", &pid) != 1) pid = -1;
    if (f) pclose(f);
    // up to 20 s: the suite runs beside heavy tests, and python3 may start slowly then
    for (int i = 0; i < 400 && !fs::exists(port_file); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (fs::exists(port_file)) port = std::atoi(read_file(port_file).c_str());
  }
  ~Server() {
    if (pid > 0) kill(pid, SIGTERM);
  }
};

// Two benchmarks, two templates each, as a run's items.jsonl (plus correct items, ignored).
fs::path write_run(const fs::path& dir) {
  fs::create_directories(dir / "run");
  std::string items, ref;
  for (int i = 0; i < 80; ++i) {
    int t = i % 4;
    std::string id = fmt::format("item-{}", i);
    json j = {{"id", id}, {"correct", false}, {"sample", 0}};
    if (t == 0)
      j.update(
          {{"benchmark", "gsm8k"},
           {"category", "test"},
           {"question", fmt::format("Ann sells {} pens for 3 dollars each. How many dollars?", i)},
           {"output", "#### 3"},
           {"reference", fmt::format("{} * 3 = {}\n#### {}", i, 3 * i, 3 * i)},
           {"failure_type", "wrong_answer"}});
    if (t == 1)
      j.update({{"benchmark", "gsm8k"},
                {"category", "test"},
                {"question",
                 fmt::format("Bob shares {} cards equally among 2 friends. How many each?", 2 * i)},
                {"output", ""},
                {"reference", fmt::format("{} / 2 = {}\n#### {}", 2 * i, i, i)},
                {"failure_type", "no_answer"}});
    if (t == 2)
      j.update({{"benchmark", "bfcl"},
                {"category", "test"},
                {"question", fmt::format("What is the weather in city {}?", i)},
                {"output", "{\"name\": \"set_timer\"}"},
                {"reference", "[{\"get_weather\": {\"city\": [\"x\"]}}]"},
                {"failure_type", "wrong_answer"}});
    if (t == 3)
      j.update({{"benchmark", "bfcl"},
                {"category", "test"},
                {"question", fmt::format("Set a timer for {} minutes.", i)},
                {"output", "{\"name\": \"set_timer\", \"arg"},
                {"reference", "[{\"set_timer\": {\"minutes\": [5]}}]"},
                {"failure_type", "malformed_json"}});
    items += j.dump() + "\n";
    ref += json{{"id", id}, {"template", fmt::format("t{}", t)}}.dump() + "\n";
  }
  items +=
      json{{"id", "ok-1"}, {"correct", true}, {"benchmark", "gsm8k"}, {"question", "fine"}}.dump() +
      "\n";
  write_file_atomic(dir / "run" / "items.jsonl", items);
  write_file_atomic(dir / "templates.jsonl", ref);
  return dir / "run";
}

TEST(FailureClusters, TextOnlyRunIsScoredAgainstTheReferenceAndLabelledByTheEndpoint) {
  fs::path dir = fs::temp_directory_path() / fmt::format("cogumi-fc-{}", ::getpid());
  fs::remove_all(dir);
  FailureClusterOptions o;
  o.run = write_run(dir);
  o.out_dir = dir / "out";
  o.features.w_embed = 0;  // no model
  o.reference = dir / "templates.jsonl";
  o.progress = false;
  Server server(dir);
  ASSERT_GT(server.port, 0) << "python3 could not start the local endpoint";
  o.labeler.base_url = fmt::format("http://127.0.0.1:{}/v1", server.port);
  o.labeler_key_env = "COGUMI_TEST_LABELER_KEY";
  ::unsetenv("COGUMI_TEST_LABELER_KEY");
  EXPECT_THROW(cluster_failures(o), Error);  // the named variable is missing: said, not ignored
  ::setenv("COGUMI_TEST_LABELER_KEY", "sk-test-17", 1);

  FailureClusterResult r = cluster_failures(o);
  EXPECT_EQ(r.n_failures, 80u);
  EXPECT_EQ(r.clustering.k, 4);
  EXPECT_NEAR(r.summary["reference"]["purity"].get<double>(), 1.0, 1e-12);
  EXPECT_NEAR(r.summary["reference"]["ari"].get<double>(), 1.0, 1e-12);
  EXPECT_NEAR(r.summary["purity_category"].get<double>(), 1.0, 1e-12);
  EXPECT_NEAR(r.summary["largest_share"].get<double>(), 0.25, 1e-12);
  for (const Cluster& cl : r.clustering.clusters) {
    EXPECT_TRUE(cl.group == "gsm8k" || cl.group == "bfcl")
        << cl.group;  // the benchmark, not "test"
    EXPECT_EQ(cl.label, cl.group + ": Label Bearer sk-test-17");
  }
  for (const char* f : {"clusters.jsonl", "summary.json", "report.md", "report.html"})
    EXPECT_TRUE(fs::exists(o.out_dir / f)) << f;
  EXPECT_NE(read_file(o.out_dir / "report.md").find("purity by reference label 1.00"),
            std::string::npos);

  // A failure the reference does not know is an error naming it, not a silent gap.
  write_file_atomic(dir / "templates.jsonl",
                    json{{"id", "item-0"}, {"template", "t0"}}.dump() + "\n");
  o.labeler.base_url.clear();
  try {
    cluster_failures(o);
    ADD_FAILURE() << "an incomplete reference was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("item-1"), std::string::npos) << e.what();
  }
  // A model is needed exactly when the embeddings have weight.
  o.features.w_embed = 1;
  EXPECT_THROW(cluster_failures(o), Error);
  fs::remove_all(dir);
}

TEST(FailureClusters, HttpsEndpointsReachTheNetworkLayer) {
  // https:// must get as far as connecting (refused here), not be rejected as a scheme this build
  // cannot speak: cpp-httplib is built with OpenSSL.
  OpenAIEndpoint ep;
  ep.base_url = "https://127.0.0.1:9/v1";
  ep.timeout_s = 2;
  try {
    openai_chat(ep, json::array({{{"role", "user"}, {"content", "hi"}}}), 4);
    ADD_FAILURE() << "a closed port answered";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("unreachable"), std::string::npos) << m;
    EXPECT_EQ(m.find("scheme"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace cogumi
