#!/usr/bin/env bash
# Memory over reloads (issue 15): envoi serving the 100k-workload policy (a folder of 100
# files from gen_policy.py), reloaded RELOADS times by SIGHUP, one after another; after
# each reload has completed (envoi_policy_loads_total moved) and SETTLE seconds more, the
# resident set (VmRSS) is read. Before each SIGHUP one policy file is rewritten by rename
# with a comment of its own: files that hold what the serving policy was compiled from
# are not compiled again (README, "Live reload"), and EDIT=0 measures those reloads. Prints every figure, then the first, the last, the largest
# and the growth of the median of the last five over the median of the first five.
#
# Usage: bench/reload_memory.sh   (RELOADS=30 SETTLE=1.5 EDIT=1 ENVOI=target/release/envoi)
# Needs: python3, curl. Everything runs on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RELOADS=${RELOADS:-30}
SETTLE=${SETTLE:-1.5}
EDIT=${EDIT:-1}
WORK=$(mktemp -d /tmp/envoi-reload-memory.XXXXXX)
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${ENVOI:-}" ]; then
  cargo build --release --quiet --bin envoi
fi
ENVOI=${ENVOI:-target/release/envoi}
python3 bench/gen_policy.py 100000 --out "$WORK/p100k" --files 100
cat > "$WORK/envoi.toml" <<EOT
[server]
listen = "127.0.0.1:18231"
[auth]
secrets = ["bench-shared-secret-bench-shared-secret"]
[store]
path = "$WORK/p100k"
[log]
level = "info"
EOT
"$ENVOI" --config "$WORK/envoi.toml" serve >/dev/null 2>"$WORK/serve.log" &
PID=$!
until curl -sf http://127.0.0.1:18231/readyz >/dev/null 2>&1; do
  kill -0 "$PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; exit 1; }
  sleep 0.1
done
loads() { curl -s http://127.0.0.1:18231/metrics | awk '/^envoi_policy_loads_total/ {print $2}'; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }
sleep "$SETTLE"
figures=("$(rss)")
echo "loaded: $(rss) KiB"
for n in $(seq 1 "$RELOADS"); do
  before=$(loads)
  if [ "$EDIT" = 1 ]; then
    edited="$WORK/p100k/workloads-00050.toml"
    { cat "$edited"; echo "# reload $n"; } > "$WORK/edited.tmp" && mv "$WORK/edited.tmp" "$edited"
  fi
  kill -HUP "$PID"
  while [ "$(loads)" = "$before" ]; do sleep 0.05; done
  sleep "$SETTLE"
  figures+=("$(rss)")
  echo "reload $n: $(rss) KiB"
done
python3 - "${figures[@]}" <<'EOT'
import statistics, sys
kib = [int(x) for x in sys.argv[1:]]
first, last = statistics.median(kib[:5]), statistics.median(kib[-5:])
print(f"loaded {kib[0] / 1024:.1f} MiB; after the last reload {kib[-1] / 1024:.1f} MiB; largest {max(kib) / 1024:.1f} MiB; "
      f"median of the last five against the first five: {(last / first - 1) * 100:+.1f} %")
EOT
grep -o 'took_ms=[0-9]*' "$WORK/serve.log" | sed 's/took_ms=//' | sort -n | awk '{a[NR]=$1} END {print "reload took (load until served) median " a[int((NR+1)/2)] " ms, max " a[NR] " ms"}'
