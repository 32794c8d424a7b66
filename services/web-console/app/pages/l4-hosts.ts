import { create } from "@bufbuild/protobuf";
import {
  L4Matcher,
  L4ProxyHostSchema,
  L4Protocol,
  ProxyProtocolVersion,
  type L4ProxyHost,
} from "../../src/gen/cpm/config/v1/resources_pb.ts";
import { config } from "../api.ts";
import { resourcePage, type ResourceKind } from "../crud.ts";
import { writesSynced, type Page } from "../shell.ts";
import { certificateChoices } from "./choices.ts";

const MATCHERS: [L4Matcher, string][] = [
  [L4Matcher.NONE, "none (every connection)"],
  [L4Matcher.TLS_SNI, "TLS server name"],
  [L4Matcher.HTTP_HOST, "HTTP Host"],
  [L4Matcher.PROXY_PROTOCOL, "PROXY protocol"],
];
const matcherName = (m: L4Matcher) => MATCHERS.find(([v]) => v === m)?.[1] ?? "none";

const kind: ResourceKind<L4ProxyHost> = {
  route: "#/l4",
  title: "L4 hosts",
  singular: "L4 host",
  prefix: "l4_proxy_host",
  load: async () => (await config.listL4ProxyHosts({})).l4ProxyHosts,
  name: (x) => x.name,
  searchable: (x) => [x.name, x.listenAddress, ...x.upstreams, ...x.matcherValues],
  searchHint: "name, listen address, upstream or match",
  columns: [
    { label: "Name", cell: (x) => x.name },
    { label: "Listen", cell: (x) => `${L4Protocol[x.protocol] ?? ""} ${x.listenAddress}`.trim() },
    { label: "Upstreams", cell: (x) => x.upstreams.join(", ") },
    {
      label: "Match",
      cell: (x) =>
        x.matcherValues.length ? `${matcherName(x.matcher)}: ${x.matcherValues.join(", ")}` : matcherName(x.matcher),
    },
    { label: "Enabled", cell: (x) => (x.enabled === false ? "no" : "yes") },
  ],
  writable: writesSynced,
  form: async (f, x) => {
    const certs = await certificateChoices();
    const name = f.text("name", "Name", x?.name ?? "");
    const protocol = f.select(
      "protocol",
      "Protocol",
      [
        [L4Protocol.TCP, "TCP"],
        [L4Protocol.UDP, "UDP"],
      ],
      x?.protocol || L4Protocol.TCP,
    );
    const listen = f.text("listen_address", "Listen address", x?.listenAddress ?? "", {
      hint: "host:port or :port, e.g. :5432",
    });
    const upstreams = f.list("upstreams", "Upstreams", x?.upstreams ?? [], "host:port, one per line.");
    const matcher = f.select("matcher", "Match", MATCHERS, x?.matcher || L4Matcher.NONE);
    const values = f.list(
      "matcher_values",
      "Match values",
      x?.matcherValues ?? [],
      "Server names or hosts, one per line.",
    );
    const certificate = f.choice("certificate_id", "Certificate (TLS termination)", certs, x?.certificateId ?? "");
    const ppVersion = f.select(
      "proxy_protocol_version",
      "Send PROXY protocol",
      [
        [ProxyProtocolVersion.UNSPECIFIED, "no"],
        [ProxyProtocolVersion.V1, "version 1"],
        [ProxyProtocolVersion.V2, "version 2"],
      ],
      x?.proxyProtocolVersion ?? ProxyProtocolVersion.UNSPECIFIED,
    );
    const enabled = f.check("enabled", "Enabled", x?.enabled !== false);
    const tls = f.check("tls_termination", "Terminate TLS", x?.tlsTermination ?? false);
    const ppReceive = f.check("proxy_protocol_receive", "Receive PROXY protocol", x?.proxyProtocolReceive ?? false);
    return () => {
      const msg: L4ProxyHost = x ? { ...x } : create(L4ProxyHostSchema);
      Object.assign(msg, {
        name: name.value,
        protocol: protocol(),
        listenAddress: listen.value,
        upstreams: upstreams(),
        matcher: matcher(),
        matcherValues: values(),
        certificateId: certificate(),
        proxyProtocolVersion: ppVersion(),
        enabled: enabled(),
        tlsTermination: tls(),
        proxyProtocolReceive: ppReceive(),
      });
      return x ? config.updateL4ProxyHost({ l4ProxyHost: msg }) : config.createL4ProxyHost({ l4ProxyHost: msg });
    };
  },
  remove: { verb: "Delete", run: (x) => config.deleteL4ProxyHost({ id: x.id }) },
};

export const l4HostsPage: Page = { route: kind.route, title: kind.title, open: (s) => resourcePage(kind, s) };
