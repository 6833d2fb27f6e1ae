#!/usr/bin/env bash
# Fuzzes the command HTTP API against its own OpenAPI document with schemathesis: no 5xx,
# every response matches GET /api/v1/openapi.json, what it calls invalid is refused and what it
# calls valid is not refused as invalid; the stateful phase chains commands through its links.
# Checks and limits are in schemathesis.toml beside this file.
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
PRIVATE_B2B=fuzz
# shellcheck source-path=SCRIPTDIR source=../../deploy/local/private-b2b.sh
. "$B2B_ROOT/deploy/local/private-b2b.sh"

FUZZ_CONFIG="${B2B_FUZZ_CONFIG:-$HERE/schemathesis.toml}"
FUZZ_TIMEOUT="${B2B_FUZZ_TIMEOUT:-600}"
VENV="$B2B_STACK_DIR/fuzz-venv"
# Kept across runs: schemathesis' cache and hypothesis' example database, so examples that
# failed before are tried again first.
STATE="$B2B_STACK_DIR/fuzz-state"
TENANT=fuzz
EMAIL=admin@fuzz.test
PASSWORD='correct horse battery staple'

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

# ------------------------------------------------- private database, server --
FUZZER_PID=
# shellcheck disable=SC2317 # reached through the EXIT trap
stop_fuzzer() {
    # `timeout` passes the signal on to schemathesis.
    [ -z "$FUZZER_PID" ] || stop "$FUZZER_PID" INT 15
}
ON_EXIT=stop_fuzzer
private_b2b_init "$B2B_STACK_DIR/fuzz-last"
mkdir -p "$STATE"
private_b2b_tenant "$TENANT" "Fuzz Ltd" "$EMAIL" "$PASSWORD"
private_b2b_start command-api ACCESS_TOKEN_TTL_SECONDS=900 RATE_LIMIT_PER_USER_PER_MINUTE=1000000

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
