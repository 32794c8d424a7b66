import { status, type ServiceError } from "@grpc/grpc-js";
import {
  AccessList,
  Certificate as CertificateProto,
  CertificateType,
  L4ProxyHost,
  ProxyHost,
  Settings,
  type Certificate,
  type ConfigServiceClient,
} from "@cpm/proto";
import { unary } from "@cpm/grpc-kit";

/** A small seeded generator (mulberry32): the same seed gives the same sequence. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

export type Kind = "proxyHost" | "l4Host" | "certificate" | "accessList";

/** What the test wrote and compares: the fields it sets, normalized as the API returns them. */
export type Shape = Record<string, unknown>;

interface Entry {
  /** The version of the acknowledged write that set this state. */
  version: number;
  /** null: deleted. */
  shape: Shape | null;
}

/**
 * Every write the master acknowledged, per resource id: the state of the newest one (by its
 * committed version, since writes run concurrently). A write whose outcome is unknown (the
 * connection died with it in flight) makes its resource uncertain; an unknown create adds a
 * name that may or may not exist.
 */
export class Model {
  readonly entries = new Map<Kind, Map<string, Entry>>();
  readonly uncertain = new Set<string>();
  readonly uncertainNames = new Set<string>();
  settings: Entry | undefined;
  settingsUncertain = false;
  /** Versions the master returned for acknowledged writes. */
  readonly ackedVersions = new Set<number>();

  private table(kind: Kind) {
    let t = this.entries.get(kind);
    if (!t) this.entries.set(kind, (t = new Map<string, Entry>()));
    return t;
  }

  ack(kind: Kind, id: string, version: number, shape: Shape | null): void {
    this.ackedVersions.add(version);
    const t = this.table(kind);
    const cur = t.get(id);
    if (!cur || cur.version < version) t.set(id, { version, shape });
  }

  ackSettings(version: number, shape: Shape): void {
    this.ackedVersions.add(version);
    if (!this.settings || this.settings.version < version) this.settings = { version, shape };
  }

  /** Live ids of a kind (acknowledged, not deleted). */
  live(kind: Kind): Array<[string, Shape]> {
    return [...this.table(kind)].filter(([, e]) => e.shape).map(([id, e]) => [id, e.shape!]);
  }

  get(kind: Kind, id: string): Entry | undefined {
    return this.table(kind).get(id);
  }
}

/** Expected refusals of a well-formed write racing others: counted, not failures. */
export function isConflict(e: unknown): boolean {
  const err = e as ServiceError;
  if (err.code === status.ALREADY_EXISTS || err.code === status.FAILED_PRECONDITION || err.code === status.NOT_FOUND)
    return true;
  // A reference to a certificate or access list deleted by a concurrent write.
  return err.code === status.INVALID_ARGUMENT && /certificate_id|access_list_id/.test(err.details ?? "");
}

/** A write whose outcome is unknown: the master (or the link to it) died while it was in flight. */
export function isIndeterminate(e: unknown): boolean {
  const code = (e as ServiceError).code;
  // A client closed with its instance (killed for a restart): the write was never sent.
  if (code === undefined && /shut down|closed/i.test(String(e))) return true;
  return (
    code === status.UNAVAILABLE ||
    code === status.DEADLINE_EXCEEDED ||
    code === status.CANCELLED ||
    code === status.INTERNAL ||
    code === status.UNKNOWN
  );
}

const DOMAINS = Array.from({ length: 40 }, (_, i) => `h${i}.chaos.test`);

export function proxyHostShape(h: ProxyHost): Shape {
  return {
    name: h.name,
    domains: h.domains,
    upstreams: h.upstreams,
    certificateId: h.certificateId,
    accessListId: h.accessListId,
    hstsEnabled: h.hstsEnabled,
    allowWebsocket: h.allowWebsocket,
    enabled: h.enabled ?? true,
  };
}
export function l4Shape(h: L4ProxyHost): Shape {
  return { name: h.name, listenAddress: h.listenAddress, upstreams: h.upstreams, enabled: h.enabled ?? true };
}
export function certificateShape(c: Certificate): Shape {
  return { name: c.name, type: c.type, domainNames: c.domainNames };
}
export function accessListShape(a: AccessList): Shape {
  return { name: a.name, allow: a.allow, deny: a.deny, users: a.users.map((u) => u.username), passAuth: a.passAuth };
}
export function settingsShape(s: Settings): Shape {
  return { primaryDomain: s.general?.primaryDomain ?? "", dial: s.http?.upstreamDialTimeoutSeconds ?? 0 };
}

export interface OpCounts {
  acked: number;
  conflicts: Record<string, number>;
  indeterminate: number;
}

/**
 * Random writes against the master's public API, each recorded in the model when the master
 * acknowledges it. Randomness comes from `rng` only, so a seed replays the same choices.
 */
export class Workload {
  private n = 0;
  readonly counts: OpCounts = { acked: 0, conflicts: {}, indeterminate: 0 };
  /** Names of the operations run, by kind of operation. */
  readonly ops: Record<string, number> = {};

  constructor(
    private readonly rng: Rng,
    readonly model: Model,
    private readonly client: () => ConfigServiceClient,
    private readonly token: string,
    private readonly upstreamPort: number,
    /** Before every name this workload creates, so that two workloads on one model never pick the same. */
    private readonly prefix = "",
  ) {}

  /** Picks the next operation now (so the choice sequence depends on the seed only) and returns it to run. */
  next(): { name: string; run: () => Promise<void> } {
    const r = this.rng;
    const n = ++this.n;
    const m = this.model;
    const hosts = m.live("proxyHost");
    const l4s = m.live("l4Host");
    const certs = m.live("certificate");
    const acls = m.live("accessList");
    const roll = r.next();
    const refs = () => ({
      certificateId: certs.length && r.chance(0.2) ? r.pick(certs)[0] : "",
      accessListId: acls.length && r.chance(0.2) ? r.pick(acls)[0] : "",
    });
    const hostBody = () => ({
      domains: [...new Set([r.pick(DOMAINS), ...(r.chance(0.3) ? [r.pick(DOMAINS)] : [])])],
      upstreams: [`127.0.0.1:${this.upstreamPort}`],
      hstsEnabled: r.chance(0.3),
      allowWebsocket: r.chance(0.5),
      enabled: r.chance(0.9),
      ...refs(),
    });
    const l4Body = () => ({
      listenAddress: `:${r.int(20000, 29999)}`,
      upstreams: [`127.0.0.1:${this.upstreamPort}`],
      enabled: r.chance(0.9),
    });
    const aclBody = () => ({
      allow: r.chance(0.5) ? [`10.${r.int(0, 255)}.0.0/16`] : [],
      deny: r.chance(0.3) ? [`192.0.2.${r.int(1, 254)}`] : [],
      passAuth: r.chance(0.3),
    });
    const c = this.client;
    const t = this.token;

    if (roll < 0.3 || hosts.length === 0) {
      const name = `${this.prefix}host-${n}`;
      const body = hostBody();
      return this.op("createProxyHost", "proxyHost", undefined, name, async () => {
        const res = await unary(
          c().createProxyHost.bind(c()),
          { proxyHost: ProxyHost.fromPartial({ name, ...body }) },
          t,
        );
        return { id: res.proxyHost!.id, version: res.configVersion, shape: proxyHostShape(res.proxyHost!) };
      });
    }
    if (roll < 0.5) {
      const [id, shape] = r.pick(hosts);
      const body = hostBody();
      return this.op("updateProxyHost", "proxyHost", id, undefined, async () => {
        const res = await unary(
          c().updateProxyHost.bind(c()),
          { proxyHost: ProxyHost.fromPartial({ id, name: shape.name as string, ...body }) },
          t,
        );
        return { id, version: res.configVersion, shape: proxyHostShape(res.proxyHost!) };
      });
    }
    if (roll < 0.6) {
      const [id] = r.pick(hosts);
      return this.op("deleteProxyHost", "proxyHost", id, undefined, async () => {
        const res = await unary(c().deleteProxyHost.bind(c()), { id }, t);
        return { id, version: res.configVersion, shape: null };
      });
    }
    if (roll < 0.7) {
      if (l4s.length && r.chance(0.5)) {
        const [id, shape] = r.pick(l4s);
        if (r.chance(0.5)) {
          return this.op("deleteL4ProxyHost", "l4Host", id, undefined, async () => {
            const res = await unary(c().deleteL4ProxyHost.bind(c()), { id }, t);
            return { id, version: res.configVersion, shape: null };
          });
        }
        const body = l4Body();
        return this.op("updateL4ProxyHost", "l4Host", id, undefined, async () => {
          const res = await unary(
            c().updateL4ProxyHost.bind(c()),
            { l4ProxyHost: L4ProxyHost.fromPartial({ id, name: shape.name as string, ...body }) },
            t,
          );
          return { id, version: res.configVersion, shape: l4Shape(res.l4ProxyHost!) };
        });
      }
      const name = `${this.prefix}l4-${n}`;
      const body = l4Body();
      return this.op("createL4ProxyHost", "l4Host", undefined, name, async () => {
        const res = await unary(
          c().createL4ProxyHost.bind(c()),
          { l4ProxyHost: L4ProxyHost.fromPartial({ name, ...body }) },
          t,
        );
        return { id: res.l4ProxyHost!.id, version: res.configVersion, shape: l4Shape(res.l4ProxyHost!) };
      });
    }
    if (roll < 0.78) {
      if (certs.length > 2 || (certs.length && r.chance(0.4))) {
        const [id] = r.pick(certs);
        return this.op("deleteCertificate", "certificate", id, undefined, async () => {
          const res = await unary(c().deleteCertificate.bind(c()), { id }, t);
          return { id, version: res.configVersion, shape: null };
        });
      }
      const name = `${this.prefix}cert-${n}`;
      const domainNames = [`c${r.int(0, 9)}.chaos.internal`];
      return this.op("createCertificate", "certificate", undefined, name, async () => {
        const res = await unary(
          c().createCertificate.bind(c()),
          {
            certificate: CertificateProto.fromPartial({
              name,
              type: CertificateType.CERTIFICATE_TYPE_MANAGED,
              domainNames,
            }),
          },
          t,
        );
        return { id: res.certificate!.id, version: res.configVersion, shape: certificateShape(res.certificate!) };
      });
    }
    if (roll < 0.92) {
      if (acls.length && r.chance(0.6)) {
        const [id, shape] = r.pick(acls);
        if (r.chance(0.4)) {
          return this.op("deleteAccessList", "accessList", id, undefined, async () => {
            const res = await unary(c().deleteAccessList.bind(c()), { id }, t);
            return { id, version: res.configVersion, shape: null };
          });
        }
        const body = aclBody();
        // Users sent without a password keep their hash.
        const users = (shape.users as string[]).map((username) => ({ username }));
        return this.op("updateAccessList", "accessList", id, undefined, async () => {
          const res = await unary(
            c().updateAccessList.bind(c()),
            { accessList: AccessList.fromPartial({ id, name: shape.name as string, users, ...body }) },
            t,
          );
          return { id, version: res.configVersion, shape: accessListShape(res.accessList!) };
        });
      }
      const name = `${this.prefix}acl-${n}`;
      const body = aclBody();
      const users = r.chance(0.3) ? [{ username: `u${n}`, password: "a long passphrase" }] : [];
      return this.op("createAccessList", "accessList", undefined, name, async () => {
        const res = await unary(
          c().createAccessList.bind(c()),
          { accessList: AccessList.fromPartial({ name, users, ...body }) },
          t,
        );
        return { id: res.accessList!.id, version: res.configVersion, shape: accessListShape(res.accessList!) };
      });
    }
    const settings = Settings.fromPartial({
      general: { primaryDomain: `p${r.int(0, 99)}.chaos.test` },
      http: { upstreamDialTimeoutSeconds: r.int(0, 30) },
    });
    return {
      name: "updateSettings",
      run: async () => {
        this.ops.updateSettings = (this.ops.updateSettings ?? 0) + 1;
        try {
          const res = await unary(c().updateSettings.bind(c()), { settings }, t);
          this.model.ackSettings(res.configVersion, settingsShape(res.settings!));
          this.counts.acked++;
        } catch (e) {
          if (isIndeterminate(e)) {
            this.model.settingsUncertain = true;
            this.counts.indeterminate++;
          } else throw e;
        }
      },
    };
  }

  private op(
    name: string,
    kind: Kind,
    id: string | undefined,
    createdName: string | undefined,
    call: () => Promise<{ id: string; version: number; shape: Shape | null }>,
  ): { name: string; run: () => Promise<void> } {
    return {
      name,
      run: async () => {
        this.ops[name] = (this.ops[name] ?? 0) + 1;
        try {
          const res = await call();
          this.model.ack(kind, res.id, res.version, res.shape);
          this.counts.acked++;
        } catch (e) {
          if (isIndeterminate(e)) {
            this.counts.indeterminate++;
            if (id) this.model.uncertain.add(id);
            if (createdName) this.model.uncertainNames.add(createdName);
          } else if (isConflict(e)) {
            const code = status[(e as ServiceError).code];
            this.counts.conflicts[code] = (this.counts.conflicts[code] ?? 0) + 1;
          } else {
            throw new Error(`${name}: ${(e as ServiceError).details ?? String(e)}`, { cause: e });
          }
        }
      },
    };
  }
}
