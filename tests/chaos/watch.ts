import { credentials, type ClientReadableStream } from "@grpc/grpc-js";
import { CaddyRendererClient, ConfigServiceClient } from "@cpm/proto";
import { withBearer } from "@cpm/grpc-kit";

/** One value a stream delivered, with the moment it arrived. */
export interface Seen {
  version: number;
  sha: string;
  at: number;
}

/**
 * Follows a server stream for as long as it runs, reconnecting 100 ms after it ends or fails
 * (its service was killed or stopped), and hands every message to `onValue`.
 */
class Follower {
  private stopped = false;
  private call: ClientReadableStream<unknown> | undefined;
  private timer: NodeJS.Timeout | undefined;
  reconnects = 0;

  constructor(
    private readonly open: () => ClientReadableStream<unknown>,
    private readonly onValue: (v: unknown) => void,
  ) {
    this.connect();
  }

  private connect(): void {
    if (this.stopped) return;
    const call = this.open();
    this.call = call;
    let done = false;
    const again = () => {
      if (done) return;
      done = true;
      this.reconnects++;
      this.timer = setTimeout(() => this.connect(), 100);
    };
    call.on("data", (v) => this.onValue(v));
    call.on("error", again);
    call.on("end", again);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.call?.cancel();
  }
}

/** Every committed version an instance's config-service announces (WatchConfig), in arrival order. */
export class ConfigWatch {
  readonly seen: Seen[] = [];
  private readonly client: ConfigServiceClient;
  private readonly follower: Follower;

  constructor(apiPort: number, token: string, host = "127.0.0.1") {
    this.client = new ConfigServiceClient(`${host}:${apiPort}`, credentials.createInsecure());
    this.follower = new Follower(
      () => this.client.watchConfig({ includeSnapshot: false }, withBearer(token)),
      (v) => {
        const r = v as { version: number; contentSha256: string };
        this.seen.push({ version: r.version, sha: r.contentSha256, at: Date.now() });
      },
    );
  }

  close(): void {
    this.follower.stop();
    this.client.close();
  }
}

/** Every render status an instance's renderer reports (WatchRenderStatus), in arrival order. */
export class RenderWatch {
  readonly seen: Seen[] = [];
  private readonly client: CaddyRendererClient;
  private readonly follower: Follower;

  constructor(rendererPort: number, token: string, host = "127.0.0.1") {
    this.client = new CaddyRendererClient(`${host}:${rendererPort}`, credentials.createInsecure());
    this.follower = new Follower(
      () => this.client.watchRenderStatus({}, withBearer(token)),
      (v) => {
        const s = (v as { status?: { appliedVersion: number; configSha256: string } }).status;
        if (s) this.seen.push({ version: s.appliedVersion, sha: s.configSha256, at: Date.now() });
      },
    );
  }

  close(): void {
    this.follower.stop();
    this.client.close();
  }
}

/** Where a sequence of versions moved back: each (from, to) pair; 0 (nothing applied yet) is skipped. */
export function regressions(seen: Seen[]): Array<{ from: number; to: number }> {
  const out: Array<{ from: number; to: number }> = [];
  let high = 0;
  for (const s of seen) {
    if (s.version === 0) continue;
    if (s.version < high) out.push({ from: high, to: s.version });
    high = Math.max(high, s.version);
  }
  return out;
}
