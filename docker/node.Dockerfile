# One image for every CPM service; the compose file picks the service with `command`
# (`services/<service>/dist/main.js`), or runs the whole node in one process with the launcher
# (`libs/launcher/dist/main.js`, as docker/node-all.Dockerfile does).
# Both stages take their base as a build argument: the official Node 22 images by default,
# local ones built offline by scripts/build-images.sh.
ARG BUILD_BASE=node:22-bookworm
ARG BASE=node:22-bookworm-slim

FROM ${BUILD_BASE} AS build
WORKDIR /app
ENV TURBO_TELEMETRY_DISABLED=1 npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
# Manifests first: the dependency layer is rebuilt only when one of them changes.
COPY package.json package-lock.json turbo.json tsconfig.base.json ./
COPY libs/cli/package.json libs/cli/
COPY libs/core/package.json libs/core/
COPY libs/grpc-kit/package.json libs/grpc-kit/
COPY libs/launcher/package.json libs/launcher/
COPY libs/proto/package.json libs/proto/
COPY libs/snapshot-wire/package.json libs/snapshot-wire/
COPY services/caddy-renderer/package.json services/caddy-renderer/
COPY services/config-service/package.json services/config-service/
COPY services/sync-dispatcher/package.json services/sync-dispatcher/
COPY services/sync-receiver/package.json services/sync-receiver/
COPY services/web-console/package.json services/web-console/
COPY tests/package.json tests/
# better-sqlite3 compiles here (g++, make, python3 in the build base) when no prebuilt fits.
RUN npm ci
COPY libs ./libs
COPY services ./services
# Then only what the services, the launcher and the `cpm` CLI load: no dev dependencies, no sources, and not the Prisma CLI
# (with TypeScript, effect, jiti it loads): config-service applies its migrations itself at
# start-up. Of Prisma's runtime, only the SQLite and PostgreSQL query compilers are used.
RUN npx turbo run build --filter='./services/*' --filter=@cpm/launcher --filter=@cpm/cli --output-logs=errors-only \
 && npm prune --omit=dev \
 && rm -rf libs/*/src services/*/src tests node_modules/.cache node_modules/.bin \
    node_modules/prisma node_modules/typescript node_modules/effect node_modules/fast-check \
    node_modules/jiti node_modules/@types node_modules/@prisma/config node_modules/@prisma/engines \
    node_modules/@prisma/fetch-engine node_modules/@prisma/get-platform \
    node_modules/@prisma/client/runtime/*mysql* node_modules/@prisma/client/runtime/*sqlserver* \
    node_modules/@prisma/client/runtime/*cockroachdb* \
    node_modules/better-sqlite3/deps node_modules/better-sqlite3/src node_modules/better-sqlite3/build/Release/obj* \
 && find libs services node_modules \( -name '*.map' -o -name '*.tsbuildinfo' \) -delete

FROM ${BASE}
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app /app
COPY docker/healthcheck.mjs docker/entrypoint.sh /app/docker/
# The operator's CLI on PATH: `docker compose exec config-service cpm proxy-host list`.
RUN ln -s /app/libs/cli/bin/cpm.js /usr/local/bin/cpm && chmod +x /app/libs/cli/bin/cpm.js
# The state dir (and the TLS files shared with Caddy) belong to the unprivileged user;
# empty named volumes mounted here take this ownership.
RUN mkdir -p /data/caddy/tls && chown -R 1000:1000 /data
USER 1000:1000
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["services/config-service/dist/main.js"]
