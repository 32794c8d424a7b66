/**
 * npm run bench:render
 *
 * Size of the Caddy config the renderer produces (the bytes `POST /load` sends to Caddy),
 * per proxy host, at CPM_BENCH_SIZES hosts (default 100, 1,000 and 10,000), for a few
 * typical shapes of host. Render only: no Caddy, no services. Render time is printed for
 * information (one run, not a measurement to compare across machines).
 *
 * Then the render a change costs, as a running node renders: the same snapshot again with one
 * host replaced by a changed copy (another upstream) and every other host the same object (as
 * SnapshotDecoder and config-service's content index hand them over), CPM_BENCH_RENDERS
 * (default 50) times per size and shape, warm: the median and p90, with this instance's own
 * addresses as reserved upstreams (a node always has some).
 */
import { performance } from "node:perf_hooks";
import { CertificateType, ProxyHost, Snapshot, type Certificate, type DeepPartial } from "@cpm/proto";
import { render } from "@cpm/caddy-renderer";
import { SNAPSHOT_SCHEMA_VERSION, loadConfig, reservedAddresses } from "@cpm/core";
import { benchReport } from "./markdown.ts";
import { pct } from "./stats.ts";

const SIZES = (process.env.CPM_BENCH_SIZES ?? "100,1000,10000").split(",").map(Number);
const RENDERS = Number(process.env.CPM_BENCH_RENDERS ?? 50);
if (!Number.isInteger(RENDERS) || RENDERS < 1)
  throw new Error(
    `CPM_BENCH_RENDERS must be a whole number >= 1, got ${JSON.stringify(process.env.CPM_BENCH_RENDERS)}`,
  );
const OPTS = { httpPort: 80, httpsPort: 443, adminListen: "127.0.0.1:2019", layer4: false };
/** Stands in for a real PEM chain and key: their size is the same whatever the layout. */
const PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";

/** Host i: one domain under the wildcard certificate's name, its own upstream (or the shared one). */
const upstream = (i: number, shared: boolean) => (shared ? "10.0.0.1:8080" : `10.0.${(i >> 8) & 255}.${i & 255}:8080`);

interface Shape {
  name: string;
  host: (i: number) => DeepPartial<ProxyHost>;
  /** The certificates of `n` hosts (default: the one wildcard certificate). */
  certificates?: (n: number) => DeepPartial<Certificate>[];
}

const WILDCARD = "c-wildcard";
const SHAPES: Shape[] = [
  {
    name: "wildcard certificate, HTTPS forced, own upstream (API defaults otherwise)",
    host: (i) => ({ certificateId: WILDCARD, sslForced: true, upstreams: [upstream(i, false)] }),
  },
  {
    name: "wildcard certificate, HTTP and HTTPS, own upstream",
    host: (i) => ({ certificateId: WILDCARD, upstreams: [upstream(i, false)] }),
  },
  { name: "no certificate, own upstream", host: (i) => ({ upstreams: [upstream(i, false)] }) },
  {
    name: "no certificate, one upstream shared by all (npm run bench's hosts)",
    host: (i) => ({ upstreams: [upstream(i, true)] }),
  },
  {
    name: "wildcard certificate, HTTPS forced, HSTS, websockets, Host preserved, own upstream",
    host: (i) => ({
      certificateId: WILDCARD,
      sslForced: true,
      hstsEnabled: true,
      allowWebsocket: true,
      preserveHostHeader: true,
      upstreams: [upstream(i, false)],
    }),
  },
  {
    name: "a managed certificate each (its own name), HTTPS forced, own upstream",
    host: (i) => ({ certificateId: `c${i}`, sslForced: true, upstreams: [upstream(i, false)] }),
    certificates: (n) =>
      Array.from({ length: n }, (_, i) => ({
        id: `c${i}`,
        name: `c${i}`,
        type: CertificateType.CERTIFICATE_TYPE_MANAGED,
        domainNames: [`h${i}.example.com`],
      })),
  },
];

function snapshotOf(shape: Shape, n: number): Snapshot {
  return Snapshot.fromPartial({
    schemaVersion: SNAPSHOT_SCHEMA_VERSION,
    version: 1,
    proxyHosts: Array.from({ length: n }, (_, i) => ({
      id: `h${i}`,
      name: `h${i}`,
      domains: [`h${i}.example.com`],
      enabled: true,
      ...shape.host(i),
    })),
    certificates: shape.certificates?.(n) ?? [
      {
        id: WILDCARD,
        name: "wildcard",
        type: CertificateType.CERTIFICATE_TYPE_IMPORTED,
        domainNames: ["*.example.com"],
        certificatePem: PEM,
        privateKeyPem: KEY,
      },
    ],
  });
}

const base = (shape: Shape) => render(snapshotOf(shape, 0), OPTS).json.length;

// Warm-up, so the first figure is not the JIT compiling the renderer.
for (const shape of SHAPES) render(snapshotOf(shape, 1000), OPTS);

const report = benchReport("render", "npm run bench:render");
report.log(
  "Rendered Caddy config, bytes per proxy host (config minus the same config without hosts, divided by hosts); total size and render time in brackets.",
);
report.log();
report.log(`| host shape | ${SIZES.map((n) => `${n.toLocaleString("en-US")} hosts`).join(" | ")} |`);
report.log(`|---|${SIZES.map(() => "---").join("|")}|`);
for (const shape of SHAPES) {
  const cells = SIZES.map((n) => {
    const s = snapshotOf(shape, n);
    const t0 = performance.now();
    const bytes = render(s, OPTS).json.length;
    const ms = performance.now() - t0;
    return `${((bytes - base(shape)) / n).toFixed(0)} B (${(bytes / 1024).toFixed(0)} KiB, ${ms.toFixed(0)} ms)`;
  });
  report.log(`| ${shape.name} | ${cells.join(" | ")} |`);
}

/** Render times of RENDERS changes of one host each (a new object; the others kept) to a snapshot of `n` hosts. */
function changeRenders(shape: Shape, n: number): number[] {
  const opts = { ...OPTS, reservedUpstreams: reservedAddresses(loadConfig({ CPM_DATA_DIR: "/nonexistent" })) };
  const first = snapshotOf(shape, n);
  const hosts = [...first.proxyHosts];
  render(first, opts);
  const times: number[] = [];
  for (let r = 0; r < RENDERS; r++) {
    const k = (r * 7919) % n;
    hosts[k] = { ...hosts[k]!, upstreams: [`10.1.${r & 255}.1:8080`] };
    const s = { ...first, version: r + 2, proxyHosts: [...hosts] };
    const t0 = performance.now();
    render(s, opts);
    times.push(performance.now() - t0);
  }
  return times;
}

report.log();
report.log(
  `The render of a change: one host replaced by a changed copy, every other host the same object; median / p90 of ${RENDERS} renders, warm.`,
);
report.log();
report.log(`| host shape | ${SIZES.map((n) => `${n.toLocaleString("en-US")} hosts`).join(" | ")} |`);
report.log(`|---|${SIZES.map(() => "---").join("|")}|`);
for (const shape of [SHAPES[3]!, SHAPES[0]!, SHAPES[5]!]) {
  const cells = SIZES.map((n) => {
    const t = changeRenders(shape, n);
    return `${pct(t, 50).toFixed(1)} ms / ${pct(t, 90).toFixed(1)} ms`;
  });
  report.log(`| ${shape.name} | ${cells.join(" | ")} |`);
}
report.finish();
