import { NackCode, type Snapshot, type SyncResponse } from "@cpm/proto";
import type { SlaveTarget } from "@cpm/core";
import {
  contextFromCarrier,
  failSpan,
  spanCarrier,
  SpanKind,
  startSpan,
  versionAttributes,
  type Span,
  type TraceCarrier,
} from "@cpm/grpc-kit";

/** The span of one snapshot sent to one slave, open until its ACK/NACK or the stream's end. */
export interface PushSpan {
  span: Span;
  /** What the SyncRequest carries, so the slave's spans are children of this push. */
  carrier: TraceCarrier | undefined;
}

/** How many recent versions keep their commit's trace context (a push links the ones it coalesces). */
const KEPT_VERSIONS = 64;

/** The trace contexts of the latest committed versions, as WatchConfig announced them. */
export class CommitTraces {
  private readonly byVersion = new Map<number, TraceCarrier>();

  record(version: number, carrier: TraceCarrier | undefined): void {
    if (!carrier?.traceparent) return;
    this.byVersion.set(version, carrier);
    for (const v of this.byVersion.keys()) {
      if (this.byVersion.size <= KEPT_VERSIONS) break;
      this.byVersion.delete(v);
    }
  }

  get(version: number): TraceCarrier | undefined {
    return this.byVersion.get(version);
  }

  /** The contexts of the versions strictly between `after` and `before`: the ones a push of `before` coalesces. */
  between(after: number, before: number): TraceCarrier[] {
    return [...this.byVersion].filter(([v]) => v > after && v < before).map(([, c]) => c);
  }
}

/**
 * Starts the span of a push, a child of the commit that produced the snapshot's version and
 * linked to the commits of the versions it coalesces (newer than the slave's last ACK).
 * Attributes: the version, a content hash prefix, the slave's name and address, the version
 * it acked before.
 */
export function startPush(
  snapshot: Pick<Snapshot, "version" | "contentSha256">,
  commits: CommitTraces | undefined,
  target: SlaveTarget,
  ackedVersion: number,
): PushSpan {
  const span = startSpan("dispatcher.push", {
    kind: SpanKind.PRODUCER,
    parent: contextFromCarrier(commits?.get(snapshot.version)),
    links: commits?.between(ackedVersion, snapshot.version),
    attributes: {
      ...versionAttributes(snapshot.version, snapshot.contentSha256),
      "cpm.slave.name": target.name,
      "server.address": target.address,
      "cpm.sync.acked_version": ackedVersion,
    },
  });
  return { span, carrier: spanCarrier(span) };
}

/** Ends a push span with the slave's answer, or with why none came. */
export function endPush(p: PushSpan, outcome: { response: SyncResponse } | { error: Error }): void {
  if ("error" in outcome) {
    failSpan(p.span, outcome.error);
  } else if (outcome.response.ack) {
    p.span.setAttributes({
      "cpm.sync.result": "ack",
      "cpm.config.config_sha256": outcome.response.ack.configSha256.slice(0, 12),
    });
  } else if (outcome.response.nack) {
    const { nack } = outcome.response;
    const code = NackCode[nack.code] ?? String(nack.code);
    p.span.setAttributes({
      "cpm.sync.result": "nack",
      "cpm.sync.nack_code": code,
      "cpm.sync.retryable": nack.retryable,
    });
    // The code only: a reason can quote the configuration (host names), which spans never carry.
    failSpan(p.span, { name: `NACK_${code.replace(/^NACK_CODE_/, "")}` });
  }
  p.span.end();
}
