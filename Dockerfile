# atproto-relay image: `docker build --build-arg RELAY_BUILD_COMMIT=$(git rev-parse --short=12 HEAD) -t atproto-relay .`
#
# The relay runs TypeScript directly through Node 24's type stripping: there is no build step, the
# image holds the sources plus production dependencies. Keep NODE_VERSION equal to the `node`
# devDependency in package.json (a test checks it) so the image runs the Node the tests ran on.

ARG NODE_VERSION=24.21.0

# ---- dependencies: production packages only, built with the toolchain native addons may need
FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
# Toolchain for native addons: our K-256 verify addon (native/k256, built by the postinstall
# script with plain `cc`) and any addon without a prebuild for the target platform (secp256k1
# ships prebuilds for linux-x64 only). It stays in this stage.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# The root postinstall script runs under `npm ci`; without the dev-only `node` package it only
# prints that there is nothing to rebuild.
COPY scripts/postinstall.mjs scripts/postinstall.mjs
COPY native/k256 native/k256
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force \
 && test -f native/k256/build/k256.node

# ---- runtime
FROM node:${NODE_VERSION}-bookworm-slim AS runtime
# tini as PID 1: forwards SIGTERM/SIGINT to the relay (which owns graceful shutdown) and reaps
# processes re-parented to PID 1 (embedded PostgreSQL backends after a crash, initdb helpers).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 relay \
 && useradd --system --uid 10001 --gid relay --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin relay \
 && mkdir -p /data \
 && chown relay:relay /data \
 && chmod 0700 /data

WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=deps /app/native/k256/build/k256.node ./native/k256/build/k256.node
COPY package.json package-lock.json ./
COPY src ./src
COPY workers ./workers
COPY migrations ./migrations

# RELAY_DATA_DIR holds the embedded PostgreSQL cluster (unused when DATABASE_URL is set). It must
# be a persistent volume: losing it loses the event log and the relay seq.
# A small young generation for the main thread (the workers set theirs in code): V8 would grow it
# to 2 x 64 MiB and keep it, and frequent scavenges free dead frames' ArrayBuffers sooner. Measured
# in the load benchmark: peak RSS 1,043 -> 733 MiB at the same throughput (docs/benchmarks.md).
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-semi-space-size=4 \
    RELAY_DATA_DIR=/data \
    RELAY_LISTEN_HOST=0.0.0.0 \
    RELAY_PORT=2470 \
    RELAY_PROBE_PORT=2471
VOLUME ["/data"]
EXPOSE 2470 2471

# Last, so a new commit does not invalidate the layers above.
ARG RELAY_BUILD_COMMIT=unknown
ENV RELAY_BUILD_COMMIT=${RELAY_BUILD_COMMIT}
LABEL org.opencontainers.image.title="atproto-relay" \
      org.opencontainers.image.description="AT Protocol firehose relay (sync 1.1 validation, PostgreSQL event log)" \
      org.opencontainers.image.revision="${RELAY_BUILD_COMMIT}"

# Embedded PostgreSQL refuses to run as root, and initdb needs a passwd entry for the uid.
USER relay:relay

# Liveness only (the relay answers /_healthz as long as its event loop runs); slim has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.RELAY_PROBE_PORT||2471)+'/_healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# Exec form, no npm: signals reach the relay. `docker run IMAGE migrate` runs the migrations only.
# Give `docker stop` more than RELAY_SHUTDOWN_TIMEOUT (20s): `docker stop -t 30`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "node", "src/main.ts"]
CMD ["serve"]
