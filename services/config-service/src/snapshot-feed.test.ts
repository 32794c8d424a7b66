import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ProxyHost, type WatchConfigResponse } from "@cpm/proto";
import { encodeSnapshotFrame, type SnapshotFrame } from "@cpm/snapshot-wire";
import { ProxyHosts } from "./resources/proxy-hosts.ts";
import { snapshotFeed, type WatchOptions } from "./snapshots.ts";
import { startConfigService, type Harness } from "./test-support.ts";

/** Who heard of a commit, in what order, and whether the notice carried a frame. */
interface Heard {
  who: string;
  version: number;
  frame: boolean;
}

const host = (i: number) =>
  ProxyHost.fromPartial({ name: `f${i}`, domains: [`f${i}.feed.test`], upstreams: ["10.0.0.1:80"] });

/** How the commits reach the watchers of one process: who hears first, and which commits are encoded. */
describe("snapshot feed", () => {
  let h: Harness;
  let hosts: ProxyHosts;
  before(async () => {
    h = await startConfigService();
    hosts = new ProxyHosts(h.store);
  });
  after(async () => h.close());

  /** A feed whose encodings are counted, `watchers` following it, and `writes` writes made one after another. */
  async function run(watchers: Record<string, WatchOptions>, writes: number) {
    let encodes = 0;
    const feed = snapshotFeed({ store: h.store }, (s, parts) => {
      encodes++;
      return encodeSnapshotFrame(s, parts);
    });
    const heard: Heard[] = [];
    const stop = new AbortController();
    const watching = Object.entries(watchers).map(([who, opts]) =>
      feed.watch(opts, stop.signal, (n: WatchConfigResponse, frame?: SnapshotFrame) =>
        heard.push({ who, version: n.version, frame: frame !== undefined }),
      ),
    );
    await new Promise((r) => setTimeout(r, 20));
    const first = (await h.store.info()).version + 1;
    for (let i = 0; i < writes; i++) await hosts.create(host(first + i));
    await new Promise((r) => setTimeout(r, 50));
    stop.abort();
    await Promise.all(watching);
    return { feed, heard: heard.filter((x) => x.version >= first), encodes: () => encodes, first };
  }

  it("a pusher in this process hears of each commit before the renderer, and nothing is encoded", async () => {
    const { heard, encodes, first, feed } = await run(
      { renderer: { frames: false, pushes: false }, dispatcher: { frames: false, pushes: true } },
      5,
    );
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
    const a = await feed.snapshotFrame();
    const b = await feed.snapshotFrame();
    assert.equal(a.encoded.version, first + 4, "the frame asked for is the current version's");
    assert.equal(a.encoded, b.encoded, "encoded once per version");
    assert.equal(encodes(), 1);
  });

  it("a dispatcher in another process gets each current version's frame with its notice", async () => {
    const { heard, encodes, first } = await run({ dispatcher: { frames: true, pushes: true } }, 3);
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
    const { heard, encodes, first } = await run({ renderer: { frames: false, pushes: false } }, 2);
    assert.deepEqual(
      heard.map((x) => x.version),
      [first, first + 1],
    );
    assert.equal(encodes(), 0);
  });
});
