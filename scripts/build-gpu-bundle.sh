#!/usr/bin/env bash
# Builds the `cuda` binaries on this (CPU-only) machine and puts them, stripped, in .gpu/ for a GPU
# machine that has the driver and CUDA 13 libraries but no Rust toolchain (see kernels/README.md):
#
#   .gpu/exspin.xz                the CLI (`exspin bench logprob --device cuda ...`)
#   .gpu/kernels-logprob-test.xz  kernels/tests/logprob.rs (CPU and CUDA test bodies)
#   .gpu/exspin-tests.xz          the core's `tests` binary (tests/*.rs); gpu-check.sh runs its
#                                 `model` tests with EXSPIN_TEST_DEVICE=cuda
#   .gpu/NEEDED.txt               the shared libraries each binary records (what the GPU side needs)
#
# xz-compressed: stripped, the first two are ~117 MiB (candle's PTX and sm_90a kernels are in both), ~17
# MiB compressed; scripts/gpu-check.sh unpacks them.
# Then run scripts/gpu-check.sh there. Environment: CUDA_VENV (toolchain venv, default
# /work/cuda-venv; created by scripts/cuda-toolchain.sh when missing), CARGO_TARGET_DIR, JOBS
# (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${CUDA_VENV:-/work/cuda-venv}"
JOBS="${JOBS:-2}"
LIMIT_MIB=50
if [[ ! -f "$VENV/cuda-env.sh" ]]; then
  scripts/cuda-toolchain.sh "$VENV"
fi
# shellcheck source=/dev/null
source "$VENV/cuda-env.sh"
export CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-$JOBS}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

cargo build --release -j"$JOBS" --features cuda -p exspin-actors
# The test executables' paths come from cargo's JSON messages (their names carry a hash).
# The package set includes the build above's (-p exspin-actors too): another set changes feature
# unification, which reruns candle-kernels' nvcc step over all of candle's kernels (~35 min here).
# `-p exspin` adds the core's `tests` target (exspin's cuda feature is on through exspin-actors').
test_bin() { # NAME: the executable of test target NAME in $TEST_JSON
  python3 -c '
import json, sys
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["name"] == sys.argv[2] and "test" in m["target"]["kind"]:
        print(m["executable"])
' "$TEST_JSON" "$1"
}
TEST_JSON="$(mktemp)"
trap 'rm -f "$TEST_JSON"' EXIT
cargo test --release -j"$JOBS" --features cuda -p exspin-actors -p exspin-kernels -p exspin \
  --test logprob --test tests --no-run --message-format=json >"$TEST_JSON"
TEST_BIN="$(test_bin logprob)"
CORE_TEST_BIN="$(test_bin tests)"
if [[ -z "$TEST_BIN" || -z "$CORE_TEST_BIN" ]]; then
  echo "could not find the test executables (logprob: '$TEST_BIN', tests: '$CORE_TEST_BIN') in cargo's output" >&2
  exit 1
fi

rm -rf .gpu
mkdir -p .gpu
strip -o .gpu/exspin "$TARGET_DIR/release/exspin"
strip -o .gpu/kernels-logprob-test "$TEST_BIN"
strip -o .gpu/exspin-tests "$CORE_TEST_BIN"
{
  for b in exspin kernels-logprob-test exspin-tests; do
    echo "== $b"
    readelf -d ".gpu/$b" | awk '/NEEDED/ {print $NF}' | tr -d '[]'
  done
} > .gpu/NEEDED.txt
cat .gpu/NEEDED.txt
xz -T"$JOBS" -6 .gpu/exspin .gpu/kernels-logprob-test .gpu/exspin-tests

XZ=(.gpu/exspin.xz .gpu/kernels-logprob-test.xz .gpu/exspin-tests.xz)
total=$(du -cb "${XZ[@]}" | tail -n1 | cut -f1)
echo "bundle: $(du -h "${XZ[@]}" | tr '\n' ' ')total $((total / 1024 / 1024)) MiB"
if ((total >= LIMIT_MIB * 1024 * 1024)); then
  echo "bundle exceeds ${LIMIT_MIB} MiB" >&2
  exit 1
fi
