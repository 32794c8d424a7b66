import { Metadata } from "@grpc/grpc-js";
import { handshakeHeaders, peerFromHeaders, type PeerInfo } from "@cpm/core";

/**
 * The sync stream's handshake (see compat.ts in @cpm/core) as gRPC metadata: `headers` (this
 * build's announcement unless given) set on `md` (new metadata unless given).
 */
export function handshakeMetadata(headers = handshakeHeaders(), md = new Metadata()): Metadata {
  for (const [k, v] of Object.entries(headers)) md.set(k, v);
  return md;
}

/** What the peer announced in `md` (SILENT_PEER when it announced nothing). */
export function peerFromMetadata(md: Metadata): PeerInfo {
  return peerFromHeaders((k) => {
    const v = md.get(k)[0];
    return typeof v === "string" ? v : undefined;
  });
}
