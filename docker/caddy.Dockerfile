# Caddy with the layer4 app (caddy-l4), so L4 proxy hosts are served.
FROM caddy:2-builder AS build
RUN xcaddy build --with github.com/mholt/caddy-l4
FROM caddy:2
COPY --from=build /usr/bin/caddy /usr/bin/caddy
COPY docker/caddy-initial.json /etc/caddy/initial.json
CMD ["caddy", "run", "--config", "/etc/caddy/initial.json"]
