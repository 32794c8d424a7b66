import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { Certificate, CertificateType, Snapshot, type DeepPartial } from "@cpm/proto";
import { certificateCovers as covers, isPrivateName, normalizeCertificate } from "./certificates.ts";
import { assertValidationError, expectValidationError } from "./test-support.ts";
import { snapshotContentHash, validateSnapshot, SNAPSHOT_SCHEMA_VERSION } from "./snapshot.ts";

const MANAGED = CertificateType.CERTIFICATE_TYPE_MANAGED;
const IMPORTED = CertificateType.CERTIFICATE_TYPE_IMPORTED;
const DAY = 86_400_000;

// ---------------------------------------------------------------------------------------
// A throw-away PKI made with openssl at test time (no key is ever committed).
// ---------------------------------------------------------------------------------------
type KeyType = "ec" | "ec384" | "rsa" | "rsa1024" | "ed25519" | "ec-traditional" | "rsa-traditional" | "ec-encrypted";

interface Issued {
  cert: string;
  key: string;
}

function makePki() {
  const dir = mkdtempSync(path.join(tmpdir(), "cpm-cert-test-"));
  const run = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const read = (f: string) => readFileSync(path.join(dir, f), "utf8");
  writeFileSync(
    path.join(dir, "ca.cnf"),
    "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\n[p]\ncommonName = supplied\n",
  );
  writeFileSync(path.join(dir, "index.txt"), "");
  writeFileSync(path.join(dir, "serial"), "1000\n");
  let n = 0;
  const stamp = (d: Date) => `${d.toISOString().replace(/[-:T]/g, "").slice(0, 14)}Z`;

  const newKey = (type: KeyType): string => {
    const f = `key-${++n}.pem`;
    const ec = (curve: string) => ["genpkey", "-algorithm", "EC", "-pkeyopt", `ec_paramgen_curve:${curve}`, "-out", f];
    switch (type) {
      case "ec":
        run(ec("P-256"));
        break;
      case "ec384":
        run(ec("P-384"));
        break;
      case "ec-encrypted":
        run([...ec("P-256"), "-aes256", "-pass", "pass:secret"]);
        break;
      case "ec-traditional":
        run(["ecparam", "-name", "prime256v1", "-genkey", "-out", f]); // EC PARAMETERS + EC PRIVATE KEY
        break;
      case "rsa":
        run(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", f]);
        break;
      case "rsa-traditional":
        run(["genrsa", "-traditional", "-out", f, "2048"]);
        break;
      case "rsa1024":
        run(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", f]);
        break;
      case "ed25519":
        run(["genpkey", "-algorithm", "ED25519", "-out", f]);
        break;
    }
    return f;
  };

  /** Signs a CSR for `keyFile` with the CA `ca`, valid from now+fromDays to now+toDays. */
  const sign = (
    ca: { certFile: string; keyFile: string },
    keyFile: string,
    cn: string,
    ext: string,
    fromDays: number,
    toDays: number,
    passin?: string,
  ) => {
    const id = ++n;
    writeFileSync(path.join(dir, `ext-${id}`), ext);
    run([
      "req",
      "-new",
      "-key",
      keyFile,
      "-out",
      `csr-${id}.pem`,
      "-subj",
      `/CN=${cn}`,
      ...(passin ? ["-passin", passin] : []),
    ]);
    const now = Date.now();
    run([
      "ca",
      "-batch",
      "-config",
      "ca.cnf",
      "-notext",
      "-cert",
      ca.certFile,
      "-keyfile",
      ca.keyFile,
      "-in",
      `csr-${id}.pem`,
      "-out",
      `cert-${id}.pem`,
      "-startdate",
      stamp(new Date(now + fromDays * DAY)),
      "-enddate",
      stamp(new Date(now + toDays * DAY)),
      "-extfile",
      `ext-${id}`,
    ]);
    return `cert-${id}.pem`;
  };

  const rootKey = newKey("ec");
  run(["req", "-x509", "-key", rootKey, "-out", "root.pem", "-days", "30", "-subj", "/CN=CPM test root"]);
  const root = { certFile: "root.pem", keyFile: rootKey };
  const interKey = newKey("ec");
  const interFile = sign(
    root,
    interKey,
    "CPM test intermediate",
    "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
    -1,
    20,
  );
  const intermediate = { certFile: interFile, keyFile: interKey };

  return {
    rootPem: read("root.pem"),
    intermediatePem: read(interFile),
    /** A leaf for `sans` ("DNS:a.test", "IP:127.0.0.1"; empty: no SAN extension). */
    issue(
      sans: string[],
      o: { key?: KeyType; from?: number; to?: number; cn?: string; byIntermediate?: boolean } = {},
    ): Issued {
      const keyType = o.key ?? "ec";
      const keyFile = newKey(keyType);
      const ext = `basicConstraints=CA:FALSE\n${sans.length ? `subjectAltName=${sans.join(",")}\n` : ""}`;
      const certFile = sign(
        o.byIntermediate ? intermediate : root,
        keyFile,
        o.cn ?? "leaf",
        ext,
        o.from ?? -1,
        o.to ?? 10,
        keyType === "ec-encrypted" ? "pass:secret" : undefined,
      );
      return { cert: read(certFile), key: read(keyFile) };
    },
    otherKey: (type: KeyType = "ec") => read(newKey(type)),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

const pki = makePki();
after(() => pki.cleanup());

// Issued once, used by many cases.
const leaf = pki.issue(["DNS:secure.test", "DNS:*.Wild.test", "IP:127.0.0.1", "IP:2001:db8::1"], { cn: "secure.test" });
const chained = pki.issue(["DNS:chain.test"], { byIntermediate: true });
const expired = pki.issue(["DNS:old.test"], { from: -30, to: -1 });
const future = pki.issue(["DNS:soon.test"], { from: 2, to: 20 });
const noSan = pki.issue([], { cn: "nosan.test" });
const oddSan = pki.issue(["DNS:_srv.odd.test", "DNS:ok.odd.test"]);
const onlyOddSan = pki.issue(["DNS:_srv.odd.test"]);

const imported = (over: DeepPartial<Certificate> = {}) =>
  Certificate.fromPartial({
    name: "imported",
    type: IMPORTED,
    certificatePem: leaf.cert,
    privateKeyPem: leaf.key,
    ...over,
  });
const managed = (over: DeepPartial<Certificate> = {}) =>
  Certificate.fromPartial({ name: "managed", type: MANAGED, domainNames: ["app.example.com"], ...over });

const NOW = { now: new Date() };

/** The base64 body of a PEM (what must never show up in an error message). */
const bodyOf = (pem: string) =>
  pem
    .split("\n")
    .filter((l) => l && !l.startsWith("-----"))
    .slice(0, 2)
    .join("");

describe("isPrivateName (the internal-issuer rule)", () => {
  const priv = [
    "localhost",
    "app.localhost",
    "nas",
    "printer.local",
    "db.internal",
    "*.internal",
    "*.svc.internal",
    "secure.test",
    "x.example",
    "bad.invalid",
    "router.lan",
    "nas.home",
    "git.corp",
    "wiki.intranet",
    "a.private",
    "box.home.arpa",
    "10.0.0.1",
    "8.8.8.8",
    "::1",
    "2001:db8::1",
    "LOCALHOST",
  ];
  const pub = [
    "example.com",
    "app.example.com",
    "*.example.com",
    "*.com",
    "*.nas",
    "test.com",
    "local.example.org",
    "internal.io",
    "home.arpa.example.com",
    "lan.party",
  ];
  for (const n of priv) test(`private: ${n}`, () => assert.equal(isPrivateName(n), true));
  for (const n of pub) test(`public: ${n}`, () => assert.equal(isPrivateName(n), false));
});

describe("covers", () => {
  const cases: [string, string, boolean][] = [
    ["a.test", "a.test", true],
    ["A.Test", "a.test", true],
    ["*.a.test", "x.a.test", true],
    ["*.a.test", "a.test", false],
    ["*.a.test", "y.x.a.test", false],
    ["*.a.test", "*.a.test", true],
    ["a.test", "*.a.test", false],
    ["*.a.test", "*.x.a.test", false],
    ["2001:db8::1", "2001:DB8:0:0:0:0:0:1", true],
    ["127.0.0.1", "127.0.0.2", false],
  ];
  for (const [san, name, want] of cases)
    test(`${san} covers ${name}: ${want}`, () => assert.equal(covers(san, name), want));
});

describe("normalizeCertificate: managed", () => {
  test("names lower-cased, PEM fields empty, auto_renew forced on, read-only fields cleared", () => {
    const c = normalizeCertificate(
      managed({
        name: "  web  ",
        domainNames: ["App.Example.com", "*.Svc.Internal", "10.0.0.1", "2001:DB8:0:0::1"],
        autoRenew: false,
        issuer: "forged",
        fingerprintSha256: "ab",
        expiresAt: new Date(),
      }),
      "certificate",
      NOW,
    );
    assert.equal(c.name, "web");
    assert.deepEqual(c.domainNames, ["app.example.com", "*.svc.internal", "10.0.0.1", "2001:db8::1"]);
    assert.equal(c.autoRenew, true);
    assert.equal(c.certificatePem, "");
    assert.equal(c.privateKeyPem, "");
    assert.equal(c.issuer, "");
    assert.equal(c.fingerprintSha256, "");
    assert.equal(c.expiresAt, undefined);
    assert.deepEqual(normalizeCertificate(c), c, "normalizing twice changes nothing");
  });
  test("private wildcards are fine (Caddy's internal CA issues them)", () => {
    assert.deepEqual(normalizeCertificate(managed({ domainNames: ["*.lan", "*.apps.test"] })).domainNames, [
      "*.lan",
      "*.apps.test",
    ]);
  });
});

describe("normalizeCertificate: imported", () => {
  test("empty domain_names are filled from the SANs (DNS and IP, in order, canonical)", () => {
    const c = normalizeCertificate(imported(), "certificate", NOW);
    assert.deepEqual(c.domainNames, ["secure.test", "*.wild.test", "127.0.0.1", "2001:db8::1"]);
  });

  test("read-only fields come from the leaf; client values are ignored", () => {
    const x = new X509Certificate(leaf.cert);
    const c = normalizeCertificate(
      imported({
        issuer: "forged",
        fingerprintSha256: "00",
        expiresAt: new Date(0),
        notBefore: new Date(0),
        autoRenew: true,
      }),
      "certificate",
      NOW,
    );
    assert.equal(c.fingerprintSha256, x.fingerprint256.replaceAll(":", "").toLowerCase());
    assert.match(c.fingerprintSha256, /^[0-9a-f]{64}$/);
    assert.equal(c.issuer, "CN=CPM test root");
    assert.equal(c.expiresAt?.getTime(), new Date(x.validTo).getTime());
    assert.equal(c.notBefore?.getTime(), new Date(x.validFrom).getTime());
    assert.equal(c.autoRenew, false, "nothing renews an imported certificate");
  });

  test("given domain_names must be covered: exact, one-label wildcard, the wildcard itself, IPs in any spelling", () => {
    const c = normalizeCertificate(
      imported({ domainNames: ["Secure.test", "a.wild.test", "*.wild.test", "2001:DB8:0:0:0:0:0:1"] }),
      "certificate",
      NOW,
    );
    assert.deepEqual(c.domainNames, ["secure.test", "a.wild.test", "*.wild.test", "2001:db8::1"]);
  });

  test("PEM is normalized (chain re-encoded, key as PKCS#8) and normalizing twice changes nothing", () => {
    const c = normalizeCertificate(
      imported({ certificatePem: `Bag Attributes: junk\n${leaf.cert}\n\n`, privateKeyPem: `\n${leaf.key}` }),
      "certificate",
      NOW,
    );
    assert.match(c.certificatePem, /^-----BEGIN CERTIFICATE-----\n[\s\S]+\n-----END CERTIFICATE-----\n$/);
    assert.match(c.privateKeyPem, /^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----\n$/);
    assert.deepEqual(normalizeCertificate(c, "certificate", NOW), c);
    assert.deepEqual(normalizeCertificate(c), c, "and without a clock (snapshot validation)");
  });

  test("a chain with its intermediate is kept in order", () => {
    const c = normalizeCertificate(
      imported({ certificatePem: chained.cert + pki.intermediatePem, privateKeyPem: chained.key }),
      "certificate",
      NOW,
    );
    assert.equal((c.certificatePem.match(/BEGIN CERTIFICATE/g) ?? []).length, 2);
    assert.equal(c.issuer, "CN=CPM test intermediate");
    assert.deepEqual(c.domainNames, ["chain.test"]);
  });

  const keyTypes: { key: KeyType; label: RegExp }[] = [
    { key: "ec384", label: /BEGIN PRIVATE KEY/ },
    { key: "rsa", label: /BEGIN PRIVATE KEY/ },
    { key: "rsa-traditional", label: /BEGIN RSA PRIVATE KEY/ },
    { key: "ec-traditional", label: /BEGIN EC PARAMETERS/ },
    { key: "ed25519", label: /BEGIN PRIVATE KEY/ },
  ];
  for (const { key, label } of keyTypes) {
    test(`key type ${key} is accepted and stored as PKCS#8`, () => {
      const l = pki.issue(["DNS:k.test"], { key });
      assert.match(l.key, label);
      const c = normalizeCertificate(imported({ certificatePem: l.cert, privateKeyPem: l.key }), "certificate", NOW);
      assert.match(c.privateKeyPem, /^-----BEGIN PRIVATE KEY-----/);
    });
  }

  test("without a clock (snapshot validation) an expired or not-yet-valid certificate is accepted", () => {
    assert.deepEqual(
      normalizeCertificate(imported({ certificatePem: expired.cert, privateKeyPem: expired.key })).domainNames,
      ["old.test"],
    );
    assert.deepEqual(
      normalizeCertificate(imported({ certificatePem: future.cert, privateKeyPem: future.key })).domainNames,
      ["soon.test"],
    );
  });

  test("SANs that are not host names are left out when filling, and refused when they are all there is", () => {
    assert.deepEqual(
      normalizeCertificate(imported({ certificatePem: oddSan.cert, privateKeyPem: oddSan.key }), "certificate", NOW)
        .domainNames,
      ["ok.odd.test"],
    );
    assertValidationError(
      () =>
        normalizeCertificate(
          imported({ certificatePem: onlyOddSan.cert, privateKeyPem: onlyOddSan.key }),
          "certificate",
          NOW,
        ),
      "certificate.domain_names",
    );
  });

  test("the field prefix is the caller's (snapshot paths)", () => {
    assertValidationError(
      () => normalizeCertificate(imported({ privateKeyPem: pki.otherKey() }), "snapshot.certificates[3]"),
      "snapshot.certificates[3].private_key_pem",
      /does not match/,
    );
  });
});

describe("normalizeCertificate: bad input", () => {
  const other = pki.otherKey();
  const encrypted = pki.issue(["DNS:enc.test"], { key: "ec-encrypted" });
  const weak = pki.issue(["DNS:weak.test"], { key: "rsa1024" });
  const garbled = leaf.cert.replace(/\n[A-Za-z0-9+/]{20}/, "\n!!!!!!!!!!!!!!!!!!!!");
  const cases: { name: string; cert: Certificate; field: string; detail: RegExp }[] = [
    { name: "empty name", cert: managed({ name: " " }), field: "certificate.name", detail: /required/ },
    {
      name: "type unspecified",
      cert: managed({ type: CertificateType.CERTIFICATE_TYPE_UNSPECIFIED }),
      field: "certificate.type",
      detail: /MANAGED.*IMPORTED/,
    },
    {
      name: "type unknown",
      cert: managed({ type: 42 as CertificateType }),
      field: "certificate.type",
      detail: /not a known value/,
    },
    {
      name: "managed without names",
      cert: managed({ domainNames: [] }),
      field: "certificate.domain_names",
      detail: /at least one/,
    },
    {
      name: "managed bad name",
      cert: managed({ domainNames: ["ok.example.com", "exa mple.com"] }),
      field: "certificate.domain_names[1]",
      detail: /not a valid host name/,
    },
    {
      name: "managed duplicate name",
      cert: managed({ domainNames: ["a.example.com", "A.example.com"] }),
      field: "certificate.domain_names[1]",
      detail: /listed twice/,
    },
    {
      name: "managed public wildcard",
      cert: managed({ domainNames: ["*.example.com"] }),
      field: "certificate.domain_names[0]",
      detail: /DNS challenge/,
    },
    {
      name: "managed with a certificate",
      cert: managed({ certificatePem: leaf.cert }),
      field: "certificate.certificate_pem",
      detail: /must be empty/,
    },
    {
      name: "managed with a key",
      cert: managed({ privateKeyPem: leaf.key }),
      field: "certificate.private_key_pem",
      detail: /must be empty/,
    },
    {
      name: "too many names",
      cert: managed({ domainNames: Array.from({ length: 101 }, (_, i) => `h${i}.example.com`) }),
      field: "certificate.domain_names",
      detail: /at most 100/,
    },
    {
      name: "imported without certificate",
      cert: imported({ certificatePem: "" }),
      field: "certificate.certificate_pem",
      detail: /required/,
    },
    {
      name: "imported certificate not PEM",
      cert: imported({ certificatePem: "hello" }),
      field: "certificate.certificate_pem",
      detail: /no PEM block/,
    },
    {
      name: "imported certificate garbled",
      cert: imported({ certificatePem: garbled }),
      field: "certificate.certificate_pem",
      detail: /not a valid X\.509/,
    },
    {
      name: "key pasted as certificate",
      cert: imported({ certificatePem: leaf.key }),
      field: "certificate.certificate_pem",
      detail: /private_key_pem/,
    },
    {
      name: "chain in the wrong order",
      cert: imported({ certificatePem: pki.intermediatePem + chained.cert, privateKeyPem: chained.key }),
      field: "certificate.certificate_pem",
      detail: /did not sign/,
    },
    {
      name: "chain with an unrelated certificate",
      cert: imported({ certificatePem: chained.cert + pki.rootPem, privateKeyPem: chained.key }),
      field: "certificate.certificate_pem",
      detail: /did not sign/,
    },
    {
      name: "imported without key",
      cert: imported({ privateKeyPem: "" }),
      field: "certificate.private_key_pem",
      detail: /required/,
    },
    {
      name: "key does not match",
      cert: imported({ privateKeyPem: other }),
      field: "certificate.private_key_pem",
      detail: /does not match the certificate/,
    },
    {
      name: "encrypted key",
      cert: imported({ certificatePem: encrypted.cert, privateKeyPem: encrypted.key }),
      field: "certificate.private_key_pem",
      detail: /encrypted/,
    },
    {
      name: "two keys",
      cert: imported({ privateKeyPem: leaf.key + other }),
      field: "certificate.private_key_pem",
      detail: /exactly one/,
    },
    {
      name: "certificate pasted as key",
      cert: imported({ privateKeyPem: leaf.cert }),
      field: "certificate.private_key_pem",
      detail: /not a private key/,
    },
    {
      name: "key not PEM",
      cert: imported({ privateKeyPem: "secret" }),
      field: "certificate.private_key_pem",
      detail: /no PEM private key/,
    },
    {
      name: "RSA key too short",
      cert: imported({ certificatePem: weak.cert, privateKeyPem: weak.key }),
      field: "certificate.private_key_pem",
      detail: /1024 bits/,
    },
    {
      name: "expired",
      cert: imported({ certificatePem: expired.cert, privateKeyPem: expired.key }),
      field: "certificate.certificate_pem",
      detail: /expired on/,
    },
    {
      name: "not valid yet",
      cert: imported({ certificatePem: future.cert, privateKeyPem: future.key }),
      field: "certificate.certificate_pem",
      detail: /not valid yet/,
    },
    {
      name: "no SANs",
      cert: imported({ certificatePem: noSan.cert, privateKeyPem: noSan.key }),
      field: "certificate.certificate_pem",
      detail: /no DNS or IP subject alternative names/,
    },
    {
      name: "name not covered",
      cert: imported({ domainNames: ["secure.test", "other.test"] }),
      field: "certificate.domain_names[1]",
      detail: /"other\.test" is not covered/,
    },
    {
      name: "wildcard SAN covers one label only",
      cert: imported({ domainNames: ["a.b.wild.test"] }),
      field: "certificate.domain_names[0]",
      detail: /not covered/,
    },
    {
      name: "wildcard name needs a wildcard SAN",
      cert: imported({ domainNames: ["*.secure.test"] }),
      field: "certificate.domain_names[0]",
      detail: /not covered/,
    },
    {
      name: "IP not covered",
      cert: imported({ domainNames: ["10.9.9.9"] }),
      field: "certificate.domain_names[0]",
      detail: /not covered/,
    },
  ];
  for (const c of cases) {
    test(`${c.name} -> ${c.field}`, () => {
      const err = expectValidationError(() => normalizeCertificate(c.cert, "certificate", NOW), c.field, c.detail);
      for (const pem of [c.cert.certificatePem, c.cert.privateKeyPem, leaf.key, other]) {
        const body = bodyOf(pem);
        if (body) assert.ok(!err.message.includes(body), "the message must not quote PEM content");
      }
      assert.ok(!err.message.includes("-----BEGIN"), "the message must not quote PEM content");
    });
  }
});

describe("snapshot validation with certificates", () => {
  const snap = (certificates: Certificate[]) => {
    const s = Snapshot.fromPartial({ schemaVersion: SNAPSHOT_SCHEMA_VERSION, masterInstanceId: "m", version: 3 });
    s.certificates = certificates;
    s.contentSha256 = snapshotContentHash(s);
    return s;
  };

  test("stored certificates (normalized by the API) are accepted as they are, expired or not", () => {
    const a = { ...normalizeCertificate(imported(), "certificate", NOW), id: "c1" };
    const b = { ...normalizeCertificate(managed(), "certificate", NOW), id: "c2" };
    const old = {
      ...normalizeCertificate(imported({ name: "old", certificatePem: expired.cert, privateKeyPem: expired.key })),
      id: "c3",
    };
    const roundTrip = (c: Certificate) => Certificate.fromJSON(JSON.parse(JSON.stringify(Certificate.toJSON(c))));
    assert.doesNotThrow(() => validateSnapshot(snap([a, b, old].map(roundTrip))));
  });

  test("a certificate whose key does not match is refused with its snapshot path", () => {
    const a = { ...normalizeCertificate(imported(), "certificate", NOW), id: "c1" };
    assertValidationError(
      () => validateSnapshot(snap([a, { ...a, id: "c2", name: "b", privateKeyPem: pki.otherKey() }])),
      "snapshot.certificates[1].private_key_pem",
      /does not match/,
    );
  });
});
