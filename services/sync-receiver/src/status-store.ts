import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";

/** What the receiver's status keeps across restarts (version and hash come from the database and the renderer). */
export interface DurableStatus {
  lastSyncTime: Date | undefined;
  lastError: string;
  lastErrorTime: Date | undefined;
}

/** Where the receiver keeps its DurableStatus. */
export interface StatusStore {
  /** The saved status; undefined when there is none (or it cannot be read). */
  load(): DurableStatus | undefined;
  /** Throws when it cannot be written. */
  save(status: DurableStatus): void;
}

/** A StatusStore in one small JSON file, replaced atomically (write a temporary file, then rename). */
export class FileStatusStore implements StatusStore {
  constructor(readonly file: string) {}

  load(): DurableStatus | undefined {
    let raw: { lastSyncTime?: unknown; lastError?: unknown; lastErrorTime?: unknown };
    try {
      raw = JSON.parse(readFileSync(this.file, "utf8")) as typeof raw;
    } catch {
      return undefined;
    }
    const date = (v: unknown) => (typeof v === "string" && !Number.isNaN(Date.parse(v)) ? new Date(v) : undefined);
    return {
      lastSyncTime: date(raw?.lastSyncTime),
      lastError: typeof raw?.lastError === "string" ? raw.lastError : "",
      lastErrorTime: date(raw?.lastErrorTime),
    };
  }

  save(status: DurableStatus): void {
    mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(
      tmp,
      `${JSON.stringify({ lastSyncTime: status.lastSyncTime?.toISOString(), lastError: status.lastError, lastErrorTime: status.lastErrorTime?.toISOString() })}\n`,
      { mode: 0o600 },
    );
    renameSync(tmp, this.file);
  }
}
