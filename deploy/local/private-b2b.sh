# shellcheck shell=bash
# A b2b of its own for one script run on the local stack: a private database and AMQP prefix,
# a server on a free loopback port, and all of it stopped and dropped when the script exits.
# Sourced, after deploy/local/env.sh, by tests/fuzz/run.sh and examples/run.sh, which set
# PRIVATE_B2B to a short name first (for log lines, the database and the AMQP prefix):
#
#   private_b2b_init WORK           # database b2b_$PRIVATE_B2B_<random>, B2B_ENV, EXIT trap;
#                                   # logs and outputs in WORK (emptied)
#   b2b ARGS...                     # runs the binary in that environment
#   private_b2b_tenant SLUG NAME EMAIL PASSWORD
#   private_b2b_start ROLE [VAR=VALUE...]   # `b2b ROLE` on a free port: SERVER_PID, BASE_URL
#
# B2B_BIN is the binary (default: debug/b2b in $CARGO_TARGET_DIR or target/). A script that
# starts children of its own sets ON_EXIT to a function that stops them; it runs first.

# Cargo's target directory: CARGO_TARGET_DIR when set (relative to the checkout), else target/.
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$B2B_ROOT/$TARGET_DIR" ;; esac
B2B_BIN="${B2B_BIN:-$TARGET_DIR/debug/b2b}"
SERVER_PID=
BASE_URL=
ON_EXIT=

log() { echo "$PRIVATE_B2B: $*" >&2; }
die() { log "$*"; exit 1; }

# Whether a child of ours still runs (`kill -0` also succeeds on an exited, unreaped one).
alive() {
    local state
    state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# Ends a process of ours: SIGNAL, then SIGKILL after GRACE seconds.
stop() {
    local pid=$1 signal=$2 grace=$3
    if alive "$pid"; then
        kill "-$signal" "$pid" 2>/dev/null || true
        for _ in $(seq $((grace * 5))); do
            alive "$pid" || break
            sleep 0.2
        done
    fi
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317 # the EXIT trap
private_b2b_cleanup() {
    local status=$?
    trap - EXIT INT TERM
    [ -z "$ON_EXIT" ] || "$ON_EXIT"
    [ -z "$SERVER_PID" ] || stop "$SERVER_PID" TERM 10
    if [ -n "${DB_CREATED:-}" ]; then
        psql -q -X "$ADMIN_URL" -c "drop database if exists $DB_NAME with (force)" >/dev/null ||
            log "could not drop database $DB_NAME"
    fi
    exit "$status"
}

private_b2b_init() {
    WORK=$1
    [ -x "$B2B_BIN" ] || die "no b2b binary at $B2B_BIN (cargo build, or set B2B_BIN)"
    ADMIN_URL="$DATABASE_OWNER_URL"
    SUFFIX="$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    DB_NAME="b2b_${PRIVATE_B2B}_$SUFFIX"
    trap private_b2b_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    rm -rf "$WORK"
    mkdir -p "$WORK"
    psql -q -X -v ON_ERROR_STOP=1 "$ADMIN_URL" -c "create database $DB_NAME" >/dev/null
    DB_CREATED=1
    log "database $DB_NAME"
    # The b2b processes of this run: private database and broker names, local JWT key.
    B2B_ENV=(
        DATABASE_URL="${DATABASE_URL%/*}/$DB_NAME"
        WORKER_DATABASE_URL="${WORKER_DATABASE_URL%/*}/$DB_NAME"
        DATABASE_OWNER_URL="${ADMIN_URL%/*}/$DB_NAME"
        AMQP_PREFIX="${PRIVATE_B2B:0:1}$SUFFIX"
        APP_ENV=local
        SIGN_IN_PER_ADDRESS_PER_MINUTE=1000000
        METRICS_ADDR=127.0.0.1:0
        RUST_LOG="${RUST_LOG:-warn}"
    )
    b2b migrate >"$WORK/migrate.log" 2>&1 || { cat "$WORK/migrate.log" >&2; die "b2b migrate failed"; }
}

b2b() { env "${B2B_ENV[@]}" "$B2B_BIN" "$@"; }

private_b2b_tenant() {
    b2b tenant create --slug "$1" --name "$2" --admin-email "$3" --admin-password "$4" \
        >"$WORK/tenant.json" 2>"$WORK/tenant.log" ||
        { cat "$WORK/tenant.log" >&2; die "b2b tenant create failed"; }
}

private_b2b_start() {
    local role=$1
    shift
    # Port 0: the server picks a free port and prints `listening on http://ADDR` first.
    # `env` execs the binary, so $! is the server itself (a shell function would put a
    # subshell in between that `kill` would not pass on).
    env "${B2B_ENV[@]}" BIND_ADDR=127.0.0.1:0 "$@" \
        "$B2B_BIN" "$role" >"$WORK/server.out" 2>"$WORK/server.log" &
    SERVER_PID=$!
    for _ in $(seq 150); do
        BASE_URL="$(sed -n 's/^listening on \(http:\/\/[^[:space:]]*\).*/\1/p' "$WORK/server.out" | head -n1)"
        [ -n "$BASE_URL" ] && break
        alive "$SERVER_PID" || { cat "$WORK/server.log" >&2; die "b2b $role exited"; }
        sleep 0.2
    done
    [ -n "$BASE_URL" ] || die "b2b $role did not print its address"
    case "$BASE_URL" in
        http://127.0.0.1:*) ;;
        *) die "unexpected address $BASE_URL (only loopback is used)" ;;
    esac
    for _ in $(seq 100); do
        curl -fsS -o /dev/null --max-time 2 "$BASE_URL/health/live" 2>/dev/null && break
        alive "$SERVER_PID" || { cat "$WORK/server.log" >&2; die "b2b $role exited"; }
        sleep 0.2
    done
    curl -fsS -o /dev/null --max-time 2 "$BASE_URL/health/live" || die "$BASE_URL/health/live never answered"
    log "b2b $role at $BASE_URL (pid $SERVER_PID)"
}
