#!/usr/bin/env bash
# Training speed, exspin vs PyTorch, same config, same threads, one script (not part of CI):
# forward + next-token NLL + backward + AdamW (full fine-tune) of the ~31M-parameter qwen2-30m
# shape on random batches of 8 x 256 tokens. Prints both JSON objects and the ratio.
#   [ROUNDS=N] [STEPS=N] scripts/bench-train-vs-torch.sh [EXSPIN_BIN] [PYTHON]
set -euo pipefail
EXSPIN=${1:-target/release/exspin}
PY=${2:-/work/torch-venv/bin/python}
THREADS=${THREADS:-2}
STEPS=${STEPS:-5}
BATCH=${BATCH:-8}
SEQ=${SEQ:-256}
dir=$(cd "$(dirname "$0")" && pwd)
ROUNDS=${ROUNDS:-1}
# Shared machines are noisy: with ROUNDS > 1 the two run alternately and the median ratio is printed.
ratios=()
for round in $(seq "$ROUNDS"); do
  ours=$("$EXSPIN" bench train --shape qwen2-30m --batch "$BATCH" --seq "$SEQ" --steps "$STEPS" --threads "$THREADS" --json)
  echo "$ours"
  theirs=$(OMP_NUM_THREADS=$THREADS "$PY" "$dir/torch_bench.py" train --shape qwen2-30m --batch "$BATCH" --seq "$SEQ" --steps "$STEPS" --threads "$THREADS")
  echo "$theirs"
  ratios+=("$("$PY" - "$ours" "$theirs" <<'PYEOF'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"{a['tokens_per_s'] / b['tokens_per_s']:.3f}")
print(f"train tokens/s: exspin {a['tokens_per_s']:.1f}, pytorch {b['tokens_per_s']:.1f}; "
      f"exspin/pytorch = {a['tokens_per_s'] / b['tokens_per_s']:.2f} "
      f"(median step: {a['tokens_per_s_median_step'] / b['tokens_per_s_median_step']:.2f})", file=sys.stderr)
PYEOF
)")
done
if [ "$ROUNDS" -gt 1 ]; then
  printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "median exspin/pytorch over %d rounds: %.2f (min %.2f, max %.2f)\n", NR, m, a[1], a[NR]}'
fi
