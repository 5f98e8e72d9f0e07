#!/usr/bin/env bash
# The prompt table of BENCHMARKS.md: one greedy `exspin generate` run per prompt mode on the same
# questions, each scored by `exspin eval --per-example`, then scripts/prompt-table.py prints EX
# with its 95% interval, the exact McNemar p against the best mode, prompt tokens and s/question.
#
# Usage: scripts/prompt-table.sh MODEL.gguf OUT_DIR [SUBSET] [MODE...]
#   SUBSET: "--stratified 200" (default) or "" for every evaluable dev question.
#   MODE: names from the list below (default: all). Runs are resumable (generate continues a file).
# BATCH (default 8) questions are generated together (never across databases).
# Needs EXSPIN_DATA (the shared data folder) and a release build (cargo build --release).
set -euo pipefail
model=${1:?usage: prompt-table.sh MODEL OUT_DIR [SUBSET] [MODE...]}
out=${2:?usage: prompt-table.sh MODEL OUT_DIR [SUBSET] [MODE...]}
subset=${3---stratified 200}
shift 3 2>/dev/null || shift $#
spider=${EXSPIN_DATA:?set EXSPIN_DATA to the shared data folder}/spider
bin=${EXSPIN_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/exspin}
# k1 = 6, k2 = 20: the smallest filter that keeps every gold table and column of 99.9% of Spider
# dev questions (`exspin schema recall`, BENCHMARKS.md); ranked padding keeps prompts deterministic.
integrated="--schema integrated --k1 6 --k2 20 --ranked-padding"
# Every mode but *-repair is one greedy pass (--repair 0; generate's default repairs twice).
declare -A modes=(
  [plain]="--schema plain --repair 0"
  [ddl]="--schema ddl --repair 0"
  [rows]="--schema rows --repair 0"
  [integrated-novalues]="$integrated --no-values --repair 0"
  [integrated]="$integrated --repair 0"
  [integrated-rows]="$integrated --no-values --example-rows 3 --repair 0"
  [rows-shots]="--schema rows --shots ${SHOTS:-3} --repair 0"
  [integrated-rows-shots]="$integrated --no-values --example-rows 3 --shots ${SHOTS:-3} --repair 0"
  [rows-repair]="--schema rows --repair ${REPAIR:-2}"
  [integrated-rows-repair]="$integrated --no-values --example-rows 3 --repair ${REPAIR:-2}"
)
order=(rows integrated-rows integrated integrated-novalues plain ddl)
[[ $# -gt 0 ]] && order=("$@")
mkdir -p "$out"
for m in "${order[@]}"; do
  flags=${modes[$m]:?unknown mode $m}
  # shellcheck disable=SC2086
  "$bin" generate --model "$model" --spider "$spider" $subset $flags --cache "$out/cache" \
    --batch "${BATCH:-8}" \
    --out "$out/$m.sql" --tokens-out "$out/$m.tokens.jsonl" 2>>"$out/$m.log"
  # shellcheck disable=SC2086
  "$bin" eval --spider "$spider" $subset --predictions "$out/$m.sql" \
    --per-example "$out/$m.per-example.json" --json >"$out/$m.eval.json"
done
python3 "$(dirname "$0")/prompt-table.py" "$out" "${order[@]}"
