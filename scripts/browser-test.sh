#!/usr/bin/env bash
# Real-browser test of the /demo seat map: headless Chromium (Debian's `chromium`) driven by
# playwright-core, two pages, a seat bought on one must turn sold on the other.
#
#   bash scripts/browser-test.sh            # PostgreSQL + Redis when TEST_DATABASE_URL and
#                                           # TEST_REDIS_URL are set (two server instances, one
#                                           # page on each), else one instance on SQLite
#   bash scripts/browser-test.sh --sqlite   # one instance on SQLite whatever is set
#
# It builds the server (debug), installs chromium with apt-get if missing (root only), runs
# `npm ci` in tests/browser, checks that demo/dist/demo.js is what `npm run build` makes of
# demo/src, starts the server(s) on free ports, waits for /ready, runs the test and leaves a
# screenshot in target/browser/seatmap.png. Everything it started is stopped, even on failure.
# With PostgreSQL it creates a database of its own (psql needed) and drops it afterwards.
#
# Knobs: CHROMIUM_PATH (default /usr/bin/chromium), PG_BIN (for psql when it is not on PATH),
# CARGO_TARGET_DIR, KEEP_LOGS=1 (keep the server logs).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
readonly ROOT=$PWD
readonly PROG="browser-test.sh"
export CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}
# psql from PATH, else from the PostgreSQL that scripts/services.sh runs.
PSQL=$(command -v psql || echo "${PG_BIN:-/usr/lib/postgresql/15/bin}/psql")

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

mode=auto
case ${1:-} in
"") ;;
--sqlite) mode=sqlite ;;
*) die "usage: $0 [--sqlite]" ;;
esac
if [[ $mode == auto ]]; then
    if [[ -n ${TEST_DATABASE_URL:-} && -n ${TEST_REDIS_URL:-} ]]; then
        mode=postgres
    else
        mode=sqlite
    fi
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/seatstorm-browser.XXXXXX")
pids=()
database_url=""
admin_url=""
db_name=""

cleanup() {
    local rc=$?
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $db_name ]]; then
        "$PSQL" "$admin_url" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$db_name\" WITH (FORCE)" \
            >/dev/null 2>&1 || log "could not drop database $db_name"
    fi
    if ((rc != 0)); then
        local f
        for f in "$work"/server-*.log; do
            [[ -s $f ]] || continue
            echo "----- last lines of $(basename "$f") -----" >&2
            tail -n 30 -- "$f" >&2 || true
        done
    fi
    if [[ ${KEEP_LOGS:-0} == 1 ]]; then
        log "logs kept in $work"
    else
        rm -rf -- "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
log "building the server (debug)"
locked=()
[[ -f Cargo.lock ]] && locked=(--locked)
cargo build --quiet "${locked[@]}" --bin seatstorm
server="${CARGO_TARGET_DIR:-$ROOT/target}/debug/seatstorm"
[[ -x $server ]] || die "no server binary at $server"

if [[ ! -x $CHROMIUM_PATH ]]; then
    [[ $(id -u) -eq 0 ]] || die "$CHROMIUM_PATH is missing: apt-get install chromium (as root)"
    log "installing chromium with apt-get"
    apt_log="$work/apt.log"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; } \
        >"$apt_log" 2>&1 </dev/null; then
        tail -n 40 -- "$apt_log" >&2
        die "apt-get install chromium failed"
    fi
fi
"$CHROMIUM_PATH" --version 2>/dev/null || true

command -v npm >/dev/null 2>&1 || die "npm is missing (Debian: apt-get install nodejs npm)"
log "npm ci in tests/browser"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

# The server compiles in demo/dist/demo.js: make sure it is what demo/src builds to.
log "checking demo/dist/demo.js against demo/src"
(cd demo && npm ci --no-audit --no-fund --loglevel=error && node build.mjs "$work/demo.js")
cmp -s "$work/demo.js" demo/dist/demo.js ||
    die "demo/dist/demo.js is out of date: run 'npm run build' in demo/ and commit it"

# ---------------------------------------------------------------------------------------------
secret=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
common_env=(
    "JWT_SECRET=$secret"
    "SEED_DEMO=true"
    "BIND_ADDR=127.0.0.1:0"
    "LOG_FORMAT=json"
    "AVATAR_DIR=$work/avatars"
    # Both pages sign in as the same demo customer; keep the per-user limits out of the way.
    "MUTATIONS_PER_MINUTE=1000"
)
case $mode in
postgres)
    [[ -x $PSQL ]] || die "psql is needed to create the test database"
    admin_url=$TEST_DATABASE_URL
    db_name="seatstorm_browser_$$_$RANDOM"
    "$PSQL" "$admin_url" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$db_name\"" >/dev/null
    # Same server and credentials, our own database: replace the path of the URL.
    database_url=$(printf '%s' "$admin_url" | sed -E "s#^(postgres(ql)?://[^/]+)/?[^?]*#\1/$db_name#")
    common_env+=(
        "DATABASE_URL=$database_url"
        "REDIS_URL=$TEST_REDIS_URL"
        "REDIS_CHANNEL=seatstorm-browser:$db_name"
    )
    instances=2
    ;;
sqlite)
    common_env+=("DATABASE_URL=sqlite://$work/seatstorm.db?mode=rwc" "REDIS_URL=")
    instances=1
    ;;
esac
log "mode: $mode, $instances instance(s)"

# Starts one instance and sets `server_url` once /ready answers. The server binds port 0 and
# logs the address it got, so no port is picked in advance and none can be taken meanwhile.
# (Not a $(...) function: the server must stay a child of this shell to be stopped on exit.)
server_url=""
start_server() {
    local n=$1 log_file="$work/server-$1.log" addr="" pid i
    env -u DATABASE_URL -u REDIS_URL "${common_env[@]}" "$server" >"$log_file" 2>&1 &
    pid=$!
    pids+=("$pid")
    for ((i = 0; i < 600; i++)); do
        addr=$(grep -o '"addr":"[^"]*"' "$log_file" | head -n1 | cut -d'"' -f4 || true)
        [[ -n $addr ]] && break
        kill -0 "$pid" 2>/dev/null || die "server $n exited during start-up"
        sleep 0.2
    done
    [[ -n $addr ]] || die "server $n did not start within 120 s"
    for ((i = 0; i < 150; i++)); do
        if node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' \
            "http://$addr/ready"; then
            server_url="http://$addr"
            return 0
        fi
        sleep 0.2
    done
    die "server $n at $addr never became ready"
}

# One after the other: the first seeds the demo into the empty database, the second finds it.
start_server a
url_a=$server_url
log "server a: $url_a"
url_b=$url_a
if ((instances == 2)); then
    start_server b
    url_b=$server_url
    log "server b: $url_b"
fi

log "running the browser test"
started=$SECONDS
mkdir -p target/browser
(
    cd tests/browser
    SEATSTORM_URL_A=$url_a SEATSTORM_URL_B=$url_b SCREENSHOT="$ROOT/target/browser/seatmap.png" \
        node --test --test-reporter=spec seatmap.spec.mjs
)
log "browser test passed in $((SECONDS - started)) s; screenshot: target/browser/seatmap.png"
