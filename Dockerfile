# syntax=docker/dockerfile:1.7
#
# MD Creator backend image.
#
#   docker build -t mdcreator .
#   docker run --rm -p 8080:8080 -v mdcreator-data:/data mdcreator
#
# With no configuration the server runs on its embedded defaults (SQLite and blobs under /data);
# set DATABASE_URL, REDIS_URL, MDCREATOR_S3_BUCKET, ... to switch to the production adapters.
# Requires BuildKit (the default builder of current Docker) for the cache mounts below.

############################################################################################
# Build stage
############################################################################################
FROM rust:1.95-bookworm AS builder

WORKDIR /src

# The whole workspace is copied because `cargo build --locked` resolves every member against
# Cargo.lock, even when only one package is built. .dockerignore keeps target/ and data/ out.
COPY . .

# The registry and target directories are BuildKit cache mounts: they survive between builds on
# the same builder, so a code change recompiles only our crates instead of the whole dependency
# tree (a cold release build takes ~15 minutes on 2 cores). A cache mount is not part of the
# image, so the binary is copied out of target/ within the same RUN.
RUN --mount=type=cache,id=mdcreator-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=mdcreator-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=mdcreator-target,target=/src/target,sharing=locked \
    cargo build --release --locked -p mdcreator-server \
    && install -D -m 0755 target/release/mdcreator /out/usr/local/bin/mdcreator \
    && install -d -m 0750 /out/data

############################################################################################
# Runtime stage
############################################################################################
# distroless/cc: glibc + libgcc + CA certificates and nothing else (no shell, no package
# manager). The builder is Debian 12 (bookworm) too, so the glibc the binary links against
# matches. TLS is pure rustls, so no OpenSSL is needed at run time.
FROM gcr.io/distroless/cc-debian12:nonroot

LABEL org.opencontainers.image.title="mdcreator" \
      org.opencontainers.image.description="MD Creator backend: REST API, sync and real-time collaboration" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=builder /out/usr/local/bin/mdcreator /usr/local/bin/mdcreator
# /data is where the embedded mode keeps its SQLite file and blobs. It must belong to the
# runtime user: distroless has no shell to chown at start, and a named volume mounted here
# inherits this ownership when it is first created. (65532 is distroless' `nonroot`.)
COPY --from=builder --chown=65532:65532 /out/data /data

ENV MDCREATOR_LISTEN=0.0.0.0:8080 \
    MDCREATOR_DATA_DIR=/data

EXPOSE 8080

USER nonroot

# No shell or curl in distroless, so the binary checks itself: `mdcreator healthcheck` GETs
# /healthz on the configured listen address and exits 0 or 1. ECS ignores this instruction and
# uses the task definition's healthCheck (same command, see deploy/ecs.tf).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/mdcreator", "healthcheck"]

# Exec form, so the server is PID 1 and receives SIGTERM directly for its graceful shutdown.
ENTRYPOINT ["/usr/local/bin/mdcreator"]
CMD ["serve"]
