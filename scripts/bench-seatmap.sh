#!/usr/bin/env bash
# Measures `seatMap` for the demo arena (16,000 seats) on a release build.
#   bash scripts/bench-seatmap.sh [REQUESTS]
# Uses DATABASE_URL if set (it must point at an empty or demo-seeded database), else a fresh SQLite file.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
requests=${1:-20}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
trap 'kill "$server" 2>/dev/null || true; rm -rf -- "$work"' EXIT

cargo build --release --quiet --bin seatstorm
export DATABASE_URL=${DATABASE_URL:-sqlite://$work/bench.db?mode=rwc}
export JWT_SECRET=${JWT_SECRET:-benchmark-secret-that-is-long-enough-for-hs256}
BIND_ADDR=127.0.0.1:$port RUST_LOG=warn ./target/release/seatstorm &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.2; done

url="http://127.0.0.1:$port/graphql"
event=$(curl -sf "$url" -H 'content-type: application/json' \
    -d '{"query":"{ events(filter:{search:\"nova\"}) { edges { node { id } } } }"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["events"]["edges"][0]["node"]["id"])')
query="{\"query\":\"{ seatMap(eventId: \\\"$event\\\") { sections { section { id name kind } tierId available seats { id row number x y status accessible } } } }\"}"
curl -sf "$url" -H 'content-type: application/json' -d "$query" -o "$work/map.json"
seats=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(len(s["seats"]) for s in d["data"]["seatMap"]["sections"]))' "$work/map.json")
for _ in $(seq "$requests"); do
    curl -sf "$url" -H 'content-type: application/json' -H 'accept-encoding: identity' -d "$query" \
        -o /dev/null -w '%{time_total} %{size_download}\n'
done | python3 -c '
import sys, statistics
rows = [line.split() for line in sys.stdin]
times = sorted(float(t) * 1000 for t, _ in rows)
size = int(rows[0][1])
p95 = times[max(0, round(0.95 * len(times)) - 1)]
print(f"requests={len(times)} min={times[0]:.0f}ms median={statistics.median(times):.0f}ms p95={p95:.0f}ms max={times[-1]:.0f}ms body={size/1e6:.2f}MB")
'
echo "seats=$seats database=${DATABASE_URL%%:*}"
