#!/usr/bin/env python3
"""Writes prediction files that nobody tuned against: each line is the gold SQL (or a given
predictions file's line) with a random, often result-changing mutation. Used to check exspin's
evaluator against the official one on files it has not seen (see BENCHMARKS.md).

Usage: python3 scripts/mutate-predictions.py GOLD.sql OUT.txt SEED [BASE_PREDICTIONS.txt]
"""
import random
import re
import sys

gold_file, out_file, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
base = [l.rstrip("\n").split("\t")[0] for l in open(sys.argv[4])] if len(sys.argv) > 4 else None
rng = random.Random(seed)
golds = [l.rstrip("\n").split("\t")[0] for l in open(gold_file) if l.strip()]


def swap_select_columns(q):
    m = re.match(r"(?is)(\s*select\s+)(.*?)(\s+from\s.*)", q)
    if not m or "," not in m.group(2) or "(" in m.group(2):
        return q
    cols = [c.strip() for c in m.group(2).split(",")]
    rng.shuffle(cols)
    return m.group(1) + " , ".join(cols) + m.group(3)


MUTATIONS = [
    lambda q: q,                                                  # unchanged
    lambda q: q,
    swap_select_columns,                                          # column order (allowed by Spider)
    lambda q: re.sub(r"(?i)\border by\b.*?(\blimit\b|$)", r"\1", q, count=1),  # drop ORDER BY
    lambda q: re.sub(r"(?i)^\s*select\s+", "SELECT DISTINCT ", q, count=1),
    lambda q: re.sub(r"\b(\d+)\b", lambda m: str(int(m.group(1)) + 1), q, count=1),
    lambda q: q.replace(" = ", " != ", 1),
    lambda q: re.sub(r"(?i)\bcount\(\*\)", "count(*) * 1.0", q, count=1),  # int -> float
    lambda q: re.sub(r"(?i)\bdesc\b", "ASC", q, count=1),
    lambda q: q + " LIMIT 3",
    lambda q: q.rstrip(";") + "; SELECT 1",                      # second statement
    lambda q: q.replace(">=", "> ="),                            # split operator
    lambda q: q.upper(),
    lambda q: "SELEC" + q[6:],                                   # syntax error
    lambda q: re.sub(r"(?i)\bmax\(", "min(", q, count=1),
    lambda q: re.sub(r"'([^']*)'", lambda m: "'" + m.group(1).lower() + "'", q, count=1),
]

with open(out_file, "w") as out:
    for i, g in enumerate(golds):
        src = base[i] if base and rng.random() < 0.5 else g
        out.write(" ".join(rng.choice(MUTATIONS)(src).split()) + "\n")
