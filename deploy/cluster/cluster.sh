#!/usr/bin/env bash
# A local multi-node b2b on loopback, from the same servers as the dev stack (deploy/local/
# stack.sh builds each node). Ports count up from B2B_CLUSTER_PORT (default 28000, below the ephemeral range
# 32768-60999, so no outgoing connection can hold one when a process starts):
#   RabbitMQ  rabbit-1..3, clustered, AMQP +672 +682 +692 (quorum queues on all three)
#   Postgres  postgres-primary +432, postgres-standby +433 (streaming hot standby)
#   HAProxy   command API +80, query API +81, AMQP +70 (TCP over the three nodes), stats +90
#   b2b       command-api-1/2 (+101/+102), query-api-1/2 (+111/+112, reading the standby
#             through DATABASE_READ_URL), projector-1/2, relay-1/2 (metrics on +121.. +142)
# Data and logs live in $B2B_CLUSTER_DIR (default .cluster/, git-ignored).
#   deploy/cluster/cluster.sh up|down|status|env
#   deploy/cluster/cluster.sh kill NAME      # SIGKILL a b2b process or a RabbitMQ node
#   deploy/cluster/cluster.sh start NAME     # start it again (any name above)
#   deploy/cluster/cluster.sh restart postgres-standby
#   deploy/cluster/cluster.sh rabbitmqctl ARGS...   # against the first node that answers
# Must run as root, like stack.sh (it installs haproxy and runs Postgres as `postgres`).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/../.." && pwd -P)"
STACK="$ROOT/deploy/local/stack.sh"
CLUSTER_DIR="${B2B_CLUSTER_DIR:-$ROOT/.cluster}"
BASE="${B2B_CLUSTER_PORT:-28000}"
B2B="${B2B_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/b2b}"
PG_BIN=/usr/lib/postgresql/15/bin

PG_PRIMARY=$((BASE + 432))
PG_STANDBY=$((BASE + 433))
LB_COMMAND=$((BASE + 80))
LB_QUERY=$((BASE + 81))
LB_AMQP=$((BASE + 70))
LB_STATS=$((BASE + 90))
RABBITS=(rabbit-1 rabbit-2 rabbit-3)
# name → "part http-port metrics-port" (http-port 0: the part serves no API)
declare -A PROCESSES=(
    [command-api-1]="command-api $((BASE + 101)) $((BASE + 121))"
    [command-api-2]="command-api $((BASE + 102)) $((BASE + 122))"
    [query-api-1]="query-api $((BASE + 111)) $((BASE + 123))"
    [query-api-2]="query-api $((BASE + 112)) $((BASE + 124))"
    [projector-1]="projector 0 $((BASE + 131))"
    [projector-2]="projector 0 $((BASE + 132))"
    [relay-1]="relay 0 $((BASE + 141))"
    [relay-2]="relay 0 $((BASE + 142))"
)
ORDER=(relay-1 relay-2 projector-1 projector-2 command-api-1 command-api-2 query-api-1 query-api-2)

log() { echo "cluster: $*" >&2; }
die() { log "$*"; exit 1; }

rabbit_port() { echo $((BASE + 672 + 10 * (${1#rabbit-} - 1))); }
rabbit_node() { echo "b2b-$(rabbit_port "$1")@localhost"; }

# stack.sh, pointed at one node's data dir and ports.
node_stack() {
    local dir="$1" pg_port="$2" amqp_port="$3"
    shift 3
    env -u RABBITMQ_NODENAME -u RABBITMQ_ERLANG_COOKIE -u DATABASE_URL -u WORKER_DATABASE_URL \
        -u DATABASE_OWNER_URL -u AMQP_URL \
        B2B_STACK_DIR="$CLUSTER_DIR/$dir" B2B_PG_PORT="$pg_port" \
        B2B_AMQP_PORT="$amqp_port" B2B_RABBIT_DIST_PORT=$((amqp_port + 1)) \
        bash "$STACK" "$@"
}
rabbit_stack() { node_stack "$1" "$PG_PRIMARY" "$(rabbit_port "$1")" "${@:2}"; }

# ---------------------------------------------------------------- rabbitmq --
rabbit_up() {
    local name="$1" first="${RABBITS[0]}"
    if [ "$name" != "$first" ]; then
        # One cookie for the whole cluster: the first node's.
        local cookie="$CLUSTER_DIR/$name/rabbitmq/.erlang.cookie"
        mkdir -p "$(dirname "$cookie")"
        if ! cmp -s "$cookie" "$CLUSTER_DIR/$first/rabbitmq/.erlang.cookie"; then
            rm -f "$cookie"
            install -m 400 "$CLUSTER_DIR/$first/rabbitmq/.erlang.cookie" "$cookie"
        fi
    fi
    rabbit_stack "$name" rabbit-up >/dev/null
    if [ "$name" != "$first" ] \
        && ! rabbit_stack "$name" rabbitmqctl -q cluster_status | grep -q "$(rabbit_node "$first")"; then
        log "joining $name to $(rabbit_node "$first")"
        rabbit_stack "$name" rabbitmqctl -q stop_app >/dev/null
        rabbit_stack "$name" rabbitmqctl -q join_cluster "$(rabbit_node "$first")" >/dev/null
        rabbit_stack "$name" rabbitmqctl -q start_app >/dev/null
    fi
}

rabbit_kill() {
    local pidfile="$CLUSTER_DIR/$1/rabbitmq/rabbitmq.pid"
    [ -s "$pidfile" ] && kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
}

# ---------------------------------------------------------------- postgres --
as_pg() { (cd / && runuser -u postgres -- "$@"); }
standby_dir() { echo "$(readlink -f "$CLUSTER_DIR/postgres-primary/pg")-standby"; }
standby_running() { [ -d "$(standby_dir)/data" ] && as_pg "$PG_BIN/pg_ctl" status -D "$(standby_dir)/data" >/dev/null 2>&1; }

standby_up() {
    local base
    base="$(standby_dir)"
    if [ ! -s "$base/data/PG_VERSION" ]; then
        log "base backup of the primary into $base/data"
        mkdir -p "$base"
        chown postgres:postgres "$base"
        chmod 700 "$base"
        # -R writes primary_conninfo and standby.signal: a hot standby streaming from it.
        as_pg env PGPASSWORD=b2b "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PG_PRIMARY" -U b2b \
            -D "$base/data" -R -X stream -c fast
    fi
    standby_running && return
    as_pg mkdir -p "$base/run"
    as_pg "$PG_BIN/pg_ctl" start -D "$base/data" -l "$base/postgres.log" -w -t 60 \
        -o "-p $PG_STANDBY -k '$base/run' -c hot_standby_feedback=on" >/dev/null 9>&- \
        || { tail -n 20 "$base/postgres.log" >&2; die "the standby did not start"; }
}

standby_down() {
    standby_running || return 0
    as_pg "$PG_BIN/pg_ctl" stop -D "$(standby_dir)/data" -m fast -w >/dev/null
}

# --------------------------------------------------------------------- b2b --
url() { echo "postgres://$1:$1@127.0.0.1:$2/b2b"; }
owner_url() { echo "postgres://b2b:b2b@127.0.0.1:$PG_PRIMARY/b2b"; }

b2b_env() {
    echo APP_ENV=local
    echo "DATABASE_URL=$(url b2b_api "$PG_PRIMARY")"
    echo "WORKER_DATABASE_URL=$(url b2b_worker "$PG_PRIMARY")"
    echo "DATABASE_OWNER_URL=$(owner_url)"
    echo "AMQP_URL=amqp://b2b:b2b@127.0.0.1:$LB_AMQP/%2f"
    echo TRUSTED_PROXIES=127.0.0.1
    echo RATE_LIMIT_PER_USER_PER_MINUTE=1000000
    echo RUST_LOG=info
}

pidfile() { echo "$CLUSTER_DIR/run/$1.pid"; }
running() { [ -s "$(pidfile "$1")" ] && kill -0 "$(cat "$(pidfile "$1")")" 2>/dev/null; }

b2b_start() {
    local name="$1" part http metrics
    read -r part http metrics <<<"${PROCESSES[$name]}"
    running "$name" && return
    mkdir -p "$CLUSTER_DIR/run" "$CLUSTER_DIR/logs"
    local extra=()
    [ "$http" != 0 ] && extra+=("BIND_ADDR=127.0.0.1:$http")
    [ "$part" = query-api ] && extra+=("DATABASE_READ_URL=$(url b2b_api "$PG_STANDBY")")
    # shellcheck disable=SC2046 # one variable per line
    setsid nohup env $(b2b_env) METRICS_ADDR="127.0.0.1:$metrics" "${extra[@]}" "$B2B" "$part" \
        >>"$CLUSTER_DIR/logs/$name.log" 2>&1 </dev/null 9>&- &
    echo $! >"$(pidfile "$name")"
}

b2b_ready() {
    local name="$1" part http metrics
    read -r part http metrics <<<"${PROCESSES[$name]}"
    local probe="http://127.0.0.1:$metrics/metrics"
    [ "$http" != 0 ] && probe="http://127.0.0.1:$http/health/ready"
    for _ in $(seq 1 120); do
        curl -fsS -o /dev/null "$probe" 2>/dev/null && return
        running "$name" || { tail -n 20 "$CLUSTER_DIR/logs/$name.log" >&2; die "$name exited"; }
        sleep 0.5
    done
    die "$name is not ready ($probe)"
}

b2b_kill() {
    running "$1" && kill -KILL "$(cat "$(pidfile "$1")")"
    rm -f "$(pidfile "$1")"
}

# ----------------------------------------------------------------- haproxy --
haproxy_up() {
    mkdir -p "$CLUSTER_DIR/run"
    command -v haproxy >/dev/null || {
        log "installing haproxy (apt)..."
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends haproxy >/dev/null
    }
    local cfg="$CLUSTER_DIR/haproxy.cfg"
    {
        cat <<-EOF
		# generated by deploy/cluster/cluster.sh
		global
		    maxconn 4096
		defaults
		    mode http
		    timeout connect 2s
		    timeout client 60s
		    timeout server 60s
		    # Only connection failures are retried (on the other replica): a command that
		    # reached a replica is the client's to retry, with its Idempotency-Key.
		    retries 2
		    option redispatch
		    default-server inter 1s fall 2 rise 2
		listen stats
		    bind 127.0.0.1:$LB_STATS
		    stats enable
		    stats uri /
		EOF
        for api in command-api query-api; do
            local port="$LB_COMMAND"
            [ "$api" = query-api ] && port="$LB_QUERY"
            echo "listen $api"
            echo "    bind 127.0.0.1:$port"
            echo "    option forwardfor"
            echo "    option httpchk GET /health/ready"
            for n in 1 2; do
                local _part http _metrics
                read -r _part http _metrics <<<"${PROCESSES[$api-$n]}"
                echo "    server $api-$n 127.0.0.1:$http check"
            done
        done
        echo "listen amqp"
        echo "    mode tcp"
        echo "    bind 127.0.0.1:$LB_AMQP"
        echo "    timeout client 3h"
        echo "    timeout server 3h"
        for node in "${RABBITS[@]}"; do
            echo "    server $node 127.0.0.1:$(rabbit_port "$node") check"
        done
    } >"$cfg"
    haproxy -c -q -f "$cfg"
    local pid="$CLUSTER_DIR/run/haproxy.pid"
    if [ -s "$pid" ] && kill -0 "$(cat "$pid")" 2>/dev/null; then
        haproxy -D -f "$cfg" -p "$pid" -sf "$(cat "$pid")"   # reload
    else
        haproxy -D -f "$cfg" -p "$pid"
    fi
}

haproxy_down() {
    local pid="$CLUSTER_DIR/run/haproxy.pid"
    [ -s "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
    rm -f "$pid"
}

# -------------------------------------------------------------------- main --
up() {
    [ -x "$B2B" ] || die "no b2b binary at $B2B (cargo build --bin b2b)"
    mkdir -p "$CLUSTER_DIR"
    for node in "${RABBITS[@]}"; do rabbit_up "$node"; done
    node_stack postgres-primary "$PG_PRIMARY" "$(rabbit_port rabbit-1)" pg-up >/dev/null
    # shellcheck disable=SC2046 # one variable per line
    env $(b2b_env) RUST_LOG=warn "$B2B" migrate >/dev/null
    standby_up
    haproxy_up
    for name in "${ORDER[@]}"; do b2b_start "$name"; done
    for name in "${ORDER[@]}"; do b2b_ready "$name"; done
    env_file >"$CLUSTER_DIR/env"
    log "up: command API http://127.0.0.1:$LB_COMMAND, query API http://127.0.0.1:$LB_QUERY" \
        "(env in $CLUSTER_DIR/env)"
}

down() {
    for name in "${ORDER[@]}"; do b2b_kill "$name" || true; done
    haproxy_down
    standby_down
    [ -d "$CLUSTER_DIR/postgres-primary" ] \
        && node_stack postgres-primary "$PG_PRIMARY" "$(rabbit_port rabbit-1)" pg-down >/dev/null
    for node in "${RABBITS[@]}"; do
        [ -d "$CLUSTER_DIR/$node" ] && rabbit_stack "$node" rabbit-down >/dev/null
    done
    log "down (data kept in $CLUSTER_DIR; remove it for a fresh cluster)"
}

# What a client of the cluster (make test-cluster) needs, as shell assignments.
env_file() {
    b2b_env
    echo "B2B_CLUSTER_DIR=$CLUSTER_DIR"
    echo "B2B_CLUSTER_COMMAND_URL=http://127.0.0.1:$LB_COMMAND"
    echo "B2B_CLUSTER_QUERY_URL=http://127.0.0.1:$LB_QUERY"
    echo "B2B_CLUSTER_STANDBY_URL=postgres://b2b:b2b@127.0.0.1:$PG_STANDBY/b2b"
    echo "B2B_CLUSTER_STATS_URL=http://127.0.0.1:$LB_STATS/"
    echo "B2B_CLUSTER_SCRIPT=$HERE/cluster.sh"
    local nodes=()
    for n in "${RABBITS[@]}"; do nodes+=("$(rabbit_node "$n")"); done
    echo "B2B_CLUSTER_RABBIT_NODES=$(IFS=,; echo "${nodes[*]}")"
}

status() {
    for node in "${RABBITS[@]}"; do
        if [ -s "$CLUSTER_DIR/$node/rabbitmq/rabbitmq.pid" ] \
            && kill -0 "$(cat "$CLUSTER_DIR/$node/rabbitmq/rabbitmq.pid")" 2>/dev/null; then
            echo "$node up ($(rabbit_node "$node"))"
        else
            echo "$node down"
        fi
    done
    standby_running && echo "postgres-standby up (:$PG_STANDBY)" || echo "postgres-standby down"
    for name in "${ORDER[@]}"; do
        running "$name" && echo "$name up (pid $(cat "$(pidfile "$name")"))" || echo "$name down"
    done
}

[ "$(id -u)" = 0 ] || die "run as root"
case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    env) env_file ;;
    kill)
        case "${2:-}" in
            rabbit-*) rabbit_kill "$2" ;;
            *) [ -n "${PROCESSES[${2:-}]:-}" ] || die "no process ${2:-}"; b2b_kill "$2" ;;
        esac ;;
    start)
        case "${2:-}" in
            rabbit-*) rabbit_up "$2" ;;
            postgres-standby) standby_up ;;
            *) [ -n "${PROCESSES[${2:-}]:-}" ] || die "no process ${2:-}"; b2b_start "$2"; b2b_ready "$2" ;;
        esac ;;
    restart)
        [ "${2:-}" = postgres-standby ] || die "restart: only postgres-standby"
        standby_down; standby_up ;;
    rabbitmqctl)   # against the first node that answers
        shift
        for node in "${RABBITS[@]}"; do
            if rabbit_stack "$node" rabbitmqctl -q ping >/dev/null 2>&1; then
                rabbit_stack "$node" rabbitmqctl "$@"
                exit
            fi
        done
        die "no RabbitMQ node answers" ;;
    *) sed -n '2,17p' "$0" >&2; exit 2 ;;
esac
