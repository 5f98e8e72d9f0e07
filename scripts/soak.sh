#!/usr/bin/env bash
# Soak test of the self-play runtime (not in CI): runs `exspin run CONFIG` for MINUTES minutes at
# nice 19, samples the process's resident memory and the queue depths (from the Prometheus
# endpoint) every SOAK_INTERVAL seconds into a CSV, then stops the run with SIGTERM (it writes a
# checkpoint) and prints least-squares slopes.
#
#   scripts/soak.sh CONFIG MINUTES [OUT_DIR]
#   scripts/soak.sh configs/soak-fake.toml 30 /tmp/soak
#
# Environment: EXSPIN_BIN (default target/release/exspin, else $CARGO_TARGET_DIR/release/exspin),
# SOAK_INTERVAL (seconds, default 5), SOAK_PORT (default 19464), SOAK_WARMUP (minutes left out
# of the "after warm-up" slope, default 2).
#
# The config is copied with run.rounds raised to 1000000 (the run is stopped by time) and
# [metrics] prometheus_port set. CSV columns: t_s, rss_bytes, then the gauges/counters below
# (exspin_heap_live_bytes: live heap from the binary's counting allocator).
# Printed: slope of RSS in bytes/min over the whole run and after the warm-up, the RSS growth per
# trained pair (the run's ledger keeps every trained sample id by design: summary.json lists them),
# and the slope and maximum of each queue depth.
set -euo pipefail

if [ $# -lt 2 ]; then
  sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
CONFIG=$1
MINUTES=$2
OUT=${3:-$(mktemp -d /tmp/exspin-soak.XXXXXX)}
INTERVAL=${SOAK_INTERVAL:-5}
PORT=${SOAK_PORT:-19464}
WARMUP=${SOAK_WARMUP:-2}
BIN=${EXSPIN_BIN:-}
if [ -z "$BIN" ]; then
  if [ -x target/release/exspin ]; then BIN=target/release/exspin
  elif [ -n "${CARGO_TARGET_DIR:-}" ] && [ -x "$CARGO_TARGET_DIR/release/exspin" ]; then
    BIN=$CARGO_TARGET_DIR/release/exspin
  else echo "no exspin binary: build with cargo build --release or set EXSPIN_BIN" >&2; exit 2
  fi
fi
mkdir -p "$OUT"
CFG=$OUT/soak.toml
RUN=$OUT/run
CSV=$OUT/soak.csv
rm -rf "$RUN"

# The config with many rounds and the metrics port.
awk -v port="$PORT" '
  /^\[/ { section = $0; if (section == "[metrics]") { print; print "prometheus_port = " port; seen = 1; next } }
  section == "[run]" && /^rounds[ ]*=/ { print "rounds = 1000000"; next }
  section == "[metrics]" && /^prometheus_port[ ]*=/ { next }
  { print }
  END { if (!seen) { print ""; print "[metrics]"; print "prometheus_port = " port } }
' "$CONFIG" > "$CFG"

METRICS="exspin_heap_live_bytes exspin_pairs_trained_total exspin_samples_generated_total exspin_version exspin_replay_held exspin_opponent_queue exspin_prompt_queue exspin_trainer_queue exspin_executor_inflight"
echo "t_s,rss_bytes,$(echo $METRICS | tr ' ' ',')" > "$CSV"

nice -n 19 "$BIN" run "$CFG" --run-dir "$RUN" > "$OUT/stdout.log" 2> "$OUT/stderr.log" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true' EXIT
START=$(date +%s.%N)
END=$(echo "$START + $MINUTES * 60" | bc)
echo "soak: pid $PID, $MINUTES min, every ${INTERVAL}s -> $CSV" >&2
while kill -0 "$PID" 2>/dev/null; do
  NOW=$(date +%s.%N)
  if [ "$(echo "$NOW >= $END" | bc)" = 1 ]; then break; fi
  RSS_KB=$(awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status" 2>/dev/null || echo "")
  BODY=$(curl -s --max-time 2 "http://127.0.0.1:$PORT/metrics" || true)
  if [ -n "$RSS_KB" ] && [ -n "$BODY" ]; then
    ROW="$(echo "$NOW - $START" | bc),$((RSS_KB * 1024))"
    for m in $METRICS; do
      v=$(printf '%s\n' "$BODY" | awk -v m="$m" '$1 == m { print $2 }' | tail -1)
      ROW="$ROW,${v:-0}"
    done
    echo "$ROW" >> "$CSV"
  fi
  sleep "$INTERVAL"
done
if ! kill -0 "$PID" 2>/dev/null; then
  echo "soak: the run ended by itself before $MINUTES min; see $OUT/stderr.log" >&2
fi
kill -TERM "$PID" 2>/dev/null || true
wait "$PID" || echo "soak: the run exited with status $?" >&2
trap - EXIT

# Least squares: slope of column c against column x (t in minutes when x = 1).
slope() { # file x_col y_col min_t_s
  awk -F, -v x="$2" -v y="$3" -v tmin="$4" 'NR > 1 && $1 >= tmin {
      xv = (x == 1) ? $1 / 60 : $x; n++; sx += xv; sy += $y; sxx += xv * xv; sxy += xv * $y }
    END { d = n * sxx - sx * sx; if (n < 3 || d == 0) print "nan"; else printf "%.1f", (n * sxy - sx * sy) / d }' "$1"
}
colmax() { awk -F, -v c="$2" 'NR > 1 && $c > m { m = $c } END { print m + 0 }' "$1"; }
col() { head -1 "$CSV" | tr ',' '\n' | grep -nx "$1" | cut -d: -f1; }

ROWS=$(($(wc -l < "$CSV") - 1))
W=$((WARMUP * 60))
FIRST=$(awk -F, 'NR == 2 { print $2 }' "$CSV")
LAST=$(awk -F, 'END { print $2 }' "$CSV")
echo "soak: $ROWS samples over $MINUTES min; RSS first $FIRST B, last $LAST B, max $(colmax "$CSV" 2) B"
echo "rss_slope_bytes_per_min (all):            $(slope "$CSV" 1 2 0)"
echo "rss_slope_bytes_per_min (after ${WARMUP} min):     $(slope "$CSV" 1 2 $W)"
echo "rss_bytes_per_trained_pair (after ${WARMUP} min):  $(slope "$CSV" "$(col exspin_pairs_trained_total)" 2 $W)"
echo "heap_live_slope_bytes_per_min (after ${WARMUP} min): $(slope "$CSV" 1 "$(col exspin_heap_live_bytes)" $W)"
echo "heap_live_bytes_per_trained_pair (after ${WARMUP} min): $(slope "$CSV" "$(col exspin_pairs_trained_total)" "$(col exspin_heap_live_bytes)" $W)"
echo "pairs_trained_per_min:                    $(slope "$CSV" 1 "$(col exspin_pairs_trained_total)" $W)"
for q in exspin_replay_held exspin_opponent_queue exspin_prompt_queue exspin_trainer_queue exspin_executor_inflight; do
  c=$(col $q)
  echo "$q: max $(colmax "$CSV" "$c"), slope per min (after ${WARMUP} min) $(slope "$CSV" 1 "$c" $W)"
done
echo "csv: $CSV; run folder: $RUN"
