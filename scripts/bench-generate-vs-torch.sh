#!/usr/bin/env bash
# Generation speed, exspin vs transformers `generate` on the same GGUF weights (both dequantized
# to f32), greedy, exactly 64 new tokens per row, batch 1 and 8, same threads (not part of CI).
# Needs the `gguf` pip package in the venv for transformers to read the GGUF.
#   scripts/bench-generate-vs-torch.sh MODEL.gguf [EXSPIN_BIN] [PYTHON]
set -euo pipefail
MODEL=${1:?give the GGUF file}
EXSPIN=${2:-target/release/exspin}
PY=${3:-/work/torch-venv/bin/python}
THREADS=${THREADS:-2}
BATCH=${BATCH:-1,8}
NEW=${NEW:-64}
PROMPT=${PROMPT:-32}
dir=$(cd "$(dirname "$0")" && pwd)
ours=$("$EXSPIN" bench generate --model "$MODEL" --batch "$BATCH" --new-tokens "$NEW" --prompt-len "$PROMPT" --threads "$THREADS" --json)
echo "$ours"
theirs=$(OMP_NUM_THREADS=$THREADS "$PY" "$dir/torch_bench.py" generate --gguf "$MODEL" --batch "$BATCH" --new-tokens "$NEW" --prompt-len "$PROMPT" --threads "$THREADS")
echo "$theirs"
"$PY" - "$ours" "$theirs" <<'PYEOF'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for x, y in zip(a["results"], b["results"]):
    print(f"batch {x['batch']}: new tokens/s exspin {x['new_tokens_per_s']:.2f}, transformers "
          f"{y['new_tokens_per_s']:.2f}; exspin/transformers = {x['new_tokens_per_s'] / y['new_tokens_per_s']:.2f}")
PYEOF
