#!/usr/bin/env bash
# Runs every client example in examples/ against a b2b of its own; fails if any of them fails
# (each exits non-zero on a reply it did not expect).
#
#   bash examples/run.sh        # with the local stack up (`make stack`); `make test` runs it
#
# Builds b2b and the examples, starts `b2b serve` on a free loopback port over a fresh
# database holding `make run`'s demo tenant, runs `cargo run --example NAME` for each
# examples/NAME.rs with B2B_URL pointing at that server (and the other variables left to their
# defaults, which are the demo tenant's), then stops the server and drops the database.
# Logs of the last run: $B2B_STACK_DIR/examples-last/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source-path=SCRIPTDIR source=../deploy/local/env.sh
. "$HERE/../deploy/local/env.sh"
PRIVATE_B2B=examples
# shellcheck source-path=SCRIPTDIR source=../deploy/local/private-b2b.sh
. "$B2B_ROOT/deploy/local/private-b2b.sh"

cd "$B2B_ROOT"
cargo build --quiet --bin b2b --examples
private_b2b_init "$B2B_STACK_DIR/examples-last"
private_b2b_tenant demo "Demo Ltd" admin@demo.test demo-password-123
private_b2b_start serve

unset B2B_TENANT B2B_EMAIL B2B_PASSWORD
export B2B_URL="$BASE_URL"
for file in "$HERE"/*.rs; do
    example="$(basename "$file" .rs)"
    log "cargo run --example $example"
    cargo run --quiet --example "$example" ||
        die "example $example failed (server log: $WORK/server.log)"
done
log "every example passed"
