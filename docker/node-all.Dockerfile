# The one-container variant (docker-compose.one.yml): the whole node in one Node process, the
# launcher, which runs every service of the mode in place and supervises Caddy as its child.
# Made of the two images docker-compose.yml runs, nothing rebuilt: cpm-node (the built
# project) plus the project's Caddy (with caddy-l4) copied from cpm-caddy.
ARG NODE_IMAGE=cpm-node:latest
ARG CADDY_IMAGE=cpm-caddy:latest

FROM ${CADDY_IMAGE} AS caddy

FROM ${NODE_IMAGE}
COPY --from=caddy /usr/bin/caddy /usr/bin/caddy
# Caddy's storage, autosaved config and log under the data volume (<CPM_DATA_DIR>/caddy), where
# the renderer reads what Caddy obtained (CPM_CADDY_STORAGE_DIR's default).
ENV CPM_DATA_DIR=/data CPM_CADDY_BIN=/usr/bin/caddy
EXPOSE 80 443 443/udp 50051
CMD ["libs/launcher/dist/main.js"]
