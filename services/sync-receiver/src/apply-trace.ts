import { NackCode, type SyncResponse } from "@cpm/proto";
import { failSpan, SpanKind, versionAttributes, withSpan } from "@cpm/grpc-kit";

/**
 * Runs one snapshot's apply in a `receiver.apply` span, a child of the master's push (the
 * active context); the preload (renderer) and commit (config-service) are its children
 * through the calls' metadata. Records the answer: ack, or nack with its code.
 */
export function traceApply(
  snapshot: { version: number; contentSha256: string } | undefined,
  apply: () => Promise<SyncResponse>,
): Promise<SyncResponse> {
  const attributes = versionAttributes(snapshot?.version ?? 0, snapshot?.contentSha256 ?? "");
  return withSpan("receiver.apply", { kind: SpanKind.CONSUMER, attributes }, async (span) => {
    const res = await apply();
    if (res.ack) {
      span.setAttributes({ "cpm.sync.result": "ack", "cpm.config.config_sha256": res.ack.configSha256.slice(0, 12) });
    } else if (res.nack) {
      const code = NackCode[res.nack.code] ?? String(res.nack.code);
      span.setAttributes({
        "cpm.sync.result": "nack",
        "cpm.sync.nack_code": code,
        "cpm.sync.retryable": res.nack.retryable,
      });
      failSpan(span, { name: `NACK_${code.replace(/^NACK_CODE_/, "")}` });
    }
    return res;
  });
}
