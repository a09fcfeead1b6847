# envoi: a multi-stage build. The builder compiles a release binary; the final image
# holds that binary and a non-root user on debian:bookworm-slim, nothing else.
#
#   docker build -t envoi .
#   docker run --rm -p 8080:8080 \
#     -v "$PWD/policy.toml:/etc/envoi/policy.toml:ro" \
#     -v "$PWD/platform.key:/run/secrets/platform_key:ro" \
#     -e ENVOI__AUTH__SECRET_FILES=/run/secrets/platform_key \
#     envoi
#
# scripts/docker-steps.sh replays the builder's steps and runs the result as this image
# would, without a Docker engine (see deploy/README.md for what that does not prove).

# The toolchain the project is tested with (Cargo.toml's rust-version is the minimum).
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /build

# Dependencies first, in a layer of their own, built against placeholder sources: a
# change to envoi's code does not rebuild them. Cargo.toml may name targets outside src/
# (the `[[bench]]` at bench/request_path.rs, say); each `path = "….rs"` it declares gets a
# placeholder too, so that the manifest is complete without copying those folders. The
# placeholders outside src/ stay: the real build below compiles only the `envoi` binary
# (and its library), never benches, examples or tests. (A build script, should one be
# added, must be copied before both builds.)
COPY Cargo.toml Cargo.lock ./
RUN set -eu; \
    for target in src/lib.rs src/main.rs \
        $(sed -n 's/^[[:space:]]*path[[:space:]]*=[[:space:]]*"\([^"]*\.rs\)".*/\1/p' Cargo.toml); do \
        mkdir -p "$(dirname "$target")"; \
        printf '#![allow(dead_code)]\nfn main() {}\n' > "$target"; \
    done; \
    cargo build --release --locked --bin envoi; \
    rm -rf src

# Then envoi itself. `config/` (defaults, the example policy) and `migrations/` (the
# Postgres schema) are compiled in. COPY keeps the files' own times, which may be older
# than the placeholder build: touch them so that cargo rebuilds.
COPY src ./src
COPY config ./config
COPY migrations ./migrations
RUN find src config migrations -type f -exec touch {} + \
    && cargo build --release --locked --bin envoi \
    && strip target/release/envoi

FROM debian:bookworm-slim
# No apt-get: envoi needs only glibc and libgcc_s, which every Debian image has, and it
# carries its own CA roots (webpki-roots) for TLS to Postgres. bash, head and grep (for the
# health check) are part of Debian's essential set.
RUN groupadd --system --gid 10001 envoi \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin envoi
COPY --from=builder /build/target/release/envoi /usr/local/bin/envoi

# The default policy path, `policy.toml`, is relative to the working directory: mount the
# policy (a file, or a folder of *.toml and ENVOI__STORE__PATH) under /etc/envoi.
WORKDIR /etc/envoi
# Numeric, so that Kubernetes' runAsNonRoot can check it without the passwd file.
USER 10001:10001
ENV ENVOI__SERVER__LISTEN=0.0.0.0:8080
EXPOSE 8080

# curl and wget are not in the slim image; bash's /dev/tcp is, and is enough for one plain
# GET of /healthz: on the admin listener if ENVOI__SERVER__ADMIN_LISTEN is set (set it
# when envoi serves TLS itself, or sets its listeners in a config file), else on the port
# that ENVOI__SERVER__LISTEN names.
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "a=${ENVOI__SERVER__ADMIN_LISTEN:-$ENVOI__SERVER__LISTEN}; exec 3<>/dev/tcp/127.0.0.1/${a##*:} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

ENTRYPOINT ["envoi"]
CMD ["serve"]
