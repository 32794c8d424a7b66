// ListProxyHosts' paging and search through the real gRPC server on SQLite: pages by name with
// no duplicates, a case-insensitive filter on name and domains, and field errors for bad input.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ProxyHost } from "@cpm/proto";
import { status, unary } from "@cpm/grpc-kit";
import { ADMIN, expectStatus, harnessForEachTest, type Harness } from "./test-support.ts";

describe("ListProxyHosts paging and search", () => {
  let h!: Harness;
  harnessForEachTest({}, (x) => (h = x));
  const list = (pageSize: number, query = "", pageToken = "") =>
    unary(h.config.listProxyHosts.bind(h.config), { pageSize, pageToken, query }, ADMIN);
  const create = (name: string, domains: string[]) =>
    unary(
      h.config.createProxyHost.bind(h.config),
      { proxyHost: ProxyHost.fromPartial({ name, domains, upstreams: ["10.0.0.1:80"] }) },
      ADMIN,
    );
  const names = (r: { proxyHosts: ProxyHost[] }) => r.proxyHosts.map((x) => x.name);

  async function seed(n: number): Promise<string[]> {
    const all: string[] = [];
    for (let i = 0; i < n; i++) {
      const name = `host-${String(i).padStart(2, "0")}`;
      await create(name, [`h${i}.example.com`]);
      all.push(name);
    }
    return all;
  }

  it("pages of 10 over 25 hosts are 10, 10, 5 in name order, then no token", async () => {
    const all = await seed(25);
    const seen: string[] = [];
    let token = "";
    const sizes: number[] = [];
    do {
      const r = await list(10, "", token);
      assert.equal(r.totalSize, 25);
      sizes.push(r.proxyHosts.length);
      seen.push(...names(r));
      token = r.nextPageToken;
    } while (token);
    assert.deepEqual(sizes, [10, 10, 5]);
    assert.deepEqual(seen, all);
  });

  it("page_size 0 answers every host, as before paging existed", async () => {
    const all = await seed(12);
    const r = await list(0);
    assert.deepEqual(names(r), all);
    assert.equal(r.nextPageToken, "");
    assert.equal(r.totalSize, 12);
  });

  it("the query matches names and domains ignoring case; total_size counts the matches", async () => {
    await create("Shop", ["shop.example.com"]);
    await create("blog", ["www.Blog.example.org"]);
    await create("api", ["api.example.net", "shop-api.example.net"]);
    await create("50%_off", ["sale.example.com"]);
    assert.deepEqual(names(await list(0, "SHOP")).sort(), ["Shop", "api"]);
    assert.deepEqual(names(await list(0, "sHoP")).sort(), ["Shop", "api"]);
    assert.deepEqual(names(await list(0, "blog.EXAMPLE")), ["blog"]);
    assert.deepEqual(names(await list(0, ".net")), ["api"]);
    // LIKE's wildcards are plain characters in a query.
    assert.deepEqual(names(await list(0, "%_")), ["50%_off"]);
    assert.deepEqual(names(await list(0, "p_a")), []);
    const first = await list(1, "example.com");
    assert.equal(first.totalSize, 2);
    assert.deepEqual(names(first), ["50%_off"]);
    const second = await list(1, "example.com", first.nextPageToken);
    assert.deepEqual(names(second), ["Shop"]);
    assert.equal(second.nextPageToken, "");
  });

  it("a host created between pages appears once, in its place; none repeats", async () => {
    await seed(6);
    const first = await list(3);
    await create("host-00a", ["early.example.com"]);
    await create("host-99", ["late.example.com"]);
    const rest = await list(10, "", first.nextPageToken);
    assert.deepEqual(names(rest), ["host-03", "host-04", "host-05", "host-99"]);
  });

  it("a bad page_token, page_size or query is INVALID_ARGUMENT naming the field", async () => {
    await seed(3);
    const other = (await list(1, "host")).nextPageToken;
    assert.match(await expectStatus(list(1, "", "not-a-token"), status.INVALID_ARGUMENT), /^page_token: /);
    assert.match(await expectStatus(list(1, "h1", other), status.INVALID_ARGUMENT), /^page_token: /);
    assert.match(await expectStatus(list(-1), status.INVALID_ARGUMENT), /^page_size: /);
    assert.match(await expectStatus(list(1, "x".repeat(201)), status.INVALID_ARGUMENT), /^query: /);
  });
});
