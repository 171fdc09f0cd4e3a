#!/usr/bin/env python3
"""Writes the escalation set: user follow-ups after an assistant turn, labelled
escalate (the user is dissatisfied) or continue. Seeded and deterministic:
`python3 make_escalation.py [OUT_DIR]` rewrites train/dev/test.jsonl byte for byte
(into this folder unless OUT_DIR is given).

Rows come from template families (a family = a few phrasings of one way to
complain or to carry on, with slots) and from hand-written items (hand_items.py).
The split is by family, never by row, so dev and test phrasings were never seen in
training. See README.md."""
import json
import random
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ beside the data
from hand_items import HAND  # noqa: E402

SEED = 20261201
PER_TEMPLATE = 12  # rows drawn per phrasing (duplicates dropped)
HERE = Path(__file__).resolve().parent

# ---- slots: one assistant turn per domain, with what a follow-up can refer to ----
FUNCS = [("is_prime", "checks whether n is prime"), ("reverse_words", "reverses the words of a sentence"),
         ("flatten", "flattens a nested list"), ("parse_date", "parses an ISO date"),
         ("merge_sorted", "merges two sorted lists"), ("word_count", "counts words in a file"),
         ("fib", "returns the n-th Fibonacci number"), ("dedupe", "removes duplicates, keeping order"),
         ("to_snake_case", "converts CamelCase to snake_case"), ("median", "returns the median of a list")]
LANGS = ["Python", "C++", "JavaScript", "Rust", "Go", "Java"]
ERRORS = ["TypeError: 'NoneType' object is not subscriptable", "IndexError: list index out of range",
          "NameError: name 'result' is not defined", "KeyError: 'id'",
          "error: expected ';' before '}' token", "error[E0382]: borrow of moved value: `v`",
          "ReferenceError: x is not defined", "SyntaxError: invalid syntax",
          "ZeroDivisionError: division by zero", "AttributeError: 'list' object has no attribute 'split'",
          "undefined reference to `main'", "panic: runtime error: index out of range [3] with length 3",
          "RecursionError: maximum recursion depth exceeded", "ValueError: invalid literal for int() with base 10: 'abc'",
          "java.lang.NullPointerException", "segmentation fault (core dumped)"]
CAPITALS = [("Australia", "Canberra", "Sydney"), ("Canada", "Ottawa", "Toronto"), ("Brazil", "Brasilia", "Rio de Janeiro"),
            ("Turkey", "Ankara", "Istanbul"), ("Switzerland", "Bern", "Zurich"), ("Nigeria", "Abuja", "Lagos"),
            ("Morocco", "Rabat", "Casablanca"), ("New Zealand", "Wellington", "Auckland"), ("Vietnam", "Hanoi", "Ho Chi Minh City"),
            ("Pakistan", "Islamabad", "Karachi")]
TOOLS = [("send_email", "the email to Dana"), ("create_event", "the meeting for Friday at 3pm"),
         ("delete_files", "the old logs in /tmp"), ("get_weather", "the forecast for Lisbon"),
         ("book_flight", "the flight to Berlin"), ("set_reminder", "the reminder for 9am"),
         ("rename_files", "the photos in ~/Pictures"), ("create_ticket", "the bug ticket")]
TOPICS = ["autumn", "the ocean", "a lost cat", "coffee", "Mondays", "friendship", "a rainy city", "space travel"]
CHAT_KINDS = ["poem", "story", "toast", "summary", "cover letter", "product description"]
FOLLOW_TASKS = ["handles negative numbers", "works on an empty list", "reads from stdin", "uses a generator",
                "sorts the result", "runs in O(n)", "returns a dict instead", "has type hints"]


def ctx(domain, rng):
    """Slots for one exchange. `shown` is what the assistant said; families that
    contradict it use `right`/`wrong`; the turn looks the same either way."""
    c = {"domain": domain, "n": rng.randint(3, 12), "lang": rng.choice(LANGS), "err": rng.choice(ERRORS),
         "topic": rng.choice(TOPICS), "task": rng.choice(FOLLOW_TASKS), "line": rng.randint(2, 40)}
    if domain == "math":
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        op, right = rng.choice([("+", a + b), ("*", a * b), ("-", a - b)])
        wrong = right + rng.choice([-10, -2, -1, 1, 2, 10])
        c.update(a=a, b=b, op=op, right=right, wrong=wrong, q=f"what is {a} {op} {b}",
                 thing=rng.choice(["the answer", "the result", "your math", "the sum", "that number"]),
                 alt=rng.choice([f"{a} {op} {b} times {c['n']}", f"the percentage, not the total",
                                 f"{a} divided by {b}", f"the answer rounded to {c['n']} places"]),
                 fact=f"{a} {op} {b}")
        c["shown"] = c["wrong"]
        c["prev"] = rng.choice([f"{a} {op} {b} = {{shown}}.", f"The answer is {{shown}}.",
                                f"Let's compute: {a} {op} {b} = {{shown}}. So the result is {{shown}}."])
    elif domain == "code":
        fn, desc = rng.choice(FUNCS)
        c.update(fn=fn, q=f"write a {c['lang']} function {fn} that {desc}", thing=rng.choice(
            ["the code", "the function", f"{fn}", "your snippet", "the program", "the fix"]),
            alt=rng.choice([f"in {rng.choice(LANGS)}", f"a version without recursion", f"one that {c['task']}",
                            f"the {fn} from my file, not a new one"]),
            right=f"{fn}([])", wrong="None", fact=f"{fn}([1, 2, 3])")
        c["shown"] = ""
        c["prev"] = f"Here is `{fn}` in {c['lang']}:\n```\ndef {fn}(x):\n    ...\n```\nIt {desc}."
    elif domain == "knowledge":
        country, cap, other = rng.choice(CAPITALS)
        c.update(q=f"what is the capital of {country}", thing=rng.choice(["the answer", "that fact", "your answer"]),
                 right=cap, wrong=other, shown=other, fact=f"the capital of {country}",
                 alt=rng.choice([f"the largest city of {country}", f"the capital of {country} in 1900",
                                 f"the population of {cap}"]),
                 prev=rng.choice(["The capital of %s is {shown}." % country,
                                  "{shown} is the capital of %s, and its largest city." % country]))
    elif domain == "tool":
        tool, obj = rng.choice(TOOLS)
        c.update(q=f"please do {obj}", thing=rng.choice([obj, "the action", "that", "the tool call"]),
                 right=tool, wrong=rng.choice([t for t, _ in TOOLS if t != tool]), shown="", fact=obj,
                 alt=rng.choice([f"{obj}, but for next week", f"{obj} using my work account", f"only a draft of {obj}"]),
                 prev=f"Done: I called `{tool}` for {obj}. Status: ok.")
    else:
        kind = rng.choice(CHAT_KINDS)
        c.update(q=f"write a {kind} about {c['topic']}", thing=rng.choice([f"the {kind}", "that", "this"]),
                 right=kind, wrong=rng.choice([k for k in CHAT_KINDS if k != kind]), shown="", fact=f"a {kind}",
                 alt=rng.choice([f"a {kind} about {rng.choice(TOPICS)}", f"a shorter {kind}", f"a funny {kind}"]),
                 prev=f"Here's a {kind} about {c['topic']}:\n\n...")
    c["prev"] = c["prev"].replace("{shown}", str(c.get("shown", "")))
    return c


ALL = ["math", "code", "knowledge", "tool", "chat"]
CODE = ["code"]
MATH = ["math"]
FACT = ["math", "knowledge"]

# ---- families: (name, label, domains, templates). Each family is one way of saying it. ----
E, C = "escalate", "continue"
FAMILIES = [
    # escalate: plain verdicts
    ("wrong-plain", E, ALL, ["that's wrong", "this is wrong", "wrong", "that is just wrong", "{thing} is wrong"]),
    ("incorrect", E, ALL, ["that's incorrect", "incorrect.", "{thing} is incorrect", "this is not correct"]),
    ("not-right", E, ALL, ["that's not right", "nope, not right", "no, that isn't right", "{thing} isn't right at all"]),
    ("should-be", E, FACT, ["no, it should be {right}", "the answer should be {right}", "it's {right}, not {wrong}",
                            "should have been {right}"]),
    ("you-made-mistake", E, ALL, ["you made a mistake", "there's a mistake in {thing}", "you messed up {thing}",
                                  "you got {thing} wrong"]),
    ("try-again", E, ALL, ["try again", "please redo {thing}, it's off", "do it again properly", "again, and get it right this time"]),
    ("double-check", E, FACT, ["double check that, it's off", "are you sure? that looks off", "recheck {thing}, it's not {wrong}",
                               "I don't think {thing} is correct"]),
    # escalate: does not work
    ("no-compile", E, CODE, ["still doesn't compile", "it doesn't compile", "won't compile", "this does not even compile in {lang}",
                             "compilation fails"]),
    ("not-working", E, CODE + ["tool"], ["it doesn't work", "still not working", "{thing} does not work", "this isn't working at all",
                                         "nothing happened"]),
    ("crashes", E, CODE, ["it crashes", "{thing} crashes on startup", "the program crashes when I run it", "it segfaults"]),
    ("tests-fail", E, CODE, ["the tests fail", "all my tests are failing now", "3 of {n} tests fail", "the test suite is red"]),
    ("wrong-output", E, CODE, ["{fact} gives the wrong output", "the output is wrong", "it prints the wrong thing",
                               "{fn} returns garbage"]),
    ("error-pasted", E, CODE, ["{err}", "I get {err}", "got this: {err}", "{err} on line {line}",
                               "Traceback (most recent call last):\n  File \"main.py\", line {line}\n{err}"]),
    ("ran-and-got", E, CODE, ["I ran it and got {err}", "running it gives {err}", "when I run it: {err}",
                              "ran {fn} and it threw {err}"]),
    ("tool-failed", E, ["tool"], ["{thing} didn't go through", "nothing was sent", "it used {wrong} instead of {right}",
                                  "that's not what I asked you to do with {thing}", "the files are still there"]),
    # escalate: misunderstanding
    ("no-i-meant", E, ALL, ["no, I meant {alt}", "no I meant {alt}", "no no, I meant {alt}", "nope, I meant {alt}"]),
    ("not-what-asked", E, ALL, ["that's not what I asked", "that's not what I asked for, I wanted {alt}",
                                "you didn't answer my question", "I asked for {alt}, not this"]),
    ("misread", E, ALL, ["you misunderstood me", "read my question again", "you misread the question", "that's not what I meant"]),
    ("repeat-question", E, ALL, ["I'll ask again: {q}?", "again: {q}?", "one more time. {q}?", "{q}?? ", "let me repeat: {q}"]),
    ("same-again", E, ALL, ["you gave me the same answer again", "same wrong answer", "you keep saying the same thing",
                            "still the same problem"]),
    # escalate: frustration / ask for more
    ("frustration", E, ALL, ["this is useless", "ugh, come on", "seriously?", "are you even reading what I write?",
                             "why do you keep getting this wrong?", "this is so frustrating"]),
    ("swear-mild", E, ALL, ["what the hell is this", "this is garbage", "damn it, wrong again", "useless answer"]),
    ("human", E, ALL, ["let me talk to a human", "can I speak to a real person", "get me a human please",
                       "I want to talk to support"]),
    ("better-model", E, ALL, ["use a better model", "can you escalate this to the big model", "switch to accurate mode",
                              "give this to a smarter model", "think harder about this one"]),
    ("still-broken", E, CODE + ["tool"], ["still broken", "it's still broken after your fix", "your fix didn't fix anything",
                                          "same error as before"]),
    # escalate: hard positives, no complaint word
    ("arith-contradict", E, MATH, ["hmm, {fact} isn't {wrong}", "{fact} is {right}, not {wrong}", "wait, {fact} = {right}",
                                   "{wrong}? I get {right}", "hmm, I calculated {right}"]),
    ("fact-contradict", E, ["knowledge"], ["hmm, isn't it {right}?", "{right} is the capital though", "{wrong} isn't the capital",
                                           "I'm pretty sure it's {right}"]),
    ("returns-none", E, CODE, ["{fact} returns None", "it returns None for every input", "{fn} never returns",
                               "it hangs forever on {fact}", "the loop never ends"]),
    ("output-vs-expected", E, CODE, ["expected {n} but got {line}", "the output is {line} but should be {n}",
                                     "I get {line}, expected {n}", "it says {line} when it should say {n}"]),
    ("missed-part", E, ALL, ["you forgot the part about {alt}", "you skipped half of the question", "you ignored {alt}",
                             "where's the part I asked for?"]),
    ("lazy", E, ["code", "chat"], ["you left a TODO in it", "the function body is just ...", "this is only a stub",
                                   "you didn't finish {thing}"]),
    # continue: gratitude and praise
    ("thanks", C, ALL, ["thanks!", "thank you", "thanks a lot", "great, thanks", "cheers"]),
    ("works-thanks", C, CODE + ["tool"], ["that works, thanks", "works now, thank you", "it runs perfectly", "compiles and runs fine"]),
    ("praise", C, ALL, ["perfect", "nice, that's exactly what I needed", "great answer", "awesome", "you're a lifesaver"]),
    ("ack", C, ALL, ["ok", "got it", "makes sense", "understood", "ok cool"]),
    ("confirm-right", C, FACT, ["yes, {right} is what I got too", "right, {fact} is {right}", "that matches my answer",
                                "correct, thanks"]),
    # continue: next steps
    ("now-do", C, ALL, ["now do it for {n}", "great, now make it {alt}", "next, {q} for {n} items",
                        "can you also do {alt}?"]),
    ("new-request-code", C, CODE, ["now write a function that {task}", "can you add tests for {fn}?", "make it {task}",
                                   "port {fn} to {lang}"]),
    ("new-request-math", C, MATH, ["what is {b} {op} {a}?", "and what about {a} {op} {n}?", "now divide it by {n}",
                                   "next one: {n} squared"]),
    ("new-request-any", C, ALL, ["next question: {q}", "different topic: what's a good name for a cat?",
                                 "now tell me a joke", "can you summarize this in one line?"]),
    ("explain", C, ALL, ["can you explain step {n}?", "why does that work?", "how did you get {thing}?",
                         "explain it like I'm five", "what does the second line do?"]),
    ("how-would", C, ALL, ["how would I do this in {lang}?", "how would this change for {n} items?",
                           "what if the input is empty?", "what's the complexity of {thing}?"]),
    ("clarify-context", C, ALL, ["by the way, I'm on {lang}", "for context, this is for a class", "fyi I'm using Windows",
                                 "just so you know, it's for a demo tomorrow"]),
    ("tool-next", C, ["tool"], ["also send a copy to Sam", "great, now set a reminder for {n}pm", "and cancel the old one",
                                "can you check it went through?"]),
    ("chat-next", C, ["chat"], ["make it rhyme", "can you make it longer?", "add a line about {topic}", "translate it to French"]),
    # continue: hard negatives (complaint words, no complaint)
    ("no-problem", C, ALL, ["no problem, thanks!", "no worries", "no, that's all, thanks", "nope, nothing else",
                            "no need, that's fine"]),
    ("thats-right-now", C, ALL, ["that's right, now do it for {n}", "correct! now try {alt}", "yes exactly, next do {n}",
                                 "right, and for {n}?"]),
    ("is-it-wrong", C, ALL, ["is it wrong to use recursion here?", "would it be wrong to use a global?",
                             "is it bad practice to do it this way?", "is there anything wrong with my approach of using a loop?"]),
    ("word-meaning", C, ALL, ["what does 'wrong' mean in this context?", "what does 'error' mean in statistics?",
                              "what does 'fails' mean in the spec?", "what does 'undefined behavior' mean?"]),
    ("error-general", C, CODE, ["how do I fix a {err} in general?", "what usually causes {err}?",
                                "can you explain when you get '{err}'?", "what's the most common cause of segfaults?"]),
    ("my-mistake", C, ALL, ["oh, my mistake, your answer is right", "I was wrong, you're right", "never mind, it was my typo",
                            "my bad, it works"]),
    ("fixed-now", C, CODE, ["it compiles now, thanks", "the bug is fixed, what about performance?", "the error is gone",
                            "no more errors, thanks"]),
    ("test-failure-request", C, CODE, ["write a test that checks {fn} fails on empty input",
                                       "make it raise an error when the input is negative",
                                       "add error handling for when the file doesn't exist",
                                       "what should happen if it doesn't compile on old compilers?"]),
    ("not-bad", C, ALL, ["not bad at all", "not bad!", "can't complain, that's great", "no complaints"]),
    ("curious-not-broken", C, ALL, ["nothing's broken, just curious: {q} in general?", "it works, but why?",
                                    "not a problem, just wondering how you'd test it", "I'm not saying it's wrong, but can you explain it?"]),
]

# More phrasings per family, so each family keeps at least four for training after giving one
# to dev and one to test.
MORE = {
    "wrong-plain": ["all of that is wrong", "wrong again"],
    "incorrect": ["that answer is incorrect", "sorry but {thing} is incorrect"],
    "not-right": ["hmm that doesn't look right", "that can't be right"],
    "should-be": ["correct answer is {right}", "it's supposed to be {right}"],
    "you-made-mistake": ["you made an error in {thing}", "there's an error in your answer"],
    "try-again": ["redo it", "give it another shot, that was off"],
    "double-check": ["please verify {thing}, I doubt it's {wrong}", "I'm not convinced {thing} is right"],
    "crashes": ["it crashed again", "it just crashes with exit code {line}"],
    "tests-fail": ["test_{fn} fails", "the CI is failing on your change"],
    "wrong-output": ["{fn} gives me the wrong result", "the numbers it prints are off"],
    "ran-and-got": ["tried it, got {err}", "executing it ends with {err}"],
    "no-i-meant": ["nah, I meant {alt}", "sorry, no: I meant {alt}"],
    "not-what-asked": ["this isn't what I asked for", "I didn't ask for that, I asked for {alt}"],
    "misread": ["you didn't understand the question", "you got the question wrong"],
    "same-again": ["that's the exact same answer as before", "you just repeated yourself"],
    "swear-mild": ["this is crap", "wtf, that's not it"],
    "human": ["I need a human to look at this", "connect me to a person"],
    "still-broken": ["still failing", "it's broken in the same way"],
    "fact-contradict": ["isn't {right} the capital?", "everyone knows it's {right}"],
    "output-vs-expected": ["should print {n}, prints {line}", "got {line} instead of {n}"],
    "missed-part": ["you only did half of it", "what about {alt}? you left it out"],
    "lazy": ["you just wrote placeholders", "half of {thing} is missing"],
    "works-thanks": ["ran it, all good", "tested it and it works"],
    "confirm-right": ["yep, {right} checks out", "I verified it, {right} is correct"],
    "now-do": ["ok now the same for {n}", "good, let's do {alt} next"],
    "new-request-code": ["write a {lang} version too", "now add logging to {fn}"],
    "new-request-math": ["how about {a} {op} {n}?", "what is {n} percent of {a}?"],
    "new-request-any": ["unrelated: how do I boil an egg?", "another thing: {q}"],
    "how-would": ["how would you test {thing}?", "what would change if I used {lang}?"],
    "clarify-context": ["I should mention I'm a beginner", "context: this runs on a Raspberry Pi"],
    "tool-next": ["now do the same for Alex", "also add it to the shared calendar"],
    "chat-next": ["make it more formal", "can you give it a title?"],
    "thats-right-now": ["exactly right. next: {alt}", "yes that's correct, continue with {n}"],
    "is-it-wrong": ["is it a mistake to store this in a global?", "would it be incorrect to round here?"],
    "word-meaning": ["what's the meaning of 'incorrect' in the grading rubric?", "what does 'broken pipe' mean?"],
    "error-general": ["how do people usually debug '{err}'?", "is '{err}' a common beginner error?"],
    "my-mistake": ["oops, I had a typo, your answer is correct", "ah my fault, it works now"],
    "fixed-now": ["the crash is gone now, thanks", "that fixed it"],
    "test-failure-request": ["add a test where {fn} should fail", "make {fn} throw on invalid input"],
    "not-bad": ["not too shabby", "not wrong at all, nice"],
    "curious-not-broken": ["it works fine, I'm just curious why", "no issue, I just want to understand {thing}"],
}
for _i, _f in enumerate(FAMILIES):
    FAMILIES[_i] = (_f[0], _f[1], _f[2], _f[3] + MORE.get(_f[0], []))
assert set(MORE) <= {f[0] for f in FAMILIES}

# A second round of phrasings, written before any test figure was seen, so each family trains on
# more ways of saying the same thing.
MORE2 = {
    "wrong-plain": ["nope, wrong", "{thing} is totally wrong"],
    "incorrect": ["incorrect, please fix it", "your answer is not correct"],
    "not-right": ["this doesn't seem right to me", "not quite right"],
    "should-be": ["shouldn't it be {right}?", "the right answer is {right}"],
    "you-made-mistake": ["you slipped up somewhere", "you got confused in {thing}"],
    "try-again": ["no, try once more", "please try that again"],
    "double-check": ["I doubt that's right, check again", "can you verify, I got something else"],
    "no-compile": ["build fails", "compiler error again"],
    "not-working": ["doesn't work for me", "it does nothing"],
    "crashes": ["it keeps crashing", "the app dies as soon as I call {fn}"],
    "tests-fail": ["unit tests fail with your version", "{n} tests are failing"],
    "wrong-output": ["the result is off", "the output doesn't match what I expect"],
    "error-pasted": ["Error: {err}", "{err}\nwhat now?"],
    "ran-and-got": ["I tried running it: {err}", "after running: {err}"],
    "tool-failed": ["it didn't do anything", "the {right} call failed"],
    "no-i-meant": ["I meant {alt}, not that", "no, what I meant was {alt}"],
    "not-what-asked": ["not what I wanted", "that answers a different question"],
    "misread": ["you got me wrong", "that's not my question at all"],
    "repeat-question": ["again, {q}?", "I asked: {q}"],
    "same-again": ["that's what you said before", "identical answer, still wrong"],
    "frustration": ["come on, really?", "I'm losing my patience here"],
    "swear-mild": ["this is bs", "what is this nonsense"],
    "human": ["is there a human I can talk to?", "transfer me to a person"],
    "better-model": ["I need a stronger model for this", "use your best model"],
    "still-broken": ["the bug is still there", "it still fails the same way"],
    "arith-contradict": ["{fact} can't be {wrong}", "I think {fact} is {right}"],
    "fact-contradict": ["I thought the capital was {right}", "actually it's {right}"],
    "returns-none": ["{fn} returns nothing", "the function just returns None"],
    "output-vs-expected": ["I expected {n}, it gave {line}", "result {line}, expected {n}"],
    "missed-part": ["you left out {alt}", "you didn't do the second part"],
    "lazy": ["there's a '# TODO' where the code should be", "you didn't implement anything"],
    "thanks": ["many thanks", "thank you so much"],
    "works-thanks": ["it works!", "runs fine now, cheers"],
    "praise": ["brilliant", "excellent work"],
    "ack": ["alright", "okay, noted"],
    "confirm-right": ["good, {right} is right", "yes, I also got {right}"],
    "now-do": ["now for {n} please", "do the same with {alt}"],
    "new-request-code": ["can you write a README for {fn}?", "add a docstring to {fn}"],
    "new-request-math": ["what's {a} squared?", "and {a} {op} {b} {op} {n}?"],
    "new-request-any": ["new question: what's the weather like in spring?", "let's move on: {q}"],
    "explain": ["walk me through it", "can you break that down?"],
    "how-would": ["how would an expert do this?", "what's another way to do {thing}?"],
    "clarify-context": ["note: I'm using version {n}", "for reference, my team uses {lang}"],
    "tool-next": ["add Maria to it as well", "and book a room for it"],
    "chat-next": ["now a version for kids", "make it two lines shorter"],
    "no-problem": ["no, that's perfect", "nope, all good"],
    "thats-right-now": ["right! now {alt}", "correct. what about {n}?"],
    "is-it-wrong": ["is it wrong that I prefer tabs?", "am I wrong to worry about speed here?"],
    "word-meaning": ["what does 'regression' mean here?", "define 'failure mode' for me"],
    "error-general": ["what's the difference between an error and an exception?", "why do programs segfault?"],
    "my-mistake": ["sorry, I misread your answer, it's fine", "I copied it wrong, works now"],
    "fixed-now": ["all tests pass now", "your fix worked"],
    "test-failure-request": ["what errors can {fn} raise?", "write a failing test first, TDD style"],
    "not-bad": ["not bad for a first try, now extend it to {n}", "no problems here"],
    "curious-not-broken": ["no bug, I'm just asking how it works", "works great, but what's the theory?"],
}
for _i, _f in enumerate(FAMILIES):
    FAMILIES[_i] = (_f[0], _f[1], _f[2], _f[3] + MORE2.get(_f[0], []))
assert set(MORE2) <= {f[0] for f in FAMILIES}


def surface(text, rng):
    """Surface noise every family shares: case, end punctuation, a filler word."""
    if rng.random() < 0.15:
        text = rng.choice(["hmm, ", "ok ", "well, ", "hey, ", "so ", ""]) + text
    r = rng.random()
    if r < 0.3:
        text = text[:1].upper() + text[1:]
    elif r < 0.35:
        text = text.upper() if len(text) < 60 else text
    if rng.random() < 0.2 and text[-1:] not in "?!.":
        text += rng.choice(["!", ".", "...", "!!"])
    return text.strip()


def template_rows(fam, k, rng):
    """Rows of one phrasing (template k of a family), its slots drawn afresh each time."""
    name, label, domains, templates = fam
    rows, seen = [], set()
    for _ in range(PER_TEMPLATE):
        c = ctx(rng.choice(domains), rng)
        c.setdefault("fn", "the function")
        text = surface(templates[k].format(**c), rng)
        if text.lower() in seen:
            continue
        seen.add(text.lower())
        rows.append({"text": text, "label": label, "previous": c["prev"], "family": f"gen:{name}/{k}"})
    return rows


def split_of(families, rng):
    """Each family (one way of complaining or carrying on) gives one phrasing to dev, one to
    test, and the rest to train: held-out rows are phrasings training never saw, of things
    training did see."""
    out = {}
    for name, label, domains, templates in families:
        assert len(templates) >= 4, f"family {name} needs at least 4 phrasings"
        ks = list(range(len(templates)))
        rng.shuffle(ks)
        for i, k in enumerate(ks):
            out[(name, k)] = "dev" if i == 0 else "test" if i == 1 else "train"
    return out


def main(out_dir):
    rng = random.Random(SEED)
    gen = {f[0]: f for f in FAMILIES}
    assert len(gen) == len(FAMILIES), "duplicate family name"
    split = split_of(FAMILIES, rng)
    # Hand families hold both labels; split them on their own, a quarter each to dev and test.
    hand_names = sorted(HAND)
    rng.shuffle(hand_names)
    q = max(1, len(hand_names) // 4)
    for i, n in enumerate(hand_names):
        split["hand:" + n] = "dev" if i < q else "test" if i < 2 * q else "train"
    rows = {"train": [], "dev": [], "test": []}
    for f in FAMILIES:
        for k in range(len(f[3])):
            rows[split[(f[0], k)]] += template_rows(f, k, rng)
    for name in sorted(HAND):
        for text, label, prev in HAND[name]:
            assert label in (E, C), (name, text)
            rows[split["hand:" + name]].append({"text": text, "label": label, "previous": prev, "family": "hand:" + name})
    # A text already in an earlier split is dropped from the later one (train, dev, test order),
    # so no held-out row is a training row with another label or family.
    seen, dropped = set(), 0
    for s in ("train", "dev", "test"):
        kept = []
        for r in rows[s]:
            key = r["text"].lower()
            if key in seen:
                dropped += 1
                continue
            seen.add(key)
            kept.append(r)
        rows[s] = kept
    print(f"dropped {dropped} rows whose text an earlier split holds")
    for s, rs in rows.items():
        with open(out_dir / f"{s}.jsonl", "w", encoding="utf-8") as f:
            for r in rs:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        n_e = sum(r["label"] == E for r in rs)
        fams = sorted({r["family"] for r in rs})
        print(f"{s}: {len(rs)} rows ({n_e} escalate, {len(rs) - n_e} continue), {len(fams)} families")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
