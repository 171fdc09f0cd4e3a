// Automation items: one request, 2-4 tool specs, exactly one correct call (BFCL's "simple" and
// "multiple" categories). Ground truth lists every parameter of the called function: the values
// the request supports, or [""] for an optional one it does not mention, which BFCL reads as
// "may be left out". Where a request names a value in words ("euros"), the code ("EUR") is
// accepted too, and listed first: it is what the canonical call and few-shot blocks show.
#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>

#include "data/synth.h"

namespace cogumi::synth {

namespace {

struct Param {
  const char* name;
  const char* type;  // BFCL types: string, integer, float
  const char* desc;
  std::vector<const char*> enums;
  bool required;
};

struct Request {
  std::string text;
  std::vector<std::pair<std::string, ojson>> args;  // mentioned parameters -> accepted values
};

struct Tool {
  const char* name;
  const char* desc;
  std::vector<Param> params;
  Request (*make)(Rng&, bool optional);  // optional: may mention optional parameters
};

std::string one_of(Rng& r, std::initializer_list<const char*> xs) {
  return xs.begin()[r.uniform(0, int(xs.size()) - 1)];
}

// A template with {0}, {1}, ... filled in order.
template <typename... A>
std::string say(Rng& r, std::initializer_list<const char*> templates, const A&... a) {
  return fmt::format(fmt::runtime(one_of(r, templates)), a...);
}

// "the airport" is also accepted as "airport".
ojson with_and_without_the(const std::string& s) {
  if (s.rfind("the ", 0) == 0) return ojson::array({s, s.substr(4)});
  return ojson::array({s});
}

const char* const kCities[] = {"Paris",   "London",  "Tokyo",   "Berlin", "Madrid", "Rome",
                               "Cairo",   "Lima",    "Oslo",    "Dublin", "Boston", "Denver",
                               "Seattle", "Chicago", "Toronto", "Sydney", "Delhi",  "Lisbon",
                               "Vienna",  "Prague",  "Nairobi", "Seoul"};
const char* const kPeople[] = {"Ann",  "Bob",  "Cal",  "Dee",  "Eva",  "Finn", "Gus",  "Hana",
                               "Ivy",  "Jack", "Kim",  "Leo",  "Mia",  "Ned",  "Olga", "Pete",
                               "Rosa", "Sam",  "Tina", "Umar", "Vera", "Will", "Yara", "Zack",
                               "Omar", "Lena", "Raj",  "Nina", "Theo", "Ella"};

struct Currency {
  const char* code;
  const char* words;
};
const Currency kCurrencies[] = {
    {"USD", "US dollars"}, {"EUR", "euros"},        {"GBP", "pounds"}, {"JPY", "yen"},
    {"INR", "rupees"},     {"CHF", "Swiss francs"}, {"MXN", "pesos"},  {"CAD", "Canadian dollars"}};

const Tool kToolDefs[] = {
    {"get_weather",
     "Get the current weather for a city.",
     {{"city", "string", "The city name.", {}, true},
      {"unit", "string", "Temperature unit.", {"celsius", "fahrenheit"}, false}},
     [](Rng& r, bool opt) {
       std::string c = r.pick(kCities);
       if (opt && r.percent(40)) {
         std::string u = one_of(r, {"celsius", "fahrenheit"});
         return Request{
             say(r, {"What is the weather in {0} in {1}?", "Give me the weather in {0} in {1}."}, c,
                 u),
             {{"city", {c}}, {"unit", {u}}}};
       }
       return Request{say(r,
                          {"What is the weather in {0}?", "How is the weather in {0} today?",
                           "Tell me the weather in {0}.", "Will it rain in {0} today?"},
                          c),
                      {{"city", {c}}}};
     }},
    {"get_time",
     "Get the current local time in a city.",
     {{"city", "string", "The city name.", {}, true}},
     [](Rng& r, bool) {
       std::string c = r.pick(kCities);
       return Request{say(r,
                          {"What time is it in {0}?", "Tell me the time in {0}.",
                           "What is the local time in {0}?", "What is the time in {0} right now?"},
                          c),
                      {{"city", {c}}}};
     }},
    {"set_timer",
     "Start a countdown timer.",
     {{"minutes", "integer", "Length of the timer in minutes.", {}, true},
      {"label", "string", "A name for the timer.", {}, false}},
     [](Rng& r, bool opt) {
       int m = r.uniform(2, 90);
       if (opt && r.percent(40)) {
         std::string l =
             one_of(r, {"tea", "pasta", "eggs", "laundry", "bread", "rice", "pizza", "nap"});
         return Request{say(r,
                            {"Set a timer for {0} minutes for the {1}.",
                             "Start a {0} minute timer called {1}."},
                            m, l),
                        {{"minutes", {m}}, {"label", {l}}}};
       }
       return Request{say(r,
                          {"Set a timer for {0} minutes.", "Start a {0} minute timer.",
                           "Count down {0} minutes for me."},
                          m),
                      {{"minutes", {m}}}};
     }},
    {"set_alarm",
     "Set an alarm clock.",
     {{"hour", "integer", "Hour of the alarm, 0 to 23.", {}, true},
      {"minute", "integer", "Minute of the alarm, 0 to 59.", {}, false}},
     [](Rng& r, bool opt) {
       int h = r.uniform(5, 11);
       if (opt && r.percent(50)) {
         int m = 5 * r.uniform(1, 11);
         return Request{say(r, {"Set an alarm for {0}:{1:02}.", "Wake me up at {0}:{1:02}."}, h, m),
                        {{"hour", {h}}, {"minute", {m}}}};
       }
       return Request{say(r, {"Set an alarm for {0} o'clock.", "Wake me up at {0} o'clock."}, h),
                      {{"hour", {h}}}};
     }},
    {"send_email",
     "Send an email.",
     {{"to", "string", "The recipient.", {}, true},
      {"subject", "string", "The subject line.", {}, true},
      {"body", "string", "The message text.", {}, false}},
     [](Rng& r, bool opt) {
       std::string to = r.pick(kPeople);
       std::string s = one_of(r, {"lunch", "the meeting", "the report", "the party", "the trip",
                                  "homework", "the budget", "dinner"});
       if (opt && r.percent(40)) {
         std::string b =
             one_of(r, {"see you soon", "thanks", "I am late", "call me", "all is well"});
         return Request{
             say(r, {"Email {0} about {1} and say {2}.", "Send {0} an email about {1} saying {2}."},
                 to, s, b),
             {{"to", {to}}, {"subject", with_and_without_the(s)}, {"body", {b}}}};
       }
       return Request{say(r,
                          {"Send an email to {0} about {1}.", "Email {0} about {1}.",
                           "Write to {0} by email about {1}."},
                          to, s),
                      {{"to", {to}}, {"subject", with_and_without_the(s)}}};
     }},
    {"convert_currency",
     "Convert an amount of money from one currency to another.",
     {{"amount", "float", "The amount to convert.", {}, true},
      {"from", "string", "Currency code to convert from, like USD.", {}, true},
      {"to", "string", "Currency code to convert to, like EUR.", {}, true}},
     [](Rng& r, bool opt) {
       const Currency& f = r.pick(kCurrencies);
       const Currency* t = &r.pick(kCurrencies);
       while (t == &f) t = &r.pick(kCurrencies);
       int a = r.percent(50) ? 5 * r.uniform(1, 40) : r.uniform(1, 500);
       std::vector<std::pair<std::string, ojson>> args = {
           {"amount", {a}}, {"from", {f.code, f.words}}, {"to", {t->code, t->words}}};
       if (opt && r.percent(50))
         return Request{
             say(r, {"How many {2} is {0} {1}?", "Change {0} {1} into {2}."}, a, f.words, t->words),
             args};
       return Request{
           say(r, {"Convert {0} {1} to {2}.", "How much is {0} {1} in {2}?"}, a, f.code, t->code),
           args};
     }},
    {"play_music",
     "Play music of a genre.",
     {{"genre", "string", "The music genre.", {}, true},
      {"volume", "integer", "Volume from 1 to 10.", {}, false}},
     [](Rng& r, bool opt) {
       std::string g =
           one_of(r, {"jazz", "rock", "pop", "classical", "blues", "reggae", "folk", "disco"});
       if (opt && r.percent(50)) {
         int v = r.uniform(1, 10);
         return Request{
             say(r, {"Play {0} at volume {1}.", "Put on some {0} music at volume {1}."}, g, v),
             {{"genre", {g}}, {"volume", {v}}}};
       }
       return Request{say(r, {"Play some {0}.", "Put on {0} music.", "I want to hear {0}."}, g),
                      {{"genre", {g}}}};
     }},
    {"add_reminder",
     "Add a reminder for a day of the week.",
     {{"text", "string", "What to be reminded of.", {}, true},
      {"day", "string", "Day of the week.", {}, true}},
     [](Rng& r, bool) {
       std::string t =
           one_of(r, {"buy milk", "call mom", "pay rent", "water the plants", "walk the dog",
                      "clean the room", "feed the cat", "return the books"});
       std::string d = one_of(
           r, {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"});
       return Request{say(r,
                          {"Remind me to {0} on {1}.", "Add a reminder to {0} on {1}.",
                           "On {1}, remind me to {0}."},
                          t, d),
                      {{"text", {t}}, {"day", {d}}}};
     }},
    {"search_web",
     "Search the web.",
     {{"query", "string", "The search query.", {}, true}},
     [](Rng& r, bool) {
       std::string q = one_of(
           r, {"pasta recipes", "cheap flights", "bike shops", "football scores", "train times",
               "how to grow tomatoes", "rainy day games", "the tallest mountain", "used cars",
               "yoga for beginners", "cheap hotels", "bus times", "soup recipes", "hiking trails",
               "the weather tomorrow", "movie times"});
       return Request{say(r,
                          {"Search the web for {0}.", "Look up {0} online.",
                           "Find {0} on the internet.", "Search online for {0}."},
                          q),
                      {{"query", with_and_without_the(q)}}};
     }},
    {"translate_text",
     "Translate text into another language.",
     {{"text", "string", "The text to translate.", {}, true},
      {"language", "string", "The target language.", {}, true}},
     [](Rng& r, bool) {
       std::string t = one_of(r, {"hello", "thank you", "good night", "good morning",
                                  "where is the station", "I like tea", "see you soon"});
       std::string l =
           one_of(r, {"French", "Spanish", "German", "Italian", "Japanese", "Portuguese"});
       return Request{
           say(r,
               {"Translate '{0}' into {1}.", "How do you say '{0}' in {1}?", "Say '{0}' in {1}."},
               t, l),
           {{"text", {t}}, {"language", {l}}}};
     }},
    {"call_contact",
     "Start a phone call with a contact.",
     {{"name", "string", "The contact's name.", {}, true}},
     [](Rng& r, bool) {
       std::string n = r.pick(kPeople);
       return Request{say(r,
                          {"Call {0}.", "Phone {0}, please.", "Give {0} a call.",
                           "Please call {0} now.", "Ring {0}."},
                          n),
                      {{"name", {n}}}};
     }},
    {"turn_on_lights",
     "Turn on the lights in a room.",
     {{"room", "string", "The room.", {}, true},
      {"brightness", "integer", "Brightness in percent.", {}, false}},
     [](Rng& r, bool opt) {
       std::string room = one_of(
           r, {"kitchen", "bedroom", "living room", "bathroom", "garage", "office", "hallway"});
       if (opt && r.percent(50)) {
         int b = 10 * r.uniform(1, 10);
         return Request{
             say(r,
                 {"Turn on the {0} lights at {1} percent.", "Set the {0} lights to {1} percent."},
                 room, b),
             {{"room", {room}}, {"brightness", {b}}}};
       }
       return Request{say(r, {"Turn on the lights in the {0}.", "Switch on the {0} lights."}, room),
                      {{"room", {room}}}};
     }},
    {"book_taxi",
     "Book a taxi ride.",
     {{"destination", "string", "Where to go.", {}, true},
      {"passengers", "integer", "Number of passengers.", {}, false}},
     [](Rng& r, bool opt) {
       std::string d = one_of(r, {"the airport", "the station", "the hotel", "the museum",
                                  "the beach", "the stadium", "the library", "the zoo"});
       if (opt && r.percent(50)) {
         int n = r.uniform(2, 6);
         return Request{
             say(r, {"Book a taxi to {0} for {1} people.", "Get a cab to {0} for {1} of us."}, d,
                 n),
             {{"destination", with_and_without_the(d)}, {"passengers", {n}}}};
       }
       return Request{
           say(r, {"Book a taxi to {0}.", "Get me a cab to {0}.", "I need a taxi to {0}."}, d),
           {{"destination", with_and_without_the(d)}}};
     }},
};

ojson spec_json(const Tool& t) {
  ojson props = ojson::object(), required = ojson::array();
  for (const auto& p : t.params) {
    ojson prop = {{"type", p.type}, {"description", p.desc}};
    if (!p.enums.empty()) prop["enum"] = p.enums;
    props[p.name] = prop;
    if (p.required) required.push_back(p.name);
  }
  return {{"name", t.name},
          {"description", t.desc},
          {"parameters", {{"type", "dict"}, {"properties", props}, {"required", required}}}};
}

// Each tool's spec once, and its text as the eval prompt lists it (keys sorted): an item's list is
// these joined, the same bytes as parsing and dumping the whole list again (tools are drawn 12,000+
// times per curriculum).
struct ToolSpec {
  ojson spec;
  std::string sorted;
};
const ToolSpec& tool_spec(const Tool& t) {
  static const std::vector<ToolSpec> specs = [] {
    std::vector<ToolSpec> v;
    for (const auto& d : kToolDefs) {
      ojson j = spec_json(d);
      v.push_back({j, nlohmann::json::parse(j.dump()).dump()});
    }
    return v;
  }();
  return specs[size_t(&t - kToolDefs)];
}

}  // namespace

std::string city(Rng& r) { return r.pick(kCities); }

Item automation_item(Rng& rng, int difficulty) {
  // More tools to choose from, and optional arguments, as difficulty grows.
  const int n_tools = difficulty <= 1   ? 2
                      : difficulty == 2 ? rng.uniform(2, 3)
                      : difficulty == 3 ? rng.uniform(3, 4)
                                        : 4;
  std::vector<const Tool*> tools;
  for (const auto& t : kToolDefs) tools.push_back(&t);
  rng.shuffle(tools);
  tools.resize(size_t(n_tools));
  const Tool& target = *tools[0];
  rng.shuffle(tools);

  Request req = target.make(rng, difficulty >= 2);
  ojson accepted = ojson::object(), args = ojson::object();
  for (const auto& p : target.params) {
    auto it = std::find_if(req.args.begin(), req.args.end(),
                           [&](const auto& a) { return a.first == p.name; });
    if (it == req.args.end()) {
      accepted[p.name] = ojson::array({""});
    } else {
      accepted[p.name] = it->second;
      args[p.name] = it->second[0];
    }
  }
  ojson functions = ojson::array();
  std::string listed = "[";
  for (const Tool* t : tools) {
    const ToolSpec& ts = tool_spec(*t);
    functions.push_back(ts.spec);
    listed += (listed.size() > 1 ? "," : "") + ts.sorted;
  }
  listed += "]";
  ojson call = {{"name", target.name}, {"arguments", args}};

  Item it;
  it.key = normalize_key(req.text);
  it.record = {
      {"question", ojson::array({ojson::array({{{"role", "user"}, {"content", req.text}}})})},
      {"function", functions}};
  it.answer = ojson::array({{{target.name, accepted}}});
  // The zero-shot eval prompt's shape (eval/prompts.cpp), whose function list is key-sorted (`listed`).
  it.instruction = "You can call these functions:\n" + listed +
                   "\n\nAnswer each request with one JSON object {\"name\": ..., \"arguments\": "
                   "{...}} and nothing else.\n\nRequest: " + req.text;
  it.output = call.dump();
  it.template_name = "automation/" + std::string(target.name);
  return it;
}

}  // namespace cogumi::synth
