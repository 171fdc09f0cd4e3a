// Reasoning items: four-option multiple choice over a few premises (comparison chains, orderings,
// syllogisms over made-up words, conditionals, who-has-what). Each item is built from a hidden
// model of the story (a ranking, an assignment), so the correct option is computed, and every
// distractor is false or not implied by the premises: exactly one option is right.
#include <fmt/format.h>

#include <algorithm>

#include "data/synth.h"

namespace cogumi::synth {

namespace {

const char* const kNames[] = {"Ann",  "Bob",  "Cal",  "Dee",  "Eva",  "Finn", "Gus",  "Hana",
                              "Ivy",  "Jack", "Kim",  "Leo",  "Mia",  "Ned",  "Olga", "Pete",
                              "Rosa", "Sam",  "Tina", "Umar", "Vera", "Will", "Yara", "Zack"};
const char* const kCannotTell = "Cannot tell";

struct Built {
  std::string question;
  std::vector<std::string> options;  // options[0] is the correct one; shuffled later
};

std::string join_sentences(const std::vector<std::string>& s) {
  std::string out;
  for (const auto& x : s) out += (out.empty() ? "" : " ") + x;
  return out;
}

// "Ann, Bob and Cal" or "Ann and Bob".
std::string join_and(const std::vector<std::string>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i)
    out += (i == 0 ? "" : i + 1 == v.size() ? " and " : ", ") + v[i];
  return out;
}

struct Scale {
  const char* more;   // "taller"
  const char* less;   // "shorter"
  const char* most;   // "tallest"
  const char* least;  // "shortest"
};

const Scale kScales[] = {
    {"taller", "shorter", "tallest", "shortest"},   {"older", "younger", "oldest", "youngest"},
    {"faster", "slower", "fastest", "slowest"},     {"heavier", "lighter", "heaviest", "lightest"},
    {"stronger", "weaker", "strongest", "weakest"}, {"richer", "poorer", "richest", "poorest"}};

// A ranking told in pairs: "Ann is taller than Bob. Cal is shorter than Bob." rank[0] is the most.
Built comparison(Rng& r, int difficulty) {
  const int n = difficulty >= 3 && r.percent(50) ? 4 : 3;
  const Scale& sc = r.pick(kScales);
  auto rank = person_names(r, n);
  std::vector<std::string> facts;
  for (int i = 0; i + 1 < n; ++i) {
    if (difficulty >= 2 && r.percent(50))
      facts.push_back(
          fmt::format("{} is {} than {}.", rank[size_t(i) + 1], sc.less, rank[size_t(i)]));
    else
      facts.push_back(
          fmt::format("{} is {} than {}.", rank[size_t(i)], sc.more, rank[size_t(i) + 1]));
  }
  if (difficulty >= 3) r.shuffle(facts);
  Built b;
  int ask = r.uniform(0, n == 4 ? 2 : 1);
  int idx = ask == 0 ? 0 : ask == 1 ? n - 1 : 1;
  const char* what = ask == 0 ? sc.most : ask == 1 ? sc.least : nullptr;
  b.question = join_sentences(facts) + (what ? fmt::format(" Who is the {}?", what)
                                             : fmt::format(" Who is the second {}?", sc.most));
  b.options.push_back(rank[size_t(idx)]);
  for (int i = 0; i < n; ++i)
    if (i != idx) b.options.push_back(rank[size_t(i)]);
  if (n == 3) b.options.push_back(kCannotTell);
  return b;
}

const char* const kEvents[] = {"arrived", "finished the race", "woke up",
                               "left",    "ate lunch",         "got home"};

std::string order_text(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s;
}

// An order in time, asked as first/last or as the whole order.
Built ordering(Rng& r, int difficulty) {
  const int n = difficulty >= 4 && r.percent(50) ? 4 : 3;
  const std::string ev = r.pick(kEvents);
  auto order = person_names(r, n);
  std::vector<std::string> facts;
  for (int i = 0; i + 1 < n; ++i) {
    if (r.percent(50))
      facts.push_back(fmt::format("{} {} before {}.", order[size_t(i)], ev, order[size_t(i) + 1]));
    else
      facts.push_back(fmt::format("{} {} after {}.", order[size_t(i) + 1], ev, order[size_t(i)]));
  }
  if (difficulty >= 3) r.shuffle(facts);
  Built b;
  int ask = r.uniform(0, difficulty >= 2 ? 2 : 1);
  if (ask < 2) {
    int idx = ask == 0 ? 0 : n - 1;
    b.question =
        join_sentences(facts) + fmt::format(" Who {} {}?", ev, ask == 0 ? "first" : "last");
    b.options.push_back(order[size_t(idx)]);
    for (int i = 0; i < n; ++i)
      if (i != idx) b.options.push_back(order[size_t(i)]);
    if (n == 3) b.options.push_back(kCannotTell);
  } else {
    b.question = join_sentences(facts) + " Which is the order, from first to last?";
    b.options.push_back(order_text(order));
    while (b.options.size() < 4) {
      auto other = order;
      r.shuffle(other);
      std::string o = order_text(other);
      if (std::find(b.options.begin(), b.options.end(), o) == b.options.end())
        b.options.push_back(o);
    }
  }
  return b;
}

const char* const kKinds[] = {"blip", "wug",  "dax",  "fep", "zorp",  "lum",  "mip",
                              "tove", "glim", "gorp", "vex", "plonk", "rilk", "yim",
                              "tam",  "kib",  "snee", "jop", "nurf",  "quell"};

// Syllogisms over made-up kinds, so world knowledge cannot stand in for the premises.
Built syllogism(Rng& r, int difficulty) {
  std::vector<std::string> k(std::begin(kKinds), std::end(kKinds));
  r.shuffle(k);
  const std::string x = k[0], y = k[1], z = k[2];
  const std::string who = r.pick(kNames);
  auto a = [](const std::string& w) { return article(w) + " " + w; };
  Built b;
  int form = r.uniform(0, difficulty >= 3 ? 3 : 2);
  switch (form) {
    case 0:
      b.question =
          fmt::format("All {}s are {}s. {} is {}. Which statement must be true?", x, y, who, a(x));
      b.options = {fmt::format("{} is {}.", who, a(y)), fmt::format("{} is not {}.", who, a(y)),
                   fmt::format("{} is not {}.", who, a(x)), fmt::format("All {}s are {}s.", y, x)};
      break;
    case 1:
      b.question = fmt::format("All {}s are {}s. All {}s are {}s. Which statement must be true?", x,
                               y, y, z);
      b.options = {fmt::format("All {}s are {}s.", x, z), fmt::format("All {}s are {}s.", z, x),
                   fmt::format("No {}s are {}s.", x, z), fmt::format("All {}s are {}s.", y, x)};
      break;
    case 2:
      b.question =
          fmt::format("No {}s are {}s. {} is {}. Which statement must be true?", x, y, who, a(x));
      b.options = {fmt::format("{} is not {}.", who, a(y)), fmt::format("{} is {}.", who, a(y)),
                   fmt::format("{} is not {}.", who, a(x)), fmt::format("All {}s are {}s.", y, x)};
      break;
    default:
      b.question = fmt::format("All {}s are {}s. {} is not {}. Which statement must be true?", x, y,
                               who, a(y));
      b.options = {fmt::format("{} is not {}.", who, a(x)), fmt::format("{} is {}.", who, a(x)),
                   fmt::format("{} is {}.", who, a(y)), fmt::format("All {}s are {}s.", y, x)};
      break;
  }
  return b;
}

struct Conditional {
  const char *p, *not_p, *q, *not_q;  // {N} stands for a name
};

const Conditional kConditionals[] = {
    {"{N} goes to the park", "{N} does not go to the park", "{N} takes the dog",
     "{N} does not take the dog"},
    {"it rains", "it does not rain", "{N} stays home", "{N} does not stay home"},
    {"{N} is hungry", "{N} is not hungry", "{N} eats an apple", "{N} does not eat an apple"},
    {"the bell rings", "the bell does not ring", "{N} opens the door",
     "{N} does not open the door"},
    {"{N} studies", "{N} does not study", "{N} passes the test", "{N} does not pass the test"},
    {"the light is red", "the light is not red", "{N} stops the car", "{N} does not stop the car"},
    {"it is cold", "it is not cold", "{N} wears a hat", "{N} does not wear a hat"},
    {"{N} is tired", "{N} is not tired", "{N} goes to bed early", "{N} does not go to bed early"},
    {"the shop is open", "the shop is not open", "{N} buys bread", "{N} does not buy bread"},
    {"{N} wins the game", "{N} does not win the game", "{N} gets a prize",
     "{N} does not get a prize"},
};

// "If P, then Q." plus one fact. Valid forms (P; not Q) give a conclusion; the two fallacies
// (Q; not P) make "Cannot tell" the answer.
Built conditional(Rng& r, int difficulty) {
  const Conditional& c = r.pick(kConditionals);
  const std::string who = r.pick(kNames);
  auto fill = [&](const char* s) { return fmt::format(fmt::runtime(s), fmt::arg("N", who)); };
  const std::string p = fill(c.p), np = fill(c.not_p), q = fill(c.q), nq = fill(c.not_q);
  int form = r.uniform(0, difficulty >= 3 ? 3 : 0);
  std::string fact;
  Built b;
  switch (form) {
    case 0:  // modus ponens
      fact = p;
      b.options = {cap(q) + ".", cap(nq) + ".", cap(np) + ".", kCannotTell};
      break;
    case 1:  // modus tollens
      fact = nq;
      b.options = {cap(np) + ".", cap(p) + ".", cap(q) + ".", kCannotTell};
      break;
    case 2:  // affirming the consequent
      fact = q;
      b.options = {kCannotTell, cap(p) + ".", cap(np) + ".", cap(nq) + "."};
      break;
    default:  // denying the antecedent
      fact = np;
      b.options = {kCannotTell, cap(q) + ".", cap(nq) + ".", cap(p) + "."};
      break;
  }
  b.question = fmt::format("If {}, then {}. {}. Which statement must be true?", p, q, cap(fact));
  return b;
}

struct ThingSet {
  const char* kind;  // "pet"
  std::vector<const char*> items;
};

const ThingSet kThingSets[] = {
    {"pet", {"cat", "dog", "fish", "bird", "rabbit", "hamster"}},
    {"fruit", {"apple", "banana", "pear", "plum", "orange", "lemon"}},
    {"toy", {"ball", "kite", "drum", "doll", "robot", "boat"}},
    {"drink", {"tea", "milk", "juice", "water", "cocoa", "soda"}},
};

// Three people, three things, one each. One clue fixes a pair; a negative clue fixes the rest.
Built assignment(Rng& r, int difficulty) {
  const ThingSet& ts = r.pick(kThingSets);
  auto people = person_names(r, 3);
  std::vector<std::string> things(ts.items.begin(), ts.items.end());
  r.shuffle(things);
  things.resize(3);  // people[i] has things[i]
  auto an = [](const std::string& w) { return article(w) + " " + w; };
  std::vector<std::string> listed = {an(things[0]), an(things[1]), an(things[2])};
  r.shuffle(listed);
  std::string intro =
      fmt::format("{} each have a different {}: {}.", join_and(people), ts.kind, join_and(listed));
  std::vector<std::string> clues = {fmt::format("{} has the {}.", people[0], things[0])};
  if (r.percent(50))
    clues.push_back(fmt::format("{} does not have the {}.", people[1], things[2]));
  else
    clues.push_back(fmt::format("{} does not have the {}.", people[2], things[1]));
  if (difficulty >= 4) r.shuffle(clues);
  Built b;
  int target = r.uniform(1, 2);  // ask about the pair the negative clue decides
  if (r.percent(50)) {
    b.question = intro + " " + join_sentences(clues) +
                 fmt::format(" Who has the {}?", things[size_t(target)]);
    b.options = {people[size_t(target)], people[size_t(3 - target)], people[0], kCannotTell};
  } else {
    b.question = intro + " " + join_sentences(clues) +
                 fmt::format(" Which {} does {} have?", ts.kind, people[size_t(target)]);
    b.options = {"The " + things[size_t(target)], "The " + things[size_t(3 - target)],
                 "The " + things[0], kCannotTell};
  }
  return b;
}

struct Family {
  int tier;
  Built (*make)(Rng&, int);
  const char* name;  // the reference label (Item::template_name)
};

const Family kFamilies[] = {
    {1, comparison, "comparison"}, {1, ordering, "ordering"},       {2, syllogism, "syllogism"},
    {2, conditional, "conditional"}, {3, assignment, "assignment"}};

}  // namespace

std::vector<std::string> person_names(Rng& r, int n) {
  return distinct(r, std::vector<std::string>(std::begin(kNames), std::end(kNames)), n);
}

Item reasoning_item(Rng& rng, int difficulty) {
  std::vector<const Family*> eligible;
  for (const auto& f : kFamilies)
    if (f.tier <= difficulty) eligible.push_back(&f);
  const Family* family = rng.pick(eligible);
  Built b = family->make(rng, difficulty);

  std::vector<int> order = {0, 1, 2, 3};
  rng.shuffle(order);
  std::vector<std::string> choices(4);
  int answer = 0;
  for (int i = 0; i < 4; ++i) {
    choices[size_t(i)] = b.options[size_t(order[size_t(i)])];
    if (order[size_t(i)] == 0) answer = i;
  }

  Item it;
  it.key = normalize_key(b.question);
  it.record = ojson::array(
      {b.question, choices[0], choices[1], choices[2], choices[3], std::to_string(answer)});
  it.instruction = b.question;
  for (int i = 0; i < 4; ++i)
    it.instruction += fmt::format("\n{}. {}", char('A' + i), choices[size_t(i)]);
  it.output = std::string(1, char('A' + answer));
  it.template_name = std::string("reasoning/") + family->name;
  return it;
}

}  // namespace cogumi::synth
