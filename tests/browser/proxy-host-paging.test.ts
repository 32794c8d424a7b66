// The console's proxy hosts page pages and searches on the server, in Debian's Chromium through
// playwright-core: a standalone instance with 60 hosts created through the gRPC API.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { ProxyHost, Role } from "@cpm/proto";
import { unary } from "@cpm/grpc-kit";
import { launchChromium, signIn } from "../support/browser.ts";
import { Instance } from "../support/instance.ts";

const PASSWORD = "correct horse battery staple";
const HOSTS = 60;
const PAGE_SIZE = 25;

const nameOf = (i: number) => `site-${String(i).padStart(2, "0")}`;

describe("web console in Chromium: the proxy hosts page pages and searches on the server", () => {
  let inst: Instance;
  let browser: Browser;

  before(async () => {
    inst = await Instance.start({ name: "console-paging" });
    await unary(
      inst.account.createUser.bind(inst.account),
      { username: "paula", role: Role.ROLE_ADMIN, password: PASSWORD },
      inst.adminToken,
    );
    for (let i = 0; i < HOSTS; i++) {
      await unary(
        inst.config.createProxyHost.bind(inst.config),
        {
          proxyHost: ProxyHost.fromPartial({
            name: nameOf(i),
            domains: [`s${i}.paging.test`],
            upstreams: ["127.0.0.1:9"],
          }),
        },
        inst.adminToken,
      );
    }
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await inst?.stop();
  });

  /** The ListProxyHosts requests the page sent (Connect's JSON bodies). */
  const listCalls = new WeakMap<Page, unknown[]>();

  async function signedIn(): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const calls: unknown[] = [];
    listCalls.set(page, calls);
    page.on("request", (r) => {
      if (r.url().endsWith("/cpm.config.v1.ConfigService/ListProxyHosts")) calls.push(r.postDataJSON());
    });
    await signIn(page, inst, "paula", PASSWORD);
    await page.getByRole("heading", { name: "Proxy hosts" }).waitFor();
    return page;
  }

  const shownNames = (page: Page) =>
    page.locator("tbody tr[data-name]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-name")));

  it("shows the first page and the total, Next and Previous move by a page, disabled at the ends", async () => {
    const page = await signedIn();
    await page.getByText(`Page 1 of 3 · ${HOSTS} of ${HOSTS} proxy hosts`).waitFor();
    assert.deepEqual(
      await shownNames(page),
      Array.from({ length: PAGE_SIZE }, (_, i) => nameOf(i)),
    );
    const prev = page.getByRole("button", { name: "Previous" });
    const next = page.getByRole("button", { name: "Next" });
    assert.equal(await prev.isDisabled(), true, "Previous is disabled on the first page");
    await next.click();
    await page.getByText(`Page 2 of 3 · ${HOSTS} of ${HOSTS} proxy hosts`).waitFor();
    assert.deepEqual(
      await shownNames(page),
      Array.from({ length: PAGE_SIZE }, (_, i) => nameOf(PAGE_SIZE + i)),
    );
    await next.click();
    await page.getByText("Page 3 of 3").waitFor();
    assert.deepEqual(
      await shownNames(page),
      Array.from({ length: HOSTS - 2 * PAGE_SIZE }, (_, i) => nameOf(2 * PAGE_SIZE + i)),
    );
    assert.equal(await next.isDisabled(), true, "Next is disabled on the last page");
    await prev.click();
    await page.getByText("Page 2 of 3").waitFor();
    assert.equal(await shownNames(page).then((x) => x[0]), nameOf(PAGE_SIZE));
    // Every page was asked of the server, never the whole list.
    const calls = listCalls.get(page)!;
    assert.ok(calls.length >= 4, JSON.stringify(calls));
    for (const c of calls) assert.equal((c as { pageSize?: number }).pageSize, PAGE_SIZE, JSON.stringify(c));
    await page.close();
  });

  it("a search for one host's domain, typed in the labelled box, shows exactly that host", async () => {
    const page = await signedIn();
    await page.getByText(`Page 1 of 3 · ${HOSTS} of ${HOSTS} proxy hosts`).waitFor();
    // Reached by keyboard: Tab until the search box has the focus, then type.
    for (let n = 0; n < 30; n++) {
      await page.keyboard.press("Tab");
      if (await page.getByLabel("Search").evaluate((e) => e === document.activeElement)) break;
    }
    assert.equal(await page.getByLabel("Search").evaluate((e) => e === document.activeElement), true);
    await page.keyboard.type("S42.PAGING.test");
    await page.getByText(`Page 1 of 1 · 1 of ${HOSTS} proxy hosts`).waitFor();
    assert.deepEqual(await shownNames(page), [nameOf(42)]);
    await page.getByRole("cell", { name: "s42.paging.test" }).waitFor();
    // Eleven domains contain "s1": s1. and s10. ... s19. (s21. does not).
    await page.getByLabel("Search").fill("s1");
    await page.getByText(`Page 1 of 1 · 11 of ${HOSTS} proxy hosts`).waitFor();
    assert.equal((await shownNames(page)).length, 11);
    await page.getByLabel("Search").fill("no-such-host");
    await page.getByText("No proxy host matches.").waitFor();
    await page.close();
  });
});
