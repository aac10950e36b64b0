#!/usr/bin/env bash
# Throw-away PostgreSQL server for the Lockgate test suite.
#
#   scripts/postgres.sh run -- CMD [ARGS...]
#       Start a private PostgreSQL server on a free 127.0.0.1 port (data in a
#       temporary directory), export LOCKGATE_TEST_POSTGRES_URL and
#       LOCKGATE_REQUIRE_POSTGRES=1, run CMD, then always stop the server and
#       delete its data. Exits with CMD's exit status.
#       If LOCKGATE_TEST_POSTGRES_URL is already set, that server is used and
#       nothing is started.
#
#   scripts/postgres.sh start
#       Start a server and leave it running; prints `export ...` lines, so
#       `eval "$(scripts/postgres.sh start)"` sets up the current shell.
#
#   scripts/postgres.sh stop DIR
#       Stop a server started with `start` and delete DIR.
#
# If PostgreSQL's server binaries are missing, Debian's `postgresql` package is
# installed with apt-get (needs root or passwordless sudo). The cluster that
# the Debian package may create is never used.
#
# Trust authentication on loopback and fsync=off: for throw-away test servers
# only, never for real data.
set -euo pipefail

PROG=scripts/postgres.sh

log() { echo "$PROG: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

is_root() { [ "$(id -u)" -eq 0 ]; }

find_bindir() {
    # Newest Debian-style install first, then whatever is on PATH.
    local initdb
    initdb=$(ls -1d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -z "$initdb" ] && command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        initdb=$(command -v initdb)
    fi
    [ -n "$initdb" ] && dirname "$initdb"
}

install_postgres() {
    local sudo=()
    if ! is_root; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            die "PostgreSQL server binaries (initdb, pg_ctl) not found, and cannot install them
  (not root, no passwordless sudo). Install them first, e.g.:
      sudo apt-get install postgresql        # Debian/Ubuntu
      brew install postgresql                # macOS
  or point the tests at an existing server:
      export LOCKGATE_TEST_POSTGRES_URL=postgresql+psycopg://USER:PASSWORD@HOST:PORT/postgres"
        fi
    fi
    command -v apt-get >/dev/null 2>&1 \
        || die "PostgreSQL server binaries not found and apt-get is not available; install PostgreSQL (initdb, pg_ctl) yourself"
    log "PostgreSQL server not found; installing Debian package 'postgresql'"
    log "+ ${sudo[*]:+${sudo[*]} }apt-get update"
    "${sudo[@]}" apt-get update -qq
    log "+ ${sudo[*]:+${sudo[*]} }apt-get install -y postgresql"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends postgresql >/dev/null
}

free_port() {
    local py
    py=$(command -v python3 || command -v python3.11 || command -v python || true)
    [ -n "$py" ] || die "python3 is needed to pick a free port"
    "$py" -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# as_pg CMD...: run CMD as the `postgres` user when we are root (PostgreSQL
# refuses to run as root), otherwise as ourselves. Runs from inside $PG_TMP so
# the postgres user never needs access to the caller's working directory.
as_pg() {
    if is_root; then
        (cd "$PG_TMP" && runuser -u postgres -- "$@")
    else
        (cd "$PG_TMP" && "$@")
    fi
}

# Sets PG_BINDIR, PG_TMP, PG_DATA, PG_LOG, PG_PORT, PG_VERSION, PG_URL.
start_server() {
    PG_BINDIR=$(find_bindir || true)
    if [ -z "$PG_BINDIR" ]; then
        install_postgres
        PG_BINDIR=$(find_bindir || true)
        [ -n "$PG_BINDIR" ] || die "installed 'postgresql' but still cannot find initdb under /usr/lib/postgresql/*/bin"
    fi
    if is_root; then
        id -u postgres >/dev/null 2>&1 \
            || die "running as root but there is no 'postgres' user to run the server as (PostgreSQL refuses to run as root)"
        command -v runuser >/dev/null 2>&1 || die "running as root but 'runuser' (util-linux) is missing"
    fi

    PG_TMP=$(mktemp -d "${TMPDIR:-/tmp}/lockgate-pg.XXXXXX")
    PG_DATA=$PG_TMP/data
    PG_LOG=$PG_TMP/server.log
    if is_root; then
        chown postgres: "$PG_TMP"
    fi
    chmod 700 "$PG_TMP"

    if ! as_pg "$PG_BINDIR/initdb" -D "$PG_DATA" -A trust -U postgres -E UTF8 --locale=C.UTF-8 \
            --no-sync >"$PG_TMP/initdb.log" 2>&1; then
        log "initdb failed:"
        cat "$PG_TMP/initdb.log" >&2
        return 1
    fi

    local attempt
    for attempt in 1 2 3; do
        PG_PORT=$(free_port)
        if as_pg "$PG_BINDIR/pg_ctl" start -w -t 60 -D "$PG_DATA" -l "$PG_LOG" -o "\
-c listen_addresses=127.0.0.1 -c port=$PG_PORT -k $PG_TMP \
-c fsync=off -c synchronous_commit=off -c full_page_writes=off \
-c max_connections=200" >/dev/null 2>&1; then
            break
        fi
        log "PostgreSQL failed to start on port $PG_PORT (attempt $attempt); server log:"
        tail -n 30 "$PG_LOG" >&2 || true
        # pg_ctl may have left a half-started server behind.
        as_pg "$PG_BINDIR/pg_ctl" stop -D "$PG_DATA" -m immediate >/dev/null 2>&1 || true
        [ "$attempt" -lt 3 ] || return 1
    done

    PG_VERSION=$("$PG_BINDIR/postgres" --version | sed -n 's/^.*(PostgreSQL) \([^ ]*\).*$/\1/p')
    PG_URL="postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/postgres"
}

# stop_server DIR: stop the server whose data lives in DIR/data, delete DIR.
stop_server() {
    local dir=$1 bindir
    [ -n "$dir" ] && [ -d "$dir" ] || return 0
    PG_TMP=$dir
    bindir=${PG_BINDIR:-$(find_bindir || true)}
    if [ -n "$bindir" ] && [ -f "$dir/data/postmaster.pid" ]; then
        if ! as_pg "$bindir/pg_ctl" stop -D "$dir/data" -m fast -w -t 30 >/dev/null 2>&1; then
            log "pg_ctl stop -m fast failed; trying -m immediate"
            as_pg "$bindir/pg_ctl" stop -D "$dir/data" -m immediate -w -t 30 >/dev/null 2>&1 \
                || log "warning: could not stop PostgreSQL in $dir"
        fi
    fi
    rm -rf "$dir"
}

cmd_run() {
    [ "${1:-}" = "--" ] && shift
    [ $# -gt 0 ] || usage

    if [ -n "${LOCKGATE_TEST_POSTGRES_URL:-}" ]; then
        log "LOCKGATE_TEST_POSTGRES_URL is already set; using that server, not starting one"
        export LOCKGATE_REQUIRE_POSTGRES=1
        exec "$@"
    fi

    PG_TMP=
    trap 'rc=$?; trap - EXIT INT TERM; stop_server "$PG_TMP"; exit $rc' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    start_server
    log "PostgreSQL $PG_VERSION on 127.0.0.1:$PG_PORT (data in $PG_DATA)"

    export LOCKGATE_TEST_POSTGRES_URL=$PG_URL
    export LOCKGATE_REQUIRE_POSTGRES=1
    local rc=0
    "$@" || rc=$?
    exit "$rc"
}

cmd_start() {
    PG_TMP=
    trap 'rc=$?; trap - EXIT; if [ $rc -ne 0 ]; then stop_server "$PG_TMP"; fi; exit $rc' EXIT
    start_server
    log "PostgreSQL $PG_VERSION on 127.0.0.1:$PG_PORT (data in $PG_DATA)"
    log "stop it with: $PROG stop $PG_TMP"
    echo "export LOCKGATE_TEST_POSTGRES_URL=$PG_URL"
    echo "export LOCKGATE_REQUIRE_POSTGRES=1"
    echo "export LOCKGATE_TEST_POSTGRES_DIR=$PG_TMP"
}

cmd_stop() {
    local dir=${1:-${LOCKGATE_TEST_POSTGRES_DIR:-}}
    [ -n "$dir" ] || die "usage: $PROG stop DIR   (the directory printed by '$PROG start')"
    [ -f "$dir/data/PG_VERSION" ] || die "$dir does not look like a directory made by '$PROG start'"
    stop_server "$dir"
    log "stopped PostgreSQL and removed $dir"
}

case "${1:-}" in
    run) shift; cmd_run "$@" ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    -h|--help|help|"") usage ;;
    *) log "unknown command: $1"; usage ;;
esac
