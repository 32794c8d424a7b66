import { execFileSync, spawnSync } from "node:child_process";

/**
 * A network namespace of the test's own with a veth pair to the root namespace, for link faults
 * that look like a real network's: `cut()` drops packets silently (no RST, no ICMP: a cable pulled,
 * a NAT entry timed out), `cut("in")`/`cut("out")` only one way, `loss(20)` drops that share of
 * packets at random both ways, `heal()` lets everything through again.
 *
 * The drop rules sit on the namespace's end of the veth (nftables netdev `ingress`/`egress`
 * hooks), below the namespace's TCP stack: its sockets see nothing, as with a fault on the wire
 * (a drop in the `output` hook would hand the sender an error instead).
 *
 * Addresses are 10.213.N.1 (root side) and 10.213.N.2 (namespace side) on a /24 no interface uses
 * yet; traffic goes only to them. Names carry the test's pid, so `sweepStaleNetns()` can remove
 * what a killed run left behind; `destroy()` (and, for any left, an exit hook) removes the
 * namespace and the veth pair.
 */
export class NetNs {
  private faultRules = "";
  private constructor(
    /** The namespace's name (`ip netns exec <name> ...`). */
    readonly name: string,
    private readonly hostDev: string,
    private readonly nsDev: string,
    /** The root namespace's address on the pair. */
    readonly hostAddress: string,
    /** The namespace's address: where processes inside listen for the others to reach them. */
    readonly address: string,
    /** Faults hit only TCP traffic to and from this port of the namespace (all traffic when undefined). */
    private readonly port: number | undefined,
  ) {}

  /**
   * Makes namespace `cpmns-<pid>-<index>` with its veth pair, loopback up and empty fault chains.
   * `port` limits the faults to one TCP port of the namespace (see the class comment).
   */
  static create(index: number, port?: number): NetNs {
    const name = `cpmns-${process.pid}-${index}`;
    const hostDev = `cn${process.pid}h${index}`;
    const nsDev = `cn${process.pid}n${index}`;
    const net = freeSubnet();
    const ns = new NetNs(name, hostDev, nsDev, `10.213.${net}.1`, `10.213.${net}.2`, port);
    live.add(ns);
    try {
      ip(["netns", "add", name]);
      ip(["link", "add", hostDev, "type", "veth", "peer", "name", nsDev, "netns", name]);
      ip(["addr", "add", `${ns.hostAddress}/24`, "dev", hostDev]);
      ip(["link", "set", hostDev, "up"]);
      ip(["-n", name, "addr", "add", `${ns.address}/24`, "dev", nsDev]);
      ip(["-n", name, "link", "set", nsDev, "up"]);
      ip(["-n", name, "link", "set", "lo", "up"]);
      ns.nft(
        `table netdev cpmfault {\n` +
          `  chain in { type filter hook ingress device ${nsDev} priority 0; policy accept; }\n` +
          `  chain out { type filter hook egress device ${nsDev} priority 0; policy accept; }\n` +
          `}\n`,
      );
    } catch (e) {
      ns.destroy();
      throw e;
    }
    return ns;
  }

  /** The command prefix that runs a program inside the namespace. */
  get exec(): string[] {
    return [IP, "netns", "exec", this.name];
  }

  /**
   * Drops every packet silently: both ways, or only those entering the namespace (`"in"`) or only
   * those leaving it (`"out"`). Replaces any fault in place.
   */
  cut(way: "both" | "in" | "out" = "both"): void {
    this.apply(way === "out" ? [] : ["drop"], way === "in" ? [] : ["drop"]);
  }

  /** Drops `percent`% of the packets at random, both ways. Replaces any fault in place. */
  loss(percent: number): void {
    const rule = `numgen random mod 100 < ${Math.round(percent)} drop`;
    this.apply([rule], [rule]);
  }

  /** Lets every packet through again. */
  heal(): void {
    this.apply([], []);
  }

  /** What is in place now ("" when healed). */
  get fault(): string {
    return this.faultRules;
  }

  private apply(inRules: string[], outRules: string[]): void {
    const match = (dir: "in" | "out") =>
      this.port === undefined ? "" : `tcp ${dir === "in" ? "dport" : "sport"} ${this.port} `;
    const lines = [
      `flush chain netdev cpmfault in`,
      `flush chain netdev cpmfault out`,
      ...inRules.map((r) => `add rule netdev cpmfault in ${match("in")}${r}`),
      ...outRules.map((r) => `add rule netdev cpmfault out ${match("out")}${r}`),
    ];
    // One nft transaction: the old fault goes and the new one comes at once.
    this.nft(lines.join("\n") + "\n");
    this.faultRules = [...inRules.map((r) => `in: ${r}`), ...outRules.map((r) => `out: ${r}`)].join(", ");
  }

  private nft(script: string): void {
    execFileSync(IP, ["netns", "exec", this.name, "nft", "-f", "-"], {
      input: script,
      stdio: ["pipe", "pipe", "pipe"],
    });
  }

  /** Removes the namespace and the veth pair (idempotent; processes still inside lose their link). */
  destroy(): void {
    live.delete(this);
    spawnSync(IP, ["link", "del", this.hostDev], { stdio: "ignore" });
    spawnSync(IP, ["netns", "del", this.name], { stdio: "ignore" });
  }
}

const IP = "ip";
const live = new Set<NetNs>();

function ip(args: string[]): void {
  try {
    execFileSync(IP, args, { stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    const err = e as { stderr?: Buffer };
    throw new Error(`ip ${args.join(" ")}: ${err.stderr?.toString().trim() ?? String(e)}`, { cause: e });
  }
}

/** A third octet N of 10.213.N.0/24 that no interface of the root namespace uses. */
function freeSubnet(): number {
  const used = spawnSync(IP, ["-4", "-o", "addr", "show"], { encoding: "utf8" }).stdout ?? "";
  for (let i = 0; i < 256; i++) {
    const n = (process.pid + i * 7 + live.size) % 254;
    if (!used.includes(`10.213.${n}.`) && ![...live].some((l) => l.hostAddress === `10.213.${n}.1`)) return n;
  }
  throw new Error("no free /24 in 10.213.0.0/16");
}

/**
 * Why network namespaces with nftables faults cannot be used here ("" when they can): not root,
 * `ip` or `nft` missing, or the kernel refusing a namespace or a netdev egress hook.
 */
export function netnsUnavailable(): string {
  if (process.getuid?.() !== 0) return "not root";
  for (const [cmd, arg] of [
    [IP, "-V"],
    ["nft", "--version"],
  ] as const) {
    if (spawnSync(cmd, [arg], { stdio: "ignore" }).status !== 0) return `\`${cmd}\` is not installed`;
  }
  let probe: NetNs | undefined;
  try {
    probe = NetNs.create(99);
    probe.cut();
    probe.heal();
    return "";
  } catch (e) {
    return `a network namespace with nftables rules could not be made: ${e instanceof Error ? e.message : String(e)}`;
  } finally {
    probe?.destroy();
  }
}

/** Removes namespaces (and their veth pairs) left by test runs whose process is gone. */
export function sweepStaleNetns(): void {
  const list = spawnSync(IP, ["netns", "list"], { encoding: "utf8" }).stdout ?? "";
  for (const line of list.split("\n")) {
    const m = /^cpmns-(\d+)-(\d+)\b/.exec(line);
    if (!m || alive(Number(m[1]))) continue;
    spawnSync(IP, ["link", "del", `cn${m[1]}h${m[2]}`], { stdio: "ignore" });
    spawnSync(IP, ["netns", "del", `cpmns-${m[1]}-${m[2]}`], { stdio: "ignore" });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// Whatever ends the test process (a failed test, an uncaught error, a signal turned into exit),
// no namespace or veth pair of its own stays behind.
process.once("exit", () => {
  for (const ns of [...live]) ns.destroy();
});
