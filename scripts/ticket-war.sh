#!/usr/bin/env bash
# The ticket-war benchmark matrix of BENCHMARKS.md, on a durable throwaway PostgreSQL + Redis:
#
#   bash scripts/ticket-war.sh [SECONDS]
#
# Builds release binaries, starts PostgreSQL (PG_DURABLE=1) and Redis, then for each run starts a
# fresh server and fires ticket-war at it until the house is sold out (or SECONDS pass); pgbench
# measures the database's own hot-row ceiling in the same session. Prints one JSON report per run on
# stdout (progress on stderr). Knobs:
#   RUNS="ga:64 ga:256:simple best-available:64" (mode:concurrency[:booking path, default coalesced]
#        [:hold-only, seat modes: stop at the hold, for holds/s])
#   TICKETS=20000 (ga capacity)
#   SUBSCRIBERS=1000 (live WebSocket clients during each run)
#   RSS_LOG=/path (append "run seconds rss_kb" every 0.5 s, to see which phase the memory belongs to)
#   PGBENCH=0 (skip the pgbench ceiling, 4 to 256 clients, for runs that only compare the server with itself)
# Each report also carries the server's coalescing-lane counters (`lanes`: batches, requests and
# busy seconds per kind of lane, from /metrics at the end of the run).
# The binaries are taken from where cargo builds them (CARGO_TARGET_DIR, default ./target).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SECONDS_PER_RUN=${1:-20}
RUNS=${RUNS:-"ga:64:simple ga:64 ga:256:simple ga:256 ga:1024:simple ga:1024 best-available:64 best-available:256"}
SUBSCRIBERS=${SUBSCRIBERS:-0}
TICKETS=${TICKETS:-20000}
PORT=${PORT:-8090}
svc=$(mktemp -d /tmp/ticket-war.XXXXXX)
server_pid=""

cleanup() {
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    bash scripts/services.sh stop "$svc" >/dev/null 2>&1 || true
    rm -rf -- "$svc"
}
trap cleanup EXIT

cargo build --release -q -p seatstorm -p ticket-war >&2
# Where cargo put them: honours CARGO_TARGET_DIR like cargo itself.
bin=${CARGO_TARGET_DIR:-target}/release
PG_DURABLE=1 bash scripts/services.sh start "$svc" >/dev/null
# shellcheck disable=SC1091
source "$svc/env"

echo "== pgbench: one hot row, durable commits ==" >&2
pgbench_bin=${PG_BIN:-/usr/lib/postgresql/15/bin}/pgbench
cat >"$svc/hot-decrement.sql" <<'SQL'
UPDATE hot SET available = available - 1 WHERE id = 1 AND available > 0;
SQL
cat >"$svc/hot-booking.sql" <<'SQL'
BEGIN;
SELECT available FROM hot WHERE id = 1 FOR UPDATE;
UPDATE hot SET available = available - 1 WHERE id = 1;
INSERT INTO bookings (hot_id, at) VALUES (1, now());
COMMIT;
SQL
psql_url=$DATABASE_URL
psql "$psql_url" -q -c "DROP TABLE IF EXISTS hot, bookings; CREATE TABLE hot (id int PRIMARY KEY, available bigint); INSERT INTO hot VALUES (1, 1000000000); CREATE TABLE bookings (id bigserial PRIMARY KEY, hot_id int, at timestamptz);" >&2
# The issue's reference ceiling is pgbench's peak: on two cores that comes at a handful of clients
# (the hot row's lock queue grows with more), so the sweep starts low.
for clients in $([[ ${PGBENCH:-1} == 0 ]] || echo 4 16 64 256); do
    for script in hot-decrement hot-booking; do
        tps=$("$pgbench_bin" -n -c "$clients" -j 2 -T 10 -f "$svc/$script.sql" "$psql_url" 2>/dev/null | awk '/^tps/ {print int($3)}')
        echo "{\"pgbench\":\"$script\",\"clients\":$clients,\"tps\":${tps:-0}}"
    done
done

for run in $RUNS; do
    IFS=: read -r mode concurrency path extra <<<"$run"
    path=${path:-coalesced}
    hold_only=()
    [[ $extra == hold-only ]] && hold_only=(--hold-only)
    psql "$psql_url" -q -c "DROP SCHEMA public CASCADE; CREATE SCHEMA public;" >&2
    BOOKING_PATH=$path JWT_SECRET=ticket-war-benchmark-secret-0123456789 MUTATIONS_PER_MINUTE=100000000 \
        BIND_ADDR=127.0.0.1:$PORT RUST_LOG=warn "$bin/seatstorm" >"$svc/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.2; done
    echo "== $mode at $concurrency, $path path, $SUBSCRIBERS subscribers ==" >&2
    idle_rss=$(ps -o rss= -p "$server_pid" | tr -d ' ')
    # The server's peak resident memory over the run, for the memory cost of subscribers.
    (peak=0; while kill -0 "$server_pid" 2>/dev/null; do
        rss=$(ps -o rss= -p "$server_pid" | tr -d ' '); ((${rss:-0} > peak)) && peak=$rss
        echo "$peak" >"$svc/peak_rss"
        [[ -n ${RSS_LOG:-} ]] && echo "$run $SECONDS ${rss:-0}" >>"$RSS_LOG"
        sleep 0.5
    done) &
    sampler=$!
    if report=$("$bin/ticket-war" --url "http://127.0.0.1:$PORT" --mode "$mode" \
        --concurrency "$concurrency" --tickets "$TICKETS" --rows 100 --seats-per-row 100 \
        --duration "$SECONDS_PER_RUN" --subscribers "$SUBSCRIBERS" --database-url "$DATABASE_URL" \
        "${hold_only[@]}" --json); then
        peak_rss=$(cat "$svc/peak_rss" 2>/dev/null || true)
        peak_rss=${peak_rss:-0}
        # How busy each kind of coalescing lane was: busy seconds near the storm's length mean the
        # lane's serial work, not the machine, was the bound.
        lanes=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '
            /^seatstorm_booking_lane_(batches|requests|busy_seconds)_total\{/ {
                match($1, /lane="[a-z]+"/); lane = substr($1, RSTART + 6, RLENGTH - 7)
                name = $1; sub(/^seatstorm_booking_lane_/, "", name); sub(/_total.*/, "", name)
                value[lane] = value[lane] (value[lane] == "" ? "" : ",") "\"" name "\":" $2
            }
            END { sep = ""; printf "{"; for (l in value) { printf "%s\"%s\":{%s}", sep, l, value[l]; sep = "," } printf "}" }')
        echo "$report" | sed "s/^{/{\"booking_path\":\"$path\",\"server_idle_rss_kb\":${idle_rss:-0},\"server_peak_rss_kb\":$peak_rss,\"lanes\":${lanes:-{\}},/"
    else
        echo "{\"run\":\"$run\",\"failed\":true}"
    fi
    kill "$sampler" 2>/dev/null || true
    kill "$server_pid" && wait "$server_pid" 2>/dev/null || true
    server_pid=""
done
