/**
 * Domain errors thrown by validation and business rules. They carry no transport
 * detail; @cpm/grpc-kit maps each kind to its gRPC status in one place.
 */
export type DomainErrorKind =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "unauthenticated"
  | "permission_denied"
  | "resource_exhausted"
  | "unavailable";

export class DomainError extends Error {
  constructor(
    readonly kind: DomainErrorKind,
    message: string,
  ) {
    super(message);
    this.name = "DomainError";
  }
}

/** Bad input: the message starts with the field path, e.g. `proxy_host.domains[2]: ...`. */
export class ValidationError extends DomainError {
  constructor(
    readonly field: string,
    detail: string,
  ) {
    super("invalid_argument", `${field}: ${detail}`);
    this.name = "ValidationError";
  }
}

export const notFound = (what: string, id: string) => new DomainError("not_found", `${what} "${id}" not found`);
export const alreadyExists = (msg: string) => new DomainError("already_exists", msg);
export const failedPrecondition = (msg: string) => new DomainError("failed_precondition", msg);
