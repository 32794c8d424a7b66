import path from "node:path";
import { closeSync, fstatSync, openSync, readSync, statSync } from "node:fs";

/*
 * What Caddy says about its orders. The renderer asks Caddy (render option issuanceLogFile)
 * to write the log lines of its certificate manager (loggers tls.obtain and tls.renew, JSON)
 * to a file; this module follows that file and keeps, per name, the last thing Caddy did:
 * started an order, started a renewal, failed (with the CA's error as Caddy logged it), or
 * got a certificate. Caddy's messages are its certificate manager's (certmagic) own.
 */

/**
 * Where Caddy writes the issuance log: inside its storage (CPM_CADDY_STORAGE_DIR), which
 * Caddy can write and the renderer reads at the same path.
 */
export function issuanceLogPath(storageDir: string): string {
  return path.join(storageDir, "cpm", "issuance.log");
}

/** The last step Caddy logged for one name. */
export type NameActivity =
  { kind: "obtaining" } | { kind: "renewing" } | { kind: "failed"; error: string } | { kind: "obtained" };

/** Loggers whose lines tell the state of an order (Caddy's names for them). */
export const ISSUANCE_LOGGERS = ["tls.obtain", "tls.renew"] as const;

const KINDS: Record<string, NameActivity["kind"]> = {
  "obtaining certificate": "obtaining",
  "renewing certificate": "renewing",
  "could not get certificate from issuer": "failed",
  "certificate obtained successfully": "obtained",
  "certificate renewed successfully": "obtained",
  "certificate already exists in storage": "obtained",
  "certificate appears to have been renewed already": "obtained",
};

/** At most this many characters of a CA's error are kept. */
export const MAX_DETAIL_LENGTH = 500;

// eslint-disable-next-line no-control-regex -- removing control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g;

/**
 * An error text from outside (a CA, through Caddy) made safe to store and show: control
 * characters become spaces, "{" and "}" (Caddy placeholders, refused in stored text) become
 * "(" and ")", runs of spaces shrink to one, and the result is cut at MAX_DETAIL_LENGTH.
 */
export function sanitizeDetail(raw: string): string {
  const s = raw.replace(CONTROL, " ").replace(/\{/g, "(").replace(/\}/g, ")").replace(/ {2,}/g, " ").trim();
  return s.length > MAX_DETAIL_LENGTH ? `${s.slice(0, MAX_DETAIL_LENGTH - 1)}…` : s;
}

/** One log line of Caddy's certificate manager, or undefined when it says nothing about an order. */
export function parseIssuanceLine(line: string): { name: string; activity: NameActivity } | undefined {
  let entry: unknown;
  try {
    entry = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof entry !== "object" || entry === null) return undefined;
  const { logger, msg, identifier, error } = entry as Record<string, unknown>;
  if (typeof logger !== "string" || !(ISSUANCE_LOGGERS as readonly string[]).includes(logger)) return undefined;
  if (typeof msg !== "string" || typeof identifier !== "string" || identifier === "") return undefined;
  const kind = KINDS[msg];
  if (!kind) return undefined;
  const name = identifier.toLowerCase();
  if (kind === "failed")
    return {
      name,
      activity: { kind, error: sanitizeDetail(typeof error === "string" && error ? error : "the CA gave no reason") },
    };
  return { name, activity: { kind } };
}

/**
 * Follows Caddy's issuance log file. Lines already in the file when it is first seen belong
 * to earlier runs (their outcome is recorded) and are skipped; a file that shrank was
 * rotated and is read again from its start.
 */
export class IssuanceLog {
  private offset: number | undefined;
  private partial = "";
  private readonly last = new Map<string, NameActivity>();

  constructor(private readonly file: string) {
    try {
      this.offset = statSync(file).size;
    } catch {
      this.offset = 0; // Caddy has not written it yet: everything it will write is new
    }
  }

  /** Reads what Caddy appended since the last call. */
  poll(): void {
    let fd: number;
    try {
      fd = openSync(this.file, "r");
    } catch {
      return;
    }
    try {
      const size = fstatSync(fd).size;
      if (this.offset === undefined || size < this.offset) {
        this.offset = 0;
        this.partial = "";
      }
      const buf = Buffer.alloc(64 * 1024);
      while (this.offset < size) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, size - this.offset), this.offset);
        if (n <= 0) break;
        this.offset += n;
        const lines = (this.partial + buf.subarray(0, n).toString("utf8")).split("\n");
        this.partial = lines.pop() ?? "";
        for (const line of lines) {
          const e = parseIssuanceLine(line);
          // A failure stands until Caddy obtains the certificate: its retries do not clear it.
          if (
            e &&
            (e.activity.kind === "obtained" || e.activity.kind === "failed" || this.last.get(e.name)?.kind !== "failed")
          )
            this.last.set(e.name, e.activity);
        }
      }
    } finally {
      closeSync(fd);
    }
  }

  /** The last step Caddy logged for `name` since this log was opened. */
  activity(name: string): NameActivity | undefined {
    return this.last.get(name.toLowerCase());
  }
}
