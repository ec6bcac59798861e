# billsync's container image (deploy/aws/ runs it on ECS Fargate; docs/deploy-aws.md).
#   docker build -t billsync .        (or: podman build -t billsync .)
# Two stages: the Rust toolchain builds the binary from Cargo.lock exactly (--locked); the
# runtime image is Debian slim with the binary, CA certificates, curl for the health check and
# the RDS CA bundle, run as an unprivileged user.

FROM rust:1.85-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin billsync \
    && install -m 0755 target/release/billsync /usr/local/bin/billsync
# Amazon RDS's CA bundle, for BILLSYNC_DATABASE_URL's sslmode=verify-full (README, "Postgres over TLS").
RUN curl -fsSL --retry 3 -o /rds-global-bundle.pem https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem

FROM debian:bookworm-slim
# DL3008 (pin apt versions) ignored: these two come from bookworm and bookworm-security, and
# each rebuild should take the current security fixes rather than a version frozen here.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 billsync \
    && useradd --system --uid 10001 --gid billsync --home-dir /var/lib/billsync --shell /usr/sbin/nologin billsync \
    && install -d -o billsync -g billsync -m 0700 /var/lib/billsync
COPY --from=builder /usr/local/bin/billsync /usr/local/bin/billsync
COPY --from=builder --chmod=0644 /rds-global-bundle.pem /etc/billsync/rds-global-bundle.pem
# Numeric, so the runtime can check it is not root without reading /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/billsync
ENV BILLSYNC_LISTEN=0.0.0.0:8080 \
    BILLSYNC_DATA_DIR=/var/lib/billsync \
    BILLSYNC_LOG_FORMAT=json
VOLUME ["/var/lib/billsync"]
EXPOSE 8080
# /healthz: the process serves HTTP (liveness). Readiness (/readyz, the store answers) is the
# load balancer's check, so a database outage does not get every container restarted.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
# SIGTERM hands the node's shard leases over before it exits (docs/cluster.md); give it time
# (docker stop -t 60; ECS stopTimeout 60 in deploy/aws/service.yaml).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/billsync", "serve"]
