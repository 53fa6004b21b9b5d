# syntax=docker/dockerfile:1
# One image for every cdc role (migrate, relay, consume, serve): a single binary from `bun build --compile`.
#   docker build -t cdc:local --build-arg CDC_BUILD_COMMIT="$(git rev-parse --short=12 HEAD)" \
#     --build-arg SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)" .
#   docker run --rm cdc:local --version

FROM oven/bun:1.3.14 AS build
WORKDIR /app
# Dependencies first, so that source edits reuse this layer.
COPY package.json bun.lock bunfig.toml ./
# patches/: fixes to dependencies that `bun install` applies (package.json patchedDependencies).
COPY patches ./patches
RUN bun install --frozen-lockfile
COPY . .
# The build context has no .git: the commit and the date come in as build arguments (scripts/build.sh bakes them in;
# the same SOURCE_DATE_EPOCH gives the same binary).
ARG CDC_BUILD_COMMIT=unknown
ARG SOURCE_DATE_EPOCH=0
RUN CDC_BUILD_COMMIT="$CDC_BUILD_COMMIT" SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" bash scripts/build.sh cdc

FROM debian:12.11-slim
# Versions are not pinned on purpose: Debian security updates replace them in the archive (a pin would break builds).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --no-create-home cdc
WORKDIR /app
COPY --from=build /app/cdc /usr/local/bin/cdc
# Defaults (topics, tracked tables, ...); the compose file overrides the server URLs by CDC_* variables.
COPY --from=build /app/cdc.toml /app/cdc.toml
# Numeric, so a runtime that checks for non-root (Kubernetes runAsNonRoot) can tell without reading /etc/passwd.
USER 10001
# 8080: the API (cdc serve / cdc all); 9464: /healthz, /readyz, /metrics of a role run alone (ops.port).
EXPOSE 8080 9464
ENTRYPOINT ["cdc"]
CMD ["serve"]
