#!/usr/bin/env bash
# Load benchmark: envoi (10- and 100,000-workload policies) against a bare actix-web
# "ceiling" that answers a constant body of the same size, and the "naive peer"
# (examples/naive.rs: actix-web + jsonwebtoken + six items built from the claims, no
# policy, no audit), driven alike by wrk on loopback (kept-alive connections) in
# alternating rounds; then envoi while the 100k policy reloads every second (a file rewritten each time).
#
# Usage: bench/load.sh   (ROUNDS=3 DURATION=10 CONNECTIONS=64 WORKERS=$(nproc) WRK_THREADS=1 LOG_LEVEL=info)
# WORKERS: every server's worker threads; the default is one per core, as envoi's own
# default configuration (workers = 0) has it.
# BASELINE=path/to/an/older/envoi adds it on the 10-workload policy to every round, for a
# before/after comparison on the same machine at the same time.
# LOG_LEVEL=info keeps the audit line of every answer (written to a file); warn drops it.
# Needs: wrk (apt-get install wrk), python3, curl. Everything runs on 127.0.0.1 and stops
# by itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
WORKERS=${WORKERS:-$(nproc)}
WRK_THREADS=${WRK_THREADS:-1}
LOG_LEVEL=${LOG_LEVEL:-info}
WORK=$(mktemp -d /tmp/envoi-bench.XXXXXX)
# The servers' logs go to their own folder: envoi watches the policy's folder, and a log
# written there wakes its watcher on every line, which is not what a deployment pays.
LOGS=$(mktemp -d /tmp/envoi-bench-logs.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK" "$LOGS"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
# ENVOI, CEILING and NAIVE name binaries built elsewhere; without them, they are built here.
if [ -z "${ENVOI:-}" ] || [ -z "${CEILING:-}" ] || [ -z "${NAIVE:-}" ]; then
  echo "== building (release)"
  cargo build --release --quiet --bin envoi --example ceiling --example naive
fi
ENVOI=${ENVOI:-target/release/envoi}
CEILING=${CEILING:-target/release/examples/ceiling}
NAIVE=${NAIVE:-target/release/examples/naive}

echo "== generating policies"
python3 bench/gen_policy.py 10 > "$WORK/p10.toml"
python3 bench/gen_policy.py 100000 --out "$WORK/p100k" --files 100

config() { # NAME POLICY PORT
  cat > "$WORK/$1.toml" <<EOF
[server]
listen = "127.0.0.1:$3"
workers = $WORKERS
[auth]
secrets = ["bench-shared-secret"]
[store]
path = "$2"
[log]
level = "$LOG_LEVEL"
EOF
}
config e10 "$WORK/p10.toml" 18110
config e100k "$WORK/p100k" 18111
config b10 "$WORK/p10.toml" 18113

echo "== load time and memory"
for _ in 1 2 3; do
  /usr/bin/time -f "load+compile 100k: %e s wall, %M KiB max RSS" "$ENVOI" --config "$WORK/e100k.toml" check
done
start() { # CONFIG [BINARY] -> pid; waits for readiness. Runs in $(...): the caller records the pid.
  "${2:-$ENVOI}" --config "$1" serve >/dev/null 2>>"$LOGS/serve.log" &
  local pid=$!
  local port
  port=$(grep -o '127.0.0.1:[0-9]*' "$1" | cut -d: -f2)
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  echo "$pid"
}
E10=$(start "$WORK/e10.toml"); PIDS+=("$E10")
E100K=$(start "$WORK/e100k.toml"); PIDS+=("$E100K")
if [ -n "${BASELINE:-}" ]; then B10=$(start "$WORK/b10.toml" "$BASELINE"); PIDS+=("$B10"); fi
for pid in "$E10" "$E100K"; do
  kill -0 "$pid" 2>/dev/null || { echo "envoi did not start; its log:" >&2; cat "$LOGS/serve.log" >&2; exit 1; }
done
echo "resident memory, 100k policy: $(grep VmRSS /proc/"$E100K"/status | awk '{print $2}') KiB; 10 policy: $(grep VmRSS /proc/"$E10"/status | awk '{print $2}') KiB"
"$ENVOI" serve --dev >/dev/null 2>&1 &
DEV=$!; PIDS+=("$DEV"); sleep 1
echo "resident memory, example policy (serve --dev): $(grep VmRSS /proc/$DEV/status | awk '{print $2}') KiB"
kill "$DEV"

TOKEN100K=$("$ENVOI" --config "$WORK/e100k.toml" token --project proj-1 --type service --id svc-1 --ttl 1h)
TOKEN10=$("$ENVOI" --config "$WORK/e10.toml" token --project proj-0 --type service --id svc-1 --ttl 1h)
SIZE=$(curl -s -H "Authorization: Bearer $TOKEN100K" http://127.0.0.1:18111/ | wc -c)
echo "envoi's answer for proj-1/service/svc-1: $SIZE bytes; the ceiling answers as many"
"$CEILING" 127.0.0.1:18112 "$SIZE" "$WORKERS" >/dev/null 2>&1 &
CEIL=$!; PIDS+=("$CEIL")
"$NAIVE" 127.0.0.1:18114 bench-shared-secret "$WORKERS" >/dev/null 2>&1 &
NAIVE_PID=$!; PIDS+=("$NAIVE_PID"); sleep 0.5
NAIVE_SIZE=$(curl -s -H "Authorization: Bearer $TOKEN100K" http://127.0.0.1:18114/ | wc -c)
NAIVE_BAD=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer x$TOKEN100K" http://127.0.0.1:18114/)
echo "the naive peer's answer for the same token: $NAIVE_SIZE bytes (a bad token: $NAIVE_BAD)"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # LABEL PID URL [TOKEN]
  local label=$1 pid=$2 url=$3 token=${4:-}
  local before after
  before=$(ticks "$pid")
  if [ -n "$token" ]; then
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Authorization: Bearer $token" "$url" > "$WORK/wrk.out"
  else
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url" > "$WORK/wrk.out"
  fi
  after=$(ticks "$pid")
  python3 - "$label" "$before" "$after" "$(getconf CLK_TCK)" "$WORK/wrk.out" >> "$WORK/results.tsv" <<'EOF'
import re, sys
label, before, after, hz, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
text = open(path).read()
def seconds(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)", v)
    if not m:
        return float("nan")
    n, unit = m.groups()
    return float(n) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
total = int(re.search(r"(\d+) requests in", text).group(1))
p50 = seconds(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
p99 = seconds(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errors = re.search(r"Socket errors: (.*)", text)
cpu_us = (after - before) / hz * 1e6 / max(total, 1)
print(f"{label}\t{rps:.0f}\t{p50*1e6:.0f}\t{p99*1e6:.0f}\t{cpu_us:.2f}\t{bad.group(1) if bad else 0}\t{errors.group(1) if errors else 'none'}")
EOF
  tail -n 1 "$WORK/results.tsv"
}

echo "== $ROUNDS alternating rounds of ${DURATION}s, $CONNECTIONS connections, $WORKERS worker(s), wrk -t$WRK_THREADS"
echo -e "label\treq/s\tp50us\tp99us\tcpu_us/req\tnon2xx\tsocket_errors"
: > "$WORK/results.tsv"
for round in $(seq 1 "$ROUNDS"); do
  run ceiling "$CEIL" http://127.0.0.1:18112/
  run naive "$NAIVE_PID" http://127.0.0.1:18114/ "$TOKEN100K"
  run envoi-100k "$E100K" http://127.0.0.1:18111/ "$TOKEN100K"
  run envoi-10 "$E10" http://127.0.0.1:18110/ "$TOKEN10"
  if [ -n "${BASELINE:-}" ]; then run baseline-10 "$B10" http://127.0.0.1:18113/ "$TOKEN10"; fi
done

echo "== envoi-100k while the 100k policy is reloaded every second (a file rewritten, then SIGHUP)"
loads() { curl -s http://127.0.0.1:18111/metrics | awk '/^envoi_policy_loads_total/ {print $2}'; }
failures() { curl -s http://127.0.0.1:18111/metrics | awk '/^envoi_policy_load_failures_total/ {print $2}'; }
LOADS_BEFORE=$(loads); FAILURES_BEFORE=$(failures)
# Each reload has a file that changed: one that finds every file as it was compiles nothing.
EDITED="$WORK/p100k/workloads-00050.toml"
( for n in $(seq 1 "$DURATION"); do
    sleep 1
    { cat "$EDITED"; echo "# reload $n"; } > "$WORK/edited.tmp" && mv "$WORK/edited.tmp" "$EDITED"
    kill -HUP "$E100K"
  done ) &
RELOADER=$!
run envoi-100k-reloading "$E100K" http://127.0.0.1:18111/ "$TOKEN100K"
wait "$RELOADER" || true
echo "reloads of the 100k policy during the run: $(( $(loads) - LOADS_BEFORE )), failed: $(( $(failures) - FAILURES_BEFORE ))"
# A reload still running when the load stops holds two policies and a parse: the figure
# is read once the count of loads has stood still for 3 s (a quiet 100k reload: ~1.5 s).
settled=$(loads); still=0
while [ "$still" -lt 6 ]; do
  sleep 0.5
  now=$(loads)
  if [ "$now" = "$settled" ]; then still=$((still + 1)); else settled=$now; still=0; fi
done
echo "reloads completed in all (after the run too): $(( settled - LOADS_BEFORE ))"
echo "resident memory, 100k policy, after the reloads: $(grep VmRSS /proc/"$E100K"/status | awk '{print $2}') KiB"

echo "== medians"
python3 - "$WORK/results.tsv" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault(r[0], []).append(r)
def median(values):
    values = [x for x in values if x == x]  # wrk sometimes prints a latency we cannot parse
    return statistics.median(values) if values else float("nan")
med = {k: [median(float(r[i]) for r in v) for i in (1, 2, 3, 4)] for k, v in by.items()}
print(f"{'label':24}{'req/s':>10}{'p50 us':>10}{'p99 us':>10}{'cpu us/req':>12}")
for k, (rps, p50, p99, cpu) in med.items():
    print(f"{k:24}{rps:>10.0f}{p50:>10.0f}{p99:>10.0f}{cpu:>12.2f}")
c = med["ceiling"]
n = med.get("naive")
for k in [k for k in med if k != "ceiling"]:
    rps, p50, p99, cpu = med[k]
    line = f"{k}: {rps / c[0] * 100:.1f}% of the ceiling's req/s, {cpu / c[3]:.2f}x its CPU per request, p99 {p99 / c[2]:.2f}x"
    if n and k != "naive":
        line += f"; {rps / n[0] * 100:.1f}% of the naive peer's req/s, {cpu / n[3]:.2f}x its CPU per request"
    print(line)
if "envoi-10" in med and "envoi-100k" in med:
    print(f"100k vs 10 workloads: throughput {med['envoi-100k'][0] / med['envoi-10'][0] * 100:.1f}%")
EOF
