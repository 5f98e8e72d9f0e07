#!/usr/bin/env python3
"""Per-example verdicts of the *official* Spider execution evaluator, for checking exspin against it.

Usage:
  python3 scripts/official-agreement.py OFFICIAL_DIR GOLD.sql PREDICTIONS.txt DB_DIR OUT.json

OFFICIAL_DIR is a checkout of taoyds/test-suite-sql-eval (its exec_eval.py and parse.py are used
unchanged; `pip install sqlparse tqdm nltk`). This runs the loop of its evaluation.py for
`--etype exec` (strip, first tab field, "value" -> "1" in the prediction, eval_exec_match with
plug_value=False and keep_distinct=False) and writes a JSON array with one entry per example:
true, false, or null when the example's database is missing. Compare it with
`exspin eval ... --compat official --per-example OURS.json`; without "value" in any prediction,
the default mode gives the same verdicts.
"""
import json
import os
import sys

official_dir, gold_file, pred_file, db_dir, out = sys.argv[1:6]
sys.path.insert(0, official_dir)
from exec_eval import eval_exec_match  # noqa: E402  (the official code)

golds = [l.strip().split("\t") for l in open(gold_file) if l.strip()]
preds = [l.strip().split("\t") for l in open(pred_file) if l.strip()]
assert len(golds) == len(preds), (len(golds), len(preds))
verdicts = []
for (gold, db), pred in zip(golds, preds):
    path = os.path.join(db_dir, db, db + ".sqlite")
    if not os.path.exists(path):
        verdicts.append(None)
        continue
    verdicts.append(bool(eval_exec_match(path, pred[0].replace("value", "1"), gold, False, False, False)))
json.dump(verdicts, open(out, "w"))
print(sum(1 for v in verdicts if v), "/", sum(1 for v in verdicts if v is not None))
