import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { DomainError, type DomainErrorKind, type Logger } from "@cpm/core";

const KIND_TO_STATUS: Record<DomainErrorKind, status> = {
  invalid_argument: status.INVALID_ARGUMENT,
  not_found: status.NOT_FOUND,
  already_exists: status.ALREADY_EXISTS,
  failed_precondition: status.FAILED_PRECONDITION,
  unauthenticated: status.UNAUTHENTICATED,
  permission_denied: status.PERMISSION_DENIED,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  unavailable: status.UNAVAILABLE,
};

/** An error that already carries a gRPC status; thrown by handlers when no domain kind fits. */
export class GrpcError extends Error implements Partial<ServiceError> {
  constructor(
    readonly code: status,
    readonly details: string,
  ) {
    super(details);
    this.name = "GrpcError";
  }
}

export function isServiceError(e: unknown): e is ServiceError {
  return typeof e === "object" && e !== null && typeof (e as ServiceError).code === "number" && "details" in e;
}

/**
 * The one place where anything a handler throws becomes a gRPC status. Domain errors
 * and Prisma's well-known codes keep their meaning; everything else is INTERNAL with a
 * generic message, and the cause is logged (not sent: it may hold internals).
 */
export function toServiceError(err: unknown, log: Logger): Partial<ServiceError> {
  if (err instanceof DomainError) return { code: KIND_TO_STATUS[err.kind], details: err.message };
  if (err instanceof GrpcError) return { code: err.code, details: err.details };
  const prismaCode = (err as { code?: unknown } | null)?.code;
  if (prismaCode === "P2025") return { code: status.NOT_FOUND, details: "not found" };
  if (prismaCode === "P2002") {
    const target = (err as { meta?: { target?: unknown } }).meta?.target;
    return { code: status.ALREADY_EXISTS, details: `already exists${target ? ` (${uniqueTarget(target)})` : ""}` };
  }
  if (prismaCode === "P2003")
    return { code: status.FAILED_PRECONDITION, details: "the resource is still referenced by another one" };
  if (isServiceError(err) && err.code === status.UNAVAILABLE) {
    return { code: status.UNAVAILABLE, details: "a dependency is unavailable, try again" };
  }
  log.error({ err }, "internal error");
  return { code: status.INTERNAL, details: "internal error", metadata: new Metadata() };
}

/** Prisma's P2002 target: the unique fields as a list, or the constraint's name. */
function uniqueTarget(target: unknown): string {
  if (Array.isArray(target)) return target.map(String).join(",");
  return typeof target === "string" ? target : JSON.stringify(target);
}
