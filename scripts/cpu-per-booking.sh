#!/usr/bin/env bash
# CPU time per booking of the server, PostgreSQL and ticket-war, in the middle of a storm:
#
#   bash scripts/cpu-per-booking.sh SERVICES_DIR SERVER_BINARY [MODE [CONCURRENCY [TICKET-WAR ARGS...]]]
#
# SERVICES_DIR is a `PG_DURABLE=1 bash scripts/services.sh start DIR` (its PostgreSQL must run as the
# `postgres` user, as services.sh does as root). Each call drops the database's public schema, starts
# SERVER_BINARY on it (migrations included), storms it with target/release/ticket-war (default `ga` at
# 256 buyers, 40,000 tickets), and after the first 200 bookings reads each process's CPU ticks from
# /proc over a WINDOW (default 4 s). Throughput figures move with whatever else the two cores do;
# CPU per booking moves much less, so two builds alternated a few times compare well on it.
# With `--hold-only` (seat modes), set COUNTED=holds: CPU per hold instead of per booking, and give it a
# house that lasts the window (`--rows 200 --seats-per-row 100`: 10,000 seats go in ~2-3 s).
# Knobs: TICKETS, DURATION (ticket-war's bound, s), WINDOW, BOOKING_PATH, HOOK_SQL (run after the
# server migrated, before the storm: to try a schema change by hand), PORT.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

svc=$1 bin=$2 mode=${3:-ga} concurrency=${4:-256}
shift $(($# < 4 ? $# : 4))
counted=seatstorm_${COUNTED:-bookings}_total
port=${PORT:-8095}
# shellcheck disable=SC1091
source "$svc/env"
log=$(mktemp /tmp/cpu-per-booking.XXXXXX)
report=$log.json
server_pid="" storm_pid=""
cleanup() {
    for pid in $storm_pid $server_pid; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
    [[ -s $report ]] || tail -20 -- "$log" >&2
    rm -f -- "$log" "$report"
}
trap cleanup EXIT

if curl -s -o /dev/null "http://127.0.0.1:$port/health"; then
    echo "something already answers on port $port: stop it or set PORT" >&2
    exit 1
fi
psql "$DATABASE_URL" -q -c "SET client_min_messages = warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public;"
BOOKING_PATH=${BOOKING_PATH:-coalesced} JWT_SECRET=ticket-war-benchmark-secret-0123456789 \
    MUTATIONS_PER_MINUTE=100000000 BIND_ADDR=127.0.0.1:$port RUST_LOG=warn "$bin" >"$log" 2>&1 &
server_pid=$!
for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.2; done
if ! kill -0 "$server_pid" 2>/dev/null || ! curl -sf "http://127.0.0.1:$port/ready" >/dev/null; then
    echo "the server did not become ready on port $port" >&2
    exit 1
fi
[[ -n ${HOOK_SQL:-} ]] && psql "$DATABASE_URL" -q -c "$HOOK_SQL"

target/release/ticket-war --url "http://127.0.0.1:$port" --mode "$mode" --concurrency "$concurrency" \
    --tickets "${TICKETS:-40000}" --duration "${DURATION:-30}" --database-url "$DATABASE_URL" \
    --json "$@" >"$report" 2>/dev/null &
storm_pid=$!

ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
postgres_ticks() {
    local sum=0 pid
    for pid in $(pgrep -u postgres -x postgres); do sum=$((sum + $(ticks "$pid"))); done
    echo "$sum"
}
idle_ticks() { awk '/^cpu / {print $5}' /proc/stat; }
# Time the hypervisor gave these cores to someone else: when it is not ~0, the storm ran short of CPU.
steal_ticks() { awk '/^cpu / {print $9}' /proc/stat; }
bookings() {
    curl -s "http://127.0.0.1:$port/metrics" | awk -v counted="^$counted" '$0 ~ counted {sum += $2} END {print sum + 0}'
}
snapshot() {
    echo "$(ticks "$server_pid") $(postgres_ticks) $(ticks "$storm_pid") $(idle_ticks) $(steal_ticks) $(bookings)"
}

# Setting up (buyers signing up, a large seat map) can take minutes; the window opens with the storm.
until (($(bookings) > 200)) || ! kill -0 "$storm_pid" 2>/dev/null; do sleep 0.05; done
before=$(snapshot)
sleep "${WINDOW:-4}"
after=$(snapshot)
# A window that outlives the storm also counts the audit's reads (and ticket-war gone): no booking
# after it means the house sold out inside it, and the figures are not CPU per booking.
sleep 0.5
booked_after_window=$(bookings)
wait "$storm_pid" || true
storm_pid=""

python3 - "$report" "$(getconf CLK_TCK)" "$booked_after_window" $before $after <<'PY'
import json, sys
report, hz, booked_after_window = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
before, after = list(map(int, sys.argv[4:10])), list(map(int, sys.argv[10:16]))
server, postgres, tool, idle, steal, booked = (b - a for a, b in zip(before, after))
per_booking = lambda ticks: round(1e6 * ticks / hz / booked) if booked else None
d = json.load(open(report))
print(json.dumps({
    "confirmed_per_s": d["confirmed_per_s"], "p99_ms": d["latency"]["p99_ms"],
    "violations": len(d["audit"]["violations"]), "bookings_in_window": booked,
    "cpu_us_per_booking": {"server": per_booking(server), "postgres": per_booking(postgres),
                           "ticket_war": per_booking(tool), "idle": per_booking(idle),
                           "steal": per_booking(steal)},
    "storm_outlasted_window": booked_after_window > after[5],
}))
if booked_after_window <= after[5]:
    print("warning: the storm ended inside the window, so these figures include the audit: "
          "use a bigger house (TICKETS, --rows) or a shorter WINDOW", file=sys.stderr)
PY
