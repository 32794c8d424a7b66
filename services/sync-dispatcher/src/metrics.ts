import { Compatibility, NackCode, type SlaveStatus } from "@cpm/proto";
import type { SlaveTarget } from "@cpm/core";
import {
  Counter,
  Gauge,
  Histogram,
  metricSet,
  NACK_CODE_LABELS,
  nackCodeLabel,
  scrapedGauge,
  type Registry,
} from "@cpm/grpc-kit";

/** Per-slave labels: the name and address (host:port) from INSTANCE_SLAVES; never its URL or token. */
const SLAVE_LABELS = ["slave", "address"] as const;

/** Propagation buckets in seconds: from a local slave (tens of ms) to one that was away for minutes. */
const PROPAGATION_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900];

/** Commit times kept for the propagation histogram; versions older than these are not measured. */
const KEPT_COMMITS = 1000;

/** What one slave link reports as it works. */
export interface LinkMetrics {
  /** A snapshot of `bytes` bytes was written to the slave's stream. */
  pushed(bytes: number): void;
  /** The slave ACKed `version`. */
  acked(version: number): void;
  /** The slave NACKed, with its code. */
  nacked(code: NackCode): void;
}

/** Reports nothing (links built without metrics, as in unit tests). */
export const NO_LINK_METRICS: LinkMetrics = { pushed() {}, acked() {}, nacked() {} };

/**
 * The dispatcher's own metrics. Counters are fed by each slave link; connected, acked version
 * and lag are read from the links' status when scraped. The propagation histogram measures,
 * per slave, from a version's commit on the master (config-service's commit time) to that
 * slave's first ACK of it; versions committed before the dispatcher started are not measured
 * (their commit may be long past), nor versions a burst coalesced away.
 */
export class DispatcherMetrics {
  private links: (() => { target: SlaveTarget; status: SlaveStatus }[]) | undefined;
  private masterVersion = 0;
  private baseline: number | undefined;
  private readonly commits = new Map<number, number>();
  private readonly pushes: Counter;
  private readonly bytes: Counter;
  private readonly acks: Counter;
  private readonly nacks: Counter;
  private readonly propagation: Histogram;

  constructor(registry: Registry) {
    const registers = [registry];
    const labelNames = SLAVE_LABELS;
    this.pushes = new Counter({
      name: "cpm_dispatcher_pushes_total",
      help: "Snapshots pushed to the slave.",
      labelNames,
      registers,
    });
    this.bytes = new Counter({
      name: "cpm_dispatcher_sent_bytes_total",
      help: "Bytes of snapshots pushed to the slave (encoded messages).",
      labelNames,
      registers,
    });
    this.acks = new Counter({
      name: "cpm_dispatcher_acks_total",
      help: "ACKs received from the slave.",
      labelNames,
      registers,
    });
    this.nacks = new Counter({
      name: "cpm_dispatcher_nacks_total",
      help: "NACKs received from the slave, by NACK code.",
      labelNames: [...labelNames, "code"],
      registers,
    });
    this.propagation = new Histogram({
      name: "cpm_dispatcher_propagation_seconds",
      help: "From a version's commit on the master to the slave's first ACK of that version (versions committed while the dispatcher runs).",
      labelNames,
      buckets: PROPAGATION_BUCKETS,
      registers,
    });
    const links = () => this.links?.() ?? [];
    const perSlave = (name: string, help: string, read: (s: SlaveStatus) => number) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          for (const { target, status } of links()) this.set(slaveLabels(target), read(status));
        },
      });
    perSlave("cpm_dispatcher_slave_connected", "1 while the sync stream to the slave is up, else 0.", (s) =>
      Number(s.connected),
    );
    perSlave(
      "cpm_dispatcher_slave_acked_version",
      "The last configuration version the slave ACKed (0: none since the dispatcher started).",
      (s) => s.ackedVersion,
    );
    perSlave(
      "cpm_dispatcher_slave_lag_versions",
      "How many versions the slave is behind the master (master version - acked version).",
      (s) => s.lag,
    );
    perSlave(
      "cpm_dispatcher_slave_incompatible",
      "1 while the slave cannot serve the master's configuration (status INCOMPATIBLE: it keeps its last good one), else 0.",
      (s) => Number(s.compatibility === Compatibility.COMPATIBILITY_INCOMPATIBLE),
    );
    new Gauge({
      name: "cpm_dispatcher_slave_info",
      help: "1 per slave, labelled with the release it announced and the snapshot schema it is sent (empty and 0 before its stream first opened).",
      labelNames: [...labelNames, "release", "schema_version"],
      registers,
      collect() {
        this.reset();
        for (const { target, status } of links())
          this.set(
            { ...slaveLabels(target), release: status.release, schema_version: String(status.schemaVersion) },
            1,
          );
      },
    });
    scrapedGauge(
      registry,
      "cpm_dispatcher_master_version",
      "The master's configuration version, as the dispatcher last heard it from config-service.",
      () => this.masterVersion,
    );
  }

  /** Reads the links' status when scraped. */
  observe(links: () => { target: SlaveTarget; status: SlaveStatus }[]): void {
    this.links = links;
  }

  /** config-service announced a committed version (the first announcement is the baseline, not a commit seen live). */
  committed(version: number, committedAt: Date | undefined): void {
    this.masterVersion = version;
    if (this.baseline === undefined) {
      this.baseline = version;
      return;
    }
    if (version <= this.baseline || committedAt === undefined || this.commits.has(version)) return;
    this.commits.set(version, committedAt.getTime());
    if (this.commits.size > KEPT_COMMITS) this.commits.delete(this.commits.keys().next().value!);
  }

  /** The counters of one slave, initialised at 0 so every series exists from the start. */
  link(target: SlaveTarget): LinkMetrics {
    const labels = slaveLabels(target);
    for (const c of [this.pushes, this.bytes, this.acks]) c.inc(labels, 0);
    this.propagation.zero(labels);
    for (const code of NACK_CODE_LABELS) this.nacks.inc({ ...labels, code }, 0);
    let measuredUpTo = 0;
    return {
      pushed: (bytes) => {
        this.pushes.inc(labels);
        this.bytes.inc(labels, bytes);
      },
      acked: (version) => {
        this.acks.inc(labels);
        // Once per version and slave: a forced or periodic push of the same version is not a propagation.
        const at = version > measuredUpTo ? this.commits.get(version) : undefined;
        measuredUpTo = Math.max(measuredUpTo, version);
        if (at !== undefined) this.propagation.observe(labels, Math.max(0, (Date.now() - at) / 1000));
      },
      nacked: (code) => this.nacks.inc({ ...labels, code: nackCodeLabel(code) }),
    };
  }
}

function slaveLabels(t: SlaveTarget): { slave: string; address: string } {
  return { slave: t.name, address: t.address };
}

/** The process's (or `registry`'s) dispatcher metrics. */
export const dispatcherMetrics = metricSet((registry) => new DispatcherMetrics(registry));
