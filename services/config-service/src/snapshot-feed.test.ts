import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ProxyHost } from "@cpm/proto";
import { createLogger } from "@cpm/core";
import { encodeSnapshotFrame } from "@cpm/snapshot-wire";
import { LocalConfigPort } from "./local-port.ts";
import { ProxyHosts } from "./resources/proxy-hosts.ts";
import { snapshotFeed, type SnapshotFeed, type WatchRole } from "./snapshots.ts";
import { startConfigService, type Harness } from "./test-support.ts";

/** Who heard of a commit, in what order, and whether the notice carried a frame. */
interface Heard {
  who: string;
  version: number;
  frame: boolean;
}

/** A watcher: follows `feed` until `signal` aborts, telling `heard` of every notice. */
type Watcher = (
  feed: SnapshotFeed,
  heard: (version: number, frame: boolean) => void,
  signal: AbortSignal,
) => Promise<void>;

const log = createLogger("test", "silent");
const host = (i: number) =>
  ProxyHost.fromPartial({ name: `f${i}`, domains: [`f${i}.feed.test`], upstreams: ["10.0.0.1:80"] });

/** config-service's port as the services of its process call it (only watch and getSnapshotFrame are used here). */
const portOf = (feed: SnapshotFeed) => new LocalConfigPort({} as never, feed, log);

/** The dispatcher (withSnapshot) or the renderer of this process, through the port. */
const inProcess =
  (withSnapshot: boolean): Watcher =>
  (feed, heard, signal) =>
    portOf(feed).watch((c) => heard(c.version, c.snapshotFrame !== undefined), log, signal, { withSnapshot });

/** A watcher of WatchConfig in another process, with its role. */
const overGrpc =
  (role: WatchRole): Watcher =>
  (feed, heard, signal) =>
    feed.watch(role, signal, (n, frame) => heard(n.version, frame !== undefined));

/** How the commits reach the watchers: who hears first, and which commits are encoded. */
describe("snapshot feed", () => {
  let h: Harness;
  let hosts: ProxyHosts;
  before(async () => {
    h = await startConfigService();
    hosts = new ProxyHosts(h.store);
  });
  after(async () => h.close());

  /** A feed whose encodings are counted, `watchers` following it, and `writes` writes made one after another. */
  async function run(watchers: Record<string, Watcher>, writes: number) {
    let encodes = 0;
    const feed = snapshotFeed({ store: h.store }, (s, parts) => {
      encodes++;
      return encodeSnapshotFrame(s, parts);
    });
    const heard: Heard[] = [];
    const stop = new AbortController();
    const watching = Object.entries(watchers).map(([who, watch]) =>
      watch(feed, (version, frame) => heard.push({ who, version, frame }), stop.signal),
    );
    await new Promise((r) => setTimeout(r, 20));
    const first = (await h.store.info()).version + 1;
    for (let i = 0; i < writes; i++) await hosts.create(host(first + i));
    await new Promise((r) => setTimeout(r, 50));
    stop.abort();
    await Promise.all(watching);
    return { feed, heard: heard.filter((x) => x.version >= first), encodes: () => encodes, first };
  }

  it("in one process the dispatcher hears of each commit before the renderer, and nothing is encoded until a link asks", async () => {
    const { heard, encodes, first, feed } = await run({ renderer: inProcess(false), dispatcher: inProcess(true) }, 5);
    for (let v = first; v < first + 5; v++) {
      assert.deepEqual(
        heard.filter((x) => x.version === v).map((x) => x.who),
        ["dispatcher", "renderer"],
        `who heard of version ${v}, in order`,
      );
    }
    assert.ok(
      heard.every((x) => !x.frame),
      "no notice carries a frame",
    );
    assert.equal(encodes(), 0, "no commit was encoded while no link asked for it");
    const port = portOf(feed);
    const a = await port.getSnapshotFrame();
    const b = await port.getSnapshotFrame();
    assert.equal(a.version, first + 4, "the frame a link asks for is the current version's");
    assert.equal(a, b, "encoded once per version");
    assert.equal(encodes(), 1);
  });

  it("a dispatcher in another process gets each current version's frame with its notice", async () => {
    const { heard, encodes, first } = await run({ dispatcher: overGrpc("pushes frames") }, 3);
    assert.deepEqual(
      heard.map((x) => [x.version, x.frame]),
      [
        [first, true],
        [first + 1, true],
        [first + 2, true],
      ],
    );
    assert.equal(encodes(), 4, "one encoding per version: the one current at the start, then each commit");
  });

  it("without a pusher, the renderer hears of a commit as it happens", async () => {
    const { heard, encodes, first } = await run({ renderer: inProcess(false) }, 2);
    assert.deepEqual(
      heard.map((x) => x.version),
      [first, first + 1],
    );
    assert.equal(encodes(), 0);
  });
});
