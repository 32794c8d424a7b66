import { CertificateStatus, type CertificateSyncStatus, type Snapshot } from "@cpm/proto";

/**
 * Per master-issued certificate, the first master version seen holding its current issued
 * material (fingerprint), so a slave's acked version tells whether it serves that material.
 * Versions are observed as snapshots are fetched (for the slaves or for a status call); after
 * a restart the first version seen stands in, which can only under-report a slave.
 */
export class IssuedVersions {
  private readonly seen = new Map<string, { fingerprint: string; version: number }>();

  /** Notes the certificates of a snapshot the master committed. */
  observe(snapshot: Pick<Snapshot, "version" | "certificates">): void {
    for (const c of snapshot.certificates) {
      if (c.status === CertificateStatus.CERTIFICATE_STATUS_UNSPECIFIED || !c.fingerprintSha256) continue;
      const before = this.seen.get(c.id);
      if (before?.fingerprint === c.fingerprintSha256 && before.version <= snapshot.version) continue;
      this.seen.set(c.id, { fingerprint: c.fingerprintSha256, version: snapshot.version });
    }
  }

  /** The version from which `fingerprint` is the certificate's issued material, 0 if unknown. */
  since(id: string, fingerprint: string): number {
    const s = this.seen.get(id);
    return s && s.fingerprint === fingerprint ? s.version : 0;
  }
}

/**
 * GetSyncStatus's certificates (pure): every master-issued managed certificate of the
 * master's current snapshot (status is set only for those), with each slave's standing.
 */
export function certificateSyncStatus(
  snapshot: Pick<Snapshot, "certificates">,
  versions: IssuedVersions,
  slaves: readonly { name: string; ackedVersion: number }[],
): CertificateSyncStatus[] {
  return snapshot.certificates
    .filter((c) => c.status !== CertificateStatus.CERTIFICATE_STATUS_UNSPECIFIED)
    .map((c) => {
      const issuedVersion = c.fingerprintSha256 ? versions.since(c.id, c.fingerprintSha256) : 0;
      return {
        certificateId: c.id,
        name: c.name,
        status: c.status,
        statusDetail: c.statusDetail,
        notAfter: c.expiresAt,
        fingerprintSha256: c.fingerprintSha256,
        issuedVersion,
        slaves: slaves.map((s) => ({
          slaveName: s.name,
          servesCurrent: issuedVersion > 0 && s.ackedVersion >= issuedVersion,
        })),
      };
    });
}
