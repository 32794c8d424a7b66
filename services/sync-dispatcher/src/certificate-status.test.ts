import assert from "node:assert/strict";
import { test } from "node:test";
import { Certificate, CertificateStatus, CertificateType, Snapshot } from "@cpm/proto";
import { certificateSyncStatus, IssuedVersions } from "./certificate-status.ts";

const cert = (over: Partial<Certificate>) =>
  Certificate.fromPartial({ id: "c1", name: "site", type: CertificateType.CERTIFICATE_TYPE_MANAGED, ...over });
const snap = (version: number, certificates: Certificate[]) => Snapshot.fromPartial({ version, certificates });
const slaves = [
  { name: "old", ackedVersion: 4 },
  { name: "new", ackedVersion: 7 },
];

test("master-issued certificates only, with state, not-after and error as recorded", () => {
  const notAfter = new Date("2030-01-01T00:00:00Z");
  const s = snap(3, [
    cert({ status: CertificateStatus.CERTIFICATE_STATUS_ISSUED, fingerprintSha256: "aa", expiresAt: notAfter }),
    cert({
      id: "c2",
      name: "broken",
      status: CertificateStatus.CERTIFICATE_STATUS_FAILED,
      statusDetail: "x.example.com: refused",
    }),
    cert({ id: "c3", name: "imported", type: CertificateType.CERTIFICATE_TYPE_IMPORTED, fingerprintSha256: "bb" }),
  ]);
  const v = new IssuedVersions();
  v.observe(s);
  const r = certificateSyncStatus(s, v, slaves);
  assert.deepEqual(
    r.map((c) => [c.name, CertificateStatus[c.status], c.statusDetail, c.notAfter?.toISOString(), c.issuedVersion]),
    [
      ["site", "CERTIFICATE_STATUS_ISSUED", "", notAfter.toISOString(), 3],
      ["broken", "CERTIFICATE_STATUS_FAILED", "x.example.com: refused", undefined, 0],
    ],
  );
  assert.deepEqual(
    r[1]!.slaves,
    [
      { slaveName: "old", servesCurrent: false },
      { slaveName: "new", servesCurrent: false },
    ],
    "nothing issued: no slave serves it",
  );
});

test("a slave serves the current material once it acked the version that first held it (a renewal)", () => {
  const v = new IssuedVersions();
  v.observe(snap(2, [cert({ status: CertificateStatus.CERTIFICATE_STATUS_ISSUED, fingerprintSha256: "aa" })]));
  v.observe(snap(4, [cert({ status: CertificateStatus.CERTIFICATE_STATUS_ISSUED, fingerprintSha256: "aa" })]));
  const renewed = snap(6, [cert({ status: CertificateStatus.CERTIFICATE_STATUS_ISSUED, fingerprintSha256: "cc" })]);
  v.observe(renewed);
  v.observe(snap(7, [cert({ status: CertificateStatus.CERTIFICATE_STATUS_ISSUED, fingerprintSha256: "cc" })]));
  const [c] = certificateSyncStatus(renewed, v, slaves);
  assert.equal(c!.issuedVersion, 6);
  assert.deepEqual(c!.slaves, [
    { slaveName: "old", servesCurrent: false },
    { slaveName: "new", servesCurrent: true },
  ]);
});
