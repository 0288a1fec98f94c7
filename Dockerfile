# syntax=docker/dockerfile:1
#
# dripgate container image.
#
# Stage 1 builds the profile-guided `dist` binary (scripts/pgo-build.sh: release with
# whole-program LTO, instrumented, trained on loopback traffic in the build container, rebuilt with
# the profile; the build the pass-through benchmarks measure) with the same toolchain line the
# project uses (Rust 1.95, Debian bookworm, gnu target: aws-lc-rs, bundled SQLite and mimalloc need
# only a C compiler there). The training needs wrk, nginx, curl and openssl from Debian and
# llvm-profdata from rustup's llvm-tools; none of them reaches the runtime image. Stage 2 is
# distroless "cc": glibc, libgcc and CA certificates (needed for HTTPS calls to identity
# providers), no shell, no package manager, running as the non-root user 65532.
#
#   docker build -t dripgate .
#   docker run -p 8080:8080 -p 9090:9090 \
#     -v $PWD/dripgate.toml:/etc/dripgate/dripgate.toml:ro \
#     -v $PWD/admin-token:/run/secrets/admin-token:ro \
#     -e DRIPGATE_ADMIN__TOKEN_FILE=/run/secrets/admin-token \
#     -e DRIPGATE_UPSTREAM__URL=http://legacy:3000 dripgate
#
# In the image, listeners must bind 0.0.0.0 (DRIPGATE_SERVER__LISTEN / DRIPGATE_ADMIN__LISTEN
# are preset below); keep the admin port off the public network. An admin listener off loopback
# needs admin.token (at least 16 characters; serve refuses to start without it), and POST /phase
# through a published port needs the name clients use in DRIPGATE_ADMIN__ALLOWED_HOSTS (e.g.
# localhost). The SQLite ledger, when used, needs a writable volume at /var/lib/dripgate.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       wrk nginx-light curl openssl \
    && rm -rf /var/lib/apt/lists/* \
    && rustup component add llvm-tools
WORKDIR /src
# Fetch dependencies first so that source edits reuse this layer. Cargo.toml names the benches,
# so they must be present for cargo to read the manifest.
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs && cargo fetch --locked
COPY src ./src
COPY config ./config
COPY scripts ./scripts
RUN set -e; \
    bin=$(scripts/pgo-build.sh | tail -n 1); \
    cp "$bin" /usr/local/bin/dripgate && strip /usr/local/bin/dripgate

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/dripgate /usr/local/bin/dripgate
COPY --from=build /src/config/dripgate.example.toml /etc/dripgate/dripgate.toml
ENV DRIPGATE_CONFIG=/etc/dripgate/dripgate.toml \
    DRIPGATE_SERVER__LISTEN=0.0.0.0:8080 \
    DRIPGATE_ADMIN__LISTEN=0.0.0.0:9090 \
    DRIPGATE_LOG__FORMAT=json
USER 65532:65532
EXPOSE 8080 9090
# distroless has no curl: dripgate probes its own admin endpoint.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/dripgate", "health", "--url", "http://127.0.0.1:9090/readyz"]
# SIGTERM starts the graceful drain; keep the orchestrator's grace period above
# shutdown.delay + shutdown.drain_timeout (30 s by default).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/dripgate"]
CMD ["serve"]
