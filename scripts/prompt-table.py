#!/usr/bin/env python3
"""The prompt table from scripts/prompt-table.sh's folder: per mode, EX with its Wilson 95%
interval, the exact McNemar p against the best mode (paired over the same questions), EX by
hardness, prompt tokens (mean, p95) and seconds per question (generate's own figure, model
loading excluded). Prints a Markdown table.

Usage: prompt-table.py OUT_DIR MODE...
"""
import json
import math
import re
import sys
from pathlib import Path


def wilson(k, n, z=1.96):
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (c - h, c + h)


def mcnemar_exact(b, c):
    """Two-sided exact McNemar: the discordant pairs against Binomial(b + c, 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def load(out, mode):
    verdicts = json.loads((out / f"{mode}.per-example.json").read_text())
    verdicts = [v if not isinstance(v, dict) else v.get("correct") for v in verdicts]
    # A question without a database has an empty placeholder line: not a prompt.
    tokens = [n for l in (out / f"{mode}.tokens.jsonl").open() if (n := len(json.loads(l)["prompt"]))]
    log = (out / f"{mode}.log").read_text()
    rates = re.findall(r"\(([\d.]+) s/question", log)
    report = json.loads((out / f"{mode}.eval.json").read_text())
    return verdicts, tokens, (float(rates[-1]) if rates else float("nan")), report


def by_hardness(report):
    for key in ("by_hardness", "hardness", "levels"):
        if isinstance(report.get(key), dict):
            return {
                h: (v.get("correct", v.get("right")), v.get("total", v.get("count")))
                for h, v in report[key].items()
                if isinstance(v, dict)
            }
    return {}


def main():
    out = Path(sys.argv[1])
    modes = [m for m in sys.argv[2:] if (out / f"{m}.per-example.json").exists()]
    data = {m: load(out, m) for m in modes}
    ex = {}
    for m, (v, *_rest) in data.items():
        judged = [x for x in v if x is not None]
        ex[m] = (sum(1 for x in judged if x), len(judged))
    best = max(modes, key=lambda m: ex[m][0] / max(ex[m][1], 1))
    print("| prompt | EX | 95% interval | McNemar p vs best | by hardness (e/m/h/x) "
          "| prompt tokens mean | p95 | s/question |")
    print("|---|---|---|---|---|---|---|---|")
    for m in modes:
        v, tokens, rate, report = data[m]
        k, n = ex[m]
        lo, hi = wilson(k, n)
        if m == best:
            p = "(best)"
        else:
            bv = data[best][0]
            b = sum(1 for x, y in zip(bv, v) if x is True and y is False)
            c = sum(1 for x, y in zip(bv, v) if x is False and y is True)
            p = f"{mcnemar_exact(b, c):.3g} ({b}/{c})"
        hard = by_hardness(report)
        hard = " · ".join(
            f"{hard[h][0]}/{hard[h][1]}" for h in ("easy", "medium", "hard", "extra") if h in hard
        ) or "-"
        ts = sorted(tokens)
        p95 = ts[min(len(ts) - 1, math.ceil(0.95 * len(ts)) - 1)] if ts else 0
        mean = sum(ts) / len(ts) if ts else 0
        print(f"| {m} | {k}/{n} = {100 * k / n:.1f}% | {100 * lo:.1f}–{100 * hi:.1f} | {p} "
              f"| {hard} | {mean:.0f} | {p95} | {rate:.1f} |")


if __name__ == "__main__":
    main()
