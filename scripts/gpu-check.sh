#!/usr/bin/env bash
# The GPU check, run on the GPU machine from the repository root with the binaries that
# scripts/build-gpu-bundle.sh put in .gpu/:
#
#   OUT=/some/folder scripts/gpu-check.sh
#
# Every step writes its log (and JSON) under $OUT; a failing step does not stop the others; the
# summary at the end (also $OUT/summary.tsv) gives each step's exit code and seconds, and the
# script exits non-zero when any step failed. Budget: well under 6 minutes on an H100 (the
# pipeline benchmark, the longest step, is limited to 270 s). ONLY="model_tests bench_pipeline"
# runs just those steps (machine, unpack and libs always run).
#
# The machine needs the NVIDIA driver (libcuda.so.1) and the CUDA 13 libraries the binaries were
# linked against (libcublas.so.13, libcublasLt.so.13, libcurand.so.10, libnvrtc.so.13,
# libcudart.so.13): they are looked up under /opt and /usr (e.g. PyTorch's cu130 venv) and added
# to LD_LIBRARY_PATH.
set -uo pipefail
cd "$(dirname "$0")/.."

OUT="${OUT:?set OUT to the output folder}"
BIN="${GPU_BIN:-.gpu}"
ROWS="${ROWS:-4096}"
VOCAB="${VOCAB:-151936}"
mkdir -p "$OUT"

STEPS=()
declare -A RC SECS

# limited SECONDS CMD...: the command, killed after SECONDS (exit 124) or 10 s later (137).
limited() { timeout --kill-after=10 "$1" "${@:2}"; }

# run_step NAME FUNCTION: runs one step with its output in $OUT/NAME.log, records rc and time.
ONLY="${ONLY:-}"
run_step() {
  local name="$1" fn="$2" t0=$SECONDS rc
  case " machine unpack libs $ONLY " in
    *" $name "*) ;;
    *) [[ -z "$ONLY" ]] || { echo "=== $name (skipped: not in ONLY)"; return 0; } ;;
  esac
  echo "=== $name"
  "$fn" >"$OUT/$name.log" 2>&1
  rc=$?
  STEPS+=("$name")
  RC[$name]=$rc
  SECS[$name]=$((SECONDS - t0))
  tail -n 5 "$OUT/$name.log" | sed 's/^/    /'
  echo "    -> exit $rc in ${SECS[$name]} s"
}

# ---- step: the machine ---------------------------------------------------------------------------
step_machine() {
  limited 30 nvidia-smi || return 1
  limited 30 nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv
  command -v nvcc >/dev/null && nvcc --version | tail -n 2
  uname -a
  nproc
}

# ---- step: unpack ---------------------------------------------------------------------------------
# build-gpu-bundle.sh ships the binaries xz-compressed (xz, or Python's lzma where xz is missing).
BINARIES=(exspin kernels-logprob-test exspin-tests)
step_unpack() {
  local b
  for b in "${BINARIES[@]}"; do
    if [[ -f "$BIN/$b.xz" && ! -x "$BIN/$b" ]]; then
      if command -v xz >/dev/null; then
        xz -dkc "$BIN/$b.xz" >"$BIN/$b" || return 1
      else
        python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
          "$BIN/$b.xz" "$BIN/$b" || return 1
      fi
      chmod +x "$BIN/$b"
    fi
    ls -la "$BIN/$b" || return 1
  done
}

# ---- step: shared libraries ----------------------------------------------------------------------
# Finds every library the binaries need that the loader does not see yet, under /opt and /usr,
# and extends LD_LIBRARY_PATH (exported for the following steps). NVRTC's builtins library is
# loaded by name at run time, so its folder must be on the path too (it sits beside libnvrtc).
LIBS=(libnvrtc.so.13 libnvrtc-builtins.so.13.0 libcublas.so.13 libcublasLt.so.13 libcurand.so.10
  libcudart.so.13 libcuda.so.1)
find_libs() {
  local missing lib found dirs="" all
  for b in "${BINARIES[@]/#/$BIN/}"; do
    [[ -x "$b" ]] || { echo "missing binary $b (run scripts/build-gpu-bundle.sh on the build machine)"; return 1; }
  done
  # One walk of /opt and /usr for all names (stub folders excluded: a stub libcuda must not load).
  local expr=()
  for lib in "${LIBS[@]}"; do expr+=(-o -name "$lib"); done
  all="$(find /opt /usr \( "${expr[@]:1}" \) \( -type f -o -type l \) 2>/dev/null | grep -v '/stubs/')"
  # libnvrtc first: the builtins library it loads by name must be the one beside it.
  for lib in "${LIBS[@]}"; do
    found="$(ldconfig -p 2>/dev/null | awk -v l="$lib" '$1 == l {print $NF; exit}')"
    if [[ -n "$found" ]]; then
      echo "$lib: $found (loader cache)"
      continue
    fi
    found="$(grep -m1 "/$lib\$" <<<"$all")"
    if [[ -n "$found" ]]; then
      echo "$lib: $found"
      case ":$dirs:" in *":$(dirname "$found"):"*) ;; *) dirs="$dirs:$(dirname "$found")" ;; esac
    else
      echo "$lib: NOT FOUND under /opt or /usr"
    fi
  done
  LIB_DIRS="${dirs#:}"
  export LD_LIBRARY_PATH="${LIB_DIRS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  missing=0
  for b in "${BINARIES[@]/#/$BIN/}"; do
    echo "== ldd $b"
    ldd "$b"
    if ldd "$b" | grep -q 'not found'; then
      echo "ERROR: $b cannot start, the loader does not find: $(ldd "$b" | awk '/not found/ {print $1}' | tr '\n' ' ')"
      echo "       (libcuda.so.1 comes with the NVIDIA driver; the others with CUDA 13 / torch cu130 wheels)"
      missing=1
    fi
  done
  return $missing
}

# ---- step: kernel tests ----------------------------------------------------------------------------
# CPU and CUDA bodies of kernels/tests/logprob.rs. A CUDA test that finds no device prints
# "skipped ..." and passes; here that counts as a failure (--nocapture lets the line through).
step_kernel_tests() {
  limited 150 "$BIN/kernels-logprob-test" --test-threads 4 --nocapture || return $?
  if grep -q '^skipped' "$OUT/kernel_tests.log"; then
    echo "ERROR: CUDA tests were skipped (no device)"
    return 3
  fi
}

# ---- step: the core model tests on CUDA ----------------------------------------------------------------
# tests/model.rs (the `model_` tests of the core's `tests` binary) with EXSPIN_TEST_DEVICE=cuda:
# forward / padding / KV cache, generation, log-probs, losses, full and LoRA fine-tuning steps,
# checkpoint round trips, in f32 on the GPU (bounds: tests/util.rs `tol`). Asking for CUDA never
# falls back to the CPU: a build without CUDA or a device that does not open panics.
step_model_tests() {
  EXSPIN_TEST_DEVICE=cuda limited 150 "$BIN/exspin-tests" model:: --test-threads 4
}

# ---- steps: log-prob benchmarks ----------------------------------------------------------------------
bench_logprob() {
  local json="$1"
  shift
  limited 90 "$BIN/exspin" bench logprob --device cuda --json "$@" >"$OUT/$json"
  local rc=$?
  cat "$OUT/$json"
  return $rc
}
step_bench_logprob_token() {
  bench_logprob bench-logprob-token.json --rows "$ROWS" --vocab "$VOCAB"
}
step_bench_logprob_linear_896() {
  bench_logprob bench-logprob-linear-896.json --rows "$ROWS" --vocab "$VOCAB" --hidden 896
}
step_bench_logprob_linear_1536() {
  bench_logprob bench-logprob-linear-1536.json --rows "$ROWS" --vocab "$VOCAB" --hidden 1536
}

# ---- steps: model benchmarks ---------------------------------------------------------------------------
# A Qwen2.5-Coder-1.5B-shaped model with random weights (no weights reach the GPU machine), bf16:
# full fine-tuning tokens/s (forward + fused log-prob loss + backward + AdamW, batch 8 x 256) and
# batched greedy generation tokens/s (64 new tokens, batch 1, 8 and 32). The binary must be the
# merged build that has `bench train/generate`; an older bundle fails these steps, nothing else.
SHAPE="${SHAPE:-qwen2.5-coder-1.5b}"
step_bench_train() {
  limited 150 "$BIN/exspin" bench train --shape "$SHAPE" --device cuda --dtype bf16 \
    --batch 8 --seq 256 --steps 5 --warmup 2 --json >"$OUT/bench-train.json"
  local rc=$?
  cat "$OUT/bench-train.json"
  return $rc
}
step_bench_generate() {
  limited 150 "$BIN/exspin" bench generate --shape "$SHAPE" --device cuda --dtype bf16 \
    --batch 1,8,32 --new-tokens 64 --json >"$OUT/bench-generate.json"
  local rc=$?
  cat "$OUT/bench-generate.json"
  return $rc
}

# ---- step: the rollout benchmark on CUDA --------------------------------------------------------------
# The opponent's rollout the old way (a prefill per sample, every answer re-scored) and the new way
# (one prefill per prompt, shared schema prefix, continuous batching, decoding's log-probs) on
# Spider's integrated prompts, with a Qwen2.5-Coder-0.5B-shaped random model (the Qwen2.5
# tokenizer from ../shared/models; no weights reach the GPU machine): samples/s and the speedup.
DATA="${EXSPIN_DATA:-../shared/data}"
step_bench_rollout() {
  local m="$OUT/rollout-model"
  limited 60 "$BIN/exspin" model random --shape qwen2.5-coder-0.5b --out "$m" --seed 1 || return 1
  cp "${EXSPIN_TOKENIZER:-../shared/models/qwen2.5-tokenizer.json}" "$m/tokenizer.json" || return 1
  limited 240 "$BIN/exspin" bench rollout --model "$m" --spider "$DATA/spider" --cache "$OUT/cache" \
    --schema integrated --prompts 16 --samples 4 --batch 8 --chunk 32 --device cuda --json \
    >"$OUT/bench-rollout.json"
  local rc=$?
  cat "$OUT/bench-rollout.json"
  return $rc
}

# ---- step: the pipeline benchmark on CUDA -----------------------------------------------------------------
# configs/pipeline-gpu.toml: a Qwen2.5-Coder-1.5B-shaped random model in bf16 (model.kind =
# "random"), streaming (strict) vs phased on the same job. Prints generation and training
# tokens/s, pairs/s, both walls and the share of SQL execution hidden.
step_bench_pipeline() {
  limited 270 "$BIN/exspin" bench pipeline configs/pipeline-gpu.toml --json >"$OUT/bench-pipeline.json"
  local rc=$?
  cat "$OUT/bench-pipeline.json"
  ((rc == 0)) || return $rc
  python3 - "$OUT/bench-pipeline.json" <<'PY' || true
import json, sys
b = json.load(open(sys.argv[1]))
f = lambda x, d=1: "n/a" if x is None else f"{x:,.{d}f}"
for side in ("streaming", "phased"):
    r = b[side]
    print(f"{side:9} wall {f(r['wall_s'])} s  pairs/s {f(r['pairs_per_s'], 2)}  "
          f"gen tok/s {f(r['generated_tokens_per_s'], 0)}  train tok/s {f(r['trained_tokens_per_s'], 0)}  "
          f"exec hidden {'n/a' if r['exec_hidden_share'] is None else f(100 * r['exec_hidden_share'], 0) + '%'}  "
          f"busy {json.dumps({k: round(v, 1) for k, v in r['busy_s'].items()})}")
print(f"streaming / phased wall {f(b['wall_ratio_streaming_over_phased'], 3)} (speedup {f(b['speedup'], 2)}x)")
PY
}

# ---- the run -----------------------------------------------------------------------------------------
# Steps run in this shell (find_libs exports LD_LIBRARY_PATH for the others); every binary call
# has its own time limit so one hang cannot eat the machine's budget.
run_step machine step_machine
run_step unpack step_unpack
run_step libs find_libs
run_step kernel_tests step_kernel_tests
run_step model_tests step_model_tests
run_step bench_logprob_token step_bench_logprob_token
run_step bench_logprob_linear_896 step_bench_logprob_linear_896
run_step bench_logprob_linear_1536 step_bench_logprob_linear_1536
run_step bench_train step_bench_train
run_step bench_generate step_bench_generate
run_step bench_rollout step_bench_rollout
run_step bench_pipeline step_bench_pipeline

echo
echo "=== summary (also $OUT/summary.tsv)"
failed=0
{
  printf 'step\texit\tseconds\n'
  for s in "${STEPS[@]}"; do
    printf '%s\t%s\t%s\n' "$s" "${RC[$s]}" "${SECS[$s]}"
  done
} | tee "$OUT/summary.tsv"
for s in "${STEPS[@]}"; do ((RC[$s] == 0)) || failed=1; done
exit $failed
