import type { Logger } from "@cpm/core";

/**
 * What a client that retries a dependency on a short cadence says about it: at start, once
 * that it waits for it and once that it is there (not a warning per attempt while it still
 * starts); after it was reached, one warning per outage and one line when it is back. Every
 * attempt in between is a debug line.
 */
export class ConnectionLog {
  private state: "starting" | "waiting" | "connected" | "interrupted" = "starting";

  constructor(
    private readonly log: Logger,
    /** Names the dependency in messages, e.g. "config-service at 127.0.0.1:50054". */
    private readonly what: string,
    /** The warning for a lost connection, e.g. "config watch interrupted; reconnecting". */
    private readonly interrupted: string,
    /** `false` when another part of the service already says that it waits for the same dependency. */
    private readonly announceWait = true,
  ) {}

  /** An attempt failed (or a connection ended) with `err`. */
  failed(err: string): void {
    if (this.state === "starting") {
      this.state = "waiting";
      // A refused connection is what waiting looks like: the reason is for debugging only.
      if (this.announceWait) this.log.info(`waiting for ${this.what}`);
    } else if (this.state === "connected") {
      this.state = "interrupted";
      this.log.warn({ err }, this.interrupted);
      return;
    }
    this.log.debug({ err }, `still waiting for ${this.what}`);
  }

  /** An attempt succeeded. */
  connected(): void {
    const was = this.state;
    this.state = "connected";
    if (was === "waiting" && this.announceWait) this.log.info(`${this.what} is up`);
    else if (was === "interrupted") this.log.info(`${this.what} is back`);
  }
}
