#!/usr/bin/env bash
# The Postgres store at fleet size: a fresh database, `envoi db import` of an N-workload
# policy (bench/gen_policy.py, a folder of FILES files) with the release binary, its wall
# time and peak RSS; then the same import again, which must write nothing; then the
# import after one workload's value changed, which writes that grant alone.
#
# Usage: bench/pg_scale.sh   (N=100000 FILES=100 ENVOI=target/release/envoi
#        DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres, a URL without a query)
# Needs: psql, python3, GNU time (/usr/bin/time). The scratch database and folder are
# dropped when it ends.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

N=${N:-100000}
FILES=${FILES:-100}
ADMIN_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB="envoi_bench_$$_$RANDOM"
DB_URL="${ADMIN_URL%/*}/$DB"
WORK=$(mktemp -d /tmp/envoi-pg-scale.XXXXXX)
cleanup() {
  psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${ENVOI:-}" ]; then
  echo "== building (release)"
  cargo build --release --quiet --bin envoi
fi
ENVOI=${ENVOI:-target/release/envoi}

echo "== a fresh database ($DB), a policy of $N workloads in $FILES files"
psql -q "$ADMIN_URL" -c "CREATE DATABASE \"$DB\""
"$ENVOI" keygen | tail -n 1 > "$WORK/master.key"
cat > "$WORK/envoi.toml" <<CONF
[auth]
secrets = ["bench-shared-secret"]
[store]
kind = "postgres"
url = "$DB_URL"
[seal]
key_files = ["$WORK/master.key"]
[log]
level = "warn"
CONF
"$ENVOI" --config "$WORK/envoi.toml" db migrate >/dev/null
python3 bench/gen_policy.py "$N" --out "$WORK/policy" --files "$FILES"
du -sh "$WORK/policy" | awk '{print "policy folder: " $1}'

import() { # LABEL
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$ENVOI" --config "$WORK/envoi.toml" db import "$WORK/policy" > "$WORK/out"
  read -r seconds kib < "$WORK/time"
  printf '%-28s %7s s  peak RSS %5d MiB  %s\n' "$1" "$seconds" $((kib / 1024)) "$(sed 's/^imported [^:]*: //' "$WORK/out")"
  printf '%-28s generation %s\n' "" "$(psql -Atq "$DB_URL" -c 'SELECT generation FROM envoi_policy_state')"
}

echo "== db import"
import "into the empty database"
import "again, unchanged"
sed -i '0,/SERVICE_NAME = { value = "svc-1" }/s//SERVICE_NAME = { value = "svc-1-changed" }/' "$WORK/policy/workloads-00000.toml"
import "one workload changed"
psql -Atq "$DB_URL" -c "SELECT 'rows: ' || (SELECT count(*) FROM envoi_secrets) || ' secrets, ' ||
  (SELECT count(*) FROM envoi_grants) || ' grants, ' || (SELECT count(*) FROM envoi_grant_items) || ' items'"

echo "== two replicas"
python3 bench/pg_replicas.py "$ENVOI" "$WORK/envoi.toml"
