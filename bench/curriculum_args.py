#!/usr/bin/env python3
"""Prints the `cogumi nano data` arguments of the curriculum the shipped base was trained on (models/nano-base.json's
recipe), so every bench script makes the same data: `cogumi nano data -o DIR $(python3 bench/curriculum_args.py)`."""
import json
import pathlib

j = json.loads((pathlib.Path(__file__).resolve().parent.parent / "models" / "nano-base.json").read_text())
c = j["curriculum"]
# --n-choice only when the recipe has it (as the recipe's own command): a caller may add its own, and `nano data`
# refuses an option given twice.
choice = ["--n-choice", c["n_choice"]] if c.get("n_choice", 0) > 0 else []
print("--seed", j["seed"], "--n-train", c["n_train"], "--n-dev", c["n_dev"], "--n-test", c["n_test"],
      "--n-mix", c["n_mix"], "--n-copy", c.get("n_copy", 0), *choice, "--difficulty", c["difficulty"])
