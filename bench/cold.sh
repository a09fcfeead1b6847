#!/usr/bin/env bash
# Cold-start benchmark (issue 15): every request on a new TCP connection with a full TLS
# handshake (no resumption), as a fleet of workloads starting at once makes them.
#
# Starts envoi on the 100k-workload policy (audit on: log level info, to a file outside
# the policy folder; one worker per core unless WORKERS says otherwise) over TLS with an
# ECDSA P-256 and with an RSA-2048 certificate, and over plain HTTP; and the ceiling
# (examples/ceiling.rs: the same body size, no auth, no policy) with envoi's own rustls
# configuration and the same certificates, and over plain HTTP. The client is
# examples/cold.rs (rustls, resumption disabled, TLS 1.3, a new connection per request).
#
# 1. ROUNDS alternating rounds of DURATION s of sustained cold connections at CONCURRENCY
#    against each server × certificate; medians of connections/s, p50/p99, server CPU per
#    connection, envoi against the ceiling.
# 2. The fleet-start burst: BURST distinct workloads (each its own token, each on its own
#    new TLS connection, ECDSA) at BURST_CONCURRENCY against envoi, once quiet and once
#    while the 100k policy is reloaded RELOAD_AFTER_MS into the burst (RELOAD=file, the
#    default: a policy file rewritten by rename with a comment added, a change to compile;
#    RELOAD_FILE names it, workloads-00050.toml by default, which only that file's compile
#    follows; secrets.toml, the file of every secret, is compiled with the whole policy;
#    RELOAD=sighup: a SIGHUP with every file as it was, which is not compiled again); the
#    reload's completion is read from envoi's /metrics (envoi_policy_loads_total, on a
#    plain admin listener) and must be ≤ 5 s.
#
# Usage: bench/cold.sh  (ROUNDS=3 DURATION=10 CONCURRENCY=64 BURST=10000
#        BURST_CONCURRENCY=256 BURST_ROUNDS=1 RELOAD=file RELOAD_FILE=workloads-00050.toml RELOAD_AFTER_MS=500 WORKERS=
#        CLIENT_THREADS=2 SOURCES=16 VERIFY=nosig LOG_LEVEL=info
#        ENVOI=target/release/envoi CEILING=target/release/examples/ceiling
#        COLD=target/release/examples/cold)
# SOURCES: the client's connections come from that many addresses 127.0.0.1.. in turn (a
# fleet is many hosts; envoi limits handshakes in flight per address, 64 by default).
# VERIFY: nosig (the default: the server's certificate must be the one made here; the
# handshake's signature is not checked, which spares the client an ECDSA verification and
# leaves the server's work the same), pinned (the signature checked too), or webpki (the
# chain and name validated against the CA made here, as a browser would).
# Needs: openssl, python3, curl. Everything runs on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONCURRENCY=${CONCURRENCY:-64}
BURST=${BURST:-10000}
BURST_CONCURRENCY=${BURST_CONCURRENCY:-256}
BURST_ROUNDS=${BURST_ROUNDS:-1}
RELOAD=${RELOAD:-file}
RELOAD_AFTER_MS=${RELOAD_AFTER_MS:-500}
RELOAD_FILE=${RELOAD_FILE:-workloads-00050.toml}
WORKERS=${WORKERS:-}
CLIENT_THREADS=${CLIENT_THREADS:-2}
SOURCES=${SOURCES:-16}
VERIFY=${VERIFY:-nosig}
LOG_LEVEL=${LOG_LEVEL:-info}
SECRET=bench-shared-secret
WORK=$(mktemp -d /tmp/envoi-cold.XXXXXX)
# The servers' logs go to their own folder: envoi watches the policy's folder.
LOGS=$(mktemp -d /tmp/envoi-cold-logs.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP_LOGS:-}" ]; then echo "logs kept in $LOGS"; else rm -rf "$LOGS"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in openssl python3 curl; do
  command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done
if [ -z "${ENVOI:-}" ] || [ -z "${CEILING:-}" ] || [ -z "${COLD:-}" ]; then
  echo "== building (release)"
  cargo build --release --quiet --bin envoi --example ceiling --example cold
fi
ENVOI=${ENVOI:-target/release/envoi}
CEILING=${CEILING:-target/release/examples/ceiling}
COLD=${COLD:-target/release/examples/cold}

echo "== generating the 100k policy and the certificates"
python3 bench/gen_policy.py 100000 --out "$WORK/p100k" --files 100
certs() { # NAME KEYSPEC...: a CA and a leaf for localhost/127.0.0.1 signed by it
  local name=$1; shift
  openssl req -x509 -newkey "$@" -nodes -days 2 -keyout "$WORK/$name-ca.key" -out "$WORK/$name-ca.crt" \
    -subj "/CN=envoi bench CA $name" 2>/dev/null
  openssl req -newkey "$@" -nodes -keyout "$WORK/$name.key" -out "$WORK/$name.csr" -subj /CN=localhost 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
    > "$WORK/$name.ext"
  openssl x509 -req -in "$WORK/$name.csr" -CA "$WORK/$name-ca.crt" -CAkey "$WORK/$name-ca.key" -CAcreateserial \
    -days 2 -out "$WORK/$name.crt" -extfile "$WORK/$name.ext" 2>/dev/null
}
certs ecdsa ec -pkeyopt ec_paramgen_curve:P-256
certs rsa rsa:2048
# What the client trusts: the leaf itself (pinned, nosig) or the CA (webpki).
trust() { if [ "$VERIFY" = webpki ]; then echo "$WORK/$1-ca.crt"; else echo "$WORK/$1.crt"; fi; }

config() { # NAME PORT ADMIN_PORT [CERT_NAME]
  {
    echo "[server]"
    echo "listen = \"127.0.0.1:$2\""
    echo "admin_listen = \"127.0.0.1:$3\""
    if [ -n "$WORKERS" ]; then echo "workers = $WORKERS"; fi
    if [ -n "${4:-}" ]; then
      echo "[server.tls]"
      echo "cert = \"$WORK/$4.crt\""
      echo "key = \"$WORK/$4.key\""
    fi
    echo "[auth]"
    echo "secrets = [\"$SECRET\"]"
    echo "[store]"
    echo "path = \"$WORK/p100k\""
    echo "[log]"
    echo "level = \"$LOG_LEVEL\""
  } > "$WORK/$1.toml"
}
start_envoi() { # NAME ADMIN_PORT -> pid, once ready
  "$ENVOI" --config "$WORK/$1.toml" serve >/dev/null 2>>"$LOGS/$1.log" &
  local pid=$!
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$2/readyz" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "$pid"
}
config envoi-ecdsa 18201 18221 ecdsa
config envoi-rsa 18202 18222 rsa
config envoi-http 18203 18223
E_ECDSA=$(start_envoi envoi-ecdsa 18221); PIDS+=("$E_ECDSA")
E_RSA=$(start_envoi envoi-rsa 18222); PIDS+=("$E_RSA")
E_HTTP=$(start_envoi envoi-http 18223); PIDS+=("$E_HTTP")
for name in envoi-ecdsa envoi-rsa envoi-http; do
  port=$(grep -o 'listen = "127.0.0.1:[0-9]*' "$WORK/$name.toml" | tail -1 | cut -d: -f2)
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 \
    || { echo "$name did not get ready; its log:" >&2; cat "$LOGS/$name.log" >&2; exit 1; }
done
TOKEN=$("$ENVOI" --config "$WORK/envoi-http.toml" token --project proj-1 --type service --id svc-1 --ttl 1h)
SIZE=$(curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:18203/ | wc -c)
echo "envoi's answer for proj-1/service/svc-1: $SIZE bytes; the ceiling answers as many"
"$CEILING" 127.0.0.1:18211 "$SIZE" "${WORKERS:-0}" --tls "$WORK/ecdsa.crt" "$WORK/ecdsa.key" >/dev/null 2>>"$LOGS/ceiling.log" &
C_ECDSA=$!; PIDS+=("$C_ECDSA")
"$CEILING" 127.0.0.1:18212 "$SIZE" "${WORKERS:-0}" --tls "$WORK/rsa.crt" "$WORK/rsa.key" >/dev/null 2>>"$LOGS/ceiling.log" &
C_RSA=$!; PIDS+=("$C_RSA")
"$CEILING" 127.0.0.1:18213 "$SIZE" "${WORKERS:-0}" >/dev/null 2>>"$LOGS/ceiling.log" &
C_HTTP=$!; PIDS+=("$C_HTTP")
sleep 0.5
echo "envoi: $(ls /proc/"$E_ECDSA"/task | wc -l) threads; resident memory $(grep VmRSS /proc/"$E_ECDSA"/status | awk '{print $2}') KiB (100k policy)"

RESULTS=$WORK/results.jsonl
: > "$RESULTS"
cold() { # LABEL PID PORT [CERT_NAME] [MORE ARGS...]: one run, its JSON line kept
  local label=$1 pid=$2 port=$3 cert=${4:-}
  shift 4 || shift $#
  local tls=()
  if [ -n "$cert" ]; then tls=(--ca "$(trust "$cert")" --verify "$VERIFY"); fi
  local out
  out=$("$COLD" --addr "127.0.0.1:$port" "${tls[@]}" --pid "$pid" --label "$label" --threads "$CLIENT_THREADS" \
    --sources "$SOURCES" --secret "$SECRET" --policy 100000 "$@") || true
  echo "$out" | grep '^{' >> "$RESULTS" || true
  echo "$out" | grep -v '^{' || true
}

echo "== $ROUNDS alternating rounds of ${DURATION}s of cold connections, concurrency $CONCURRENCY, client threads $CLIENT_THREADS, $SOURCES source addresses, verify $VERIFY"
for round in $(seq 1 "$ROUNDS"); do
  echo "-- round $round"
  cold ceiling-tls-ecdsa "$C_ECDSA" 18211 ecdsa --duration "$DURATION" --concurrency "$CONCURRENCY"
  cold envoi-tls-ecdsa "$E_ECDSA" 18201 ecdsa --duration "$DURATION" --concurrency "$CONCURRENCY"
  cold ceiling-tls-rsa "$C_RSA" 18212 rsa --duration "$DURATION" --concurrency "$CONCURRENCY"
  cold envoi-tls-rsa "$E_RSA" 18202 rsa --duration "$DURATION" --concurrency "$CONCURRENCY"
  cold ceiling-http "$C_HTTP" 18213 "" --duration "$DURATION" --concurrency "$CONCURRENCY"
  cold envoi-http "$E_HTTP" 18203 "" --duration "$DURATION" --concurrency "$CONCURRENCY"
done

echo "== fleet-start burst: $BURST distinct workloads at concurrency $BURST_CONCURRENCY, envoi TLS ECDSA"
loads() { curl -s http://127.0.0.1:18221/metrics | awk '/^envoi_policy_loads_total/ {print $2}'; }
reload_lines() { grep -c 'policy reloaded' "$LOGS/envoi-ecdsa.log" || true; }
if [ "$RELOAD" = file ]; then
  RELOAD_ARGS=(--reload-file "$WORK/p100k/$RELOAD_FILE")
else
  RELOAD_ARGS=(--reload-pid "$E_ECDSA")
fi
for round in $(seq 1 "$BURST_ROUNDS"); do
  cold burst-quiet "$E_ECDSA" 18201 ecdsa --burst "$BURST" --concurrency "$BURST_CONCURRENCY"
  sleep 1
  LINES_BEFORE=$(reload_lines); LOADS_BEFORE=$(loads)
  cold burst-reload "$E_ECDSA" 18201 ecdsa --burst "$BURST" --concurrency "$BURST_CONCURRENCY" \
    "${RELOAD_ARGS[@]}" --reload-after-ms "$RELOAD_AFTER_MS" --metrics http://127.0.0.1:18221/metrics
  sleep 0.5
  echo "envoi's log: $(( $(reload_lines) - LINES_BEFORE )) 'policy reloaded' line(s), envoi_policy_loads_total +$(( $(loads) - LOADS_BEFORE )); last: $(grep 'policy reloaded' "$LOGS/envoi-ecdsa.log" | tail -1 | cut -c1-160)"
  sleep 1
done
echo "envoi resident memory after the bursts: $(grep VmRSS /proc/"$E_ECDSA"/status | awk '{print $2}') KiB"

echo "== medians"
python3 - "$RESULTS" "$(nproc)" <<'EOF'
import json, statistics, sys
cores = int(sys.argv[2])
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(values):
    values = [v for v in values if isinstance(v, (int, float)) and v == v]
    return statistics.median(values) if values else float("nan")
by = {}
for r in rows:
    by.setdefault(r["label"], []).append(r)
cols = [("conns_per_s", "conn/s", 0), ("p50_us", "p50 us", 0), ("p99_us", "p99 us", 0), ("max_us", "max us", 0),
        ("server_cpu_us_per_conn", "srv us/conn", 1), ("client_cpu_us_per_conn", "cli us/conn", 1),
        ("server_cores", "srv cores", 2), ("client_cores", "cli cores", 2)]
cols.append(("server_bound", "srv-bound/s", 0))
print(f"{'label':20}{'runs':>5}" + "".join(f"{h:>13}" for _, h, _ in cols) + f"{'failures':>10}")
print(f"(srv-bound/s: {cores} cores / server CPU per connection, what the server alone could sustain)")
m = {}
for label, rs in by.items():
    m[label] = {k: med(r.get(k) for r in rs) for k, _, _ in cols}
    # What the server alone would sustain on every core of the machine, from its CPU per
    # connection: the client shares the cores here, so conn/s understates the server.
    m[label]["server_bound"] = cores * 1e6 / m[label]["server_cpu_us_per_conn"]
    fails = sum(r["failures"] for r in rs)
    print(f"{label:20}{len(rs):>5}" + "".join(f"{m[label][k]:>13.{d}f}" for k, _, d in cols) + f"{fails:>10}")
overflows = sum(r.get("tcp_listenoverflows", 0) for r in rows)
if overflows:
    print(f"the kernel dropped {overflows} SYNs at a full accept queue during the runs (ListenOverflows, system-wide): each costs its connection a 1 s retransmission")
print("tab-separated (label, runs, " + ", ".join(k for k, _, _ in cols) + ", failures):")
for label, rs in by.items():
    print("\t".join([label, str(len(rs))] + [f"{m[label][k]:.2f}" for k, _, _ in cols] + [str(sum(r['failures'] for r in rs))]))
for kind in ("tls-ecdsa", "tls-rsa", "http"):
    e, c = m.get("envoi-" + kind), m.get("ceiling-" + kind)
    if e and c:
        print(f"envoi {kind}: {e['conns_per_s'] / c['conns_per_s'] * 100:.1f}% of the ceiling's conn/s, "
              f"{e['server_cpu_us_per_conn'] / c['server_cpu_us_per_conn']:.2f}x its server CPU per connection "
              f"({e['server_cpu_us_per_conn']:.0f} against {c['server_cpu_us_per_conn']:.0f} us), p99 {e['p99_us'] / c['p99_us']:.2f}x")
for r in rows:
    if r["mode"] != "burst":
        continue
    line = (f"{r['label']}: {r['ok']}/{r['connections']} ok, {r['failures']} failures, {r['elapsed_s']:.2f} s to serve them all, "
            f"p50 {r['p50_us'] / 1000:.1f} ms, p99 {r['p99_us'] / 1000:.1f} ms, max {r['max_us'] / 1000:.1f} ms, "
            f"server {r.get('server_cpu_us_per_conn', float('nan')):.0f} us/conn, client {r['client_cpu_us_per_conn']:.0f} us/conn; "
            f"kernel (system-wide) ListenOverflows +{r.get('tcp_listenoverflows', '?')}, TCPSynRetrans +{r.get('tcp_tcpsynretrans', '?')}")
    if "reload_ms" in r:
        took = r["reload_ms"]
        verdict = "NOT COMPLETED" if took is None else ("ok (<= 5 s)" if took <= 5000 else "OVER 5 s")
        line += (f"; reload triggered at {r['reload_triggered_ms'] or float('nan'):.0f} ms, "
                 f"completed after {took if took is not None else float('nan'):.0f} ms, "
                 f"{'inside' if r['reload_within_window'] else 'after'} the burst: {verdict}")
    print(line)
EOF
