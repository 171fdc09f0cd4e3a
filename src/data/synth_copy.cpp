// The copying and lookup items of the nano curriculum (SynthOptions::n_copy): short prompts whose
// answer is a name, number, word run or call carried over from the prompt itself. The nano base
// rarely copies from its question (issue 13: it caps reasoning near chance and automation near 15%);
// these items teach that skill on its own, in the base's mix only (no benchmark split).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "data/synth.h"

namespace cogumi::synth {
namespace {

const std::vector<std::string> kThings = {"apple", "pear", "plum", "lemon", "melon", "grape", "kiwi", "mango",
                                          "bread", "cheese", "egg", "rice", "tea", "milk", "nut", "bean"};
const std::vector<std::string> kWords = {"red", "blue", "green", "small", "big", "old", "new", "fast", "slow", "cold",
                                         "warm", "fox", "owl", "cat", "dog", "fish", "tree", "river", "stone", "cloud"};
const std::vector<std::string> kOrdinals = {"first", "second", "third", "fourth", "fifth"};

std::string joined(const std::vector<std::string>& v, const char* sep) { return fmt::format("{}", fmt::join(v, sep)); }

}  // namespace

Item copy_item(Rng& rng) {
  Item it;
  switch (rng.uniform(0, 5)) {
    case 0: {  // the k-th of a list of names
      const int n = rng.uniform(3, 5), k = rng.uniform(0, n - 1);
      const auto names = person_names(rng, n);
      it.instruction = fmt::format("Names: {}. The {} name is", joined(names, ", "), kOrdinals[size_t(k)]);
      it.output = " " + names[size_t(k)] + ".";
      it.template_name = "copy/list";
      break;
    }
    case 1: {  // a value looked up by its key
      const int n = rng.uniform(2, 4), k = rng.uniform(0, n - 1);
      const auto things = distinct(rng, kThings, n);
      std::vector<std::string> pairs;
      std::vector<int> prices;
      for (const auto& t : things) {
        prices.push_back(rng.uniform(1, 99));
        pairs.push_back(fmt::format("{} costs {}", t, prices.back()));
      }
      it.instruction = fmt::format("{}. How much does {} cost? Answer:", cap(joined(pairs, ", ")), things[size_t(k)]);
      it.output = fmt::format(" {}", prices[size_t(k)]);
      it.template_name = "copy/lookup";
      break;
    }
    case 2: {  // a run of words said back
      const auto words = distinct(rng, kWords, rng.uniform(2, 5));
      it.instruction = fmt::format("Say back exactly: {}\nSaid back:", joined(words, " "));
      it.output = " " + joined(words, " ");
      it.template_name = "copy/repeat";
      break;
    }
    case 3: {  // a variable's value
      const std::vector<std::string> vars = distinct(rng, {"x", "y", "z", "n", "k", "m"}, 2);
      const int a = rng.uniform(0, 999), b = rng.uniform(0, 999), k = rng.uniform(0, 1);
      it.instruction = fmt::format("Let {} = {} and {} = {}. What is {}? Answer:", vars[0], a, vars[1], b, vars[size_t(k)]);
      it.output = fmt::format(" {}", k == 0 ? a : b);
      it.template_name = "copy/variable";
      break;
    }
    case 4: {  // a tool call whose argument is copied from the request (the automation domain's skill)
      const std::string where = city(rng), who = person_names(rng, 1)[0];
      if (rng.percent(50)) {
        it.instruction = fmt::format("Tool: get_weather(city). Request: what is the weather in {}? Call:", where);
        it.output = fmt::format(" get_weather(city=\"{}\")", where);
      } else {
        it.instruction = fmt::format("Tool: send_message(to, text). Request: tell {} that lunch is at noon. Call:", who);
        it.output = fmt::format(" send_message(to=\"{}\", text=\"lunch is at noon\")", who);
      }
      it.template_name = "copy/call";
      break;
    }
    default: {  // a function called by the name it was defined with (the code domain's skill)
      const std::string name = fmt::format("{}_{}", rng.pick(kWords), rng.pick(kThings));
      const int arg = rng.uniform(1, 9);
      it.instruction = fmt::format("def {}(n):\n    return n + 1\n\n# call it with {}\nresult =", name, arg);
      it.output = fmt::format(" {}({})", name, arg);
      it.template_name = "copy/def";
      break;
    }
  }
  it.key = normalize_key(it.instruction);
  return it;
}

EvalItem choice_lookup_item(Rng& rng, int difficulty) {
  // A reasoning item gives four options of the kind reasoning answers name (people, statements over made-up
  // words, "Cannot tell"); its own question and answer are dropped, so nothing of the reasoning is taught.
  const Item r = reasoning_item(rng, difficulty);
  EvalItem it;
  it.benchmark = "mmlu";
  it.category = "reasoning";  // the subject line of the reasoning benchmark's prompts
  it.kind = TaskKind::kMultipleChoice;
  for (size_t i = 1; i <= 4; ++i) it.choices.push_back(r.record[i].get<std::string>());
  const int k = rng.uniform(0, 3);
  it.question = "Which option says: " + it.choices[size_t(k)];
  it.reference = it.solution = std::string(1, char('A' + k));
  return it;
}

}  // namespace cogumi::synth
