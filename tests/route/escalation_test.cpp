// The escalation detector: the shipped labelled set's held-out split, hard cases both ways,
// the file format, bad inputs, and the CLI.
#include "route/escalation.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <set>

#include "core/error.h"
#include "core/io.h"
#include "test_util.h"

namespace cogumi {
namespace {

const fs::path kSet = fs::path(COGUMI_DATASETS) / "escalation";

// The shipped settings (EscalationOptions' defaults, chosen on dev), trained once.
const fs::path& trained() {
  static const fs::path p = [] {
    EscalationJob j;
    j.train_file = kSet / "train.jsonl";
    j.out = test::tmp_dir() / "escalation.json";
    train_escalation_job(j);
    return j.out;
  }();
  return p;
}

void write(const fs::path& p, const std::string& s) {
  std::ofstream(p) << s;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(EscalationData, SplitsAreDisjointByFamilyAndText) {
  std::map<std::string, std::string> family_split, text_split;
  size_t hand_test = 0;
  for (std::string split : {"train", "dev", "test"}) {
    auto rows = load_escalation_examples(kSet / (split + ".jsonl"));
    size_t pos = 0;
    for (auto& e : rows) {
      ASSERT_FALSE(e.family.empty()) << e.text;
      auto [it, fresh] = family_split.emplace(e.family, split);
      EXPECT_EQ(it->second, split) << "family " << e.family << " in two splits";
      auto [jt, fresh2] = text_split.emplace(e.text, split);
      EXPECT_EQ(jt->second, split) << "'" << e.text << "' in two splits";
      pos += e.escalate;
      hand_test += split == "test" && e.family.starts_with("hand:");
    }
    EXPECT_GE(rows.size(), 200u) << split;
    EXPECT_GT(pos, rows.size() / 5) << split;
    EXPECT_LT(pos, rows.size() * 4 / 5) << split;
  }
  EXPECT_GE(hand_test, 30u);
}

// Measured once on the test split (bench/RESULTS.md, escalation section): accuracy 82.6%,
// precision 81.2%, recall 90.9%, hand-written rows 73.2% (41 rows). The floors sit a few points
// below, and well above answering "escalate" always (57.8%).
TEST(Escalation, HeldOutTestSplitMeetsFloor) {
  EscalationReport r = eval_escalation_job(trained(), kSet / "test.jsonl");
  EXPECT_EQ(r.n, r.tp + r.fp + r.tn + r.fn);
  EXPECT_GE(r.accuracy, 0.78) << r.summary();
  EXPECT_GE(r.precision, 0.75) << r.summary();
  EXPECT_GE(r.recall, 0.85) << r.summary();
  EXPECT_LT(r.latency_p99_us, 3000) << "the plan's budget is 3 ms";
  EscalationReport hand = eval_escalation_job(trained(), kSet / "test.jsonl", "hand:");
  EXPECT_LT(hand.n, r.n);
  EXPECT_GE(hand.accuracy, 0.60) << hand.summary();
}

TEST(Escalation, HardCasesBothWays) {
  EscalationDetector d = EscalationDetector::load(trained());
  for (const char* t : {"no problem, thanks!", "that's right, now do it for 5",
                        "is it wrong to use recursion here?", "thanks, works great",
                        "can you also add type hints?"})
    EXPECT_FALSE(d.detect(t).escalate) << t << " P=" << d.detect(t).probability;
  for (const char* t : {"that's wrong", "still doesn't compile", "no, I meant the total",
                        "I ran it and got TypeError: 'int' object is not iterable",
                        "this is useless, let me talk to a human"})
    EXPECT_TRUE(d.detect(t).escalate) << t << " P=" << d.detect(t).probability;
}

TEST(Escalation, FileRoundTripsAndStaysARouterFile) {
  EscalationDetector a = EscalationDetector::load(trained());
  a.set_threshold(0.3);
  const fs::path p = test::tmp_dir() / "escalation-copy.json";
  a.save(p);
  EscalationDetector b = EscalationDetector::load(p);
  EXPECT_DOUBLE_EQ(b.threshold(), 0.3);
  EXPECT_FALSE(b.use_previous() || b.negation());
  for (const char* t : {"that's wrong", "thanks", "hmm, 7 + 8 isn't 14"})
    EXPECT_FLOAT_EQ(a.detect(t).probability, b.detect(t).probability) << t;
  EXPECT_EQ(Router::load(p).choices(), (std::vector<std::string>{"continue", "escalate"}));
  EXPECT_FALSE(fs::exists(p.string() + ".router.tmp"));
  // A plain router file is not a detector.
  json j = json::parse(read_file(p));
  j.erase("escalation");
  write(p, j.dump());
  EXPECT_NE(error_of([&] { EscalationDetector::load(p); }).find("'escalation'"), std::string::npos);
  j = json::parse(read_file(trained()));
  j["escalation"]["threshold"] = 1.5;
  write(p, j.dump());
  EXPECT_NE(error_of([&] { EscalationDetector::load(p); }).find("field 'threshold'"),
            std::string::npos);
}

TEST(Escalation, InputOptionsOnlyWhenAsked) {
  EXPECT_EQ(escalation_input("hmm, 7 + 8 isn't 14", "7 + 8 = 14.", false, false),
            "hmm, 7 + 8 isn't 14");
  const std::string s = escalation_input("hmm, 7 + 8 isn't 14", "7 + 8 = 14.", true, false);
  EXPECT_NE(s.find("qqctxnumberback"), std::string::npos) << s;
  EXPECT_EQ(escalation_input("thanks", "", true, false), "thanks");
  EXPECT_NE(escalation_input("great poem", "7 + 8 = 14.", true, false).find("qqctxnewwords"),
            std::string::npos);
  // Negation scope: 3 words after the negator, cut at punctuation.
  EXPECT_EQ(escalation_input("Not wrong at all, nice", "", false, true),
            "Not wrong at all, nice neg_wrong neg_at neg_all");
  EXPECT_EQ(escalation_input("your fix didn't fix anything", "", false, true),
            "your fix didn't fix anything neg_fix neg_anything");
  EXPECT_EQ(escalation_input("that's the point, I want it printed", "", false, true),
            "that's the point, I want it printed");
  // A detector trained with them keeps them through its file.
  EscalationOptions o;
  o.use_previous = o.negation = true;
  o.train.epochs = 2;
  auto rows = load_escalation_examples(kSet / "dev.jsonl");
  EscalationDetector d = EscalationDetector::train(rows, o);
  const fs::path p = test::tmp_dir() / "esc-options.json";
  d.save(p);
  EscalationDetector e = EscalationDetector::load(p);
  EXPECT_TRUE(e.use_previous() && e.negation());
  EXPECT_FLOAT_EQ(d.detect("7 + 8 isn't 14", "7 + 8 = 14.").probability,
                  e.detect("7 + 8 isn't 14", "7 + 8 = 14.").probability);
}

TEST(Escalation, BadRowsNameFileLineAndField) {
  const fs::path p = test::tmp_dir() / "esc-bad.jsonl";
  auto err = [&](const std::string& body) {
    write(p, body);
    return error_of([&] { load_escalation_examples(p); });
  };
  const std::string ok = R"({"text": "thanks", "label": "continue"})"
                         "\n";
  std::string e = err(ok + R"({"text": "nope", "label": "bad"})"
                           "\n");
  EXPECT_NE(e.find(p.string() + ":2"), std::string::npos) << e;
  EXPECT_NE(e.find("'label'"), std::string::npos) << e;
  e = err(ok + ok +
          R"({"label": "escalate"})"
          "\n");
  EXPECT_NE(e.find(":3"), std::string::npos) << e;
  EXPECT_NE(e.find("'text'"), std::string::npos) << e;
  e = err(R"({"text": "x", "label": "continue", "previous": 3})"
          "\n");
  EXPECT_NE(e.find(":1"), std::string::npos) << e;
  EXPECT_NE(e.find("'previous'"), std::string::npos) << e;
  e = err(R"({"text": "x", "lable": "continue"})"
          "\n");
  EXPECT_NE(e.find("'lable'"), std::string::npos) << e;
  e = err(R"({"text": "", "label": "continue"})"
          "\n");
  EXPECT_NE(e.find("'text' is empty"), std::string::npos) << e;
  e = err("not json\n");
  EXPECT_NE(e.find(p.string() + ":1"), std::string::npos) << e;
  // Training needs both labels; options are checked by name.
  write(p, ok);
  EscalationJob j;
  j.train_file = p, j.out = test::tmp_dir() / "esc-never.json";
  EXPECT_NE(error_of([&] { train_escalation_job(j); }).find("both escalate and continue"),
            std::string::npos);
  j.opts.threshold = 1;
  EXPECT_NE(error_of([&] { j.validate(); }).find("--threshold"), std::string::npos);
}

// The program itself: train, eval (all rows and the hand-written ones), detect, and an out-of-range
// option rejected by name.
TEST(Escalation, Cli) {
  auto run = [](const std::string& args, int* rc = nullptr) {
    std::string out;
    FILE* f = popen((std::string(COGUMI_BIN) + " escalation " + args + " 2>&1").c_str(), "r");
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, f)) out.append(buf, n);
    int status = pclose(f);
    if (rc) *rc = WEXITSTATUS(status);
    return out;
  };
  const fs::path det = test::tmp_dir() / "esc-cli.json";
  int rc = -1;
  std::string out = run("train --train " + (kSet / "train.jsonl").string() + " --dev " +
                            (kSet / "dev.jsonl").string() + " -o " + det.string(),
                        &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("dev: "), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(det.string() + ".report.json"));
  out = run("eval " + det.string() + " --data " + (kSet / "dev.jsonl").string() +
                " --family hand: --json",
            &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_GT(json::parse(out).at("n").get<int>(), 0);
  out = run("detect " + det.string() + " -p \"that's wrong, it still doesn't compile\"", &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(json::parse(out).at("escalate").get<bool>()) << out;
  out = run("train --train x.jsonl -o y.json --threshold 2", &rc);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("--threshold"), std::string::npos) << out;
  out = run("eval " + det.string() + " --data /nonexistent.jsonl", &rc);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("/nonexistent.jsonl"), std::string::npos) << out;
}

}  // namespace
}  // namespace cogumi
