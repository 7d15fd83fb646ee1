#!/usr/bin/env bash
# Runs the whole test suite against real PostgreSQL 15 and Redis started on free loopback ports,
# then stops them (also when a test fails). Extra arguments go to `cargo test`.
#   bash scripts/test-full.sh            # everything
#   bash scripts/test-full.sh events::   # a filter
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

dir=$(mktemp -d -t seatstorm-services.XXXXXX)
trap 'bash scripts/services.sh stop "$dir" >/dev/null 2>&1 || true; rm -rf -- "$dir"' EXIT
bash scripts/services.sh start "$dir" >/dev/null
# shellcheck disable=SC1091
source "$dir/env"
# Tests choose their services through TEST_* only; the app's own variables stay unset.
unset DATABASE_URL REDIS_URL
cargo test --workspace "$@"
