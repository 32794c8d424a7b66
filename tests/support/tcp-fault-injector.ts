import net from "node:net";

/**
 * A TCP proxy on 127.0.0.1 that forwards to `targetPort` and injects faults into the
 * streams it carries: `cut()` ends every open connection cleanly (FIN), `reset()` aborts
 * them (RST), `stall(ms)` stops forwarding bytes both ways for a while (the peers see a
 * silent link, not a closed one). New connections are accepted throughout.
 */
export class TcpFaultInjector {
  private server: net.Server | undefined;
  private readonly pairs = new Set<[net.Socket, net.Socket]>();
  private stalledUntil = 0;
  private stallTimer: NodeJS.Timeout | undefined;
  private held: Array<[net.Socket, Buffer | null]> = [];
  /** Faults injected, by kind. */
  readonly counts = { cut: 0, reset: 0, stall: 0 };

  constructor(readonly targetPort: number) {}

  /** Listens on a free port of 127.0.0.1 and returns it. */
  async start(port = 0): Promise<number> {
    const server = net.createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
    this.server = server;
    return (server.address() as net.AddressInfo).port;
  }

  private accept(client: net.Socket): void {
    const upstream = net.connect(this.targetPort, "127.0.0.1");
    const pair: [net.Socket, net.Socket] = [client, upstream];
    this.pairs.add(pair);
    const drop = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const s of pair) {
      s.on("error", drop);
      s.on("close", drop);
    }
    this.forward(client, upstream);
    this.forward(upstream, client);
  }

  /** Bytes read while stalled wait, in order, until the stall ends. */
  private forward(from: net.Socket, to: net.Socket): void {
    from.on("data", (chunk: Buffer) => (this.stalled() ? this.held.push([to, chunk]) : to.write(chunk)));
    from.on("end", () => (this.stalled() ? this.held.push([to, null]) : to.end()));
  }

  private stalled(): boolean {
    return Date.now() < this.stalledUntil;
  }

  /** Ends every open connection with a FIN (a peer that closed its side). */
  cut(): void {
    this.counts.cut++;
    for (const [a, b] of this.pairs) {
      a.end();
      b.end();
    }
  }

  /** Aborts every open connection with a RST (a crashed peer or a middlebox dropping state). */
  reset(): void {
    this.counts.reset++;
    for (const [a, b] of [...this.pairs]) {
      a.resetAndDestroy();
      b.resetAndDestroy();
    }
  }

  /** Forwards nothing, either way, for `ms`; the connections stay open. */
  stall(ms: number): void {
    this.counts.stall++;
    this.stalledUntil = Math.max(this.stalledUntil, Date.now() + ms);
    clearTimeout(this.stallTimer);
    this.stallTimer = setTimeout(() => this.heal(), this.stalledUntil - Date.now());
  }

  /** Ends a stall at once. */
  heal(): void {
    clearTimeout(this.stallTimer);
    this.stalledUntil = 0;
    const held = this.held;
    this.held = [];
    for (const [to, chunk] of held) {
      if (to.destroyed) continue;
      if (chunk) to.write(chunk);
      else to.end();
    }
  }

  async close(): Promise<void> {
    this.heal();
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
