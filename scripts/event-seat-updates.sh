#!/usr/bin/env bash
# What `event_seats`' indexes cost the seat updates of a storm: the five full indexes of migration 4
# against the partial indexes of migration 15, on a 100,000-seat copy of each (see the .sql file).
#
#   bash scripts/event-seat-updates.sh DATABASE_URL [PASSES]
#
# Each pass resets both copies to available, vacuums them, and times the hold and sale of every seat
# in each copy, alternating which goes first. Prints per pass and copy the milliseconds spent in the
# updates and the WAL they wrote (MB; the reset is not counted; WAL moves with index entries written and
# does not depend on how busy the machine is). Works in a scratch schema, dropped at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
url=$1 passes=${2:-5}
sql() { psql "$url" -qAt -v ON_ERROR_STOP=1 -c "SET search_path = seat_update_bench" -c "$1"; }
trap 'psql "$url" -q -c "DROP SCHEMA IF EXISTS seat_update_bench CASCADE" 2>/dev/null' EXIT

psql "$url" -q -v ON_ERROR_STOP=1 -f event-seat-updates.sql
echo "pass five_indexes_ms partial_indexes_ms five_indexes_wal_mb partial_indexes_wal_mb"
for pass in $(seq 1 "$passes"); do
    declare -A spent=() wal=()
    order=(five_indexes partial_indexes)
    ((pass % 2 == 0)) && order=(partial_indexes five_indexes)
    for table in "${order[@]}"; do
        sql "UPDATE $table SET status = 'available', hold_id = NULL, order_id = NULL"
        sql "VACUUM $table"
        before=$(sql "SELECT pg_current_wal_insert_lsn()")
        spent[$table]=$(sql "SELECT hold_and_sell_all('$table')")
        wal[$table]=$(sql "SELECT round(pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '$before') / 1e6)")
    done
    echo "$pass ${spent[five_indexes]} ${spent[partial_indexes]} ${wal[five_indexes]} ${wal[partial_indexes]}"
done
