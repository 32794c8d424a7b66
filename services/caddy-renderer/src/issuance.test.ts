import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, renameSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { Certificate, CertificateIssuance, CertificateStatus, CertificateType } from "@cpm/proto";
import { issuanceReport, type Obtained } from "./issuance.ts";
import {
  IssuanceLog,
  MAX_DETAIL_LENGTH,
  parseIssuanceLine,
  sanitizeDetail,
  type NameActivity,
} from "./issuance-log.ts";
import { makeSelfSigned } from "./render/test-support.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "cpm-issuance-"));
const line = (o: Record<string, unknown>) => JSON.stringify({ level: "info", ts: 1, ...o });

describe("Caddy's issuance log lines", () => {
  test("an order's steps are read from tls.obtain and tls.renew", () => {
    assert.deepEqual(
      parseIssuanceLine(line({ logger: "tls.obtain", msg: "obtaining certificate", identifier: "A.example.com" })),
      { name: "a.example.com", activity: { kind: "obtaining" } },
    );
    assert.deepEqual(
      parseIssuanceLine(
        line({ logger: "tls.renew", msg: "renewing certificate", identifier: "a.example.com", remaining: 10 }),
      ),
      { name: "a.example.com", activity: { kind: "renewing" } },
    );
    assert.deepEqual(
      parseIssuanceLine(
        line({ logger: "tls.renew", msg: "certificate renewed successfully", identifier: "a.example.com" }),
      ),
      { name: "a.example.com", activity: { kind: "obtained" } },
    );
    assert.deepEqual(
      parseIssuanceLine(
        line({
          level: "error",
          logger: "tls.obtain",
          msg: "could not get certificate from issuer",
          identifier: "a.example.com",
          error: "HTTP 400 urn:ietf:params:acme:error:connection - no such host",
        }),
      ),
      {
        name: "a.example.com",
        activity: { kind: "failed", error: "HTTP 400 urn:ietf:params:acme:error:connection - no such host" },
      },
    );
  });

  test("other loggers, other messages and broken lines say nothing", () => {
    assert.equal(
      parseIssuanceLine(line({ logger: "http.log.access", msg: "obtaining certificate", identifier: "a.example.com" })),
      undefined,
    );
    assert.equal(
      parseIssuanceLine(line({ logger: "tls.obtain", msg: "acquiring lock", identifier: "a.example.com" })),
      undefined,
    );
    assert.equal(parseIssuanceLine(line({ logger: "tls.obtain", msg: "obtaining certificate" })), undefined);
    assert.equal(parseIssuanceLine("{not json"), undefined);
    assert.equal(parseIssuanceLine("null"), undefined);
  });

  test("a CA's error is stored without control characters or braces, and bounded", () => {
    assert.equal(sanitizeDetail("bad\u0000\u001b[31m thing\r\n{env.SECRET}\u2028x"), "bad [31m thing (env.SECRET) x");
    const long = sanitizeDetail("e".repeat(5000));
    assert.equal(long.length, MAX_DETAIL_LENGTH);
    assert.ok(long.endsWith("…"));
  });

  test("the log file is followed: earlier lines are skipped, a failure stands through retries, a rotated file is read again", () => {
    const file = path.join(dir, "issuance.log");
    writeFileSync(
      file,
      line({
        logger: "tls.obtain",
        msg: "could not get certificate from issuer",
        identifier: "old.example.com",
        error: "old",
      }) + "\n",
    );
    const log = new IssuanceLog(file);
    log.poll();
    assert.equal(log.activity("old.example.com"), undefined, "lines from an earlier run are not replayed");
    appendFileSync(
      file,
      line({ logger: "tls.obtain", msg: "obtaining certificate", identifier: "a.example.com" }) + "\n",
    );
    appendFileSync(
      file,
      line({
        logger: "tls.obtain",
        msg: "could not get certificate from issuer",
        identifier: "a.example.com",
        error: "refused",
      }) +
        "\n" +
        '{"logger":"tls.ob',
    );
    log.poll();
    assert.deepEqual(log.activity("a.example.com"), { kind: "failed", error: "refused" });
    appendFileSync(file, 'tain","msg":"obtaining certificate","identifier":"a.example.com"}\n');
    log.poll();
    assert.deepEqual(
      log.activity("a.example.com"),
      { kind: "failed", error: "refused" },
      "a retry keeps the last failure",
    );
    renameSync(file, `${file}.1`);
    writeFileSync(
      file,
      line({ logger: "tls.obtain", msg: "certificate obtained successfully", identifier: "a.example.com" }) + "\n",
    );
    log.poll();
    assert.deepEqual(log.activity("a.example.com"), { kind: "obtained" });
  });

  test("a log file that does not exist yet is read from its start once Caddy writes it", () => {
    const file = path.join(dir, "later.log");
    const log = new IssuanceLog(file);
    log.poll();
    writeFileSync(file, line({ logger: "tls.renew", msg: "renewing certificate", identifier: "b.example.com" }) + "\n");
    log.poll();
    assert.deepEqual(log.activity("b.example.com"), { kind: "renewing" });
  });
});

describe("issuanceReport", () => {
  const a = makeSelfSigned(dir, "a", ["DNS:a.example.com"]);
  const b = makeSelfSigned(dir, "b", ["DNS:b.example.com"]);
  const a2 = makeSelfSigned(dir, "a", ["DNS:a.example.com"]);
  const ob = (c: { cert: string; key: string }): Obtained => ({ certificatePem: c.cert, privateKeyPem: c.key });
  const base = Certificate.fromPartial({
    id: "c1",
    name: "c1",
    type: CertificateType.CERTIFICATE_TYPE_MANAGED,
    issuance: CertificateIssuance.CERTIFICATE_ISSUANCE_MASTER,
    domainNames: ["a.example.com", "b.example.com"],
    status: CertificateStatus.CERTIFICATE_STATUS_PENDING,
  });
  const entry = (name: string, c: { cert: string; key: string }) => ({
    domainName: name,
    certificatePem: c.cert,
    privateKeyPem: c.key,
    notAfter: undefined,
  });
  const issuedCert = Certificate.fromPartial({
    ...base,
    status: CertificateStatus.CERTIFICATE_STATUS_ISSUED,
    issued: [entry("a.example.com", a), entry("b.example.com", b)],
  });
  const acts = (m: Record<string, NameActivity>) => (name: string) => m[name];

  test("PENDING until every name is obtained, then ISSUED with every entry", () => {
    assert.equal(
      issuanceReport(base, new Map([["a.example.com", ob(a)]]))?.status,
      CertificateStatus.CERTIFICATE_STATUS_PENDING,
    );
    const r = issuanceReport(
      base,
      new Map([
        ["a.example.com", ob(a)],
        ["b.example.com", ob(b)],
      ]),
    );
    assert.equal(r?.status, CertificateStatus.CERTIFICATE_STATUS_ISSUED);
    assert.deepEqual(
      r?.issued.map((e) => e.domainName),
      ["a.example.com", "b.example.com"],
    );
    assert.equal(
      issuanceReport(
        issuedCert,
        new Map([
          ["a.example.com", ob(a)],
          ["b.example.com", ob(b)],
        ]),
      ),
      undefined,
      "nothing new: nothing to record",
    );
  });

  test("FAILED with each failed name's error; what was issued is kept", () => {
    const r = issuanceReport(
      issuedCert,
      new Map([["a.example.com", ob(a)]]),
      acts({ "b.example.com": { kind: "failed", error: "connection refused" } }),
    );
    assert.equal(r?.status, CertificateStatus.CERTIFICATE_STATUS_FAILED);
    assert.equal(r?.statusDetail, "b.example.com: connection refused");
    assert.equal(r?.issued.length, 2);
    const both = issuanceReport(
      base,
      new Map(),
      acts({
        "a.example.com": { kind: "failed", error: "x" },
        "b.example.com": { kind: "failed", error: "y".repeat(1990) },
      }),
    );
    assert.equal(both?.statusDetail.length, 2000, "bounded to what config-service accepts");
  });

  test("RENEWING while Caddy renews a name that was issued, ISSUED with the new leaf afterwards", () => {
    const now = new Map([
      ["a.example.com", ob(a)],
      ["b.example.com", ob(b)],
    ]);
    assert.equal(
      issuanceReport(issuedCert, now, acts({ "a.example.com": { kind: "renewing" } }))?.status,
      CertificateStatus.CERTIFICATE_STATUS_RENEWING,
    );
    const renewing = { ...issuedCert, status: CertificateStatus.CERTIFICATE_STATUS_RENEWING };
    const r = issuanceReport(
      renewing,
      new Map([
        ["a.example.com", ob(a2)],
        ["b.example.com", ob(b)],
      ]),
      acts({ "a.example.com": { kind: "obtained" } }),
    );
    assert.equal(r?.status, CertificateStatus.CERTIFICATE_STATUS_ISSUED);
    assert.equal(r?.issued[0]?.certificatePem, a2.cert, "the renewed leaf replaces the old one");
  });

  test("a recorded FAILED stays while Caddy has said nothing since, and clears once the name is obtained", () => {
    const failed = { ...base, status: CertificateStatus.CERTIFICATE_STATUS_FAILED, statusDetail: "a.example.com: x" };
    assert.equal(issuanceReport(failed, new Map()), undefined);
    assert.equal(
      issuanceReport(
        failed,
        new Map([
          ["a.example.com", ob(a)],
          ["b.example.com", ob(b)],
        ]),
      )?.status,
      CertificateStatus.CERTIFICATE_STATUS_ISSUED,
    );
  });
});
