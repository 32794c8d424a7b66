import type { SyncResponse } from "@cpm/proto";
import { Counter, metricSet, NACK_CODE_LABELS, nackCodeLabel, scrapedGauge, type Registry } from "@cpm/grpc-kit";
import type { ReceiverState } from "./receiver.ts";

/**
 * The receiver's own metrics: snapshots as they arrive and as they are answered (ACK:
 * applied, NACK: refused by code), and the applier's state read when scraped.
 */
export class ReceiverMetrics {
  private state: (() => ReceiverState) | undefined;
  private readonly received: Counter;
  private readonly applied: Counter;
  private readonly refused: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    this.received = new Counter({
      name: "cpm_receiver_snapshots_received_total",
      help: "Snapshots received from the master.",
      registers,
    });
    this.applied = new Counter({
      name: "cpm_receiver_snapshots_applied_total",
      help: "Snapshots answered with an ACK (applied and running in Caddy, or already running).",
      registers,
    });
    this.refused = new Counter({
      name: "cpm_receiver_snapshots_refused_total",
      help: "Snapshots answered with a NACK, by NACK code.",
      labelNames: ["code"],
      registers,
    });
    for (const code of NACK_CODE_LABELS) this.refused.inc({ code }, 0);
    scrapedGauge(
      registry,
      "cpm_receiver_applied_version",
      "The configuration version this slave has applied (as last read from its config-service).",
      () => this.state?.().appliedVersion,
    );
    scrapedGauge(
      registry,
      "cpm_receiver_last_sync_timestamp_seconds",
      "When the last snapshot was ACKed (Unix time, seconds); 0: never.",
      () => {
        const s = this.state?.();
        return s && (s.lastSyncTime ? s.lastSyncTime.getTime() / 1000 : 0);
      },
    );
  }

  /** Reads the applier's state when scraped. */
  observe(state: () => ReceiverState): void {
    this.state = state;
  }

  /** A snapshot arrived on a master's stream. */
  receivedSnapshot(): void {
    this.received.inc();
  }

  /** An answer went back to the master. */
  answered(res: SyncResponse): void {
    if (res.ack) this.applied.inc();
    else if (res.nack) this.refused.inc({ code: nackCodeLabel(res.nack.code) });
  }
}

/** The process's (or `registry`'s) receiver metrics. */
export const receiverMetrics = metricSet((registry) => new ReceiverMetrics(registry));
