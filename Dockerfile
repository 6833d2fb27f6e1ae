# syntax=docker/dockerfile:1
# One image for every b2b process; its command picks the role:
#   docker build -t b2b .
#   docker run --rm b2b --help
#   docker run -e DATABASE_URL=... -e AMQP_URL=... -e JWT_SECRET=... b2b command-api
# Stages: cargo-chef plans and builds the dependencies in their own layer, so a change to the
# workspace's code alone rebuilds only its crates; the runtime is Debian slim with the binary,
# the CA certificates (amqps) and the health check, run as an unprivileged user.

ARG RUST_VERSION=1.95.0
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
ARG RUST_VERSION
# The image's own toolchain: rust-toolchain.toml names the `stable` channel, which rustup would
# otherwise download (with clippy and rustfmt) into every build.
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION} \
    CARGO_TERM_COLOR=never \
    CARGO_PROFILE_RELEASE_STRIP=debuginfo
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /build

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /build/recipe.json recipe.json
RUN cargo chef cook --release --locked --bin b2b --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin b2b

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# A fixed numeric id, so Kubernetes' runAsNonRoot can check it without a passwd lookup.
RUN groupadd --gid 10001 b2b \
    && useradd --uid 10001 --gid b2b --no-log-init --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin b2b
# The builder's CA bundle (rustls reads it for amqps): no package manager run in this stage.
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /build/target/release/b2b /usr/local/bin/b2b
COPY --chmod=0755 deploy/container/healthcheck.sh /usr/local/bin/b2b-healthcheck
# In a container the APIs and /metrics must listen beyond loopback: the network around the
# container (published ports, NetworkPolicy) decides who reaches them. The Postgres logins
# (DATABASE_URL for the APIs, WORKER_DATABASE_URL for relay and projector, DATABASE_OWNER_URL
# for migrate and the operator commands), AMQP_URL and JWT_SECRET (or JWT_SECRET_FILE) have no
# usable default here and must be given.
ENV BIND_ADDR=0.0.0.0:8080 \
    METRICS_ADDR=0.0.0.0:9464
EXPOSE 8080 9464
USER 10001:10001
# /health/ready of an API process, /metrics of a worker (see the script).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 CMD ["b2b-healthcheck"]
ENTRYPOINT ["b2b"]
CMD ["serve"]
