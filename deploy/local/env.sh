# shellcheck shell=bash
# Environment of the local dev/test stack (Postgres + RabbitMQ).
#   source deploy/local/env.sh        # from any cwd
# Every value is a default: export your own before sourcing to override it
# (e.g. other ports for a second checkout). No `set -e` here on purpose:
# this file is sourced into interactive shells too.

B2B_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
export B2B_ROOT

# Git-ignored data folder for both servers (see .gitignore: .stack/).
export B2B_STACK_DIR="${B2B_STACK_DIR:-$B2B_ROOT/.stack}"
case "$B2B_STACK_DIR" in /*) ;; *) B2B_STACK_DIR="$PWD/$B2B_STACK_DIR" ;; esac

export B2B_PG_PORT="${B2B_PG_PORT:-55432}"
export B2B_AMQP_PORT="${B2B_AMQP_PORT:-55672}"
# Erlang distribution port of the RabbitMQ node. Must be set explicitly: the
# RabbitMQ default (AMQP port + 20000) is out of range for our high ports.
export B2B_RABBIT_DIST_PORT="${B2B_RABBIT_DIST_PORT:-55673}"

# An unset APP_ENV means production (which needs its own JWT_SECRET); the local stack is local.
export APP_ENV="${APP_ENV:-local}"

# Services log in as roles that own nothing (migration 0021; stack.sh gives them these local
# passwords): the APIs as b2b_api, the relay and projector as b2b_worker. Migrations and the
# operator commands run as the schema owner b2b (a superuser on this stack, to create test
# databases).
export DATABASE_URL="${DATABASE_URL:-postgres://b2b_api:b2b_api@127.0.0.1:$B2B_PG_PORT/b2b}"
export WORKER_DATABASE_URL="${WORKER_DATABASE_URL:-postgres://b2b_worker:b2b_worker@127.0.0.1:$B2B_PG_PORT/b2b}"
export DATABASE_OWNER_URL="${DATABASE_OWNER_URL:-postgres://b2b:b2b@127.0.0.1:$B2B_PG_PORT/b2b}"
export AMQP_URL="${AMQP_URL:-amqp://b2b:b2b@127.0.0.1:$B2B_AMQP_PORT/%2f}"

# --- RabbitMQ node (read by rabbitmq-server and by the rabbitmqctl CLI) ---
# The node name embeds the AMQP port so two checkouts with different ports
# are two distinct Erlang nodes (they share epmd, which is fine).
export RABBITMQ_NODENAME="${RABBITMQ_NODENAME:-b2b-$B2B_AMQP_PORT@localhost}"
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT="$B2B_AMQP_PORT"
export RABBITMQ_DIST_PORT="$B2B_RABBIT_DIST_PORT"
# Everything the node writes or reads lives under the stack dir, nothing in
# /etc/rabbitmq or /var/lib/rabbitmq (the Debian package's default node).
B2B_RABBIT_DIR="$B2B_STACK_DIR/rabbitmq"
export B2B_RABBIT_DIR
export RABBITMQ_MNESIA_BASE="$B2B_RABBIT_DIR/mnesia"
export RABBITMQ_LOG_BASE="$B2B_RABBIT_DIR/log"
export RABBITMQ_PID_FILE="$B2B_RABBIT_DIR/rabbitmq.pid"
export RABBITMQ_ENABLED_PLUGINS_FILE="$B2B_RABBIT_DIR/enabled_plugins"
export RABBITMQ_CONFIG_FILE="$B2B_RABBIT_DIR/rabbitmq.conf"
export RABBITMQ_ADVANCED_CONFIG_FILE="$B2B_RABBIT_DIR/advanced.config"
# Points at a file we never create, so /etc/rabbitmq/rabbitmq-env.conf is ignored.
export RABBITMQ_CONF_ENV_FILE="$B2B_RABBIT_DIR/rabbitmq-env.conf"
# Erlang cookie: stack.sh keeps it in $B2B_RABBIT_DIR/.erlang.cookie and runs
# the server and the CLI with HOME=$B2B_RABBIT_DIR. Exported here too (once
# the file exists) so a bare `/usr/lib/rabbitmq/bin/rabbitmqctl` run from a
# shell that sourced this file reaches the node as well.
if [ -r "$B2B_RABBIT_DIR/.erlang.cookie" ]; then
    RABBITMQ_ERLANG_COOKIE="$(cat "$B2B_RABBIT_DIR/.erlang.cookie")"
    export RABBITMQ_ERLANG_COOKIE
fi
