#!/usr/bin/env bash
# The MariaDB demo behind `make run` (run from the repository root, after
# the binary is built):
#
#   1. deploy/demo/mariadb.sh start: a local MariaDB on 127.0.0.1:13306 with
#      the shop database (seeded once) and the CDC user;
#   2. a workload of inserts, updates and deletes in the background for
#      DEMO_WORKLOAD_SECONDS (default 20);
#   3. the sluice daemon on deploy/examples/mariadb-demo.yaml for
#      DEMO_SECONDS (default 30, and at least until a few seconds after the
#      workload ended), then SIGTERM: it takes a final checkpoint and exits 0.
#      DEMO_SECONDS=0 runs it until Ctrl-C;
#   4. the lake's tables, a few rows of shop.dwd_orders, and the row counts
#      of source and lake side by side.
#
# A repeated run resumes from the checkpoint: the initial snapshot is not
# read again, only the new changes. Arguments: none. Environment: BIN
# (default bin/sluice), CONFIG (default deploy/examples/mariadb-demo.yaml),
# DEMO_SECONDS, DEMO_WORKLOAD_SECONDS, DEMO_MYSQL_PORT (see mariadb.sh).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BIN=${BIN:-bin/sluice}
CONFIG=${CONFIG:-deploy/examples/mariadb-demo.yaml}
DEMO_SECONDS=${DEMO_SECONDS:-30}
WORKLOAD_SECONDS=${DEMO_WORKLOAD_SECONDS:-20}
DB=deploy/demo/mariadb.sh
LAKE=demo/mariadb-lake
# The daemon keeps running this long after the workload ended, so it has
# read all of it before the final checkpoint.
GRACE=5

[[ "$DEMO_SECONDS" =~ ^[0-9]+$ ]] || { echo "DEMO_SECONDS must be a whole number of seconds, got '$DEMO_SECONDS'" >&2; exit 2; }
[[ "$WORKLOAD_SECONDS" =~ ^[0-9]+$ ]] || { echo "DEMO_WORKLOAD_SECONDS must be a whole number, got '$WORKLOAD_SECONDS'" >&2; exit 2; }
[ -x "$BIN" ] || { echo "$BIN is missing: make build" >&2; exit 2; }

step() { printf '\n==> %s\n' "$*"; }

step "MariaDB: deploy/demo/mariadb.sh start"
$DB start
port=$($DB port)
export DEMO_MYSQL_DSN=${DEMO_MYSQL_DSN:-sluice:sluice@tcp(127.0.0.1:$port)/}

wlog=${DEMO_MYSQL_DIR:-demo/mariadb}/workload.log
step "workload: ${WORKLOAD_SECONDS}s of inserts, updates and deletes on shop.* (log: $wlog)"
$DB workload "$WORKLOAD_SECONDS" >"$wlog" 2>&1 &
wpid=$!

if [ "$DEMO_SECONDS" -eq 0 ]; then
  step "sluice: $BIN run -c $CONFIG (until Ctrl-C: it takes a final checkpoint and exits 0)"
else
  step "sluice: $BIN run -c $CONFIG (for ${DEMO_SECONDS}s, then SIGTERM: final checkpoint, exit 0)"
fi
# Ctrl-C reaches the daemon (and make) too: the daemon checkpoints and
# exits; this script stays to show what landed.
interrupted=0
trap 'interrupted=1' INT
"$BIN" run -c "$CONFIG" &
spid=$!
start=$SECONDS
wdone=-1 # SECONDS when the workload ended
if [ "$DEMO_SECONDS" -gt 0 ]; then
  while [ "$interrupted" -eq 0 ] && kill -0 "$spid" 2>/dev/null; do
    if [ "$wdone" -lt 0 ] && ! kill -0 "$wpid" 2>/dev/null; then
      wdone=$SECONDS
    fi
    if [ "$wdone" -ge 0 ] && [ $((SECONDS - start)) -ge "$DEMO_SECONDS" ] && [ $((SECONDS - wdone)) -ge "$GRACE" ]; then
      printf '\n==> %ss up, the workload ended %ss ago: SIGTERM\n' "$((SECONDS - start))" "$((SECONDS - wdone))"
      kill -TERM "$spid" 2>/dev/null || true
      break
    fi
    sleep 0.5
  done
fi
# wait returns early when a trapped signal arrives: wait again until the
# daemon is gone, then once more for its exit status.
while kill -0 "$spid" 2>/dev/null; do
  wait "$spid" || true
done
rc=0
wait "$spid" || rc=$?
if kill -0 "$wpid" 2>/dev/null; then
  kill -TERM "$wpid" 2>/dev/null || true
fi
wait "$wpid" 2>/dev/null || true
trap - INT
if [ "$rc" -ne 0 ]; then
  echo "sluice run exited with status $rc" >&2
  exit "$rc"
fi

step "tables: $BIN tables -c $CONFIG"
"$BIN" tables -c "$CONFIG"

step "rows: $BIN scan -c $CONFIG shop.dwd_orders --limit 5"
"$BIN" scan -c "$CONFIG" shop.dwd_orders --limit 5

step "row counts, source vs lake (dwd tables)"
match=1
printf '  %-18s %10s %10s\n' table mariadb lake
while read -r table n; do
  out=$("$BIN" scan -c "$CONFIG" "shop.dwd_$table" --limit 0)
  lake=$(printf '%s\n' "$out" | tail -n 1 | tr -dc '0-9')
  mark=ok
  if [ "$lake" != "$n" ]; then
    mark=differs
    match=0
  fi
  printf '  %-18s %10s %10s  %s\n' "shop.$table" "$n" "$lake" "$mark"
done < <($DB counts)
if [ "$match" -eq 1 ]; then
  echo "  source and lake match."
else
  echo "  they differ: the daemon stopped while the workload still ran. Run 'make run' again to catch up."
fi

cat <<EOF

The MariaDB demo:
  MariaDB    127.0.0.1:$port, data ./demo/mariadb, still running: stop it with 'make demo-stop'
             (deploy/demo/mariadb.sh sql opens a client on the shop database)
  catalog    ./$LAKE/catalog.db   (Iceberg SQL catalog on SQLite)
  warehouse  ./$LAKE/warehouse    (Parquet data + Iceberg metadata)
  state      ./$LAKE/state        (checkpoints)
Read the tables:
  $BIN tables -c $CONFIG
  $BIN scan -c $CONFIG shop.dwd_orders --limit 20      (current state)
  $BIN scan -c $CONFIG shop.ods_orders --limit 20      (changelog)
  or any Iceberg reader with a SQL catalog (PyIceberg, Spark, Trino): catalog
  database $PWD/$LAKE/catalog.db (SQLite), warehouse file://$PWD/$LAKE/warehouse
'make run' again resumes from the checkpoint; 'make run-datagen' runs the synthetic
demo without a database; 'make clean-demo' stops MariaDB and removes ./demo.
EOF
