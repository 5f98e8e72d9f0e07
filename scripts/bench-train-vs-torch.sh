#!/usr/bin/env bash
# Training speed, exspin vs PyTorch, same config, same threads, one script (not part of CI):
# forward + next-token NLL + backward + AdamW (full fine-tune) of the ~31M-parameter qwen2-30m
# shape on random batches of 8 x 256 tokens. Prints both JSON objects and the ratio.
#   scripts/bench-train-vs-torch.sh [EXSPIN_BIN] [PYTHON]
set -euo pipefail
EXSPIN=${1:-target/release/exspin}
PY=${2:-/work/torch-venv/bin/python}
THREADS=${THREADS:-2}
STEPS=${STEPS:-5}
BATCH=${BATCH:-8}
SEQ=${SEQ:-256}
dir=$(cd "$(dirname "$0")" && pwd)
ours=$("$EXSPIN" bench train --shape qwen2-30m --batch "$BATCH" --seq "$SEQ" --steps "$STEPS" --threads "$THREADS" --json)
echo "$ours"
theirs=$(OMP_NUM_THREADS=$THREADS "$PY" "$dir/torch_bench.py" train --shape qwen2-30m --batch "$BATCH" --seq "$SEQ" --steps "$STEPS" --threads "$THREADS")
echo "$theirs"
"$PY" - "$ours" "$theirs" <<'PYEOF'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"train tokens/s: exspin {a['tokens_per_s']:.1f}, pytorch {b['tokens_per_s']:.1f}; "
      f"exspin/pytorch = {a['tokens_per_s'] / b['tokens_per_s']:.2f} "
      f"(median step: {a['tokens_per_s_median_step'] / b['tokens_per_s_median_step']:.2f})")
PYEOF
