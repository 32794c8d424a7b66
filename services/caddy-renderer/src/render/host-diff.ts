import type { ProxyHost } from "@cpm/proto";

/**
 * Hosts that may have changed (left, joined, or changed in place, which is both) between two
 * renders for the memo to patch what it kept (the domain index, the groups, the routes' host
 * lists) rather than make it again from every host.
 */
export const MAX_PATCHED_HOSTS = 64;

/** What changed between two lists of hosts: the objects only the first has, and those only the second has. */
export interface HostDiff {
  removed: ProxyHost[];
  added: ProxyHost[];
}

/**
 * The hosts that left `before` and those that joined `after`, both lists in id order, each id
 * once (a host changed in place is in both: its old object removed, its new one added), found
 * by walking the two lists side by side. Undefined when more than `max` hosts changed, or when
 * either list is not in strictly increasing id order.
 */
export function hostDiff(before: readonly ProxyHost[], after: readonly ProxyHost[], max: number): HostDiff | undefined {
  const removed: ProxyHost[] = [];
  const added: ProxyHost[] = [];
  let i = 0;
  let j = 0;
  while (i < before.length || j < after.length) {
    const a = before[i];
    const b = after[j];
    if (a !== undefined && a === b) {
      i++;
      j++;
      continue;
    }
    if (removed.length + added.length >= 2 * max) return undefined;
    if (b === undefined || (a !== undefined && a.id <= b.id)) {
      removed.push(a!);
      i++;
    } else {
      added.push(b);
      j++;
    }
  }
  return inIdOrder(before) && inIdOrder(after) ? { removed, added } : undefined;
}

/** Whether the hosts' ids strictly increase. */
function inIdOrder(hosts: readonly ProxyHost[]): boolean {
  for (let i = 1; i < hosts.length; i++) if (!(hosts[i - 1]!.id < hosts[i]!.id)) return false;
  return true;
}
