# Caddy with the layer4 app (caddy-l4), so L4 proxy hosts are served. Built by the same
# script and pinned versions as `npm run caddy:build` (scripts/caddy-versions.env).
FROM caddy:2-builder AS build
WORKDIR /src
COPY scripts/caddy-versions.env scripts/build-caddy.sh scripts/
RUN cp "$(sh scripts/build-caddy.sh)" /usr/bin/caddy
FROM caddy:2
COPY --from=build /usr/bin/caddy /usr/bin/caddy
COPY docker/caddy-initial.json /etc/caddy/initial.json
CMD ["caddy", "run", "--config", "/etc/caddy/initial.json"]
