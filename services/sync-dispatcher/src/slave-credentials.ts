import { readFileSync } from "node:fs";
import { isIP, type Socket } from "node:net";
import { connect as tlsConnect, createSecureContext, type SecureContext } from "node:tls";
import { CallCredentials, ChannelCredentials } from "@grpc/grpc-js";

type SecureConnector = ReturnType<ChannelCredentials["_createSecureConnector"]>;

let shared: { caFile: string | undefined; ca: Buffer | undefined; context: SecureContext } | undefined;

/**
 * One TLS context for every link that trusts the same CA: OpenSSL's context (its certificate
 * store with the CA parsed) costs native memory and CPU to build, and a master with a thousand
 * slaves would otherwise hold a thousand identical ones and build one per connection attempt.
 * The CA file is read again on every call, so a rotated CA is used from the next connection on,
 * as before, without a restart.
 */
export function sharedSecureContext(caFile: string | undefined): SecureContext {
  const ca = caFile ? readFileSync(caFile) : undefined;
  if (!shared || shared.caFile !== caFile || !(ca && shared.ca ? ca.equals(shared.ca) : ca === shared.ca)) {
    shared = { caFile, ca, context: createSecureContext({ ca }) };
  }
  return shared.context;
}

/**
 * The credentials of one link's channel to a slave, in place of grpc-js's own:
 *
 * - Over TLS, the server name (SNI) is sent only for a host name. grpc-js sets it to the
 *   target's host whatever it is, and Node warns (DEP0123) when it is an IP address, which
 *   RFC 6066 does not allow. The certificate is still checked against the target's host, IP
 *   or name (`host`), as before: an IP URL needs the IP in the certificate's SANs.
 * - Every connection handed to the channel is kept until it closes, so that an attempt
 *   abandoned for its deadline takes its socket with it (`destroyConnections`): closing a
 *   grpc-js channel does not end a connection still in its TLS or HTTP/2 handshake.
 *
 * A new instance per channel (its `_equals` is identity): never a subchannel shared with
 * another channel. The TLS context is shared (see `sharedSecureContext`).
 */
export class SlaveCredentials extends ChannelCredentials {
  private readonly connections = new Set<Socket>();
  private readonly secureContext: SecureContext | undefined;

  constructor(
    private readonly host: string,
    tls: { caFile: string | undefined } | undefined,
  ) {
    super();
    this.secureContext = tls ? sharedSecureContext(tls.caFile) : undefined;
  }

  _isSecure(): boolean {
    return this.secureContext !== undefined;
  }

  _equals(other: ChannelCredentials): boolean {
    return other === this;
  }

  _createSecureConnector(
    ...[, , callCredentials]: Parameters<ChannelCredentials["_createSecureConnector"]>
  ): SecureConnector {
    const calls = callCredentials ?? CallCredentials.createEmpty();
    return {
      connect: (socket: Socket) => {
        this.keep(socket);
        const secureContext = this.secureContext;
        if (!secureContext) return Promise.resolve({ socket, secure: false });
        return new Promise((resolve, reject) => {
          const tlsSocket = tlsConnect(
            {
              socket,
              secureContext,
              host: this.host,
              servername: isIP(this.host) ? undefined : this.host,
              ALPNProtocols: ["h2"],
            },
            () => {
              if (!tlsSocket.authorized) {
                reject(tlsSocket.authorizationError);
                return;
              }
              resolve({ socket: tlsSocket, secure: true });
            },
          );
          this.keep(tlsSocket);
          tlsSocket.on("error", reject);
        });
      },
      waitForReady: () => Promise.resolve(),
      getCallCredentials: () => calls,
      destroy: () => {},
    };
  }

  /**
   * Samples the bytes this channel's connections read and write every `sampleMs` until
   * `stop`, which tells how long nothing was read and whether anything was written since.
   */
  watchSilence(sampleMs: number): { stop(): { silentForMs: number; unansweredWrite: boolean } } {
    const totals = () => {
      let read = 0;
      let written = 0;
      for (const socket of this.connections) {
        read += socket.bytesRead;
        written += socket.bytesWritten;
      }
      return { read, written };
    };
    let last = totals();
    let lastReadAt = Date.now();
    let unansweredWrite = false;
    const sample = () => {
      const now = totals();
      // A connection that closed drops out of the totals: only growth counts.
      if (now.read > last.read) {
        lastReadAt = Date.now();
        unansweredWrite = false;
      }
      if (now.written > last.written && now.read <= last.read) unansweredWrite = true;
      last = now;
    };
    const timer = setInterval(sample, sampleMs);
    timer.unref();
    return {
      stop: () => {
        clearInterval(timer);
        sample();
        return { silentForMs: Date.now() - lastReadAt, unansweredWrite };
      },
    };
  }

  /** Ends every connection this channel still holds (the channel is being abandoned). */
  destroyConnections(): void {
    for (const socket of this.connections) socket.destroy();
    this.connections.clear();
  }

  private keep(socket: Socket): void {
    this.connections.add(socket);
    socket.once("close", () => this.connections.delete(socket));
  }
}
