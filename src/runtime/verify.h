// cogumi/runtime: verification of answers with signals from outside the model (issue 11's
// accurate mode). A model that critiques itself without outside feedback often makes answers
// worse (Huang et al. 2023), so each kind is checked with what is real for it:
//  - code ("tests"): the answer runs in the sandbox against the tests the request itself shows:
//    the doctest examples of its prompt (HumanEval, the nano code items), MBPP's listed asserts;
//    never a benchmark's hidden tests;
//  - tool calls ("schema"): each call must name one of the offered functions, give its required
//    parameters, no undeclared one, each of its declared type (eval's BFCL type rules);
//  - numbers and options ("agreement"): nothing outside the model can check them; the answer is
//    verified when most samples agree on it.
// Self-consistency then votes among the samples that passed their check (among all when none
// did), so a passing answer beats a more frequent failing one.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "eval/benchmark.h"
#include "eval/sandbox.h"

namespace cogumi {

enum class Verdict { kUnchecked, kPassed, kFailed };

// What can check answers to `item`: "tests", "schema", "agreement", or "" (nothing: text, or
// code whose request shows no tests).
std::string verifier_for(const EvalItem& item);

// The doctest examples in a code prompt: each ">>> " line, its "... " continuations and the
// expected output lines after it, dedented; "" when the prompt shows none.
std::string prompt_doctests(const std::string& code_prompt);

// The sandbox program that runs `output` against the item's visible tests (it prints
// code_pass_marker() only when they pass); "" when the item shows none.
std::string visible_test_program(const EvalItem& item, const std::string& output);

// One verdict per (item, output): tool calls checked here, every code program run at once in
// the sandbox (`workers` processes; kUnchecked for code when the sandbox can't run here).
// Numbers, options and text are kUnchecked: agreement is the vote's business.
std::vector<Verdict> verify_outputs(
    const std::vector<std::pair<const EvalItem*, std::string>>& outputs,
    const SandboxOptions& sandbox, int workers);

struct VerifiedVote {
  size_t index = 0;       // the winning sample
  int votes = 0;          // samples with the winner's answer (among those the vote counted)
  int passed = 0;         // samples that passed their check
  bool verified = false;  // the winner passed its check ("agreement": a majority of all samples)
};

// Majority vote (runtime.h's majority_vote) over the samples that passed, or over all when
// none passed; `verifier` as verifier_for() names it.
VerifiedVote verified_vote(const std::vector<std::string>& keys,
                           const std::vector<double>& mean_logprobs,
                           const std::vector<Verdict>& verdicts, const std::string& verifier);

}  // namespace cogumi
