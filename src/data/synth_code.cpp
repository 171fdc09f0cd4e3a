// Code items: small Python functions from templates, in HumanEval's shape (signature + docstring
// with one example; an indented canonical body; check(candidate) with several asserts). The
// expected values are computed here, in C++, from the same definition the body implements; the
// tests keep inputs where C++ and Python agree (no negative operands of % or //).
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <initializer_list>
#include <numeric>

#include "data/synth.h"

namespace cogumi::synth {

namespace {

struct Task {
  std::string name, params, ret, doc, body;
  std::vector<std::pair<std::string, std::string>> cases;  // call arguments, expected value
  void add(std::string args, std::string want) {
    cases.emplace_back(std::move(args), std::move(want));
  }
};

// Python literals. Separate names, because a string literal would silently pick a bool overload.
std::string pyi(int v) {
  return std::to_string(v);
}
std::string pyb(bool b) {
  return b ? "True" : "False";
}
std::string pys(const std::string& s) {
  return "'" + s + "'";
}  // our strings hold no quotes
std::string pyl(const std::vector<int>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}
std::string pysl(const std::vector<std::string>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + pys(v[i]);
  return s + "]";
}

std::string one_of(Rng& r, std::initializer_list<const char*> xs) {
  return xs.begin()[r.uniform(0, int(xs.size()) - 1)];
}

std::vector<int> ints(Rng& r, int n_lo, int n_hi, int lo, int hi) {
  std::vector<int> v(size_t(r.uniform(n_lo, n_hi)));
  for (int& x : v) x = r.uniform(lo, hi);
  return v;
}

const char* const kWords[] = {"cat",   "dog",   "sun",   "tree",  "apple", "banana",
                              "river", "stone", "green", "hello", "world", "moon",
                              "star",  "bread", "table", "pizza", "robot", "music",
                              "paper", "water", "house", "light", "train", "smile"};
const char* const kPalindromes[] = {"level", "radar", "noon",  "kayak", "racecar",
                                    "madam", "refer", "civic", "wow"};

std::string word(Rng& r) {
  return r.pick(kWords);
}
std::string phrase(Rng& r, int lo, int hi) {
  int n = r.uniform(lo, hi);
  std::string s;
  for (int i = 0; i < n; ++i) s += (i ? " " : "") + word(r);
  return s;
}

std::string num_param(Rng& r) {
  return one_of(r, {"x", "n", "num", "value"});
}
std::string list_param(Rng& r) {
  return one_of(r, {"nums", "numbers", "values", "xs"});
}
std::string str_param(Rng& r) {
  return one_of(r, {"s", "text", "word"});
}

// One-argument integer function: name, doc and body given; f computes the expected value.
template <typename F>
Task int_fn(Rng& r, std::string name, const std::string& p, std::string doc, std::string body,
            int lo, int hi, const char* ret, F f) {
  Task t{std::move(name), p + ": int", ret, std::move(doc), std::move(body), {}};
  for (int i = 0; i < 5; ++i) {
    int x = r.uniform(lo, hi);
    t.add(pyi(x), f(x));
  }
  return t;
}

// One list-of-int argument.
template <typename F>
Task list_fn(Rng& r, std::string name, const std::string& p, std::string doc, std::string body,
             const char* ret, int n_lo, int n_hi, int lo, int hi, F f) {
  Task t{std::move(name), p + ": List[int]", ret, std::move(doc), std::move(body), {}};
  for (int i = 0; i < 5; ++i) {
    auto v = ints(r, n_lo, n_hi, lo, hi);
    t.add(pyl(v), f(v));
  }
  return t;
}

int sum(const std::vector<int>& v) {
  return std::accumulate(v.begin(), v.end(), 0);
}

struct Template {
  int tier;
  Task (*make)(Rng&);
};

// clang-format off
const Template kTemplates[] = {
  // ---- tier 1: one expression over one or two numbers or a string ----
  {1, [](Rng& r) {
    int k = r.uniform(1, 150); std::string p = num_param(r);
    return int_fn(r, fmt::format("{}_{}", one_of(r, {"add", "plus", "increase_by"}), k), p,
                  fmt::format("Return {} plus {}.", p, k),
                  fmt::format("    return {} + {}\n", p, k), -20, 100, "int", [k](int x) { return pyi(x + k); });
  }},
  {1, [](Rng& r) {
    int k = r.uniform(1, 150); std::string p = num_param(r);
    return int_fn(r, fmt::format("{}_{}", one_of(r, {"minus", "subtract", "decrease_by"}), k), p,
                  fmt::format("Return {} minus {}.", p, k),
                  fmt::format("    return {} - {}\n", p, k), 0, 150, "int", [k](int x) { return pyi(x - k); });
  }},
  {1, [](Rng& r) {
    int k = r.uniform(2, 30); std::string p = num_param(r);
    return int_fn(r, fmt::format("{}_{}", one_of(r, {"times", "multiply_by", "scale_by"}), k), p,
                  fmt::format("Return {} times {}.", p, k), fmt::format("    return {} * {}\n", p, k), -10, 50, "int",
                  [k](int x) { return pyi(x * k); });
  }},
  {1, [](Rng& r) {
    int k = r.uniform(2, 15); std::string p = num_param(r);
    Task t = int_fn(r, fmt::format("{}_{}", one_of(r, {"is_multiple_of", "divisible_by"}), k), p,
                    fmt::format("Return True if {} is divisible by {}, else False.", p, k),
                    fmt::format("    return {} % {} == 0\n", p, k), 0, 200, "bool",
                    [k](int x) { return pyb(x % k == 0); });
    int m = k * r.uniform(1, 12);
    t.add(pyi(m), "True");
    t.add(pyi(m + r.uniform(1, k - 1)), "False");
    return t;
  }},
  {1, [](Rng& r) {
    int k = r.uniform(0, 150); std::string p = num_param(r);
    Task t = int_fn(r, fmt::format("{}_{}", one_of(r, {"is_greater_than", "above", "more_than"}), k), p,
                    fmt::format("Return True if {} is greater than {}.", p, k),
                    fmt::format("    return {} > {}\n", p, k), 0, 200, "bool", [k](int x) { return pyb(x > k); });
    t.add(pyi(k), "False");
    t.add(pyi(k + 1), "True");
    return t;
  }},
  {1, [](Rng& r) {
    int k = r.uniform(1, 150); std::string p = num_param(r);
    Task t = int_fn(r, fmt::format("{}_{}", one_of(r, {"is_less_than", "below", "less_than"}), k), p,
                    fmt::format("Return True if {} is less than {}.", p, k), fmt::format("    return {} < {}\n", p, k),
                    0, 200, "bool", [k](int x) { return pyb(x < k); });
    t.add(pyi(k), "False");
    t.add(pyi(k - 1), "True");
    return t;
  }},
  {1, [](Rng& r) {
    static const char* const kPairs[][2] = {{"a", "b"}, {"x", "y"}, {"m", "n"}};
    const auto& pr = r.pick(kPairs);
    std::string a = pr[0], b = pr[1];
    int op = r.uniform(0, 4);
    static const char* const kNames[5][3] = {{"add", "add_numbers", "sum_two"}, {"subtract", "difference", "minus"},
                                             {"multiply", "product", "times"}, {"larger", "max_of_two", "bigger"},
                                             {"smaller", "min_of_two", "lesser"}};
    static const char* const kDocs[5] = {"Return the sum of {0} and {1}.", "Return {0} minus {1}.",
                                         "Return the product of {0} and {1}.", "Return the larger of {0} and {1}.",
                                         "Return the smaller of {0} and {1}."};
    static const char* const kBodies[5] = {"{0} + {1}", "{0} - {1}", "{0} * {1}", "max({0}, {1})", "min({0}, {1})"};
    Task t{kNames[op][r.uniform(0, 2)], a + ": int, " + b + ": int", "int",
           fmt::format(fmt::runtime(kDocs[op]), a, b),
           "    return " + fmt::format(fmt::runtime(kBodies[op]), a, b) + "\n", {}};
    for (int i = 0; i < 5; ++i) {
      int x = r.uniform(-10, 60), y = r.uniform(-10, 60);
      int want = op == 0 ? x + y : op == 1 ? x - y : op == 2 ? x * y : op == 3 ? std::max(x, y) : std::min(x, y);
      t.add(pyi(x) + ", " + pyi(y), pyi(want));
    }
    return t;
  }},
  {1, [](Rng& r) {
    bool even = r.percent(50); std::string p = num_param(r);
    std::string w = even ? "even" : "odd";
    Task t = int_fn(r, one_of(r, {"is_", "check_"}) + w, p, fmt::format("Return True if {} is {}.", p, w),
                    fmt::format("    return {} % 2 == {}\n", p, even ? 0 : 1), 0, 100, "bool",
                    [even](int x) { return pyb((x % 2 == 0) == even); });
    t.add("0", pyb(even));
    return t;
  }},
  {1, [](Rng& r) {
    int op = r.uniform(0, 3); std::string p = num_param(r);
    static const char* const kNames[4][2] = {{"square", "squared"}, {"double", "twice"}, {"cube", "cubed"},
                                             {"negate", "opposite"}};
    static const char* const kDocs[4] = {"Return {0} squared.", "Return {0} doubled.", "Return {0} cubed.",
                                         "Return the negative of {0}."};
    static const char* const kBodies[4] = {"{0} * {0}", "2 * {0}", "{0} * {0} * {0}", "-{0}"};
    return int_fn(r, kNames[op][r.uniform(0, 1)], p, fmt::format(fmt::runtime(kDocs[op]), p),
                  "    return " + fmt::format(fmt::runtime(kBodies[op]), p) + "\n", -12, 12, "int", [op](int x) {
                    return pyi(op == 0 ? x * x : op == 1 ? 2 * x : op == 2 ? x * x * x : -x);
                  });
  }},
  {1, [](Rng& r) {
    int k = r.uniform(2, 9); std::string p = str_param(r);
    Task t{fmt::format("{}_{}_times", one_of(r, {"repeat", "copy"}), k), p + ": str", "str",
           fmt::format("Return {} repeated {} times.", p, k), fmt::format("    return {} * {}\n", p, k), {}};
    for (int i = 0; i < 4; ++i) {
      std::string w = word(r), want;
      for (int j = 0; j < k; ++j) want += w;
      t.add(pys(w), pys(want));
    }
    t.add("''", "''");
    return t;
  }},
  {1, [](Rng& r) {
    int op = r.uniform(0, 2); std::string p = str_param(r);
    static const char* const kNames[3][3] = {{"reverse", "reverse_string", "backwards"},
                                             {"length", "count_chars", "string_length"},
                                             {"upper", "shout", "to_upper"}};
    static const char* const kDocs[3] = {"Return {0} reversed.", "Return the number of characters in {0}.",
                                         "Return {0} in upper case."};
    static const char* const kBodies[3] = {"{0}[::-1]", "len({0})", "{0}.upper()"};
    Task t{kNames[op][r.uniform(0, 2)], p + ": str", op == 1 ? "int" : "str", fmt::format(fmt::runtime(kDocs[op]), p),
           "    return " + fmt::format(fmt::runtime(kBodies[op]), p) + "\n", {}};
    for (int i = 0; i < 5; ++i) {
      std::string w = i == 4 ? phrase(r, 2, 3) : word(r), want = w;
      if (op == 0) std::reverse(want.begin(), want.end());
      if (op == 2) std::transform(want.begin(), want.end(), want.begin(), [](char c) { return char(std::toupper(c)); });
      t.add(pys(w), op == 1 ? pyi(int(w.size())) : pys(want));
    }
    return t;
  }},
  // ---- tier 2: one pass over a list or a string; two constants ----
  {2, [](Rng& r) {
    std::string p = list_param(r);
    Task t = list_fn(r, one_of(r, {"sum_list", "total", "list_sum"}), p,
                     fmt::format("Return the sum of the numbers in {}.", p),
                     fmt::format("    return sum({})\n", p), "int", 1, 7, -5, 30,
                     [](const auto& v) { return pyi(sum(v)); });
    t.add("[]", "0");
    return t;
  }},
  {2, [](Rng& r) {
    int k = r.uniform(1, 50); std::string p = list_param(r);
    return list_fn(r, fmt::format("sum_plus_{}", k), p,
                   fmt::format("Return the sum of the numbers in {} plus {}.", p, k),
                   fmt::format("    return sum({}) + {}\n", p, k), "int", 0, 6, 0, 30,
                   [k](const auto& v) { return pyi(sum(v) + k); });
  }},
  {2, [](Rng& r) {
    bool mx = r.percent(50); std::string p = list_param(r);
    std::string name = mx ? one_of(r, {"max_list", "largest", "biggest"})
                          : one_of(r, {"min_list", "smallest", "lowest"});
    return list_fn(r, name, p, fmt::format("Return the {} number in {}.", mx ? "largest" : "smallest", p),
                   fmt::format("    return {}({})\n", mx ? "max" : "min", p), "int", 1, 7, -20, 60,
                   [mx](const auto& v) {
                     return pyi(mx ? *std::max_element(v.begin(), v.end()) : *std::min_element(v.begin(), v.end()));
                   });
  }},
  {2, [](Rng& r) {
    int k = r.uniform(0, 9); std::string p = list_param(r);
    Task t = list_fn(r, fmt::format("count_{}", k), p, fmt::format("Return how many times {} appears in {}.", k, p),
                     fmt::format("    return {}.count({})\n", p, k), "int", 0, 9, 0, 9,
                     [k](const auto& v) { return pyi(int(std::count(v.begin(), v.end(), k))); });
    t.add(pyl({k, k, 1 + k % 9}), "2");
    return t;
  }},
  {2, [](Rng& r) {
    int k = r.uniform(0, 20); std::string p = list_param(r);
    return list_fn(r, fmt::format("count_above_{}", k), p,
                   fmt::format("Return how many numbers in {} are greater than {}.", p, k),
                   fmt::format("    return len([v for v in {} if v > {}])\n", p, k), "int", 0, 8, 0, 30,
                   [k](const auto& v) {
                     return pyi(int(std::count_if(v.begin(), v.end(), [k](int x) { return x > k; })));
                   });
  }},
  {2, [](Rng& r) {
    int lo = r.uniform(0, 10), hi = lo + r.uniform(5, 50); std::string p = num_param(r);
    Task t = int_fn(r, one_of(r, {"clamp", "clip", "limit"}), p,
                    fmt::format("Return {} limited to the range {} to {}.", p, lo, hi),
                    fmt::format("    return max({}, min({}, {}))\n", lo, hi, p), lo - 20, hi + 20, "int",
                    [lo, hi](int x) { return pyi(std::max(lo, std::min(hi, x))); });
    t.add(pyi(lo - 1), pyi(lo));
    t.add(pyi(hi + 1), pyi(hi));
    return t;
  }},
  {2, [](Rng& r) {
    int k = r.uniform(0, 20); std::string p = list_param(r);
    Task t = list_fn(r, fmt::format("{}_{}", one_of(r, {"contains", "has"}), k), p,
                     fmt::format("Return True if {} is in {}.", k, p),
                     fmt::format("    return {} in {}\n", k, p), "bool", 0, 6, 0, 20,
                     [k](const auto& v) { return pyb(std::find(v.begin(), v.end(), k) != v.end()); });
    t.add(pyl({k + 1, k, k + 2}), "True");
    return t;
  }},
  {2, [](Rng& r) {
    int k = r.uniform(1, 20); std::string p = list_param(r);
    return list_fn(r, fmt::format("add_{}_to_each", k), p,
                   fmt::format("Return a list with {} added to each number in {}.", k, p),
                   fmt::format("    return [v + {} for v in {}]\n", k, p), "List[int]", 0, 5, -5, 30, [k](auto v) {
                     for (int& x : v) x += k;
                     return pyl(v);
                   });
  }},
  {2, [](Rng& r) {
    static const char kLetters[] = "aeiorstn";
    char c = kLetters[r.uniform(0, 7)]; std::string p = str_param(r);
    Task t{fmt::format("count_{}", c), p + ": str", "int",
           fmt::format("Return how many times the letter '{}' appears in {}.", c, p),
           fmt::format("    return {}.count('{}')\n", p, c), {}};
    for (int i = 0; i < 5; ++i) {
      std::string w = i < 2 ? word(r) : phrase(r, 2, 4);
      // The first example holds the letter, so a function returning 0 fails.
      for (int tries = 0; i == 0 && tries < 50 && w.find(c) == std::string::npos; ++tries) w = word(r);
      t.add(pys(w), pyi(int(std::count(w.begin(), w.end(), c))));
    }
    return t;
  }},
  {2, [](Rng& r) {
    bool first = r.percent(50); std::string p = list_param(r);
    return list_fn(r, first ? one_of(r, {"first", "head"}) : one_of(r, {"last", "tail_value"}), p,
                   fmt::format("Return the {} number in {}.", first ? "first" : "last", p),
                   fmt::format("    return {}[{}]\n", p, first ? "0" : "-1"), "int", 1, 6, 0, 50,
                   [first](const auto& v) { return pyi(first ? v.front() : v.back()); });
  }},
  {2, [](Rng& r) {
    int k = r.uniform(2, 9), m = r.uniform(1, 20); std::string p = num_param(r);
    return int_fn(r, fmt::format("times_{}_plus_{}", k, m), p, fmt::format("Return {} times {} plus {}.", p, k, m),
                  fmt::format("    return {} * {} + {}\n", p, k, m), -10, 30, "int",
                  [k, m](int x) { return pyi(x * k + m); });
  }},
  {2, [](Rng& r) {
    std::string p = list_param(r);
    Task t = list_fn(r, one_of(r, {"product", "multiply_all", "list_product"}), p,
                     fmt::format("Return the product of the numbers in {}.", p),
                     fmt::format("    result = 1\n    for v in {}:\n        result *= v\n    return result\n", p),
                     "int", 1, 5, 1, 9, [](const auto& v) {
                       int x = 1;
                       for (int y : v) x *= y;
                       return pyi(x);
                     });
    t.add("[]", "1");
    return t;
  }},
  // ---- tier 3: branches and filters ----
  {3, [](Rng& r) {
    static const char* const kWordPairs[][2] = {{"Fizz", "Buzz"}, {"Ping", "Pong"}, {"Foo", "Bar"}, {"Tick", "Tock"},
                                                {"Zig", "Zag"}};
    int a = 0, b = 0;
    do {
      a = r.uniform(2, 7);
      b = r.uniform(3, 11);
    } while (a == b || a % b == 0 || b % a == 0);
    const auto& w = r.pick(kWordPairs);
    std::string p = num_param(r);
    auto f = [&](int x) {
      if (x % a == 0 && x % b == 0) return pys(std::string(w[0]) + w[1]);
      if (x % a == 0) return pys(w[0]);
      if (x % b == 0) return pys(w[1]);
      return pys(std::to_string(x));
    };
    std::string lead = w[0];
    lead[0] = char(std::tolower(lead[0]));
    Task t{fmt::format("{}_{}_{}", lead, a, b), p + ": int", "str",
           fmt::format("Return '{0}{1}' if {2} is divisible by both {3} and {4}, '{0}' if only by {3}, '{1}' if only "
                       "by {4}, else {2} as a string.", w[0], w[1], p, a, b),
           fmt::format("    if {0} % {1} == 0 and {0} % {2} == 0:\n        return '{3}{4}'\n    if {0} % {1} == 0:\n"
                       "        return '{3}'\n    if {0} % {2} == 0:\n        return '{4}'\n    return str({0})\n",
                       p, a, b, w[0], w[1]), {}};
    int both = a * b / std::gcd(a, b) * r.uniform(1, 3);
    int only_a = a * r.uniform(1, 20), only_b = b * r.uniform(1, 20), neither = r.uniform(1, 100);
    while (only_a % b == 0) only_a += a;
    while (only_b % a == 0) only_b += b;
    while (neither % a == 0 || neither % b == 0) ++neither;
    for (int x : {neither, only_a, only_b, both, r.uniform(1, 100)}) t.add(pyi(x), f(x));
    return t;
  }},
  {3, [](Rng& r) {
    bool even = r.percent(50); std::string p = list_param(r), w = even ? "even" : "odd";
    return list_fn(r, fmt::format("{}_{}", one_of(r, {"keep", "only", "filter"}), w), p,
                   fmt::format("Return the {} numbers in {}, in order.", w, p),
                   fmt::format("    return [v for v in {} if v % 2 == {}]\n", p, even ? 0 : 1), "List[int]",
                   0, 8, 0, 50, [even](const auto& v) {
                     std::vector<int> o;
                     for (int x : v)
                       if ((x % 2 == 0) == even) o.push_back(x);
                     return pyl(o);
                   });
  }},
  {3, [](Rng& r) {
    bool even = r.percent(50); std::string p = list_param(r), w = even ? "even" : "odd";
    return list_fn(r, fmt::format("sum_{}", w), p, fmt::format("Return the sum of the {} numbers in {}.", w, p),
                   fmt::format("    return sum(v for v in {} if v % 2 == {})\n", p, even ? 0 : 1), "int", 0, 8, 0, 40,
                   [even](const auto& v) {
                     int s = 0;
                     for (int x : v)
                       if ((x % 2 == 0) == even) s += x;
                     return pyi(s);
                   });
  }},
  {3, [](Rng& r) {
    int k = r.uniform(0, 30); std::string p = list_param(r);
    return list_fn(r, fmt::format("{}_{}", one_of(r, {"keep_above", "greater_than"}), k), p,
                   fmt::format("Return the numbers in {} that are greater than {}, in order.", p, k),
                   fmt::format("    return [v for v in {} if v > {}]\n", p, k), "List[int]", 0, 8, 0, 50,
                   [k](const auto& v) {
                     std::vector<int> o;
                     for (int x : v)
                       if (x > k) o.push_back(x);
                     return pyl(o);
                   });
  }},
  {3, [](Rng& r) {
    std::string p = list_param(r);
    return list_fn(r, one_of(r, {"squares", "square_all", "square_each"}), p,
                   fmt::format("Return a list of the squares of the numbers in {}.", p),
                   fmt::format("    return [v * v for v in {}]\n", p), "List[int]", 0, 6, -9, 12, [](auto v) {
                     for (int& x : v) x *= x;
                     return pyl(v);
                   });
  }},
  {3, [](Rng& r) {
    std::string p = one_of(r, {"n", "k", "num"});
    Task t = int_fn(r, one_of(r, {"factorial", "fact"}), p, fmt::format("Return the factorial of {}.", p),
                    fmt::format("    result = 1\n    for i in range(2, {} + 1):\n        result *= i\n"
                                "    return result\n", p),
                    1, 10, "int", [](int x) {
                      int f = 1;
                      for (int i = 2; i <= x; ++i) f *= i;
                      return pyi(f);
                    });
    t.add("0", "1");
    return t;
  }},
  {3, [](Rng& r) {
    std::string p = one_of(r, {"n", "k", "num"});
    Task t = int_fn(r, one_of(r, {"sum_to_n", "sum_up_to", "triangle"}), p,
                    fmt::format("Return the sum of the numbers from 1 to {}.", p),
                    fmt::format("    return sum(range(1, {} + 1))\n", p), 1, 100, "int",
                    [](int x) { return pyi(x * (x + 1) / 2); });
    t.add("0", "0");
    return t;
  }},
  {3, [](Rng& r) {
    std::string p = str_param(r);
    Task t{one_of(r, {"count_vowels", "vowels", "num_vowels"}), p + ": str", "int",
           fmt::format("Return the number of vowels (a, e, i, o, u) in {}.", p),
           fmt::format("    return len([c for c in {} if c in 'aeiou'])\n", p), {}};
    for (int i = 0; i < 5; ++i) {
      std::string w = i < 3 ? word(r) : phrase(r, 2, 3);
      auto vowel = [](char c) { return std::string("aeiou").find(c) != std::string::npos; };
      t.add(pys(w), pyi(int(std::count_if(w.begin(), w.end(), vowel))));
    }
    return t;
  }},
  {3, [](Rng& r) {
    int k = r.uniform(2, 9);
    Task t{fmt::format("{}_{}", one_of(r, {"multiples_of", "first_multiples_of"}), k), "n: int", "List[int]",
           fmt::format("Return the first n multiples of {}, starting at {}.", k, k),
           fmt::format("    return [{} * i for i in range(1, n + 1)]\n", k), {}};
    for (int n : {r.uniform(1, 6), 0, r.uniform(2, 8), 1}) {
      std::vector<int> v;
      for (int i = 1; i <= n; ++i) v.push_back(k * i);
      t.add(pyi(n), pyl(v));
    }
    return t;
  }},
  {3, [](Rng& r) {
    std::string p = list_param(r);
    return list_fn(r, one_of(r, {"spread", "value_range", "max_minus_min"}), p,
                   fmt::format("Return the largest number in {} minus the smallest.", p),
                   fmt::format("    return max({0}) - min({0})\n", p), "int", 1, 7, -10, 50, [](const auto& v) {
                     return pyi(*std::max_element(v.begin(), v.end()) - *std::min_element(v.begin(), v.end()));
                   });
  }},
  // ---- tier 4: state across a loop ----
  {4, [](Rng& r) {
    std::string p = list_param(r);
    Task t{one_of(r, {"second_largest", "runner_up"}), p + ": List[int]", "int",
           fmt::format("Return the second largest distinct number in {}.", p),
           fmt::format("    return sorted(set({}))[-2]\n", p), {}};
    for (int i = 0; i < 5; ++i) {
      std::vector<int> v;
      do v = ints(r, 2, 7, 0, 30);
      while (std::count(v.begin(), v.end(), v[0]) == std::ptrdiff_t(v.size()));
      std::vector<int> s = v;
      std::sort(s.begin(), s.end());
      s.erase(std::unique(s.begin(), s.end()), s.end());
      t.add(pyl(v), pyi(s[s.size() - 2]));
    }
    return t;
  }},
  {4, [](Rng& r) {
    std::string p = list_param(r);
    return list_fn(r, one_of(r, {"dedupe", "unique", "remove_duplicates"}), p,
                   fmt::format("Return {} without repeated numbers, keeping the first of each, in order.", p),
                   fmt::format("    seen = []\n    for v in {}:\n        if v not in seen:\n"
                               "            seen.append(v)\n    return seen\n", p),
                   "List[int]", 0, 8, 0, 5, [](const auto& v) {
                     std::vector<int> o;
                     for (int x : v)
                       if (std::find(o.begin(), o.end(), x) == o.end()) o.push_back(x);
                     return pyl(o);
                   });
  }},
  {4, [](Rng& r) {
    std::string p = str_param(r);
    Task t{one_of(r, {"is_palindrome", "reads_same_backwards", "palindrome"}), p + ": str", "bool",
           fmt::format("Return True if {} reads the same forwards and backwards.", p),
           fmt::format("    return {0} == {0}[::-1]\n", p), {}};
    for (int i = 0; i < 5; ++i) {
      std::string w = i % 2 ? std::string(r.pick(kPalindromes)) : word(r), rev = w;
      std::reverse(rev.begin(), rev.end());
      t.add(pys(w), pyb(w == rev));
    }
    return t;
  }},
  {4, [](Rng& r) {
    std::string p = one_of(r, {"text", "sentence", "s"});
    Task t{one_of(r, {"count_words", "word_count", "num_words"}), p + ": str", "int",
           fmt::format("Return the number of words in {}.", p), fmt::format("    return len({}.split())\n", p), {}};
    for (int i = 0; i < 4; ++i) {
      int n = r.uniform(1, 6);
      std::string s;
      for (int j = 0; j < n; ++j) s += (j ? " " : "") + word(r);
      t.add(pys(s), pyi(n));
    }
    t.add("''", "0");
    return t;
  }},
  {4, [](Rng& r) {
    std::string p = list_param(r);
    return list_fn(r, one_of(r, {"running_total", "prefix_sums", "cumulative"}), p,
                   fmt::format("Return the running totals of {}: each item is the sum of the items up to it.", p),
                   fmt::format("    out = []\n    total = 0\n    for v in {}:\n        total += v\n"
                               "        out.append(total)\n    return out\n", p),
                   "List[int]", 0, 6, -5, 20, [](auto v) {
                     std::partial_sum(v.begin(), v.end(), v.begin());
                     return pyl(v);
                   });
  }},
  {4, [](Rng& r) {
    int k = r.uniform(0, 30); std::string p = list_param(r);
    auto f = [k](const std::vector<int>& v) {
      for (size_t i = 0; i < v.size(); ++i)
        if (v[i] > k) return pyi(int(i));
      return pyi(-1);
    };
    Task t = list_fn(r, fmt::format("first_above_{}", k), p,
                     fmt::format("Return the index of the first number in {} greater than {}, or -1 if there "
                                 "is none.", p, k),
                     fmt::format("    for i, v in enumerate({}):\n        if v > {}:\n            return i\n"
                                 "    return -1\n", p, k),
                     "int", 0, 7, 0, 40, f);
    // Small numbers first, so the answer is not always 0; and one list with no answer.
    std::vector<int> late = ints(r, 1, 4, 0, k), none = ints(r, 0, 3, 0, k);
    late.push_back(k + r.uniform(1, 9));
    t.add(pyl(late), f(late));
    t.add(pyl(none), "-1");
    return t;
  }},
  {4, [](Rng& r) {
    std::string p = one_of(r, {"n", "num", "number"});
    return int_fn(r, one_of(r, {"digit_sum", "sum_digits", "add_digits"}), p,
                  fmt::format("Return the sum of the digits of {}.", p),
                  fmt::format("    return sum(int(d) for d in str({}))\n", p), 0, 99999, "int", [](int x) {
                    int s = 0;
                    for (; x > 0; x /= 10) s += x % 10;
                    return pyi(s);
                  });
  }},
  {4, [](Rng& r) {
    static const char* const kLong[] = {"elephant", "pineapple", "computer", "mountain", "window", "garden", "yellow"};
    int k = r.uniform(3, 5); std::string p = one_of(r, {"words", "items", "names"});
    Task t{fmt::format("{}_{}", one_of(r, {"longer_than", "words_over"}), k), p + ": List[str]", "List[str]",
           fmt::format("Return the words in {} that are longer than {} letters, in order.", p, k),
           fmt::format("    return [w for w in {} if len(w) > {}]\n", p, k), {}};
    for (int i = 0; i < 5; ++i) {
      std::vector<std::string> v(size_t(r.uniform(i == 0 ? 2 : 0, 5))), o;
      for (size_t j = 0; j < v.size(); ++j) {
        // The example holds a long word first, so returning [] fails.
        v[j] = (i == 0 && j == 0) || r.percent(30) ? std::string(r.pick(kLong)) : word(r);
        if (int(v[j].size()) > k) o.push_back(v[j]);
      }
      t.add(pysl(v), pysl(o));
    }
    return t;
  }},
};
// clang-format on

}  // namespace

Item code_item(Rng& rng, int difficulty) {
  std::vector<const Template*> eligible;
  for (const auto& t : kTemplates)
    if (t.tier <= difficulty) eligible.push_back(&t);
  const Template* tmpl = rng.pick(eligible);
  Task t = tmpl->make(rng);

  const bool typing =
      t.params.find("List[") != std::string::npos || t.ret.find("List[") != std::string::npos;
  std::string prompt =
      fmt::format("{}def {}({}) -> {}:\n    \"\"\"{}\n    >>> {}({})\n    {}\n    \"\"\"\n",
                  typing ? "from typing import List\n\n\n" : "", t.name, t.params, t.ret, t.doc,
                  t.name, t.cases[0].first, t.cases[0].second);
  std::string test = "\n\ndef check(candidate):\n";
  for (const auto& [args, want] : t.cases)
    test += fmt::format("    assert candidate({}) == {}\n", args, want);

  Item it;
  // The examples vary between draws of one task; the key leaves them out, so a task never
  // reappears in another split with different examples.
  it.key = normalize_key(t.name + " " + t.params + " " + t.ret + " " + t.doc);
  it.record = {
      {"prompt", prompt}, {"entry_point", t.name}, {"canonical_solution", t.body}, {"test", test}};
  it.instruction = prompt;
  it.output = t.body;
  // A template's function names vary between draws; its tier and place in kTemplates do not.
  it.template_name = fmt::format("code/t{}-{:02}", tmpl->tier, tmpl - kTemplates);
  return it;
}

}  // namespace cogumi::synth
