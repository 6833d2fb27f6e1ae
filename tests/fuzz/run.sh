#!/usr/bin/env bash
# Fuzzes the command HTTP API against its own OpenAPI document with schemathesis:
# no 5xx, and every response matches GET /api/v1/openapi.json. Checks and limits are in
# schemathesis.toml beside this file.
#
#   bash tests/fuzz/run.sh                      # uses the debug b2b (build it first)
#   B2B_BIN=/path/to/b2b bash tests/fuzz/run.sh
#
# It starts the local stack (deploy/local/stack.sh up), then, in a private database
# b2b_fuzz_<random> and AMQP prefix: migrates, creates a tenant, starts `b2b command-api` on a
# free loopback port, signs in as the tenant's admin, seeds a few aggregates (seed.py), runs
# schemathesis with that token, and stops the server and drops the database on exit. Exits
# non-zero if schemathesis found a failure.
#
# Environment (all optional):
#   B2B_BIN            the b2b binary (default: debug/b2b in $CARGO_TARGET_DIR or target/)
#   B2B_FUZZ_TIMEOUT   hard limit for the schemathesis run in seconds (default 600; must stay
#                      under the 900 s access-token lifetime)
#   B2B_FUZZ_SEED      schemathesis --seed, to repeat a run
#   B2B_FUZZ_ARGS      extra `schemathesis run` arguments, e.g. "--max-examples 20"
#   B2B_FUZZ_CONFIG    another schemathesis.toml (default: the one beside this script)
# Logs and reports of the last run: $B2B_STACK_DIR/fuzz-last/ (server.log, report/).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source-path=SCRIPTDIR source=../../deploy/local/env.sh
. "$HERE/../../deploy/local/env.sh"

# Cargo's target directory: CARGO_TARGET_DIR when set (relative to the checkout), else target/.
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$B2B_ROOT/$TARGET_DIR" ;; esac
B2B_BIN="${B2B_BIN:-$TARGET_DIR/debug/b2b}"
FUZZ_CONFIG="${B2B_FUZZ_CONFIG:-$HERE/schemathesis.toml}"
FUZZ_TIMEOUT="${B2B_FUZZ_TIMEOUT:-600}"
VENV="$B2B_STACK_DIR/fuzz-venv"
WORK="$B2B_STACK_DIR/fuzz-last"
# Kept across runs: schemathesis' cache and hypothesis' example database, so examples that
# failed before are tried again first.
STATE="$B2B_STACK_DIR/fuzz-state"
TENANT=fuzz
EMAIL=admin@fuzz.test
PASSWORD='correct horse battery staple'

log() { echo "fuzz: $*" >&2; }
die() { log "$*"; exit 1; }

[ -x "$B2B_BIN" ] || die "no b2b binary at $B2B_BIN (cargo build, or set B2B_BIN)"
[ -r "$FUZZ_CONFIG" ] || die "no schemathesis config at $FUZZ_CONFIG"
FUZZ_CONFIG="$(cd "$(dirname "$FUZZ_CONFIG")" && pwd -P)/$(basename "$FUZZ_CONFIG")"
if [ "$FUZZ_TIMEOUT" -ge 900 ]; then
    die "B2B_FUZZ_TIMEOUT must be under 900 s (the access token's lifetime)"
fi

# ------------------------------------------------------------------ tools --
pinned="$(sed -n 's/^schemathesis==\([^[:space:]]*\).*/\1/p' "$HERE/requirements.txt")"
[ -n "$pinned" ] || die "requirements.txt pins no schemathesis version"
if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null || true)" != "schemathesis, version $pinned" ]; then
    log "installing schemathesis $pinned into $VENV..."
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$HERE/requirements.txt"
fi
PY="$VENV/bin/python"

bash "$B2B_ROOT/deploy/local/stack.sh" up >&2

# ------------------------------------------------------- private database --
ADMIN_URL="$DATABASE_URL"
suffix="$("$PY" -c 'import secrets; print(secrets.token_hex(8))')"
DB_NAME="b2b_fuzz_$suffix"
FUZZ_DATABASE_URL="${ADMIN_URL%/*}/$DB_NAME"
SERVER_PID=
FUZZER_PID=

# Whether a child of ours still runs (`kill -0` also succeeds on an exited, unreaped one).
alive() {
    local state
    state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# Ends a process of ours: SIGNAL, then SIGKILL after GRACE seconds.
# shellcheck disable=SC2317 # reached through the EXIT trap
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
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    # `timeout` passes the signal on to schemathesis.
    [ -z "$FUZZER_PID" ] || stop "$FUZZER_PID" INT 15
    [ -z "$SERVER_PID" ] || stop "$SERVER_PID" TERM 10
    if [ -n "${DB_CREATED:-}" ]; then
        psql -q -X "$ADMIN_URL" -c "drop database if exists $DB_NAME with (force)" >/dev/null ||
            log "could not drop database $DB_NAME"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$WORK"
mkdir -p "$WORK" "$STATE"

psql -q -X -v ON_ERROR_STOP=1 "$ADMIN_URL" -c "create database $DB_NAME" >/dev/null
DB_CREATED=1
log "database $DB_NAME"

# The b2b processes of this run: private database and broker names, local JWT key.
B2B_ENV=(
    DATABASE_URL="$FUZZ_DATABASE_URL"
    AMQP_PREFIX="f$suffix"
    APP_ENV=local
    SIGN_IN_PER_ADDRESS_PER_MINUTE=1000000
    METRICS_ADDR=127.0.0.1:0
    RUST_LOG="${RUST_LOG:-warn}"
)
b2b() { env "${B2B_ENV[@]}" "$B2B_BIN" "$@"; }

b2b migrate >"$WORK/migrate.log" 2>&1 || { cat "$WORK/migrate.log" >&2; die "b2b migrate failed"; }
b2b tenant create --slug "$TENANT" --name "Fuzz Ltd" \
    --admin-email "$EMAIL" --admin-password "$PASSWORD" >"$WORK/tenant.json" 2>"$WORK/tenant.log" ||
    { cat "$WORK/tenant.log" >&2; die "b2b tenant create failed"; }

# ------------------------------------------------------------------ server --
# Port 0: the server picks a free port and prints `listening on http://ADDR` first.
# `env` execs the binary, so $! is the server itself (a shell function would put a subshell
# in between that `kill` would not pass on).
env "${B2B_ENV[@]}" \
    BIND_ADDR=127.0.0.1:0 \
    ACCESS_TOKEN_TTL_SECONDS=900 \
    RATE_LIMIT_PER_USER_PER_MINUTE=1000000 \
    "$B2B_BIN" command-api >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!

BASE_URL=
for _ in $(seq 150); do
    BASE_URL="$(sed -n 's/^listening on \(http:\/\/[^[:space:]]*\).*/\1/p' "$WORK/server.out" | head -n1)"
    [ -n "$BASE_URL" ] && break
    alive "$SERVER_PID" || { cat "$WORK/server.log" >&2; die "b2b command-api exited"; }
    sleep 0.2
done
[ -n "$BASE_URL" ] || die "b2b command-api did not print its address"
case "$BASE_URL" in
    http://127.0.0.1:*) ;;
    *) die "unexpected address $BASE_URL (only loopback is fuzzed)" ;;
esac

for _ in $(seq 100); do
    curl -fsS -o /dev/null --max-time 2 "$BASE_URL/health/live" 2>/dev/null && break
    alive "$SERVER_PID" || { cat "$WORK/server.log" >&2; die "b2b command-api exited"; }
    sleep 0.2
done
curl -fsS -o /dev/null --max-time 2 "$BASE_URL/health/live" || die "$BASE_URL/health/live never answered"
log "command API at $BASE_URL (pid $SERVER_PID)"

# ------------------------------------------------------------------ token --
login_body="$(TENANT="$TENANT" EMAIL="$EMAIL" PASSWORD="$PASSWORD" "$PY" -c \
    'import json, os; print(json.dumps({k.lower(): os.environ[k] for k in ("TENANT", "EMAIL", "PASSWORD")}))')"
B2B_FUZZ_TOKEN="$(curl -fsS --max-time 30 -H 'Content-Type: application/json' \
    --data "$login_body" "$BASE_URL/api/v1/auth/login" |
    "$PY" -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')"
[ -n "$B2B_FUZZ_TOKEN" ] || die "sign-in returned no access token"
export B2B_FUZZ_TOKEN

# ------------------------------------------------------------------- seed --
# A few aggregates to aim commands at; the run's config is ours plus their ids.
RUN_CONFIG="$WORK/schemathesis.toml"
cp "$FUZZ_CONFIG" "$RUN_CONFIG"
"$PY" "$HERE/seed.py" "$BASE_URL" >>"$RUN_CONFIG"

# ------------------------------------------------------------- schemathesis --
extra=()
[ -n "${B2B_FUZZ_SEED:-}" ] && extra+=(--seed "$B2B_FUZZ_SEED")
# shellcheck disable=SC2206 # word splitting of B2B_FUZZ_ARGS is the point
[ -n "${B2B_FUZZ_ARGS:-}" ] && extra+=($B2B_FUZZ_ARGS)

log "schemathesis $pinned, at most ${FUZZ_TIMEOUT}s"
started=$SECONDS
# In the background, so that a signal to this script runs `cleanup` at once (bash runs traps
# only between foreground commands). cwd $STATE: the hypothesis example database and the
# schemathesis cache land there, not in the work tree. SIGINT lets schemathesis print its
# summary before it stops.
(
    cd "$STATE"
    exec timeout --signal=INT --kill-after=30 "$FUZZ_TIMEOUT" \
        "$VENV/bin/schemathesis" --config-file "$RUN_CONFIG" run \
        --report junit,ndjson --report-dir "$WORK/report" \
        "${extra[@]}" \
        "$BASE_URL/api/v1/openapi.json"
) &
FUZZER_PID=$!
status=0
wait "$FUZZER_PID" || status=$?
FUZZER_PID=
log "schemathesis exited $status after $((SECONDS - started))s; server log: $WORK/server.log"
if [ "$status" -eq 124 ]; then
    log "schemathesis was stopped at the ${FUZZ_TIMEOUT}s limit"
fi
if ! alive "$SERVER_PID"; then
    log "b2b command-api died during the run"
    [ "$status" -ne 0 ] || status=1
elif ! curl -fs -o /dev/null --max-time 10 -H "Authorization: Bearer $B2B_FUZZ_TOKEN" \
    "$BASE_URL/api/v1/auth/me"; then
    # E.g. a fuzzed command on the fuzzer's own user (see extra-data-sources in the config).
    log "WARNING: the fuzzer's token stopped working during the run (signed out, deactivated," \
        "or expired?): later requests only tested the 401 path"
fi
exit "$status"
