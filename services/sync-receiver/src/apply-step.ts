import { NackCode } from "@cpm/proto";
import { status as Status } from "@grpc/grpc-js";

/**
 * The slave's apply of one snapshot as one pure decision: state x event -> action and next
 * state. `SnapshotApplier` (receiver.ts) reads the facts, runs the action and feeds back what
 * came of it; every "what now" lives here, in the order of the table in docs/architecture.md
 * ("The slave's apply, as a state table").
 */

/** A snapshot's header: what it claims, read without decoding it. */
export interface SnapshotHeader {
  version: number;
  masterInstanceId: string;
  contentSha256: string;
}

/** The slave's database, as config-service reports it. */
export type DatabaseFacts = SnapshotHeader | { unavailable: string };

/** What the renderer reports Caddy runs (undefined: it did not answer). */
export interface RenderedFacts {
  inSync: boolean;
  appliedVersion: number;
  configSha256: string;
}

/** The snapshot's checks: passed, failed with a reason, or not run yet (an unchanged push skips them). */
export type CheckResult = { valid: true } | { valid: false; reason: string } | "unchecked";

export interface ApplyFacts {
  snapshot: SnapshotHeader;
  database: DatabaseFacts;
  rendered: RenderedFacts | undefined;
  check: CheckResult;
}

/** The facts once the database has answered: what every state after `received` carries. */
export interface AssessedFacts extends ApplyFacts {
  database: SnapshotHeader;
}

/** A call to a service of this slave that failed: its gRPC code (undefined: not a gRPC failure) and why. */
export interface CallFailure {
  code: number | undefined;
  reason: string;
}

export type ApplyState =
  | { at: "received" }
  | { at: "checking"; facts: AssessedFacts }
  | { at: "preloading"; facts: AssessedFacts }
  | { at: "committing"; facts: AssessedFacts; configSha256: string }
  | { at: "confirming"; facts: AssessedFacts; configSha256: string }
  | { at: "done" };

export type ApplyEvent =
  | { type: "missing" }
  | { type: "assessed"; facts: ApplyFacts }
  | { type: "checked"; check: { valid: true } | { valid: false; reason: string } }
  | { type: "preloaded"; configSha256: string }
  | { type: "preload-failed"; failure: CallFailure }
  | { type: "committed" }
  | { type: "commit-failed"; failure: CallFailure }
  | { type: "confirmed"; configSha256: string }
  | { type: "not-confirmed"; reason: string };

export type ApplyAction =
  /** Answer ACK; `unchanged`: the snapshot already ran, nothing was done. */
  | { do: "ack"; version: number; configSha256: string; unchanged: boolean }
  /** Answer NACK; `release`: first tell the renderer the preload will not be committed. */
  | { do: "nack"; code: NackCode; reason: string; retryable: boolean; release: boolean }
  /** Decode and check the snapshot, then send `checked`. */
  | { do: "check" }
  /** Have the renderer load the snapshot into Caddy ahead of the database, then send `preloaded` or `preload-failed`. */
  | { do: "preload" }
  /** Commit the snapshot through config-service, then send `committed` or `commit-failed`. */
  | { do: "commit" }
  /** Wait for the renderer to report Caddy on the version with `configSha256`, then send `confirmed` or `not-confirmed`. */
  | { do: "confirm"; version: number; configSha256: string }
  /** An event that does not belong to the state: a bug in the caller. */
  | { do: "invalid"; why: string };

export interface ApplyStep {
  next: ApplyState;
  action: ApplyAction;
}

const nack = (code: NackCode, reason: string, retryable: boolean, release = false): ApplyStep => ({
  next: { at: "done" },
  action: { do: "nack", code, reason, retryable, release },
});

/** A failed call to a service of this slave: the snapshot was not at fault, a retry can help. */
function dependencyFailure(code: number | undefined): NackCode {
  const unavailable = code === Status.UNAVAILABLE || code === Status.DEADLINE_EXCEEDED || code === Status.CANCELLED;
  return unavailable ? NackCode.NACK_CODE_UNAVAILABLE : NackCode.NACK_CODE_INTERNAL;
}

/** The snapshot is what already runs: same master, version and content as the database, Caddy in sync on it. */
export function isUnchanged(facts: ApplyFacts): boolean {
  const { snapshot: s, database: d, rendered: r } = facts;
  if ("unavailable" in d || !d.contentSha256) return false;
  return (
    s.contentSha256 === d.contentSha256 &&
    s.masterInstanceId === d.masterInstanceId &&
    s.version === d.version &&
    r !== undefined &&
    r.inSync &&
    r.appliedVersion === s.version
  );
}

/** What follows once the database has answered and the snapshot is not unchanged. */
function afterCheck(facts: AssessedFacts): ApplyStep {
  const { snapshot: s, database: d, rendered: r, check } = facts;
  if (check === "unchecked") return { next: { at: "checking", facts }, action: { do: "check" } };
  if (!check.valid) return nack(NackCode.NACK_CODE_INVALID_SNAPSHOT, check.reason, false);
  const sameMaster = d.masterInstanceId === s.masterInstanceId;
  if (sameMaster && s.version < d.version)
    return nack(
      NackCode.NACK_CODE_STALE_VERSION,
      `snapshot version ${s.version} is older than the applied version ${d.version}`,
      false,
    );
  // A late snapshot (an old stream's, delivered after a stall) must not replace a newer preload
  // whose commit is still to come: Caddy would move back a version. Unknown (the renderer did
  // not answer): the preload fails anyway.
  const preloaded = sameMaster && r && r.appliedVersion > d.version ? r.appliedVersion : 0;
  if (s.version < preloaded)
    return nack(
      NackCode.NACK_CODE_STALE_VERSION,
      `snapshot version ${s.version} is older than the preloaded version ${preloaded} Caddy runs`,
      false,
    );
  return { next: { at: "preloading", facts }, action: { do: "preload" } };
}

export function applyStep(state: ApplyState, event: ApplyEvent): ApplyStep {
  const invalid = (): ApplyStep => ({
    next: state,
    action: { do: "invalid", why: `event ${event.type} in state ${state.at}` },
  });
  switch (event.type) {
    case "missing":
      if (state.at !== "received") return invalid();
      return nack(NackCode.NACK_CODE_INVALID_SNAPSHOT, "snapshot: is required", false);
    case "assessed": {
      if (state.at !== "received") return invalid();
      const { database } = event.facts;
      if ("unavailable" in database)
        return nack(
          NackCode.NACK_CODE_UNAVAILABLE,
          `slave's config-service unavailable: ${database.unavailable}`,
          true,
        );
      // The database answered: the states from here on carry that narrowed fact.
      const facts: AssessedFacts = { ...event.facts, database };
      if (isUnchanged(facts))
        return {
          next: { at: "done" },
          action: {
            do: "ack",
            version: facts.snapshot.version,
            configSha256: facts.rendered!.configSha256,
            unchanged: true,
          },
        };
      return afterCheck(facts);
    }
    case "checked":
      if (state.at !== "checking") return invalid();
      return afterCheck({ ...state.facts, check: event.check });
    case "preloaded":
      if (state.at !== "preloading") return invalid();
      return {
        next: { at: "committing", facts: state.facts, configSha256: event.configSha256 },
        action: { do: "commit" },
      };
    case "preload-failed": {
      if (state.at !== "preloading") return invalid();
      const { code, reason } = event.failure;
      if (code === Status.FAILED_PRECONDITION) return nack(NackCode.NACK_CODE_CADDY_REJECTED, reason, false);
      if (code === Status.INVALID_ARGUMENT) return nack(NackCode.NACK_CODE_INVALID_SNAPSHOT, reason, false);
      return nack(dependencyFailure(code), `renderer: ${reason}`, true);
    }
    case "committed":
      if (state.at !== "committing") return invalid();
      return {
        next: { at: "confirming", facts: state.facts, configSha256: state.configSha256 },
        action: { do: "confirm", version: state.facts.snapshot.version, configSha256: state.configSha256 },
      };
    case "commit-failed": {
      if (state.at !== "committing") return invalid();
      const { code, reason } = event.failure;
      // Refused for the snapshot's sake: Caddy goes back to the database's version now.
      if (code === Status.FAILED_PRECONDITION) return nack(NackCode.NACK_CODE_STALE_VERSION, reason, false, true);
      if (code === Status.INVALID_ARGUMENT) return nack(NackCode.NACK_CODE_INVALID_SNAPSHOT, reason, false, true);
      // The slave was at fault: the master retries this version (or sends a newer one), and
      // Caddy stays on it meanwhile (never moving back).
      return nack(dependencyFailure(code), `config-service: ${reason}`, true);
    }
    case "confirmed":
      if (state.at !== "confirming") return invalid();
      return {
        next: { at: "done" },
        action: {
          do: "ack",
          version: state.facts.snapshot.version,
          configSha256: event.configSha256,
          unchanged: false,
        },
      };
    case "not-confirmed":
      if (state.at !== "confirming") return invalid();
      return nack(NackCode.NACK_CODE_UNAVAILABLE, `committed, but Caddy did not confirm: ${event.reason}`, true);
  }
}
