import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ProxyHost } from "@cpm/proto";
import { DeferredInserts, deferringTx, insertRows } from "./deferred-inserts.ts";
import { prismaRowStatements } from "./row-statements.ts";
import { proxyHostRow, type Tx } from "./store.ts";
import { startConfigService, type Harness } from "./test-support.ts";

/** Rolls back whatever `fn` wrote. */
class RolledBack extends Error {}

/** A real transaction client that records each statement it is asked for (`table.method`). */
function recording(tx: Tx, calls: string[]): Tx {
  return new Proxy(tx, {
    get(target, table) {
      const delegate: unknown = Reflect.get(target, table);
      if (delegate === null || typeof delegate !== "object") return delegate;
      return new Proxy(delegate, {
        get(model, method) {
          const f: unknown = Reflect.get(model, method);
          if (typeof f !== "function") return f;
          return (...args: unknown[]) => {
            calls.push(`${String(table)}.${String(method)}`);
            return (f as (...a: unknown[]) => unknown).apply(model, args);
          };
        },
      });
    },
  });
}

describe("deferred inserts (on a real SQLite transaction)", () => {
  let h: Harness;
  before(async () => {
    h = await startConfigService();
  });
  after(async () => h.close());

  const row = (n: number) =>
    proxyHostRow(
      ProxyHost.fromPartial({
        id: `deferred-${n}`,
        name: `deferred-${n}`,
        domains: [`d${n}.test`],
        upstreams: ["10.0.0.1:80"],
      }),
      new Date(),
    );

  async function inRolledBackTransaction(fn: (tx: Tx) => Promise<void>): Promise<void> {
    await assert.rejects(
      h.db.$transaction(async (tx) => {
        await fn(tx);
        throw new RolledBack();
      }),
      RolledBack,
    );
  }

  it("rows of many writes go in with one statement per table, parents first, when the store flushes", async () => {
    await inRolledBackTransaction(async (tx) => {
      const calls: string[] = [];
      const deferred = new DeferredInserts(prismaRowStatements(recording(tx, calls)));
      const writes = deferringTx(recording(tx, calls), deferred);
      for (let n = 0; n < 16; n++) {
        await insertRows(writes, "proxyHost", [row(n)]);
        await insertRows(writes, "proxyHostDomain", [{ domain: `d${n}.test`, proxyHostId: `deferred-${n}` }]);
      }
      assert.deepEqual(calls, [], "nothing sent before the flush");
      assert.equal(await tx.proxyHost.count({ where: { id: { startsWith: "deferred-" } } }), 0);
      await deferred.flush();
      assert.deepEqual(calls, ["proxyHost.createMany", "proxyHostDomain.createMany"]);
      assert.equal(await tx.proxyHost.count({ where: { id: { startsWith: "deferred-" } } }), 16);
      assert.equal(await tx.proxyHostDomain.count({ where: { proxyHostId: { startsWith: "deferred-" } } }), 16);
    });
  });

  it("any other statement on the deferring client sends the waiting rows first, so it sees them", async () => {
    await inRolledBackTransaction(async (tx) => {
      const deferred = new DeferredInserts(prismaRowStatements(tx));
      const writes = deferringTx(tx, deferred);
      await insertRows(writes, "proxyHost", [row(100)]);
      assert.equal(await tx.proxyHost.findUnique({ where: { id: "deferred-100" } }), null, "still waiting");
      const seen = await writes.proxyHost.findUnique({ where: { id: "deferred-100" } });
      assert.equal(seen?.name, "deferred-100");
      await deferred.flush();
      assert.equal(await tx.proxyHost.count({ where: { id: "deferred-100" } }), 1, "sent once");
    });
  });

  it("on a client that does not defer, rows go in at once", async () => {
    await inRolledBackTransaction(async (tx) => {
      await insertRows(tx, "proxyHost", [row(200)]);
      assert.equal((await tx.proxyHost.findUnique({ where: { id: "deferred-200" } }))?.name, "deferred-200");
    });
  });
});
