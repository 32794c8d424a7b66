import { randomUUID } from "node:crypto";
import {
  Certificate,
  CertificateIssuance,
  CertificateStatus,
  CertificateType,
  type RecordCertificateIssuanceRequest,
} from "@cpm/proto";
import {
  alreadyExists,
  canonicalJson,
  failedPrecondition,
  normalizeCertificate,
  notFound,
  ValidationError,
} from "@cpm/core";
import { permissionDenied, type CallContext } from "@cpm/grpc-kit";
import { inUse } from "./in-use.ts";
import type { Collection, ConfigHandlers, CrudMethods, ResourceDeps } from "./kind.ts";
import { certificateRow, type ConfigStore, type Tx } from "../store.ts";

const F = "certificate";

/** What API clients see unless an admin asks for keys: everything but the private keys (imported and issued). */
export function redactCertificate(c: Certificate): Certificate {
  return { ...c, privateKeyPem: "", issued: c.issued.map((e) => ({ ...e, privateKeyPem: "" })) };
}

const isMasterIssued = (c: Certificate) =>
  c.type === CertificateType.CERTIFICATE_TYPE_MANAGED &&
  c.issuance !== CertificateIssuance.CERTIFICATE_ISSUANCE_EACH_NODE;

const sameNames = (a: string[], b: string[]) => canonicalJson([...a].sort()) === canonicalJson([...b].sort());

/**
 * The issuance state a client write leaves: clients never set status or issued material. A
 * master-issued certificate keeps what was issued while its names stay the same (slaves keep
 * serving it); new names, or a change of type or issuance, start over as PENDING.
 */
function issuanceAfterWrite(
  input: Certificate,
  existing: Certificate | undefined,
): Pick<Certificate, "status" | "statusDetail" | "issued"> {
  if (!isMasterIssued(input))
    return { status: CertificateStatus.CERTIFICATE_STATUS_UNSPECIFIED, statusDetail: "", issued: [] };
  if (
    existing &&
    isMasterIssued(existing) &&
    sameNames(
      existing.domainNames,
      input.domainNames.map((d) => d.toLowerCase()),
    )
  ) {
    return { status: existing.status, statusDetail: existing.statusDetail, issued: existing.issued };
  }
  return { status: CertificateStatus.CERTIFICATE_STATUS_PENDING, statusDetail: "", issued: [] };
}

/**
 * Certificate CRUD.
 * - Input is checked and normalized by @cpm/core's normalizeCertificate with the clock
 *   (API writes refuse expired and not-yet-valid certificates; snapshots do not).
 * - Private keys are stored (imported certificates only: Caddy keeps the keys of managed
 *   ones) and go out only in GetSnapshot (admin/internal), or in Get/List when the caller
 *   asks with include_private_key(s) AND holds the admin role (PERMISSION_DENIED otherwise).
 *   Create and Update answer without the key: the caller just sent it.
 * - Update replaces every field, except that an imported certificate updated with an empty
 *   private_key_pem keeps its stored key (Get omits keys, so Get -> edit -> Update works;
 *   a renewed certificate for the same key needs only the new chain). The kept key is then
 *   checked against the new chain like any other.
 * - Names are unique (ALREADY_EXISTS). Deleting a certificate that proxy hosts or L4 proxy
 *   hosts use fails with FAILED_PRECONDITION naming them; an update keeps its id, so every
 *   reference stays valid.
 * - Every check runs inside the write: anything refused writes nothing and leaves the version.
 */
export class Certificates implements Collection<Certificate> {
  constructor(private readonly store: ConfigStore) {}

  async list(): Promise<Certificate[]> {
    const rows = await this.store.db.certificate.findMany({ orderBy: { name: "asc" } });
    return rows.map((r) => fromRow(r.data));
  }

  async get(id: string): Promise<Certificate> {
    if (!id) throw new ValidationError("id", "is required");
    const row = await this.store.db.certificate.findUnique({ where: { id } });
    if (!row) throw notFound("certificate", id);
    return fromRow(row.data);
  }

  create(input: Certificate | undefined) {
    if (!input) throw new ValidationError(F, "is required");
    return this.store.write(async (tx, now, changes) => {
      const cert = normalizeCertificate({ ...input, ...issuanceAfterWrite(input, undefined) }, F, { now });
      const created: Certificate = { ...cert, id: randomUUID(), createdAt: now, updatedAt: now };
      await checkName(tx, created);
      await tx.certificate.create({ data: certificateRow(created, now) });
      changes.put("certificates", created);
      return created;
    });
  }

  update(input: Certificate | undefined) {
    if (!input) throw new ValidationError(F, "is required");
    if (!input.id) throw new ValidationError(`${F}.id`, "is required");
    return this.store.write(async (tx, now, changes) => {
      const row = await tx.certificate.findUnique({ where: { id: input.id } });
      if (!row) throw notFound("certificate", input.id);
      const existing = fromRow(row.data);
      const keepKey =
        input.type === CertificateType.CERTIFICATE_TYPE_IMPORTED &&
        existing.type === CertificateType.CERTIFICATE_TYPE_IMPORTED &&
        !input.privateKeyPem.trim();
      const cert = normalizeCertificate(
        {
          ...input,
          ...(keepKey ? { privateKeyPem: existing.privateKeyPem } : {}),
          ...issuanceAfterWrite(input, existing),
        },
        F,
        { now },
      );
      const updated: Certificate = { ...cert, id: existing.id, createdAt: row.createdAt, updatedAt: now };
      await checkName(tx, updated);
      const data = certificateRow(updated, now);
      await tx.certificate.update({
        where: { id: updated.id },
        data: { name: data.name, data: data.data, updatedAt: data.updatedAt },
      });
      changes.put("certificates", updated);
      return updated;
    });
  }

  /**
   * Records what this instance's Caddy obtained for a master-issued certificate (master or
   * standalone only). A report for other names than the certificate's (it changed meanwhile)
   * is refused; one that changes nothing commits nothing.
   */
  async recordIssuance(req: RecordCertificateIssuanceRequest): Promise<{ version: number; changed: boolean }> {
    const check = (row: { data: string } | null): Certificate => {
      if (!row) throw notFound("certificate", req.certificateId);
      const existing = fromRow(row.data);
      if (!isMasterIssued(existing))
        throw failedPrecondition(`certificate "${existing.name}" is not a master-issued managed certificate`);
      if (!sameNames(existing.domainNames, req.domainNames)) {
        throw failedPrecondition(
          `domain_names: the report is for ${req.domainNames.join(", ")}; certificate "${existing.name}" now names ${existing.domainNames.join(", ")}`,
        );
      }
      return existing;
    };
    const next = (existing: Certificate) =>
      normalizeCertificate({ ...existing, status: req.status, statusDetail: req.statusDetail, issued: req.issued }, F);
    if (!req.certificateId) throw new ValidationError("certificate_id", "is required");
    const before = check(await this.store.db.certificate.findUnique({ where: { id: req.certificateId } }));
    if (canonicalJson(Certificate.toJSON(next(before))) === canonicalJson(Certificate.toJSON(before))) {
      return { version: (await this.store.info()).version, changed: false };
    }
    const { version } = await this.store.write(async (tx, now, changes) => {
      const existing = check(await tx.certificate.findUnique({ where: { id: req.certificateId } }));
      const updated: Certificate = { ...next(existing), updatedAt: now };
      await tx.certificate.update({
        where: { id: updated.id },
        data: { data: certificateRow(updated, now).data, updatedAt: now },
      });
      changes.put("certificates", updated);
    });
    return { version, changed: true };
  }

  delete(id: string) {
    if (!id) throw new ValidationError("id", "is required");
    return this.store.write(async (tx, _now, changes) => {
      const row = await tx.certificate.findUnique({ where: { id } });
      if (!row) throw notFound("certificate", id);
      const hosts = await tx.proxyHost.findMany({
        where: { certificateId: id },
        select: { name: true },
        orderBy: { name: "asc" },
      });
      const l4 = await tx.l4ProxyHost.findMany({
        where: { certificateId: id },
        select: { name: true },
        orderBy: { name: "asc" },
      });
      const used = inUse(
        "certificate",
        row.name,
        [
          { kind: "proxy host", names: hosts.map((h) => h.name) },
          { kind: "L4 proxy host", names: l4.map((h) => h.name) },
        ],
        "remove it from them first",
      );
      if (used) throw used;
      await tx.certificate.delete({ where: { id } });
      changes.remove("certificates", id);
    });
  }
}

/**
 * ConfigService handlers for certificates: callers see no private key unless an admin asks for
 * it (redactCertificate); RecordCertificateIssuance takes the renderer's reports (not on a slave).
 */
export function certificateHandlers(
  deps: ResourceDeps,
): ConfigHandlers<CrudMethods<"Certificate"> | "recordCertificateIssuance"> {
  const { mode } = deps;
  const certs = new Certificates(deps.store);
  return {
    createCertificate: async (req) => {
      const { result, version } = await certs.create(req.certificate);
      return { certificate: redactCertificate(result), configVersion: version };
    },
    getCertificate: async (req, ctx) => {
      const withKey = req.includePrivateKey && mayReadKeys(ctx, "include_private_key");
      const c = await certs.get(req.id);
      return { certificate: withKey ? c : redactCertificate(c) };
    },
    listCertificates: async (req, ctx) => {
      const withKeys = req.includePrivateKeys && mayReadKeys(ctx, "include_private_keys");
      const all = await certs.list();
      return { certificates: withKeys ? all : all.map(redactCertificate) };
    },
    updateCertificate: async (req) => {
      const { result, version } = await certs.update(req.certificate);
      return { certificate: redactCertificate(result), configVersion: version };
    },
    deleteCertificate: async (req) => ({ configVersion: (await certs.delete(req.id)).version }),
    recordCertificateIssuance: async (req, ctx) => {
      if (mode === "slave")
        throw failedPrecondition("RecordCertificateIssuance: on a slave the master issues certificates");
      const r = await certs.recordIssuance(req);
      if (r.changed)
        ctx.log.info(
          { certificate: req.certificateId, status: req.status, names: req.issued.map((e) => e.domainName) },
          "certificate issuance recorded",
        );
      return { configVersion: r.version, changed: r.changed };
    },
  };
}

function mayReadKeys(ctx: CallContext, field: string): true {
  if (ctx.principal.role !== "admin") throw permissionDenied(`${field}: private keys are for admin tokens only`);
  return true;
}

function fromRow(data: string): Certificate {
  return Certificate.fromJSON(JSON.parse(data));
}

async function checkName(tx: Tx, c: Certificate): Promise<void> {
  const same = await tx.certificate.findFirst({ where: { name: c.name, NOT: { id: c.id } } });
  if (same) throw alreadyExists(`${F}.name: a certificate named "${c.name}" already exists`);
}
