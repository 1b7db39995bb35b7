#!/usr/bin/env bash
# The local MariaDB of the `make run` demo: a private server process (no
# system service, no Docker) with its data, socket, pid file and logs in
# ./demo/mariadb of the repository, listening on 127.0.0.1 only.
#
#   deploy/demo/mariadb.sh start        install mariadb-server if missing, start the
#                                       server, create the shop database and the sluice user
#   deploy/demo/mariadb.sh stop         shut the server down (by its pid file)
#   deploy/demo/mariadb.sh status       running or not, where, and row counts
#   deploy/demo/mariadb.sh workload [SECONDS]
#                                       inserts, updates and deletes for SECONDS (default 20)
#   deploy/demo/mariadb.sh sql [ARGS]   the mariadb client as root on database shop:
#                                       interactive, or e.g. sql -e 'SELECT ...'
#   deploy/demo/mariadb.sh port         the port of the running server
#   deploy/demo/mariadb.sh counts       "table rows" for each shop table
#
# Environment: DEMO_MYSQL_PORT (default 13306) is the port `start` uses;
# DEMO_MYSQL_DIR (default ./demo/mariadb) holds everything of the server;
# DEMO_WORKLOAD_INTERVAL (default 0.1) is the pause between workload
# transactions. The CDC user is sluice/sluice on 127.0.0.1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=${DEMO_MYSQL_DIR:-$ROOT/demo/mariadb}
PORT=${DEMO_MYSQL_PORT:-13306}
DATA=$DIR/data
PIDFILE=$DIR/mysqld.pid
ERRLOG=$DIR/error.log
PORTFILE=$DIR/port
TABLES=(customers orders order_items)
SEED_CUSTOMERS=1000
SEED_ORDERS=3000

say() { printf 'mariadb.sh: %s\n' "$*"; }
die() { printf 'mariadb.sh: %s\n' "$*" >&2; exit 1; }

# A unix socket path is limited to 107 bytes: a deep checkout gets one in /tmp.
socket_path() {
  local s=$DIR/mysqld.sock
  if [ "${#s}" -gt 100 ]; then
    s=/tmp/sluice-demo-mariadb-$(id -u)-$(printf '%s' "$DIR" | cksum | cut -d' ' -f1).sock
  fi
  printf '%s' "$s"
}
SOCK=$(socket_path)

# find NAME DIR...: NAME on PATH or in one of DIRs (sbin is often not on PATH).
find_bin() {
  local name=$1 d
  shift
  if command -v "$name" >/dev/null 2>&1; then
    command -v "$name"
    return 0
  fi
  for d in "$@"; do
    if [ -x "$d/$name" ]; then
      printf '%s\n' "$d/$name"
      return 0
    fi
  done
  return 1
}

# as_root CMD...: run CMD as root: directly when we are root, else by sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root to run: $* (no sudo found); install mariadb-server yourself"
  fi
}

ensure_installed() {
  if find_bin mariadbd /usr/sbin /usr/local/sbin >/dev/null &&
    find_bin mariadb-install-db /usr/bin /usr/local/bin >/dev/null &&
    find_bin mariadb /usr/bin /usr/local/bin >/dev/null; then
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 ||
    die "mariadbd not found and there is no apt-get: install MariaDB server and client (10.5 or newer) yourself"
  say "mariadbd is missing: installing mariadb-server with apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    mariadb-server mariadb-client </dev/null
  find_bin mariadbd /usr/sbin /usr/local/sbin >/dev/null || die "mariadbd still not found after installing mariadb-server"
  say "installed. The package may also have started a system MariaDB service (port 3306);"
  say "the demo does not use it (stop it with: sudo service mariadb stop)."
}

client() {
  local bin
  bin=$(find_bin mariadb /usr/bin /usr/local/bin) || bin=$(find_bin mysql /usr/bin /usr/local/bin) ||
    die "the mariadb client is not installed (apt-get install mariadb-client)"
  "$bin" --no-defaults --socket="$SOCK" --user=root --default-character-set=utf8mb4 "$@"
}

# running_pid prints the pid of our server, if it runs. A pid file alone is
# not enough: the pid must be a mariadbd (or mysqld) on our data dir, so a
# stale file never makes us signal someone else's process.
running_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid=$(tr -dc '0-9' <"$PIDFILE")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  local cmd
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  case "$cmd" in
  *mariadbd*"--datadir=$DATA "* | *mysqld*"--datadir=$DATA "*) printf '%s\n' "$pid" ;;
  *) return 1 ;;
  esac
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

cmd_start() {
  ensure_installed
  local pid
  if pid=$(running_pid); then
    say "already running (pid $pid, 127.0.0.1:$(cat "$PORTFILE" 2>/dev/null || echo '?'), data $DIR)"
    setup_schema
    return 0
  fi
  local mariadbd install_db
  mariadbd=$(find_bin mariadbd /usr/sbin /usr/local/sbin)
  install_db=$(find_bin mariadb-install-db /usr/bin /usr/local/bin)
  local user_arg=()
  if [ "$(id -u)" -eq 0 ]; then
    user_arg=(--user=root) # mariadbd refuses to run as root otherwise
  fi
  mkdir -p "$DIR"
  if [ ! -d "$DATA/mysql" ]; then
    say "initialising $DATA"
    rm -rf "$DATA"
    # --no-defaults: the packaged /etc/mysql files (datadir, socket, the
    # service's paths) must not leak in. root gets no password: it is
    # reachable only through the socket in $DIR.
    if ! "$install_db" --no-defaults --datadir="$DATA" --auth-root-authentication-method=normal \
      --skip-test-db --skip-name-resolve "${user_arg[@]}" >"$DIR/install-db.log" 2>&1; then
      tail -n 20 "$DIR/install-db.log" >&2
      rm -rf "$DATA"
      die "mariadb-install-db failed (log: $DIR/install-db.log)"
    fi
  fi
  if port_in_use "$PORT"; then
    die "port $PORT on 127.0.0.1 is taken by another process: choose another, e.g. make run DEMO_MYSQL_PORT=13307"
  fi
  rm -f "$SOCK" "$PIDFILE"
  : >"$ERRLOG"
  # setsid: the server is not in make's process group, so a Ctrl-C of the
  # demo leaves it running; `stop` ends it.
  setsid "$mariadbd" --no-defaults "${user_arg[@]}" \
    --datadir="$DATA" --socket="$SOCK" --pid-file="$PIDFILE" --log-error="$ERRLOG" \
    --bind-address=127.0.0.1 --port="$PORT" --skip-name-resolve \
    --log-bin="$DATA/binlog" --binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL \
    --server-id=1 --gtid-strict-mode=ON --expire-logs-days=2 \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
    --innodb-buffer-pool-size=64M --innodb-log-file-size=16M \
    </dev/null >>"$DIR/stdout.log" 2>&1 &
  local spid=$! i
  for ((i = 0; i < 120; i++)); do
    if client -e 'SELECT 1' >/dev/null 2>&1; then
      break
    fi
    if ! kill -0 "$spid" 2>/dev/null; then
      tail -n 20 "$ERRLOG" >&2 || true
      die "mariadbd exited during start-up (log: $ERRLOG)"
    fi
    sleep 0.5
  done
  if ! client -e 'SELECT 1' >/dev/null 2>&1; then
    tail -n 20 "$ERRLOG" >&2 || true
    die "mariadbd (pid $spid) did not accept connections within 60 s (log: $ERRLOG)"
  fi
  printf '%s\n' "$PORT" >"$PORTFILE"
  say "started $("$mariadbd" --version | awk '{print $3}') (pid $(running_pid || echo "$spid")) on 127.0.0.1:$PORT, data $DIR"
  setup_schema
}

# setup_schema creates the shop database, its tables and the CDC user if
# missing, and seeds the tables when they are empty. Safe to repeat.
setup_schema() {
  client <<'SQL'
CREATE DATABASE IF NOT EXISTS shop CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE shop;
CREATE TABLE IF NOT EXISTS customers (
  id          INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name        VARCHAR(100) NOT NULL,
  email       VARCHAR(200) NOT NULL,
  tier        ENUM('bronze', 'silver', 'gold') NOT NULL DEFAULT 'bronze',
  note        TEXT NULL,
  created_at  DATETIME(6) NOT NULL,
  updated_at  DATETIME(6) NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
  id          BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  customer_id INT UNSIGNED NOT NULL,
  status      ENUM('new', 'paid', 'shipped', 'cancelled') NOT NULL DEFAULT 'new',
  total       DECIMAL(12, 2) NOT NULL DEFAULT 0,
  attrs       JSON NULL,
  created_at  DATETIME(6) NOT NULL,
  updated_at  DATETIME(6) NOT NULL,
  KEY (customer_id)
);
CREATE TABLE IF NOT EXISTS order_items (
  order_id    BIGINT NOT NULL,
  line_no     SMALLINT UNSIGNED NOT NULL,
  sku         VARCHAR(32) NOT NULL,
  qty         INT NOT NULL,
  price       DECIMAL(10, 2) NOT NULL,
  PRIMARY KEY (order_id, line_no)
);
-- The CDC user: reads the shop tables and the binlog, nothing else.
CREATE USER IF NOT EXISTS 'sluice'@'127.0.0.1' IDENTIFIED BY 'sluice';
GRANT SELECT ON shop.* TO 'sluice'@'127.0.0.1';
GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'sluice'@'127.0.0.1';
SQL
  local n
  n=$(client -N -B -e 'SELECT COUNT(*) FROM shop.customers')
  if [ "$n" -gt 0 ]; then
    return 0
  fi
  say "seeding shop: $SEED_CUSTOMERS customers, $SEED_ORDERS orders with 1-4 items each"
  client shop <<SQL
START TRANSACTION;
INSERT INTO customers (id, name, email, tier, note, created_at, updated_at)
SELECT seq,
       CONCAT(ELT(1 + seq % 8, 'Ada', 'Björn', 'Chloé', 'Dmitri', 'Eun-ji', 'François', 'Giulia', 'Hiroshi'), ' ',
              ELT(1 + (seq DIV 8) % 6, 'Lovelace', 'Ångström', 'Müller', 'Nakamura', 'Okafor', 'Zhao')),
       CONCAT('customer', seq, '@example.com'),
       ELT(1 + FLOOR(RAND(seq) * 3), 'bronze', 'silver', 'gold'),
       CASE WHEN seq % 4 = 0 THEN NULL
            ELSE CONCAT('likes ', ELT(1 + seq % 5, 'coffee ☕', 'bikes 🚲', 'books 📚', 'music 🎧', 'tacos 🌮')) END,
       NOW(6) - INTERVAL (${SEED_CUSTOMERS} - seq) HOUR,
       NOW(6) - INTERVAL (${SEED_CUSTOMERS} - seq) HOUR
FROM seq_1_to_${SEED_CUSTOMERS};
INSERT INTO orders (id, customer_id, status, total, attrs, created_at, updated_at)
SELECT seq,
       1 + FLOOR(RAND(seq) * ${SEED_CUSTOMERS}),
       ELT(1 + FLOOR(RAND(seq + 1) * 4), 'new', 'paid', 'shipped', 'cancelled'),
       0,
       JSON_OBJECT('channel', ELT(1 + seq % 3, 'web', 'app', 'store'), 'gift', seq % 10 = 0),
       NOW(6) - INTERVAL (${SEED_ORDERS} - seq) * 7 MINUTE,
       NOW(6) - INTERVAL (${SEED_ORDERS} - seq) * 7 MINUTE
FROM seq_1_to_${SEED_ORDERS};
INSERT INTO order_items (order_id, line_no, sku, qty, price)
SELECT o.seq, l.seq,
       CONCAT('SKU-', LPAD(FLOOR(RAND(o.seq * 7 + l.seq) * 500), 4, '0')),
       1 + FLOOR(RAND(o.seq * 11 + l.seq) * 4),
       ROUND(2 + RAND(o.seq * 13 + l.seq) * 98, 2)
FROM seq_1_to_${SEED_ORDERS} o JOIN seq_1_to_4 l ON l.seq <= 1 + o.seq % 4;
UPDATE orders o JOIN (SELECT order_id, SUM(qty * price) AS s FROM order_items GROUP BY order_id) i
  ON i.order_id = o.id SET o.total = i.s;
COMMIT;
SQL
}

cmd_stop() {
  local pid
  if ! pid=$(running_pid); then
    say "not running (data $DIR)"
    rm -f "$PIDFILE"
    return 0
  fi
  kill -TERM "$pid"
  local i
  for ((i = 0; i < 120; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      say "stopped (pid $pid)"
      return 0
    fi
    sleep 0.5
  done
  die "mariadbd (pid $pid) is still shutting down after 60 s; see $ERRLOG"
}

cmd_status() {
  local pid
  if ! pid=$(running_pid); then
    say "not running (data $DIR)"
    return 0
  fi
  say "running: pid $pid, 127.0.0.1:$(cat "$PORTFILE" 2>/dev/null || echo '?'), socket $SOCK, data $DIR"
  cmd_counts | sed 's/^/  shop./'
}

cmd_port() {
  running_pid >/dev/null || die "not running: deploy/demo/mariadb.sh start"
  client -N -B -e 'SELECT @@port'
}

cmd_counts() {
  running_pid >/dev/null || die "not running: deploy/demo/mariadb.sh start"
  local t
  for t in "${TABLES[@]}"; do
    printf '%s %s\n' "$t" "$(client -N -B -e "SELECT COUNT(*) FROM shop.$t")"
  done
}

# One workload transaction: a new order with 1-4 items, two orders moving
# on in their life cycle, an item's quantity changed, a customer touched,
# sometimes a new customer, sometimes an order deleted with its items.
workload_txn() {
  local items=$((1 + RANDOM % 4)) extra=""
  if ((RANDOM % 10 == 0)); then
    extra+="INSERT INTO customers (name, email, tier, note, created_at, updated_at)
  VALUES (CONCAT('New customer ', $RANDOM), CONCAT('new', $RANDOM, '@example.com'), 'bronze', 'signed up 🎉', NOW(6), NOW(6));
"
  fi
  if ((RANDOM % 4 == 0)); then
    extra+="SET @d = NULL;
SELECT id INTO @d FROM orders WHERE id >= @lo + FLOOR(RAND() * (@hi - @lo + 1)) ORDER BY id LIMIT 1;
DELETE FROM order_items WHERE order_id = @d;
DELETE FROM orders WHERE id = @d;
"
  fi
  cat <<SQL
START TRANSACTION;
INSERT INTO orders (customer_id, status, total, attrs, created_at, updated_at)
  VALUES ($((1 + RANDOM % SEED_CUSTOMERS)), 'new', 0,
          JSON_OBJECT('channel', ELT(1 + FLOOR(RAND() * 3), 'web', 'app', 'store'), 'gift', RAND() < 0.1), NOW(6), NOW(6));
SET @o = LAST_INSERT_ID();
INSERT INTO order_items (order_id, line_no, sku, qty, price)
  SELECT @o, seq, CONCAT('SKU-', LPAD(FLOOR(RAND() * 500), 4, '0')), 1 + FLOOR(RAND() * 4), ROUND(2 + RAND() * 98, 2)
  FROM seq_1_to_${items};
UPDATE orders SET total = (SELECT SUM(qty * price) FROM order_items WHERE order_id = @o) WHERE id = @o;
SELECT MIN(id), MAX(id) INTO @lo, @hi FROM orders;
SET @r = @lo + FLOOR(RAND() * (@hi - @lo + 1));
UPDATE orders SET status = CASE status WHEN 'new' THEN 'paid' WHEN 'paid' THEN 'shipped' ELSE status END,
                  attrs = JSON_SET(COALESCE(attrs, '{}'), '$.touched', COALESCE(JSON_VALUE(attrs, '$.touched'), 0) + 1),
                  updated_at = NOW(6)
  WHERE id >= @r ORDER BY id LIMIT 2;
SET @r = @lo + FLOOR(RAND() * (@hi - @lo + 1));
UPDATE order_items SET qty = qty + 1 WHERE order_id >= @r ORDER BY order_id, line_no LIMIT 1;
UPDATE customers SET tier = ELT(1 + FLOOR(RAND() * 3), 'bronze', 'silver', 'gold'), updated_at = NOW(6)
  WHERE id = $((1 + RANDOM % SEED_CUSTOMERS));
${extra}COMMIT;
SQL
}

cmd_workload() {
  local seconds=${1:-20} interval=${DEMO_WORKLOAD_INTERVAL:-0.1}
  [[ "$seconds" =~ ^[0-9]+$ ]] || die "workload SECONDS must be a whole number, got '$seconds'"
  running_pid >/dev/null || die "not running: deploy/demo/mariadb.sh start"
  local stop=0 n=0 end=$((SECONDS + seconds))
  trap 'stop=1' TERM INT
  say "workload: inserts, updates and deletes on shop.* for ${seconds}s"
  while ((stop == 0 && SECONDS < end)); do
    if workload_txn | client shop; then
      n=$((n + 1))
    else
      running_pid >/dev/null || die "workload: the server stopped after $n transactions"
      say "workload: a transaction failed (see above); going on"
    fi
    sleep "$interval"
  done
  say "workload: done, $n transactions"
}

main() {
  local cmd=${1:-}
  [ $# -gt 0 ] && shift
  case "$cmd" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  workload) cmd_workload "$@" ;;
  sql)
    running_pid >/dev/null || die "not running: deploy/demo/mariadb.sh start"
    client shop "$@"
    ;;
  port) cmd_port ;;
  counts) cmd_counts ;;
  *)
    sed -n '2,20s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
    ;;
  esac
}

main "$@"
