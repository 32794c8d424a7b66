# One image for every CPM service; the compose file picks the service with `command`.
FROM node:22-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production TURBO_TELEMETRY_DISABLED=1
# Native build of better-sqlite3 needs a toolchain when no prebuilt binary matches.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json turbo.json tsconfig.base.json buf.yaml buf.gen.yaml ./
COPY proto ./proto
COPY libs ./libs
COPY services ./services
COPY tests/package.json ./tests/package.json
RUN npm ci --no-audit --no-fund
# The state dir (and the TLS files shared with Caddy) belong to the unprivileged user;
# empty named volumes mounted here take this ownership.
RUN mkdir -p /data/caddy/tls && chown -R node:node /data
USER node
# Services run from TypeScript source through tsx (see README: "How it is built").
ENTRYPOINT ["node", "--import", "tsx"]
CMD ["services/config-service/src/main.ts"]
