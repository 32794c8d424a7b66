import { create } from "@bufbuild/protobuf";
import { ProxyHostSchema, type ProxyHost } from "../../src/gen/cpm/config/v1/resources_pb.ts";
import { config } from "../api.ts";
import { resourcePage, type ResourceKind } from "../crud.ts";
import { writesSynced, type Page } from "../shell.ts";
import { accessListChoices, certificateChoices } from "./choices.ts";

const kind: ResourceKind<ProxyHost> = {
  route: "#/hosts",
  title: "Proxy hosts",
  singular: "proxy host",
  prefix: "proxy_host",
  // Searched and paged by the server: a page costs the same with 10,000 hosts as with 10.
  pages: async (req) => {
    const r = await config.listProxyHosts(req);
    return { items: r.proxyHosts, nextPageToken: r.nextPageToken, totalSize: r.totalSize };
  },
  name: (x) => x.name,
  searchHint: "name or domain",
  columns: [
    { label: "Name", cell: (x) => x.name },
    { label: "Domains", cell: (x) => x.domains.join(", ") },
    { label: "Upstreams", cell: (x) => x.upstreams.join(", ") },
    { label: "Enabled", cell: (x) => (x.enabled === false ? "no" : "yes") },
  ],
  writable: writesSynced,
  form: async (f, x) => {
    const [certs, lists] = await Promise.all([certificateChoices(), accessListChoices()]);
    const name = f.text("name", "Name", x?.name ?? "");
    const domains = f.list("domains", "Domains", x?.domains ?? [], "One per line; a leading *. is a wildcard.");
    const upstreams = f.list(
      "upstreams",
      "Upstreams",
      x?.upstreams ?? [],
      "host:port, one per line; http:// or https:// optional.",
    );
    const certificate = f.choice("certificate_id", "Certificate", certs, x?.certificateId ?? "");
    const accessList = f.choice("access_list_id", "Access list", lists, x?.accessListId ?? "");
    const enabled = f.check("enabled", "Enabled", x?.enabled !== false);
    const websocket = f.check("allow_websocket", "WebSocket", x?.allowWebsocket ?? false);
    const preserve = f.check("preserve_host_header", "Keep the Host header", x?.preserveHostHeader ?? false);
    const forced = f.check("ssl_forced", "Force HTTPS", x?.sslForced ?? false);
    const hsts = f.check("hsts_enabled", "HSTS", x?.hstsEnabled ?? false);
    const compression = f.check("compression", "Compression", x?.compression ?? false);
    return () => {
      const msg: ProxyHost = x ? { ...x } : create(ProxyHostSchema);
      Object.assign(msg, {
        name: name.value,
        domains: domains(),
        upstreams: upstreams(),
        certificateId: certificate(),
        accessListId: accessList(),
        enabled: enabled(),
        allowWebsocket: websocket(),
        preserveHostHeader: preserve(),
        sslForced: forced(),
        hstsEnabled: hsts(),
        compression: compression(),
      });
      return x ? config.updateProxyHost({ proxyHost: msg }) : config.createProxyHost({ proxyHost: msg });
    };
  },
  remove: { verb: "Delete", run: (x) => config.deleteProxyHost({ id: x.id }) },
};

export const proxyHostsPage: Page = { route: kind.route, title: kind.title, open: (s) => resourcePage(kind, s) };
