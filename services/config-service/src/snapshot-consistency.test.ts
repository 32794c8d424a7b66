import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import Database from "better-sqlite3";
import { ProxyHost } from "@cpm/proto";
import { status, unary } from "@cpm/grpc-kit";
import { sqlitePath } from "./db.ts";
import { ADMIN, expectStatus, freshSqliteUrl, startConfigService, type Harness } from "./test-support.ts";

describe("a snapshot is checked before it is served", () => {
  let h: Harness | undefined;
  afterEach(async () => h?.close());

  it("refuses to serve a stored configuration whose references do not resolve", async () => {
    const url = freshSqliteUrl();
    h = await startConfigService({ databaseUrl: url });
    const c = h.config;
    await unary(
      c.createProxyHost.bind(c),
      { proxyHost: ProxyHost.fromPartial({ name: "a", domains: ["a.test"], upstreams: ["127.0.0.1:1"] }) },
      ADMIN,
    );
    const ok = await unary(c.getSnapshot.bind(c), {}, ADMIN);
    assert.equal(ok.snapshot!.proxyHosts.length, 1);

    // Someone edits the stored resource behind the service's back: it now names an access list that does not exist.
    const raw = new Database(sqlitePath(url));
    const row = raw.prepare(`SELECT id, data FROM "ProxyHost"`).get() as { id: string; data: string };
    raw
      .prepare(`UPDATE "ProxyHost" SET data = ? WHERE id = ?`)
      .run(JSON.stringify({ ...JSON.parse(row.data), accessListId: "ghost" }), row.id);
    raw.close();
    h.store.invalidate(); // as a restarted service would read it

    const details = await expectStatus(unary(c.getSnapshot.bind(c), {}, ADMIN), status.FAILED_PRECONDITION);
    assert.match(details, /inconsistent/);
    assert.match(details, /snapshot\.proxy_hosts\[0\]\.access_list_id/);
  });
});
