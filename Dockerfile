# envoi: a multi-stage build. The builder compiles a release binary; the final image
# holds that binary, CA certificates and a non-root user, nothing else.
#
#   docker build -t envoi .
#   docker run --rm -p 8080:8080 \
#     -v "$PWD/policy.toml:/etc/envoi/policy.toml:ro" \
#     -e ENVOI__AUTH__SECRET_FILES=/run/secrets/platform_key \
#     -v "$PWD/platform.key:/run/secrets/platform_key:ro" \
#     envoi

FROM rust:1-bookworm AS builder
WORKDIR /build

# Dependencies first, in a layer of their own, built against placeholder sources: a
# change to envoi's code does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

# Then envoi itself. `config/` (defaults, the example policy) and `migrations/` (the
# Postgres schema) are compiled in. COPY keeps the files' own times, which may be older
# than the placeholder build: touch them so that cargo rebuilds.
COPY src ./src
COPY config ./config
COPY migrations ./migrations
RUN find src -name '*.rs' -exec touch {} + \
    && cargo build --release --locked \
    && strip target/release/envoi

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 envoi \
    && useradd --system --uid 10001 --gid envoi --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin envoi
COPY --from=builder /build/target/release/envoi /usr/local/bin/envoi

# The default policy path, `policy.toml`, is relative: mount the policy (a file or a
# folder of *.toml, then set ENVOI__STORE__PATH) under /etc/envoi.
WORKDIR /etc/envoi
USER envoi:envoi
ENV ENVOI__SERVER__LISTEN=0.0.0.0:8080
EXPOSE 8080

# curl and wget are not in the slim image; bash's /dev/tcp is, and is enough for one plain
# GET of /healthz: on the admin listener if ENVOI__SERVER__ADMIN_LISTEN is set (set it
# when envoi serves TLS itself), else on the port that ENVOI__SERVER__LISTEN names.
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "a=${ENVOI__SERVER__ADMIN_LISTEN:-$ENVOI__SERVER__LISTEN}; exec 3<>/dev/tcp/127.0.0.1/${a##*:} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

ENTRYPOINT ["envoi"]
CMD ["serve"]
