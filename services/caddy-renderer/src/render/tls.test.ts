// Certificates in the rendered Caddy config: golden files (render/golden/tls-*.json) and
// feature checks. Test certificates are made with openssl at test time; in golden files every
// PEM (and the temporary TLS files directory) is replaced by a placeholder, so no key is
// committed and the files are stable. `caddy validate` checks the real bytes.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { Certificate, CertificateIssuance, CertificateType, L4ProxyHost, Snapshot } from "@cpm/proto";
import { render, RenderMemo, type RenderOptions } from "./index.ts";
import {
  assertCaddyAcceptsAll,
  assertGolden,
  cert,
  host,
  makeSelfSigned,
  OPTS as BASE_OPTS,
  snapshot,
  parseConfig,
  type CaddyConfig,
} from "./test-support.ts";
import { certificateTag, ensureTlsFiles, renderTls } from "./tls.ts";

const IMPORTED = CertificateType.CERTIFICATE_TYPE_IMPORTED;

const work = mkdtempSync(path.join(tmpdir(), "cpm-render-tls-test-"));
after(() => rmSync(work, { recursive: true, force: true }));
const TLS_DIR = path.join(work, "tls-files");
const OPTS: RenderOptions = { ...BASE_OPTS, tlsFilesDir: TLS_DIR };

const selfSigned = (cn: string, sans: string[]) => makeSelfSigned(work, cn, sans);

const secure = selfSigned("secure.test", ["DNS:secure.test", "DNS:*.secure.test", "DNS:*.a.secure.test"]);
const shop = selfSigned("shop.example.com", ["DNS:shop.example.com"]);
const wide = selfSigned("wide", ["DNS:*.secure.test", "DNS:wide.test"]);
const acmeRoot = selfSigned("Private ACME root", ["DNS:acme.internal"]).cert;

const importedCert = (id: string, pem: { cert: string; key: string }, domainNames: string[]) =>
  Certificate.fromPartial({
    id,
    name: `cert ${id}`,
    type: IMPORTED,
    domainNames,
    certificatePem: pem.cert,
    privateKeyPem: pem.key,
  });

const CASES: Record<string, { snap: Snapshot; opts?: RenderOptions }> = {
  // Imported certificates pinned per host; exact names before wildcards, deeper wildcards first.
  "tls-imported": {
    snap: snapshot({
      proxyHosts: [
        host("secure", ["secure.test", "*.secure.test", "*.a.secure.test"], {
          certificateId: "c-secure",
          sslForced: true,
        }),
        host("wide", ["wide.test"], { certificateId: "c-wide" }),
        host("plain", ["plain.test"]),
      ],
      certificates: [
        importedCert("c-secure", secure, ["secure.test", "*.secure.test", "*.a.secure.test"]),
        importedCert("c-wide", wide, ["*.secure.test", "wide.test"]),
      ],
    }),
  },
  // Private names: Caddy's internal CA, and apps.pki never installs its root.
  "tls-managed-internal": {
    snap: snapshot({
      proxyHosts: [
        host("intra", ["app.internal", "10.0.0.5", "*.svc.lan"], { certificateId: "c-intra", sslForced: true }),
      ],
      certificates: [cert("c-intra", ["app.internal", "10.0.0.5", "*.svc.lan"])],
    }),
  },
  // Public names: ACME with the directory and email from settings, on the standard ports.
  "tls-managed-acme": {
    snap: snapshot({
      proxyHosts: [
        host("www", ["www.example.com", "example.com"], { certificateId: "c-www", sslForced: true, hstsEnabled: true }),
      ],
      certificates: [cert("c-www", ["example.com", "www.example.com"])],
      settings: {
        general: { acmeEmail: "ops@example.com" },
        acme: { caUrl: "https://acme-staging-v02.api.letsencrypt.org/directory" },
      },
    }),
    opts: { ...OPTS, httpPort: 80, httpsPort: 443 },
  },
  // Everything at once: imported + managed public + managed private; unused and disabled ones left out.
  "tls-mixed": {
    snap: snapshot({
      proxyHosts: [
        host("shop", ["shop.example.com"], { certificateId: "c-shop" }),
        host("www", ["www.example.com"], { certificateId: "c-www", sslForced: true }),
        host("nas", ["nas.lan"], { certificateId: "c-nas" }),
        host("off", ["off.example.com"], { certificateId: "c-off", enabled: false }),
      ],
      certificates: [
        importedCert("c-shop", shop, ["shop.example.com"]),
        cert("c-www", ["www.example.com"]),
        cert("c-nas", ["nas.lan"]),
        cert("c-off", ["off.example.com"]),
        cert("c-unused", ["unused.example.com"]),
        importedCert("c-unused-imported", wide, ["wide.test"]),
      ],
      settings: { general: { acmeEmail: "ops@example.com" }, acme: { caUrl: "" } },
    }),
  },
  // A private ACME CA (root in settings): every managed name goes to it, its root trusted from a file.
  "tls-private-acme": {
    snap: snapshot({
      proxyHosts: [host("intra", ["app.corp", "api.example.com"], { certificateId: "c-intra" })],
      certificates: [cert("c-intra", ["app.corp", "api.example.com"])],
      settings: {
        general: { acmeEmail: "pki@corp" },
        acme: { caUrl: "https://acme.internal/acme/acme/directory", caRootPem: acmeRoot },
      },
    }),
  },
};

const PEMS: [string, string][] = [
  [secure.cert, "<secure.test certificate>"],
  [secure.key, "<secure.test key>"],
  [shop.cert, "<shop.example.com certificate>"],
  [shop.key, "<shop.example.com key>"],
  [wide.cert, "<wide certificate>"],
  [wide.key, "<wide key>"],
];
/** Rendered JSON, pretty, with the per-run parts (PEM, temporary directory) replaced by placeholders. */
function stable(json: string): string {
  let text = `${JSON.stringify(JSON.parse(json), null, 2)}\n`;
  for (const [pem, placeholder] of PEMS) text = text.split(JSON.stringify(pem).slice(1, -1)).join(placeholder);
  text = text.replace(/acme-ca-root-[0-9a-f]{32}\.pem/g, "acme-ca-root-<sha256>.pem");
  return text.split(TLS_DIR).join("<tlsFilesDir>");
}
const config = (s: Snapshot, opts = OPTS): CaddyConfig => parseConfig(render(s, opts).json);
const policies = (cfg: CaddyConfig) => cfg.apps.http.servers.http.tls_connection_policies;

describe("tls golden files", () => {
  for (const [name, c] of Object.entries(CASES)) {
    test(name, () => {
      const got = stable(render(c.snap, c.opts ?? OPTS).json);
      assert.ok(!/BEGIN (EC |RSA )?PRIVATE KEY/.test(got), "no key in a golden file");
      assertGolden(name, got);
    });
  }
});

describe("tls rendering", () => {
  test("imported: load_pem with chain, key and tag; the HTTPS listener pins each certificate to its hosts' names by SNI", () => {
    const cfg = config(CASES["tls-imported"]!.snap);
    const loaded = cfg.apps.tls.certificates.load_pem;
    assert.deepEqual(loaded, [
      { certificate: secure.cert, key: secure.key, tags: [certificateTag("c-secure")] },
      { certificate: wide.cert, key: wide.key, tags: [certificateTag("c-wide")] },
    ]);
    assert.equal(cfg.apps.tls.certificates.automate, undefined, "nothing is managed");
    assert.equal(cfg.apps.tls.automation, undefined);
    assert.deepEqual(
      cfg.apps.pki,
      { certificate_authorities: { local: { install_trust: false } } },
      "Caddy's internal CA never installs its root, even when it issues nothing",
    );
    assert.deepEqual(
      cfg.apps.http.servers.http.automatic_https,
      { disable: true },
      "Caddy must not try ACME for imported names",
    );
    // One policy per certificate for exact names, then one per certificate for wildcards.
    assert.deepEqual(policies(cfg), [
      { match: { sni: ["secure.test"] }, certificate_selection: { any_tag: ["cpm-cert-c-secure"] } },
      { match: { sni: ["wide.test"] }, certificate_selection: { any_tag: ["cpm-cert-c-wide"] } },
      {
        match: { sni: ["*.a.secure.test", "*.secure.test"] },
        certificate_selection: { any_tag: ["cpm-cert-c-secure"] },
      },
      {},
    ]);
  });

  test("the only certificate Caddy holds is selected by the catch-all policy, no name listed", () => {
    const s = snapshot({
      proxyHosts: [
        host("a", ["a.secure.test"], { certificateId: "c" }),
        host("b", ["b.secure.test"], { certificateId: "c" }),
        host("p", ["plain.test"]),
      ],
      certificates: [importedCert("c", secure, ["*.secure.test"])],
    });
    assert.deepEqual(policies(config(s)), [{ certificate_selection: { any_tag: ["cpm-cert-c"] } }]);
    // A managed certificate beside it: names are pinned again.
    const two = snapshot({
      ...s,
      proxyHosts: [...s.proxyHosts, host("m", ["m.internal"], { certificateId: "m" })],
      certificates: [...s.certificates, cert("m", ["m.internal"])],
    });
    assert.deepEqual(policies(config(two)), [
      { match: { sni: ["a.secure.test", "b.secure.test"] }, certificate_selection: { any_tag: ["cpm-cert-c"] } },
      {},
    ]);
  });

  test("managed private names: internal issuer, automate, pki without trust-store install", () => {
    const cfg = config(CASES["tls-managed-internal"]!.snap);
    assert.deepEqual(cfg.apps.tls.certificates, { automate: ["*.svc.lan", "10.0.0.5", "app.internal"] });
    assert.deepEqual(cfg.apps.tls.automation.policies, [
      { subjects: ["*.svc.lan", "10.0.0.5", "app.internal"], issuers: [{ module: "internal" }] },
    ]);
    assert.deepEqual(cfg.apps.pki, { certificate_authorities: { local: { install_trust: false } } });
    assert.deepEqual(policies(cfg), [{}], "managed certificates are picked by SNI");
  });

  test("managed public names: ACME from settings (directory, email); challenge ports follow the instance's ports", () => {
    const std = config(CASES["tls-managed-acme"]!.snap, { ...OPTS, httpPort: 80, httpsPort: 443 });
    assert.deepEqual(std.apps.tls.automation.policies, [
      {
        subjects: ["example.com", "www.example.com"],
        issuers: [
          { module: "acme", ca: "https://acme-staging-v02.api.letsencrypt.org/directory", email: "ops@example.com" },
        ],
      },
    ]);
    assert.deepEqual(std.apps.pki, { certificate_authorities: { local: { install_trust: false } } });
    const odd = config(CASES["tls-managed-acme"]!.snap);
    assert.deepEqual(odd.apps.tls.automation.policies[0]!.issuers[0]!.challenges, {
      http: { alternate_port: 8080 },
      "tls-alpn": { alternate_port: 8443 },
    });
    // No settings: Caddy's default CA, no email.
    const bare = config(
      snapshot({
        proxyHosts: CASES["tls-managed-acme"]!.snap.proxyHosts,
        certificates: CASES["tls-managed-acme"]!.snap.certificates,
      }),
      { ...OPTS, httpPort: 80, httpsPort: 443 },
    );
    assert.deepEqual(bare.apps.tls.automation.policies[0]!.issuers, [{ module: "acme" }]);
  });

  test("mixed: one policy per issuer; only certificates of enabled hosts are loaded or obtained", () => {
    const r = render(CASES["tls-mixed"]!.snap, OPTS);
    const cfg = parseConfig(r.json);
    assert.deepEqual(cfg.apps.tls.certificates.automate, ["nas.lan", "www.example.com"]);
    assert.deepEqual(
      cfg.apps.tls.certificates.load_pem.map((c) => c.tags[0]),
      ["cpm-cert-c-shop"],
    );
    assert.deepEqual(
      cfg.apps.tls.automation.policies.map((p) => [p.subjects, p.issuers[0]!.module]),
      [
        [["nas.lan"], "internal"],
        [["www.example.com"], "acme"],
      ],
    );
    for (const unused of ["off.example.com", "unused.example.com", "wide.test"])
      assert.ok(!r.json.includes(unused), `${unused} is not rendered`);
    assert.ok(!r.json.includes(JSON.stringify(wide.key).slice(1, -1)), "an unused key is not sent to Caddy");
  });

  test("private ACME CA: every name goes to it; render names its root file, ensureTlsFiles writes it once", () => {
    const snap = CASES["tls-private-acme"]!.snap;
    const dir = path.join(work, "private-acme");
    const opts = { ...OPTS, tlsFilesDir: dir };
    const r1 = render(snap, opts);
    const issuer = parseConfig(r1.json).apps.tls.automation.policies;
    assert.equal(issuer.length, 1);
    assert.deepEqual(issuer[0]!.subjects, ["api.example.com", "app.corp"]);
    const files: string[] = issuer[0]!.issuers[0]!.trusted_roots_pem_files;
    assert.equal(files.length, 1);
    assert.equal(path.dirname(files[0]!), dir);
    assert.deepEqual(
      parseConfig(r1.json).apps.pki,
      { certificate_authorities: { local: { install_trust: false } } },
      "no trust-store install",
    );
    assert.equal(existsSync(dir), false, "render is pure: it writes nothing");
    ensureTlsFiles(snap, opts);
    assert.equal(readFileSync(files[0]!, "utf8"), `${acmeRoot.trim()}\n`);
    ensureTlsFiles(snap, opts);
    const r2 = render(snap, opts);
    assert.equal(r2.json, r1.json, "same snapshot, same bytes");
    assert.deepEqual(readdirSync(dir), [path.basename(files[0]!)], "one file, no leftovers");
    // A root without a directory URL is no private CA: private names stay with the internal CA.
    const noUrl = { ...snap, settings: { ...snap.settings!, acme: { caUrl: "", caRootPem: acmeRoot } } };
    assert.deepEqual(
      parseConfig(render(noUrl, opts).json).apps.tls.automation.policies.map((p) => [p.subjects, p.issuers[0]!.module]),
      [
        [["app.corp"], "internal"],
        [["api.example.com"], "acme"],
      ],
    );
    // Another root, another file name.
    const other = {
      ...snap,
      settings: { ...snap.settings!, acme: { ...snap.settings!.acme!, caRootPem: secure.cert } },
    };
    assert.notEqual(
      parseConfig(render(other, opts).json).apps.tls.automation.policies[0]!.issuers[0]!.trusted_roots_pem_files[0],
      files[0],
    );
    // Without a directory for TLS files: no root, and a warning says so.
    const noDir = render(CASES["tls-private-acme"]!.snap, { ...OPTS, tlsFilesDir: undefined });
    assert.equal(
      parseConfig(noDir.json).apps.tls.automation.policies[0]!.issuers[0]!.trusted_roots_pem_files,
      undefined,
    );
    assert.ok(
      noDir.warnings.some((w) => w.includes("ca_root_pem")),
      noDir.warnings.join("; "),
    );
  });

  test("a host name its certificate does not cover gets a warning", () => {
    const s = snapshot({
      proxyHosts: [
        host("h", ["secure.test", "other.test"], { certificateId: "c" }),
        host("m", ["m.internal", "x.internal"], { certificateId: "m" }),
      ],
      certificates: [importedCert("c", secure, ["secure.test"]), cert("m", ["m.internal"])],
    });
    const w = render(s, OPTS).warnings;
    assert.ok(
      w.some((x) => x.includes('"host h"') && x.includes("other.test")),
      w.join("; "),
    );
    assert.ok(
      w.some((x) => x.includes('"host m"') && x.includes("x.internal")),
      w.join("; "),
    );
    assert.equal(render(CASES["tls-imported"]!.snap, OPTS).warnings.length, 0);
  });

  test("L4 hosts that terminate TLS get their certificate loaded when Caddy has layer4", () => {
    const s = snapshot({
      l4ProxyHosts: [
        L4ProxyHost.fromPartial({
          id: "l4",
          name: "db",
          listenAddress: ":5432",
          upstreams: ["db:5432"],
          tlsTermination: true,
          certificateId: "c",
        }),
      ],
      certificates: [importedCert("c", secure, ["secure.test"])],
    });
    assert.equal(config(s).apps.tls, undefined, "without layer4 nothing uses it");
    const cfg = config(s, { ...OPTS, layer4: true });
    assert.deepEqual(
      cfg.apps.tls.certificates.load_pem.map((c) => c.tags),
      [["cpm-cert-c"]],
    );
  });

  test("no used certificate, no tls app", () => {
    const cfg = config(snapshot({ proxyHosts: [host("a", ["a.test"])], certificates: [cert("x", ["x.internal"])] }));
    assert.equal(cfg.apps.tls, undefined);
    assert.equal(cfg.apps.pki, undefined);
    assert.deepEqual(cfg.apps.http.servers.http.listen, [":8080"], "no HTTPS listener");
    assert.equal(cfg.apps.http.servers.http.tls_connection_policies, undefined);
  });

  test("list order does not matter", () => {
    const s = CASES["tls-mixed"]!.snap;
    const base = render(s, OPTS).json;
    const rev = {
      ...s,
      proxyHosts: [...s.proxyHosts].reverse(),
      certificates: [...s.certificates].reverse().map((c) => ({ ...c, domainNames: [...c.domainNames].reverse() })),
    };
    assert.equal(render(rev, OPTS).json, base);
  });
});

describe("caddy validate (tls)", () => {
  test("every tls golden case, with its real certificates, is accepted by caddy validate", (t) =>
    assertCaddyAcceptsAll(
      t,
      "cpm-caddy-validate-tls-",
      Object.fromEntries(
        Object.entries(CASES).map(([name, c]) => [
          name,
          () => {
            const json = render(c.snap, c.opts ?? OPTS).json;
            ensureTlsFiles(c.snap, c.opts ?? OPTS); // as the reconciler does before loading
            return json;
          },
        ]),
      ),
    ));
});

describe("master-issued certificates", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "cpm-issued-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const obtained = makeSelfSigned(dir, "a.example.com", ["DNS:a.example.com"]);
  const issued = Certificate.fromPartial({
    ...cert("c-a", ["a.example.com", "b.example.com"]),
    issued: [{ domainName: "a.example.com", certificatePem: obtained.cert, privateKeyPem: obtained.key }],
  });
  const snap = snapshot({
    certificates: [issued],
    proxyHosts: [host("h", ["a.example.com", "b.example.com"], { certificateId: "c-a" })],
  });
  const SLAVE: RenderOptions = { ...BASE_OPTS, servesMasterIssued: true, masterHttpAddress: "10.0.0.1:80" };

  test("on the master (or standalone), Caddy orders them: automate with the ACME issuer", () => {
    const cfg = parseConfig(render(snap, BASE_OPTS).json);
    assert.deepEqual(cfg.apps.tls.certificates.automate, ["a.example.com", "b.example.com"]);
    assert.equal(cfg.apps.tls.certificates.load_pem, undefined, "the master never loads what its own Caddy manages");
  });

  test("on a slave, the issued material is loaded and nothing is ordered; a name not issued yet is a warning", () => {
    const r = render(snap, SLAVE);
    const cfg = parseConfig(r.json);
    assert.deepEqual(cfg.apps.tls.certificates.load_pem, [
      { certificate: obtained.cert, key: obtained.key, tags: [certificateTag("c-a")] },
    ]);
    assert.equal(cfg.apps.tls.certificates.automate, undefined);
    assert.equal(cfg.apps.tls.automation, undefined, "no issuer at all on the slave");
    assert.ok(
      r.warnings.some((w) => w.includes("not issued by the master yet for b.example.com")),
      r.warnings.join("\n"),
    );
  });

  test("on a slave, HTTP-01 challenges go to the master's HTTP port, before any host route, even before the snapshot names them", () => {
    const route = {
      match: [{ path: ["/.well-known/acme-challenge/*"], protocol: "http" }],
      handle: [{ handler: "reverse_proxy", upstreams: [{ dial: "10.0.0.1:80" }] }],
      terminal: true,
    };
    assert.deepEqual(
      parseConfig(render(snapshot({}), SLAVE).json).apps.http.servers.http.routes[0],
      route,
      "forwarded before the master's certificate reaches this slave",
    );
    const cfg = parseConfig(render(snap, SLAVE).json);
    assert.deepEqual(cfg.apps.http.servers.http.routes[0], {
      match: [{ path: ["/.well-known/acme-challenge/*"], protocol: "http" }],
      handle: [{ handler: "reverse_proxy", upstreams: [{ dial: "10.0.0.1:80" }] }],
      terminal: true,
    });
  });

  test("EACH_NODE certificates are ordered by every node, slaves included", () => {
    const each = snapshot({
      ...snap,
      certificates: [{ ...issued, issuance: CertificateIssuance.CERTIFICATE_ISSUANCE_EACH_NODE, issued: [] }],
    });
    const cfg = parseConfig(render(each, SLAVE).json);
    assert.deepEqual(cfg.apps.tls.certificates.automate, ["a.example.com", "b.example.com"]);
    assert.equal(cfg.apps.tls.certificates.load_pem, undefined);
    // Caddy answers the challenges it started itself before any route; the forward route only gets the others.
    assert.deepEqual(cfg.apps.tls.automation.policies[0]!.subjects, ["a.example.com", "b.example.com"]);
  });
});

describe("renders one after another (the last plan, tls app and coverage kept)", () => {
  const issuedCert = (id: string, names: string[], issuedFor: string[]) =>
    Certificate.fromPartial({
      ...cert(id, names),
      issued: issuedFor.map((domainName) => ({
        domainName,
        certificatePem: `chain ${domainName}`,
        privateKeyPem: "k",
      })),
    });

  test("the same certificate objects give the same tls app object; a new one, a new app", () => {
    const opts: RenderOptions = { ...OPTS };
    const c = cert("c", ["a.example.com", "b.example.com"]);
    const first = snapshot({ certificates: [c], proxyHosts: [host("a", ["a.example.com"], { certificateId: "c" })] });
    const next = { ...first, proxyHosts: [...first.proxyHosts, host("x", ["x.example.com"], { certificateId: "c" })] };
    const w1: string[] = [];
    const w2: string[] = [];
    const tls1 = renderTls(first, opts, w1);
    const tls2 = renderTls(next, opts, w2);
    assert.equal(tls2, tls1, "kept: the same certificates, the same settings");
    assert.deepEqual(w1, []);
    assert.deepEqual(w2, [
      'proxy host "host x": certificate "cert c" does not cover x.example.com; HTTPS handshakes for it will fail',
    ]);
    const otherCa = {
      ...next,
      settings: Snapshot.fromPartial({ settings: { acme: { caUrl: "https://ca.example.net/dir" } } }).settings,
    };
    const tlsOtherCa = renderTls(otherCa, opts, []);
    assert.notEqual(tlsOtherCa, tls1, "the same certificates under other ACME settings");
    assert.deepEqual(tlsOtherCa, renderTls(structuredClone(otherCa), { ...opts }, []));
    const changed = { ...next, certificates: [cert("c", ["a.example.com", "x.example.com"])] };
    const tls3 = renderTls(changed, opts, []);
    assert.notEqual(tls3, tls1);
    assert.deepEqual(tls3, renderTls(structuredClone(changed), { ...opts }, []), "what a render from nothing gives");
  });

  test("random edits give the bytes and warnings of a render from nothing", () => {
    let seed = 11;
    const pick = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed % n);
    for (const base of [OPTS, { ...BASE_OPTS, servesMasterIssued: true, masterHttpAddress: "10.0.0.1:80" }]) {
      const opts: RenderOptions = { ...base };
      const names = (i: number) => [`h${i}.example.com`, `h${i}.test`];
      let hosts = Array.from({ length: 10 }, (_, i) => host(`h${i}`, names(i), { certificateId: i % 2 ? "c1" : "" }));
      let certs = [cert("c1", ["h1.example.com", "h1.test"]), issuedCert("c2", ["h2.example.com"], [])];
      let settings = snapshot().settings;
      const memo = new RenderMemo();
      for (let step = 0; step < 150; step++) {
        const i = pick(hosts.length);
        switch (pick(5)) {
          case 0: // a host moves to another certificate, or loses its own
            hosts = hosts.map((h, j) => (j === i ? { ...h, certificateId: ["", "c1", "c2"][pick(3)]! } : h));
            break;
          case 1: // a host serves other names
            hosts = hosts.map((h, j) => (j === i ? { ...h, domains: names(pick(20)) } : h));
            break;
          case 2: // a certificate covers other names, or the master issued some of them
            certs = certs.map((c, j) =>
              j === pick(2)
                ? issuedCert(
                    c.id,
                    names(pick(10)).concat(pick(2) ? ["*.example.com"] : []),
                    pick(2) ? [`h${i}.test`] : [],
                  )
                : c,
            );
            break;
          case 3: // ACME settings
            settings = Snapshot.fromPartial({
              settings: {
                acme: pick(3) ? { caUrl: `https://ca${step}.example.com/dir` } : {},
                general: { acmeEmail: pick(2) ? "ops@example.com" : "" },
              },
            }).settings;
            break;
          default: // an unrelated change: the same certificates
            hosts = hosts.map((h, j) => (j === i ? { ...h, upstreams: [`10.0.0.${step % 9}:80`] } : h));
        }
        const s: Snapshot = { ...snapshot(), proxyHosts: hosts, certificates: certs, settings };
        const got = render(s, opts, memo);
        const fresh = render(structuredClone(s), { ...base }, new RenderMemo());
        assert.equal(got.json, fresh.json, `step ${step}: bytes`);
        assert.deepEqual(got.warnings, fresh.warnings, `step ${step}: warnings`);
      }
    }
  });
});
