import { failedPrecondition, type DomainError } from "@cpm/core";

/**
 * The FAILED_PRECONDITION a delete gets while other resources still use the one it names,
 * e.g. `certificate "site" is used by proxy hosts "a", "b" and L4 proxy host "db"; remove it from them first`.
 * Returns undefined when nothing uses it.
 */
export function inUse(
  what: string,
  name: string,
  users: { kind: string; names: string[] }[],
  advice: string,
): DomainError | undefined {
  const groups = users
    .filter((u) => u.names.length > 0)
    .map((u) => `${u.kind}${u.names.length > 1 ? "s" : ""} ${u.names.map((n) => `"${n}"`).join(", ")}`);
  return groups.length
    ? failedPrecondition(`${what} "${name}" is used by ${groups.join(" and ")}; ${advice}`)
    : undefined;
}
