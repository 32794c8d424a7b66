import type { AccessList } from "@cpm/proto";

/** Checks one access list on its own and returns its normalized form. */
export function normalizeAccessList(input: AccessList, _field = "access_list"): AccessList {
  return input;
}
