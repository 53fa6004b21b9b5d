# syntax=docker/dockerfile:1
# One image for every cdc role (migrate, relay, consume, serve): a single binary from `bun build --compile`.
#   docker build -t cdc:local .   then e.g.   docker run --rm cdc:local --help

FROM oven/bun:1.3.14 AS build
WORKDIR /app
# Dependencies first, so that source edits reuse this layer.
COPY package.json bun.lock* bunfig.toml* ./
# patches/: fixes to dependencies that `bun install` applies (package.json patchedDependencies).
COPY patches ./patches
RUN bun install --frozen-lockfile
COPY . .
# `bun run build` = bun build --compile src/cli.ts --outfile cdc (SQL files are embedded as text imports).
RUN bun run build

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --no-create-home cdc
WORKDIR /app
COPY --from=build /app/cdc /usr/local/bin/cdc
# Defaults (topics, tracked tables, ...); the compose file overrides the server URLs by CDC_* variables.
COPY --from=build /app/cdc.toml /app/cdc.toml
USER cdc
EXPOSE 8080
ENTRYPOINT ["cdc"]
CMD ["serve"]
