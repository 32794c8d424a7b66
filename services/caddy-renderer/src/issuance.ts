import { readdirSync, readFileSync } from "node:fs";
import { X509Certificate } from "node:crypto";
import path from "node:path";
import {
  CertificateStatus,
  type Certificate,
  type IssuedCertificate,
  type RecordCertificateIssuanceRequest,
  type Snapshot,
} from "@cpm/proto";
import { certificateCovers, type Logger } from "@cpm/core";
import { IssuanceLog, type NameActivity } from "./issuance-log.ts";
import { masterIssuedInUse } from "./render/tls.ts";
import type { RenderOptions } from "./render/types.ts";

/*
 * Master-issued certificates: the master's (or a standalone instance's) Caddy obtains and
 * renews them like any managed certificate; this module reads what it obtained from Caddy's
 * storage and records it in config-service (RecordCertificateIssuance). That commit bumps
 * the version, so the issued chain and key reach every slave in the next snapshot, and a
 * renewal reaches them the same way. The renderer of a slave serves them with load_pem.
 */

/** A certificate Caddy keeps for one name (leaf-first chain and key, as PEM). */
export interface Obtained {
  certificatePem: string;
  privateKeyPem: string;
}

/** Caddy's file name for a name in its storage (certmagic's StorageKeys.Safe). */
function storageName(name: string): string {
  return name
    .toLowerCase()
    .replace(/\*/g, "wildcard_")
    .replace(/\.\./g, "")
    .replace(/[^a-z0-9_@.\-[\]:]/g, "");
}

/**
 * What Caddy's storage holds for `name` (`<storage>/certificates/<issuer>/<name>/<name>.crt`
 * and `.key`): of every issuer's copy that covers the name and has not expired at `now`, the
 * one that expires last. Undefined when there is none.
 */
export function readObtained(storageDir: string, name: string, now = new Date()): Obtained | undefined {
  const root = path.join(storageDir, "certificates");
  let issuers: string[];
  try {
    issuers = readdirSync(root);
  } catch {
    return undefined;
  }
  const file = storageName(name);
  let best: (Obtained & { notAfter: number }) | undefined;
  for (const issuer of issuers.sort()) {
    try {
      const certificatePem = readFileSync(path.join(root, issuer, file, `${file}.crt`), "utf8");
      const privateKeyPem = readFileSync(path.join(root, issuer, file, `${file}.key`), "utf8");
      const leaf = new X509Certificate(certificatePem);
      const notAfter = new Date(leaf.validTo).getTime();
      if (notAfter <= now.getTime() || !sanNames(leaf).some((san) => certificateCovers(san, name))) continue;
      if (!best || notAfter > best.notAfter) best = { certificatePem, privateKeyPem, notAfter };
    } catch {
      /* no copy from this issuer (or one being written) */
    }
  }
  return best && { certificatePem: best.certificatePem, privateKeyPem: best.privateKeyPem };
}

function sanNames(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? "")
    .split(", ")
    .map((p) => (p.startsWith("DNS:") ? p.slice(4) : p.startsWith("IP Address:") ? p.slice(11) : ""))
    .filter((n) => n !== "");
}

const leafDer = (pem: string) => new X509Certificate(pem).raw;

/** A status_detail is at most this long (config-service refuses longer ones). */
const MAX_STATUS_DETAIL = 2000;

/**
 * What to report for one master-issued certificate, given what Caddy obtained per name and
 * what Caddy last did per name (its log: issuance-log.ts) (pure). Undefined when the
 * certificate already records exactly that.
 * - FAILED when Caddy's last attempt for a name failed (status_detail: "name: CA's error"
 *   per failed name); what was issued before is kept and still served;
 * - PENDING while some name has no certificate yet;
 * - RENEWING when every name has one and Caddy is renewing (or re-obtaining) one of them;
 * - ISSUED otherwise.
 * A name whose copy vanished from storage keeps its recorded entry (slaves keep serving it).
 * A recorded FAILED stays while Caddy has said nothing new (e.g. after a restart of the
 * renderer) and nothing new was obtained.
 */
export function issuanceReport(
  cert: Certificate,
  obtained: ReadonlyMap<string, Obtained>,
  activity: (name: string) => NameActivity | undefined = () => undefined,
): RecordCertificateIssuanceRequest | undefined {
  const recorded = new Map(cert.issued.map((e) => [e.domainName, e]));
  let changed = false;
  const issued: IssuedCertificate[] = [];
  for (const name of cert.domainNames) {
    const now = obtained.get(name);
    const before = recorded.get(name);
    if (now && (!before || !leafDer(before.certificatePem).equals(leafDer(now.certificatePem)))) {
      issued.push({
        domainName: name,
        certificatePem: now.certificatePem,
        privateKeyPem: now.privateKeyPem,
        notAfter: undefined,
      });
      changed = true;
    } else if (before) {
      issued.push(before);
    }
  }
  const acts = cert.domainNames.map((name) => ({ name, act: activity(name) }));
  const failures = acts.flatMap(({ name, act }) => (act?.kind === "failed" ? [`${name}: ${act.error}`] : []));
  let status: CertificateStatus;
  let statusDetail = "";
  if (failures.length > 0) {
    status = CertificateStatus.CERTIFICATE_STATUS_FAILED;
    statusDetail = failures.join("; ");
    if (statusDetail.length > MAX_STATUS_DETAIL) statusDetail = `${statusDetail.slice(0, MAX_STATUS_DETAIL - 1)}…`;
  } else if (issued.length < cert.domainNames.length) {
    status = CertificateStatus.CERTIFICATE_STATUS_PENDING;
  } else if (acts.some(({ act }) => act?.kind === "renewing" || act?.kind === "obtaining")) {
    status = CertificateStatus.CERTIFICATE_STATUS_RENEWING;
  } else {
    status = CertificateStatus.CERTIFICATE_STATUS_ISSUED;
  }
  const silent = acts.every(({ act }) => act === undefined);
  if (!changed && silent && cert.status === CertificateStatus.CERTIFICATE_STATUS_FAILED) return undefined;
  if (!changed && status === cert.status && statusDetail === cert.statusDetail) return undefined;
  return { certificateId: cert.id, domainNames: cert.domainNames, status, statusDetail, issued };
}

/** What the recorder needs from config-service (the internal client). */
export interface IssuanceStore {
  getSnapshot(): Promise<Snapshot>;
  recordCertificateIssuance(
    req: RecordCertificateIssuanceRequest,
  ): Promise<{ configVersion: number; changed: boolean }>;
}

/**
 * Every `intervalMs` (and after each commit), reads what Caddy obtained for the
 * master-issued certificates in use and records what changed. Runs on a master or a
 * standalone instance, never on a slave.
 */
export class IssuanceRecorder {
  private timer: NodeJS.Timeout | undefined;
  private snapshot: Snapshot | undefined;
  private desiredVersion = -1;
  private running: Promise<void> | undefined;

  constructor(
    private readonly store: IssuanceStore,
    private readonly opts: RenderOptions,
    private readonly storageDir: string,
    private readonly log: Logger,
    private readonly intervalMs = 2000,
    private readonly caddyLog?: IssuanceLog,
  ) {}

  start(): void {
    const loop = () => {
      this.timer = setTimeout(() => void this.scan().finally(loop), this.intervalMs);
      this.timer.unref();
    };
    loop();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  onCommit(c: { version: number }): void {
    this.desiredVersion = c.version;
  }

  /** One pass (at most one at a time). */
  scan(): Promise<void> {
    this.running ??= this.scanOnce().finally(() => (this.running = undefined));
    return this.running;
  }

  private async scanOnce(): Promise<void> {
    try {
      if (!this.snapshot || this.snapshot.version < this.desiredVersion) this.snapshot = await this.store.getSnapshot();
      this.caddyLog?.poll();
      const activity = (name: string) => this.caddyLog?.activity(name);
      for (const cert of masterIssuedInUse(this.snapshot, this.opts)) {
        const obtained = new Map<string, Obtained>();
        for (const name of cert.domainNames) {
          const o = readObtained(this.storageDir, name);
          if (o) obtained.set(name, o);
        }
        const report = issuanceReport(cert, obtained, activity);
        if (!report) continue;
        const r = await this.store.recordCertificateIssuance(report);
        if (r.changed) {
          this.log.info(
            {
              certificate: cert.name,
              status: CertificateStatus[report.status],
              detail: report.statusDetail || undefined,
              names: report.issued.map((e) => e.domainName),
            },
            "certificate issuance recorded",
          );
          this.desiredVersion = Math.max(this.desiredVersion, r.configVersion);
        }
      }
    } catch (err) {
      this.log.warn(
        { err: (err as { details?: string }).details ?? (err as Error).message },
        "cannot record certificate issuance",
      );
      this.snapshot = undefined;
    }
  }
}
