# syntax=docker/dockerfile:1
# The telltale binaries in a small, non-root image: `telltale process` by default, and
# `telltale sim`, `probe`, `query`, ... with another command. Used by docker-compose.yml.
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
COPY --from=builder /usr/local/bin/telltale-query /usr/local/bin/
# `telltale probe` needs raw sockets as uid 10001: the file capability cap_net_raw+p
# puts CAP_NET_RAW in its permitted set when the container keeps NET_RAW (compose:
# `cap_drop: [ALL]`, `cap_add: [NET_RAW]`), and the binary raises it itself. With `+p`
# alone (no `+e`) it still starts where NET_RAW was dropped; it then traces ICMP over
# unprivileged ping sockets where net.ipv4.ping_group_range allows, or says what to grant.
# COPY does not reliably keep the security.capability xattr (moby/moby#20435,
# moby/buildkit#2250), so it is set here, in the layer that adds the binary (mounted
# from the builder, not copied and then modified: one copy in the image). libcap2-bin,
# for setcap, is removed again.
RUN --mount=type=bind,from=builder,source=/usr/local/bin,target=/tmp/builder-bin \
    apt-get update \
 && apt-get install -y --no-install-recommends libcap2-bin \
 && install -m 0755 /tmp/builder-bin/telltale /usr/local/bin/telltale \
 && setcap cap_net_raw+p /usr/local/bin/telltale \
 && getcap /usr/local/bin/telltale | grep -q cap_net_raw \
 && apt-get purge -y --auto-remove libcap2-bin \
 && rm -rf /var/lib/apt/lists/*
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
