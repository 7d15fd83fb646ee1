#!/usr/bin/env bash
# Throwaway PostgreSQL 15 + Redis for Seat Storm tests and local development.
#
#   scripts/services.sh start  [DIR]   start both on free loopback ports, write DIR/env
#   scripts/services.sh stop   [DIR]   stop both (idempotent, tolerant of already-stopped services)
#   scripts/services.sh status [DIR]   show what is running (exit 0 if both are up, 3 otherwise)
#
# DIR defaults to $PWD/target/services. It holds the state (state, env), the logs (pg.log,
# redis.log) and, normally, the PostgreSQL data (DIR/pg). Every `start` gives a FRESH, EMPTY
# cluster: data from a previous start in the same DIR is thrown away. Only when the postgres
# user cannot reach DIR (root with a checkout under /root) or DIR is too long for a Unix socket
# path does the cluster use /tmp/seatstorm-pg.* / /tmp/seatstorm-pgsock.*; `stop` removes those.
#
# After `start`:
#   source DIR/env      # exports TEST_DATABASE_URL, TEST_REDIS_URL, DATABASE_URL, REDIS_URL
# The exports are also printed on stdout (all progress messages go to stderr), so
#   eval "$(scripts/services.sh start)"
# works too.
#
# Environment knobs:
#   PG_BIN      PostgreSQL server binaries (default /usr/lib/postgresql/15/bin)
#   PG_DURABLE  1 keeps durable commits (fsync, synchronous_commit): for benchmarks
#
# PostgreSQL refuses to run as root: when run as root the cluster runs as the `postgres` system
# user (created if missing) through runuser; otherwise it runs as the current user.
set -euo pipefail

readonly PROG="services.sh"
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
readonly DB_ROLE=seatstorm DB_PASSWORD=seatstorm DB_NAME=seatstorm
readonly PORT_ATTEMPTS=5

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

usage() {
    cat >&2 <<EOF
usage: $0 start|stop|status [DIR]
  DIR defaults to \$PWD/target/services
EOF
    exit 2
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# Print the last lines of a log file to stderr (used when something fails to start).
show_log_tail() {
    local file=$1 from=${2:-1}
    if [[ -r $file ]]; then
        printf -- '----- last lines of %s -----\n' "$file" >&2
        tail -c +"$from" -- "$file" | tail -n 30 >&2 || true
        printf -- '----- end of %s -----\n' "$file" >&2
    fi
}

file_size() { if [[ -e $1 ]]; then stat -c %s -- "$1"; else echo 0; fi; }

# ---------------------------------------------------------------------------------------------
# Ports

have_python3() { command -v python3 >/dev/null 2>&1 && python3 -c '' >/dev/null 2>&1; }

# A port is free when nothing accepts a connection on it and (if python3 works) we can bind it.
port_is_free() {
    local port=$1
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        return 1 # something is listening
    fi
    if [[ $HAVE_PYTHON3 == yes ]]; then
        python3 - "$port" 2>/dev/null <<'PY' || return 1
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.close()
PY
    fi
    return 0
}

# Random free port in 20000-31999: below the kernel's usual ephemeral range (32768+), so an
# outgoing connection cannot grab it between the check and the server binding it.
pick_port() {
    local port i
    for ((i = 0; i < 200; i++)); do
        port=$((20000 + RANDOM % 12000))
        if port_is_free "$port"; then
            echo "$port"
            return 0
        fi
    done
    die "could not find a free TCP port on 127.0.0.1"
}

# ---------------------------------------------------------------------------------------------
# Tools

find_psql() {
    if command -v psql >/dev/null 2>&1; then
        command -v psql
    elif [[ -x /usr/bin/psql ]]; then
        echo /usr/bin/psql
    elif [[ -x $PG_BIN/psql ]]; then
        echo "$PG_BIN/psql"
    else
        die "psql not found (looked on PATH, /usr/bin/psql and $PG_BIN/psql)"
    fi
}

check_pg_bin() {
    local tool
    for tool in initdb pg_ctl pg_isready postgres; do
        [[ -x $PG_BIN/$tool ]] ||
            die "$PG_BIN/$tool not found: install PostgreSQL 15 server binaries or set PG_BIN"
    done
}

ensure_redis() {
    if ! command -v redis-server >/dev/null 2>&1; then
        if ! is_root; then
            die "redis-server is not installed and we are not root; install it, e.g. 'sudo apt-get install redis-server'"
        fi
        command -v apt-get >/dev/null 2>&1 || die "redis-server is not installed and apt-get is unavailable"
        log "redis-server not found; installing it with apt-get (log: $DIR/apt.log)"
        if ! { DEBIAN_FRONTEND=noninteractive apt-get update &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server; } \
            >"$DIR/apt.log" 2>&1; then
            show_log_tail "$DIR/apt.log"
            die "apt-get install redis-server failed"
        fi
    fi
    command -v redis-server >/dev/null 2>&1 || die "redis-server still not on PATH after installing"
    command -v redis-cli >/dev/null 2>&1 || die "redis-cli not found (package redis-tools)"
}

# Run a command as the user that owns / should own the cluster.
#   as_pg USER cmd...   (USER is "" for "the current user")
# cd to / first: under runuser the postgres user may not be able to enter the current directory.
as_pg() {
    local user=$1
    shift
    if [[ -n $user ]] && is_root; then
        (cd / && runuser -u "$user" -- "$@")
    else
        "$@"
    fi
}

# ---------------------------------------------------------------------------------------------
# State (DIR/state holds shell assignments written by this script)

PGROOT="" PGSOCK="" PGPORT="" PGUSER_RUN="" REDIS_PORT="" HAVE_PYTHON3=no

load_state() {
    PGROOT="" PGSOCK="" PGPORT="" PGUSER_RUN="" REDIS_PORT=""
    if [[ -f $DIR/state ]]; then
        # shellcheck source=/dev/null
        source "$DIR/state"
    fi
}

save_state() {
    local tmp="$DIR/state.tmp"
    {
        echo "# written by $PROG; do not edit"
        printf 'PGROOT=%q\n' "$PGROOT"
        printf 'PGSOCK=%q\n' "$PGSOCK"
        printf 'PGPORT=%q\n' "$PGPORT"
        printf 'PGUSER_RUN=%q\n' "$PGUSER_RUN"
        printf 'REDIS_PORT=%q\n' "$REDIS_PORT"
    } >"$tmp"
    mv -f -- "$tmp" "$DIR/state"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL

pg_running() {
    [[ -n $PGROOT && -f $PGROOT/data/postmaster.pid ]] || return 1
    local rc=0
    as_pg "$PGUSER_RUN" "$PG_BIN/pg_ctl" status -D "$PGROOT/data" >/dev/null 2>&1 || rc=$?
    [[ $rc -eq 0 ]]
}

stop_pg() {
    if [[ -z $PGROOT || ! -d $PGROOT/data ]]; then
        return 0
    fi
    if ! pg_running; then
        log "postgres: not running"
        return 0
    fi
    log "postgres: stopping (port $PGPORT)"
    if ! as_pg "$PGUSER_RUN" "$PG_BIN/pg_ctl" stop -D "$PGROOT/data" -m fast -w -t 30 >>"$DIR/pg.log" 2>&1; then
        if pg_running; then
            log "postgres: fast shutdown failed, trying immediate"
            as_pg "$PGUSER_RUN" "$PG_BIN/pg_ctl" stop -D "$PGROOT/data" -m immediate -w -t 30 >>"$DIR/pg.log" 2>&1 || true
        fi
    fi
    if pg_running; then
        show_log_tail "$DIR/pg.log"
        die "postgres in $PGROOT/data is still running"
    fi
    log "postgres: stopped"
}

# Remove the directories start_pg made outside DIR (/tmp fallbacks), if any.
remove_tmp_pg_dirs() {
    if [[ $PGROOT == /tmp/seatstorm-pg.* ]]; then
        rm -rf -- "$PGROOT"
    fi
    if [[ $PGSOCK == /tmp/seatstorm-pgsock.* ]]; then
        rm -rf -- "$PGSOCK"
    fi
}

# Remove the PostgreSQL files of a previous start in this DIR (only paths this script created).
remove_old_pg() {
    if [[ -n $PGROOT && $PGROOT == "$DIR/pg" ]]; then
        rm -rf -- "$PGROOT"
    fi
    remove_tmp_pg_dirs
}

# Single-quoted value for postgresql.conf.
pg_conf_quote() { printf "'%s'" "${1//\'/\'\'}"; }

write_pg_conf() {
    local port=$1
    # Throwaway test cluster: fsync, synchronous_commit and full_page_writes are off because
    # the data is disposable and this roughly triples write throughput. NEVER use these
    # settings for anything whose data matters, nor in benchmarks that claim durability:
    # PG_DURABLE=1 keeps PostgreSQL's durable defaults (what the benchmarks use).
    local durability="fsync = off
synchronous_commit = off
full_page_writes = off"
    if [[ ${PG_DURABLE:-0} == 1 ]]; then
        durability="fsync = on
synchronous_commit = on
full_page_writes = on"
    fi
    cat >"$PGROOT/data/seatstorm.conf" <<EOF
# written by $PROG on every start
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = $(pg_conf_quote "$PGSOCK")
max_connections = 300
$durability
EOF
    if [[ -n $PGUSER_RUN ]]; then
        chown "$PGUSER_RUN": -- "$PGROOT/data/seatstorm.conf"
    fi
}

start_pg() {
    check_pg_bin
    local psql
    psql=$(find_psql)

    # Who runs the cluster.
    if is_root; then
        if ! id -u postgres >/dev/null 2>&1; then
            log "creating system user 'postgres'"
            useradd --system --no-create-home postgres || die "useradd postgres failed"
        fi
        command -v runuser >/dev/null 2>&1 || die "runuser not found (util-linux)"
        PGUSER_RUN=postgres
    else
        PGUSER_RUN=""
    fi

    # Where the cluster lives: DIR/pg, unless (as root) the postgres user cannot reach DIR
    # because a parent directory is closed (e.g. a checkout under /root); then use /tmp.
    PGROOT="$DIR/pg"
    mkdir -p -- "$PGROOT"
    if [[ -n $PGUSER_RUN ]]; then
        chmod 755 -- "$DIR" # a mktemp -d directory is 0700 root: let postgres enter it
        chown "$PGUSER_RUN": -- "$PGROOT"
        chmod 700 -- "$PGROOT"
        if ! as_pg "$PGUSER_RUN" test -x "$PGROOT" || ! as_pg "$PGUSER_RUN" test -w "$PGROOT"; then
            rmdir -- "$PGROOT"
            PGROOT=$(mktemp -d "/tmp/seatstorm-pg.XXXXXX")
            chown "$PGUSER_RUN": -- "$PGROOT"
            chmod 700 -- "$PGROOT"
            log "postgres: user '$PGUSER_RUN' cannot reach $DIR (closed parent directory); using $PGROOT"
        fi
    fi

    # Unix sockets paths are limited to ~107 bytes; fall back to a short /tmp directory.
    PGSOCK="$PGROOT/sock"
    if ((${#PGSOCK} + 20 > 100)); then
        PGSOCK=$(mktemp -d "/tmp/seatstorm-pgsock.XXXXXX")
        log "postgres: socket path under $PGROOT would be too long; using $PGSOCK"
    else
        mkdir -p -- "$PGSOCK"
    fi
    if [[ -n $PGUSER_RUN ]]; then
        chown "$PGUSER_RUN": -- "$PGSOCK"
    fi
    chmod 755 -- "$PGSOCK"
    save_state

    log "postgres: initdb (log: $DIR/pg.log)"
    local from
    from=$(($(file_size "$DIR/pg.log") + 1))
    # Local socket connections are trusted (used below to create the role); TCP connections
    # need the password, as in production.
    if ! as_pg "$PGUSER_RUN" "$PG_BIN/initdb" -D "$PGROOT/data" -U postgres \
        --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C --no-sync --no-instructions \
        >>"$DIR/pg.log" 2>&1; then
        show_log_tail "$DIR/pg.log" "$from"
        die "initdb failed"
    fi
    echo "include 'seatstorm.conf'" >>"$PGROOT/data/postgresql.conf"

    local attempt port
    for ((attempt = 1; attempt <= PORT_ATTEMPTS; attempt++)); do
        port=$(pick_port)
        PGPORT=$port
        write_pg_conf "$port"
        save_state
        log "postgres: starting on 127.0.0.1:$port"
        from=$(($(file_size "$DIR/pg.log") + 1))
        # Without -l, the server's output goes to pg_ctl's stdout, i.e. to a log file opened by
        # this shell: works even where the postgres user could not create DIR/pg.log itself.
        # 9>&-: the server must not inherit (and hold) our lock on DIR/.lock.
        if as_pg "$PGUSER_RUN" "$PG_BIN/pg_ctl" start -D "$PGROOT/data" -w -t 60 \
            >>"$DIR/pg.log" 2>&1 </dev/null 9>&-; then
            break
        fi
        if tail -c +"$from" -- "$DIR/pg.log" | grep -q 'Address already in use'; then
            log "postgres: port $port was taken meanwhile; retrying with another port"
            continue
        fi
        show_log_tail "$DIR/pg.log" "$from"
        die "postgres failed to start"
    done
    if ((attempt > PORT_ATTEMPTS)); then
        show_log_tail "$DIR/pg.log" "$from"
        die "postgres failed to start after $PORT_ATTEMPTS port attempts"
    fi

    # Bounded readiness wait (pg_ctl -w already waited; this also checks the TCP listener).
    local i
    for ((i = 0; i < 60; i++)); do
        if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" -t 2; then
            break
        fi
        sleep 0.5
    done
    if ((i >= 60)); then
        show_log_tail "$DIR/pg.log"
        die "postgres is not accepting TCP connections on 127.0.0.1:$PGPORT"
    fi

    log "postgres: creating role '$DB_ROLE' (superuser) and database '$DB_NAME'"
    if ! "$psql" -X -q -v ON_ERROR_STOP=1 -h "$PGSOCK" -p "$PGPORT" -U postgres -d postgres \
        -c "CREATE ROLE $DB_ROLE LOGIN SUPERUSER PASSWORD '$DB_PASSWORD'" \
        -c "CREATE DATABASE $DB_NAME OWNER $DB_ROLE" >>"$DIR/pg.log" 2>&1; then
        show_log_tail "$DIR/pg.log"
        die "could not create role/database"
    fi
    # Check the URL the tests will use (TCP + password).
    if ! "$psql" -X -q -At -v ON_ERROR_STOP=1 "$(database_url)" -c 'select 1' >/dev/null 2>>"$DIR/pg.log"; then
        show_log_tail "$DIR/pg.log"
        die "cannot connect to $(database_url)"
    fi
    log "postgres: ready on 127.0.0.1:$PGPORT"
}

database_url() { echo "postgres://$DB_ROLE:$DB_PASSWORD@127.0.0.1:$PGPORT/$DB_NAME"; }
redis_url() { echo "redis://127.0.0.1:$REDIS_PORT"; }

# ---------------------------------------------------------------------------------------------
# Redis

redis_pid() {
    local pid
    [[ -f $DIR/redis.pid ]] || return 1
    pid=$(tr -dc '0-9' <"$DIR/redis.pid")
    [[ -n $pid ]] || return 1
    # Only trust the pidfile if that process is a redis-server.
    if ! grep -q '^redis' "/proc/$pid/comm" 2>/dev/null; then
        return 1
    fi
    echo "$pid"
}

# PID of the redis that answers on a port (empty if none).
redis_port_pid() {
    redis-cli -h 127.0.0.1 -p "$1" info server 2>/dev/null | tr -d '\r' |
        sed -n 's/^process_id://p' || true
}

stop_redis() {
    local pid i
    if ! pid=$(redis_pid); then
        rm -f -- "$DIR/redis.pid"
        [[ -z $REDIS_PORT ]] || log "redis: not running"
        return 0
    fi
    log "redis: stopping (pid $pid, port ${REDIS_PORT:-?})"
    if [[ -n $REDIS_PORT && $(redis_port_pid "$REDIS_PORT") == "$pid" ]]; then
        redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    else
        kill -TERM "$pid" 2>/dev/null || true
    fi
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "redis: did not stop after 10 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f -- "$DIR/redis.pid"
    log "redis: stopped"
}

start_redis() {
    ensure_redis
    local attempt port from pid i
    for ((attempt = 1; attempt <= PORT_ATTEMPTS; attempt++)); do
        port=$(pick_port)
        REDIS_PORT=$port
        save_state
        rm -f -- "$DIR/redis.pid"
        from=$(($(file_size "$DIR/redis.log") + 1))
        log "redis: starting on 127.0.0.1:$port (log: $DIR/redis.log)"
        # redis-server exits 0 after daemonizing even if it then fails to bind: verify below.
        # shellcheck disable=SC2094 # redis appends to its logfile; early output goes there too
        if ! redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
            --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" --dir "$DIR" </dev/null >>"$DIR/redis.log" 2>&1 9>&-; then
            show_log_tail "$DIR/redis.log" "$from"
            die "redis-server failed to start"
        fi
        # Up to 10 s for: pidfile written, process alive, and that very process answers on port.
        for ((i = 0; i < 100; i++)); do
            if pid=$(redis_pid) && [[ $(redis_port_pid "$port") == "$pid" ]] &&
                [[ $(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null) == PONG ]]; then
                log "redis: ready on 127.0.0.1:$port"
                return 0
            fi
            if tail -c +"$from" -- "$DIR/redis.log" 2>/dev/null | grep -qi 'address already in use'; then
                break
            fi
            sleep 0.1
        done
        if tail -c +"$from" -- "$DIR/redis.log" 2>/dev/null | grep -qi 'address already in use'; then
            log "redis: port $port was taken meanwhile; retrying with another port"
            stop_redis >/dev/null 2>&1 || true
            continue
        fi
        stop_redis >/dev/null 2>&1 || true
        show_log_tail "$DIR/redis.log" "$from"
        die "redis-server did not come up on 127.0.0.1:$port"
    done
    show_log_tail "$DIR/redis.log"
    die "redis-server failed to start after $PORT_ATTEMPTS port attempts"
}

# ---------------------------------------------------------------------------------------------
# Commands

lock_dir() {
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$DIR/.lock"
        flock -w 60 9 || die "another $PROG is working on $DIR"
    fi
}

cmd_stop() {
    if [[ ! -f $DIR/state ]]; then
        log "nothing to stop in $DIR"
        return 0
    fi
    lock_dir
    load_state
    local rc=0
    (stop_redis) || rc=1
    (stop_pg) || rc=1
    rm -f -- "$DIR/env"
    # Directories made outside DIR (see start_pg) would outlive an `rm -rf DIR`: a stopped
    # cluster is never reused (start always begins afresh), so drop them now.
    if ((rc == 0)); then
        remove_tmp_pg_dirs
    fi
    return "$rc"
}

START_DONE=no
on_start_exit() {
    local rc=$?
    if [[ $START_DONE != yes ]]; then
        log "start failed; stopping whatever was started"
        (stop_redis) >/dev/null 2>&1 || true
        if (stop_pg) >/dev/null 2>&1; then
            remove_tmp_pg_dirs
        fi
        rm -f -- "$DIR/env"
        ((rc != 0)) || rc=1
    fi
    exit "$rc"
}

cmd_start() {
    lock_dir
    HAVE_PYTHON3=no
    if have_python3; then HAVE_PYTHON3=yes; fi

    # A new start always gives fresh services: stop and discard a previous run in this DIR.
    load_state
    if [[ -f $DIR/state ]]; then
        log "previous services in $DIR: stopping and discarding them"
        stop_redis
        stop_pg
        remove_old_pg
        PGROOT="" PGSOCK="" PGPORT="" PGUSER_RUN="" REDIS_PORT=""
    fi
    rm -f -- "$DIR/env"
    : >"$DIR/pg.log"
    : >"$DIR/redis.log"
    save_state

    # Check/install the tools before starting anything.
    check_pg_bin
    find_psql >/dev/null
    ensure_redis

    trap on_start_exit EXIT
    start_pg
    start_redis
    save_state

    local envfile="$DIR/env"
    {
        echo "# Seat Storm test services ($DIR), written by $PROG start"
        echo "# stop them with: scripts/services.sh stop $(printf '%q' "$DIR")"
        echo "export TEST_DATABASE_URL=$(database_url)"
        echo "export TEST_REDIS_URL=$(redis_url)"
        echo "export DATABASE_URL=$(database_url)"
        echo "export REDIS_URL=$(redis_url)"
    } >"$envfile.tmp"
    mv -f -- "$envfile.tmp" "$envfile"
    START_DONE=yes
    trap - EXIT

    log "services are up; environment written to $envfile (source it)"
    grep '^export ' "$envfile"
}

cmd_status() {
    if [[ ! -f $DIR/state ]]; then
        echo "no services in $DIR"
        return 3
    fi
    load_state
    local rc=0 pid
    if pg_running; then
        echo "postgres: running on 127.0.0.1:$PGPORT (data $PGROOT/data)"
    else
        echo "postgres: stopped"
        rc=3
    fi
    if pid=$(redis_pid); then
        echo "redis:    running on 127.0.0.1:$REDIS_PORT (pid $pid)"
    else
        echo "redis:    stopped"
        rc=3
    fi
    if [[ $rc -eq 0 && -f $DIR/env ]]; then
        echo "env:      $DIR/env"
    fi
    return "$rc"
}

main() {
    [[ $# -ge 1 && $# -le 2 ]] || usage
    local cmd=$1
    DIR=${2:-$PWD/target/services}
    [[ -n $DIR ]] || die "DIR must not be empty"

    case $cmd in
    start)
        mkdir -p -- "$DIR" || die "cannot create $DIR"
        ;;
    stop | status)
        if [[ ! -d $DIR ]]; then
            if [[ $cmd == stop ]]; then
                log "nothing to stop: $DIR does not exist"
                exit 0
            fi
            echo "no services in $DIR"
            exit 3
        fi
        ;;
    -h | --help | help) usage ;;
    *) usage ;;
    esac
    DIR=$(cd -- "$DIR" && pwd -P)

    case $cmd in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    esac
}

main "$@"
