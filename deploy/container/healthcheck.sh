#!/bin/bash
# The image's HEALTHCHECK: asks this container's own b2b process over loopback, with bash's
# /dev/tcp, since the runtime image carries no curl or wget.
#
# - An HTTP process (`serve`, `command-api`, `query-api`: something listens on BIND_ADDR's port)
#   is healthy when GET /health/ready answers 200 (Postgres and RabbitMQ both answer).
# - A worker process (`relay`, `projector`) serves only GET /metrics on METRICS_ADDR; it is
#   healthy when that answers 200 (it reads Postgres). A worker that stops ends the process, so
#   a running one is a working one.
#
# Exit 0 healthy, 1 unhealthy (Docker's meaning).
set -u

# GET $2 from 127.0.0.1:$1 (HTTP/1.0: the server closes after one reply).
# Returns 0 on 200, 1 on any other answer, 2 when nothing listens there.
probe() {
    local port=$1 path=$2 status=
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 2
    printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$path" >&3
    IFS=' ' read -r -t 5 _ status _ <&3
    exec 3<&-
    [ "$status" = 200 ]
}

# The port of an address such as 0.0.0.0:8080 or [::]:8080.
port_of() { echo "${1##*:}"; }

probe "$(port_of "${BIND_ADDR:-127.0.0.1:8080}")" /health/ready 2>/dev/null
case $? in
    0) exit 0 ;;
    1) exit 1 ;;
esac
probe "$(port_of "${METRICS_ADDR:-127.0.0.1:9464}")" /metrics 2>/dev/null || exit 1
