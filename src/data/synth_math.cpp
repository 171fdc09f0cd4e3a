// Math items: grade-school word problems over small integers, one arithmetic step per solution
// line ("16 - 3 = 13"), GSM8K's "#### N" final line. Every intermediate value stays a
// non-negative integer, so the steps read the same in any language a model might compute in.
#include <fmt/format.h>

#include "data/synth.h"

namespace cogumi::synth {

namespace {

struct Person {
  const char* name;
  const char* he;   // subject pronoun
  const char* him;  // object pronoun
};

const Person kPeople[] = {
    {"Ann", "she", "her"},  {"Bob", "he", "him"},  {"Cal", "he", "him"},   {"Dee", "she", "her"},
    {"Eva", "she", "her"},  {"Finn", "he", "him"}, {"Gus", "he", "him"},   {"Hana", "she", "her"},
    {"Ivy", "she", "her"},  {"Jack", "he", "him"}, {"Kim", "she", "her"},  {"Leo", "he", "him"},
    {"Mia", "she", "her"},  {"Ned", "he", "him"},  {"Olga", "she", "her"}, {"Pete", "he", "him"},
    {"Rosa", "she", "her"}, {"Sam", "he", "him"},  {"Tina", "she", "her"}, {"Umar", "he", "him"},
};

struct Thing {
  const char* plural;
  bool food;  // can be eaten
};

const Thing kThings[] = {
    {"apples", true},  {"pencils", false}, {"stickers", false}, {"marbles", false},
    {"cookies", true}, {"books", false},   {"cards", false},    {"eggs", true},
    {"shells", false}, {"stamps", false},  {"candies", true},   {"balloons", false},
    {"oranges", true}, {"crayons", false}, {"muffins", true},   {"toy cars", false},
};

struct Container {
  const char* one;
  const char* many;
};

const Container kContainers[] = {
    {"box", "boxes"}, {"bag", "bags"}, {"pack", "packs"}, {"jar", "jars"}};

enum class Op { kAdd, kSub, kGroupAdd, kShare, kSell };

}  // namespace

Item math_item(Rng& rng, int difficulty) {
  const Person& p = rng.pick(kPeople);
  const Person* f = &rng.pick(kPeople);
  while (f == &p) f = &rng.pick(kPeople);
  const Thing& t = rng.pick(kThings);
  const int steps = rng.uniform(1, difficulty);

  std::vector<std::string> sentences, lines;
  std::string shape = "count";  // the opening and each operation: the item's template
  int cur = 0, used = 0;
  // Opening: a plain count, or packs of a size (itself one multiplication step).
  if (rng.percent(steps == 1 ? 25 : 35)) {
    const Container& c = rng.pick(kContainers);
    int k = rng.uniform(2, 6), b = rng.uniform(2, 12);
    cur = k * b;
    shape = "packs";
    sentences.push_back(fmt::format("{} has {} {} of {}. Each {} holds {} {}.", p.name, k, c.many,
                                    t.plural, c.one, b, t.plural));
    lines.push_back(fmt::format("{} * {} = {}", k, b, cur));
    used = 1;
  } else {
    cur = rng.uniform(5, 40);
    sentences.push_back(fmt::format("{} has {} {}.", p.name, cur, t.plural));
  }

  std::string question = fmt::format("How many {} does {} have now?", t.plural, p.name);
  while (used < steps) {
    const int left = steps - used;
    std::vector<Op> ops = {Op::kAdd};
    if (cur >= 2) ops.push_back(Op::kSub);
    if (left >= 2) ops.push_back(Op::kGroupAdd);
    if (left == 1) {
      ops.push_back(Op::kSell);
      for (int k = 2; k <= 6; ++k)
        if (cur % k == 0 && cur / k >= 2) {
          ops.push_back(Op::kShare);
          break;
        }
    }
    const std::string he = cap(p.he),
                      then = sentences.size() > 1 ? "Then " + std::string(p.he) : he;
    const Op op = rng.pick(ops);
    shape += op == Op::kAdd        ? "+add"
             : op == Op::kSub      ? "+sub"
             : op == Op::kGroupAdd ? "+group_add"
             : op == Op::kShare    ? "+share"
                                   : "+sell";
    switch (op) {
      case Op::kAdd: {
        int b = rng.uniform(1, 20);
        switch (rng.uniform(0, 2)) {
          case 0:
            sentences.push_back(fmt::format("{} buys {} more.", then, b));
            break;
          case 1:
            sentences.push_back(fmt::format("{} finds {} more.", then, b));
            break;
          default:
            sentences.push_back(fmt::format("{} gives {} {} more.", f->name, p.him, b));
            break;
        }
        lines.push_back(fmt::format("{} + {} = {}", cur, b, cur + b));
        cur += b;
        break;
      }
      case Op::kSub: {
        int b = rng.uniform(1, cur - 1);
        switch (rng.uniform(0, t.food ? 3 : 2)) {
          case 0:
            sentences.push_back(fmt::format("{} gives {} to {}.", then, b, f->name));
            break;
          case 1:
            sentences.push_back(fmt::format("{} loses {}.", then, b));
            break;
          case 2:
            sentences.push_back(fmt::format("{} gives {} away.", then, b));
            break;
          default:
            sentences.push_back(fmt::format("{} eats {}.", then, b));
            break;
        }
        lines.push_back(fmt::format("{} - {} = {}", cur, b, cur - b));
        cur -= b;
        break;
      }
      case Op::kGroupAdd: {
        const Container& c = rng.pick(kContainers);
        int k = rng.uniform(2, 5), b = rng.uniform(2, 10);
        sentences.push_back(
            fmt::format("{} buys {} {} with {} {} in each.", then, k, c.many, b, t.plural));
        lines.push_back(fmt::format("{} * {} = {}", k, b, k * b));
        lines.push_back(fmt::format("{} + {} = {}", cur, k * b, cur + k * b));
        cur += k * b;
        ++used;  // two lines
        break;
      }
      case Op::kShare: {
        std::vector<int> ks;
        for (int k = 2; k <= 6; ++k)
          if (cur % k == 0 && cur / k >= 2) ks.push_back(k);
        int k = rng.pick(ks);
        sentences.push_back(fmt::format("{} shares them equally among {} friends.", then, k));
        question = fmt::format("How many {} does each friend get?", t.plural);
        lines.push_back(fmt::format("{} / {} = {}", cur, k, cur / k));
        cur /= k;
        break;
      }
      case Op::kSell: {
        int price = rng.uniform(2, 9);
        sentences.push_back(fmt::format("{} sells all of them for {} dollars each.", then, price));
        question = fmt::format("How many dollars does {} get?", p.name);
        lines.push_back(fmt::format("{} * {} = {}", cur, price, cur * price));
        cur *= price;
        break;
      }
    }
    ++used;
  }

  // A problem that is only its opening asks how many there are, not how many "now".
  if (sentences.size() == 1) question = fmt::format("How many {} does {} have?", t.plural, p.name);
  std::string q;
  for (const auto& s : sentences) q += s + " ";
  q += question;
  std::string answer;
  for (const auto& l : lines) answer += l + "\n";
  answer += fmt::format("#### {}", cur);

  Item it;
  it.key = normalize_key(q);
  it.record = {{"question", q}, {"answer", answer}};
  it.instruction = q;
  it.output = answer;
  it.template_name = fmt::format("math/{}-step/{}", steps, shape);
  return it;
}

}  // namespace cogumi::synth
