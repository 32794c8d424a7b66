// Snapshots for this package's tests (snapshot frames and the decoder). Not exported from the package.
import { CertificateStatus, ProxyHost, Snapshot } from "@cpm/proto";

/** Proxy host `n`: id `id-<n>`, domain `<n>.example.com`, one upstream. */
export const sampleHost = (n: string, upstream = "127.0.0.1:8080") =>
  ProxyHost.fromPartial({ id: `id-${n}`, name: n, domains: [`${n}.example.com`], upstreams: [upstream] });

/** A snapshot at `version` with `hosts` and one resource of every other kind. */
export const sampleSnapshot = (version: number, hosts: ProxyHost[], primaryDomain = "example.com") =>
  Snapshot.fromPartial({
    schemaVersion: 2, // any value: the byte layout does not read it
    masterInstanceId: "m-1",
    version,
    generatedAt: new Date("2026-01-02T03:04:05Z"),
    contentSha256: `${version}`.padStart(64, "a"),
    proxyHosts: hosts,
    l4ProxyHosts: [{ id: "l4", name: "tcp", listenAddress: ":7000", upstreams: ["127.0.0.1:7001"] }],
    certificates: [
      {
        id: "c1",
        name: "cert",
        domainNames: ["a.example.com"],
        status: CertificateStatus.CERTIFICATE_STATUS_ISSUED,
        fingerprintSha256: "ff",
      },
    ],
    accessLists: [{ id: "acl", name: "office" }],
    settings: { general: { primaryDomain, acmeEmail: "" }, acme: undefined, http: undefined },
  });
