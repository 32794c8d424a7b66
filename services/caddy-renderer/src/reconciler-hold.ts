import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

/** A slave's preload held by the reconciler: what Caddy was given, and until when it is held. */
export interface SavedHold {
  version: number;
  contentSha256: string;
  /** The rendered config's hash: a restarted renderer holds it again only if Caddy still runs it. */
  configSha256: string;
  /** Epoch milliseconds at which the hold expires (the receiver's commit deadline). */
  until: number;
}

/** Where the reconciler keeps its preload hold, so that a restart does not forget it. */
export interface PreloadHoldStore {
  /** The saved hold; undefined when there is none (or it cannot be read). */
  load(): SavedHold | undefined;
  /** Throws when it cannot be written. */
  save(hold: SavedHold): void;
  /** No hold any more. */
  clear(): void;
}

const isHold = (v: unknown): v is SavedHold => {
  const h = v as Partial<SavedHold> | null;
  return (
    typeof h === "object" &&
    h !== null &&
    Number.isSafeInteger(h.version) &&
    typeof h.contentSha256 === "string" &&
    typeof h.configSha256 === "string" &&
    Number.isFinite(h.until)
  );
};

/** A PreloadHoldStore in one small JSON file, replaced atomically (write a temporary file, then rename). */
export class FilePreloadHoldStore implements PreloadHoldStore {
  constructor(readonly file: string) {}

  load(): SavedHold | undefined {
    try {
      const v = JSON.parse(readFileSync(this.file, "utf8")) as unknown;
      return isHold(v) ? v : undefined;
    } catch {
      return undefined;
    }
  }

  save(hold: SavedHold): void {
    mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    const { version, contentSha256, configSha256, until } = hold;
    writeFileSync(tmp, `${JSON.stringify({ version, contentSha256, configSha256, until })}\n`, { mode: 0o600 });
    renameSync(tmp, this.file);
  }

  clear(): void {
    rmSync(this.file, { force: true });
  }
}
