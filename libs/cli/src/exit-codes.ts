import { status } from "@grpc/grpc-js";

/** What `cpm` exits with; scripts can rely on these. */
export const ExitCode = {
  OK: 0,
  /** Bad command line: unknown command or option, missing argument. */
  USAGE: 1,
  /** The named resource does not exist (NOT_FOUND). */
  NOT_FOUND: 2,
  /** The request was refused as it stands: bad input naming the field, a name taken, a precondition (INVALID_ARGUMENT, ALREADY_EXISTS, FAILED_PRECONDITION, OUT_OF_RANGE), or a file that does not parse. */
  INVALID: 3,
  /** No token, a wrong, expired or revoked one, or a role that may not do this (UNAUTHENTICATED, PERMISSION_DENIED). */
  AUTH: 4,
  /** The server is unreachable, timed out, or failed (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, anything else). */
  UNAVAILABLE: 5,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** An error `cpm` reports on stderr and exits with `code`. */
export class CliError extends Error {
  constructor(
    readonly code: ExitCode,
    message: string,
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** Bad input found on this side (a file, a flag value): named like the server names fields. */
export const invalid = (field: string, detail: string) => new CliError(ExitCode.INVALID, `${field}: ${detail}`);

const BY_STATUS: Partial<Record<status, ExitCode>> = {
  [status.NOT_FOUND]: ExitCode.NOT_FOUND,
  [status.INVALID_ARGUMENT]: ExitCode.INVALID,
  [status.ALREADY_EXISTS]: ExitCode.INVALID,
  [status.FAILED_PRECONDITION]: ExitCode.INVALID,
  [status.OUT_OF_RANGE]: ExitCode.INVALID,
  [status.UNAUTHENTICATED]: ExitCode.AUTH,
  [status.PERMISSION_DENIED]: ExitCode.AUTH,
};

/** The exit code and message for anything a command throws; a gRPC status keeps the server's message. */
export function describeFailure(err: unknown): { code: ExitCode; message: string } {
  if (err instanceof CliError) return { code: err.code, message: err.message };
  const e = err as { code?: unknown; details?: unknown; message?: unknown };
  if (typeof e?.code === "number" && typeof e.details === "string") {
    const name = status[e.code] ?? String(e.code);
    return { code: BY_STATUS[e.code as status] ?? ExitCode.UNAVAILABLE, message: `${e.details} (${name})` };
  }
  return { code: ExitCode.UNAVAILABLE, message: String(e?.message ?? err) };
}
