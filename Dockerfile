# syntax=docker/dockerfile:1
# The telltale binaries in a small, non-root image: `telltale process` by default, and
# `telltale sim`, `query`, ... with another command. Used by docker-compose.yml.
#
#   docker build -t telltale .

# --- build --------------------------------------------------------------------------
FROM rust:1.94.0-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
# Registry and target caches survive between builds (BuildKit); the binary is copied out
# of the cached target dir, then stripped.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p telltale -p telltale-query \
 && cp target/release/telltale target/release/telltale-query /usr/local/bin/ \
 && strip /usr/local/bin/telltale /usr/local/bin/telltale-query

# --- runtime ------------------------------------------------------------------------
FROM debian:bookworm-slim
# No packages: the binary links only glibc (HTTP is plain, no TLS). bash (in the base
# image) runs the compose healthcheck.
RUN groupadd --system --gid 10001 telltale \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin telltale \
 && mkdir -p /app /data \
 && chown telltale:telltale /data
WORKDIR /app
# `telltale query` runs `telltale-query` (DataFusion) from beside itself.
COPY --from=builder /usr/local/bin/telltale /usr/local/bin/telltale-query /usr/local/bin/
# The service catalogue and pipeline settings; mount over /app/config to change them.
COPY config/ /app/config/
ENV TELLTALE_DATA_DIR=/data \
    TELLTALE_CONFIG=/app/config/telltale.toml \
    TELLTALE_SERVICES=/app/config/services.toml
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["telltale"]
CMD ["process", "--listen", "0.0.0.0:8080"]
