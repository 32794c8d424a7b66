import { Snapshot } from "@cpm/proto";
import { Counter, Gauge, metricSet, type Registry } from "@cpm/grpc-kit";
import type { ConfigStore } from "./store.ts";

const KINDS = ["proxyHosts", "l4ProxyHosts", "certificates", "accessLists"] as const;
/** The `kind` label: resource kinds as the API names them. */
const KIND_LABEL: Record<(typeof KINDS)[number], string> = {
  proxyHosts: "proxy_host",
  l4ProxyHosts: "l4_proxy_host",
  certificates: "certificate",
  accessLists: "access_list",
};

/**
 * config-service's own metrics. Commits are counted as they happen; version, resource
 * counts and the encoded snapshot size are read from the store when scraped (the snapshot
 * is built once per commit anyway, and its size is measured once per snapshot).
 */
export class ConfigMetrics {
  private store: ConfigStore | undefined;
  private readonly commits: Counter;
  private readonly sizes = new WeakMap<Snapshot, number>();

  constructor(registry: Registry) {
    this.commits = new Counter({
      name: "cpm_config_commits_total",
      help: "Configuration versions committed by this instance (API writes and, on a slave, applied snapshots).",
      registers: [registry],
    });
    // prom-client calls collect() with the gauge as `this`; these reach the collector itself.
    const snapshot = () => this.snapshot();
    const size = (s: Snapshot) => this.size(s);
    new Gauge({
      name: "cpm_config_version",
      help: "The instance's current configuration version.",
      registers: [registry],
      async collect() {
        const s = await snapshot();
        if (s) this.set(s.version);
      },
    });
    new Gauge({
      name: "cpm_config_resources",
      help: "Synced resources in the current configuration, by kind.",
      labelNames: ["kind"],
      registers: [registry],
      async collect() {
        const s = await snapshot();
        if (s) for (const k of KINDS) this.set({ kind: KIND_LABEL[k] }, s[k].length);
      },
    });
    new Gauge({
      name: "cpm_config_snapshot_bytes",
      help: "Size of the current configuration as a snapshot message (what a sync push carries), in bytes.",
      registers: [registry],
      async collect() {
        const s = await snapshot();
        if (s) this.set(size(s));
      },
    });
  }

  /** Follows `store`: counts its commits and reads its state when scraped. */
  observe(store: ConfigStore): void {
    this.store = store;
    store.onCommit((c) => this.commits.inc(c.writes));
  }

  private async snapshot(): Promise<Snapshot | undefined> {
    try {
      return await this.store?.snapshot();
    } catch {
      return undefined; // the database is away: the gauges keep their last values
    }
  }

  private size(s: Snapshot): number {
    let n = this.sizes.get(s);
    if (n === undefined) {
      n = Snapshot.encode(s).finish().length;
      this.sizes.set(s, n);
    }
    return n;
  }
}

/** The process's (or `registry`'s) config-service metrics. */
export const configMetrics = metricSet((registry) => new ConfigMetrics(registry));
