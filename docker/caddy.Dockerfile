# Caddy with the layer4 app (caddy-l4), so L4 proxy hosts are served. The build stage runs
# scripts/build-caddy.sh with the versions pinned in scripts/caddy-versions.env: with Go (the
# default builder) it builds them; when the context holds the binary it already built on the
# host (.cache/caddy/<pins>/caddy, as scripts/build-images.sh does), that is a cache hit and
# any Debian base serves as the builder.
ARG CADDY_BUILDER=golang:1.26-bookworm
ARG BASE=debian:bookworm-slim

FROM ${CADDY_BUILDER} AS build
WORKDIR /src
COPY scripts/caddy-versions.env scripts/build-caddy.sh scripts/
# The wildcard copies a host-built .cache/caddy when there is one and nothing else otherwise
# (the listed file keeps the instruction valid when it matches nothing).
COPY scripts/caddy-versions.env .cache/caddy* .cache/caddy/
RUN cp "$(sh scripts/build-caddy.sh)" /caddy && /caddy version

FROM ${BASE}
# nc for the health check; certificates for ACME. Present in the offline base already.
RUN command -v nc >/dev/null && [ -f /etc/ssl/certs/ca-certificates.crt ] || { \
      apt-get update && apt-get install -y --no-install-recommends netcat-openbsd ca-certificates \
      && rm -rf /var/lib/apt/lists/*; }
RUN useradd --system --uid 1000 --user-group --home-dir /data caddy \
 && mkdir -p /data/caddy/tls /config && chown -R 1000:1000 /data /config
COPY --from=build /caddy /usr/bin/caddy
COPY docker/caddy-initial.json /etc/caddy/initial.json
ENV XDG_DATA_HOME=/data XDG_CONFIG_HOME=/config
USER 1000:1000
EXPOSE 80 443 443/udp
CMD ["caddy", "run", "--config", "/etc/caddy/initial.json"]
