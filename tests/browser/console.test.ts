// The web console in a real browser (Debian's Chromium through playwright-core): a master and
// a slave, each a whole node with its own Caddy, each serving its console.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { chromium, type Browser, type Page } from "playwright-core";
import { ProxyHost, Role } from "@cpm/proto";
import { unary } from "@cpm/grpc-kit";
import { Instance } from "../support/instance.ts";
import { startUpstream } from "../support/net.ts";
import { makePki, type TestPki } from "../support/tls.ts";
import { waitFor } from "../support/wait.ts";

const CHROMIUM = process.env.CPM_CHROMIUM ?? "/usr/bin/chromium";
const IMAGES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../docs/images");
const SYNC_TOKEN = "console-slave-sync-token-0123456789";
const PASSWORD = "correct horse battery staple";

describe("web console in Chromium: sign-in, proxy hosts, fleet, roles, a slave", () => {
  let pki: TestPki;
  let master: Instance;
  let slave: Instance;
  let browser: Browser;
  let up: Awaited<ReturnType<typeof startUpstream>>;

  const consoleUrl = (i: Instance) => `http://127.0.0.1:${i.ports.console}/`;
  const createUser = (i: Instance, username: string, role: Role) =>
    unary(i.account.createUser.bind(i.account), { username, role, password: PASSWORD }, i.adminToken);

  before(async () => {
    pki = makePki(mkdtempSync(path.join(os.tmpdir(), "cpm-pki-")));
    up = await startUpstream("U");
    slave = await Instance.start({
      name: "console-slave",
      mode: "slave",
      env: { INSTANCE_SYNC_TOKEN: SYNC_TOKEN, CPM_SYNC_TLS_CERT: pki.cert, CPM_SYNC_TLS_KEY: pki.key },
    });
    master = await Instance.start({
      name: "console-master",
      mode: "master",
      env: {
        INSTANCE_SLAVES: JSON.stringify([
          { name: "edge-1", url: `https://localhost:${slave.ports.sync}`, token: SYNC_TOKEN },
        ]),
        CPM_SYNC_TLS_CA: pki.caCert,
      },
    });
    await createUser(master, "alice", Role.ROLE_ADMIN);
    await createUser(master, "victor", Role.ROLE_VIEWER);
    await createUser(master, "mallory", Role.ROLE_ADMIN);
    await createUser(slave, "sam", Role.ROLE_ADMIN);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    mkdirSync(IMAGES, { recursive: true });
  });

  after(async () => {
    await browser?.close();
    for (const i of [master, slave]) await i?.stop();
    await up?.close();
  });

  async function signedIn(i: Instance, username: string, viewport = { width: 1280, height: 800 }): Promise<Page> {
    const page = await browser.newPage({ viewport });
    await page.goto(consoleUrl(i));
    await page.getByLabel("Username").fill(username);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Proxy hosts" }).waitFor();
    return page;
  }

  it("serves the app with a strict Content-Security-Policy and nothing from elsewhere", async () => {
    const res = await fetch(consoleUrl(master));
    assert.equal(res.status, 200);
    const csp = res.headers.get("content-security-policy") ?? "";
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(await res.text(), /https?:\/\//);
  });

  it("a wrong password is refused, and then limited even with the right one", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(consoleUrl(master));
    await page.screenshot({ path: path.join(IMAGES, "console-sign-in.png") });
    const attempt = async (password: string) => {
      await page.getByLabel("Username").fill("mallory");
      await page.getByLabel("Password").fill(password);
      await page.getByRole("button", { name: "Sign in" }).click();
      return page.getByRole("alert").filter({ hasText: /\S/ }).first();
    };
    for (let n = 0; n < 5; n++) {
      const alert = await attempt("not the password at all");
      await alert.waitFor();
      assert.equal(await alert.textContent(), "wrong username or password");
      await page.getByRole("button", { name: "Sign in" }).isEnabled();
      await page.evaluate(() => document.querySelectorAll('[role="alert"]').forEach((e) => (e.textContent = "")));
    }
    const alert = await attempt(PASSWORD);
    await alert.waitFor();
    assert.match((await alert.textContent()) ?? "", /too many failed sign-ins for this user: try again in \d+ s/);
    assert.deepEqual(await page.context().cookies(), []);
    await page.close();
  });

  it("an admin creates a proxy host on the master and the slave's Caddy serves it", async () => {
    const page = await signedIn(master, "alice");
    const cookie = (await page.context().cookies()).find((c) => c.name === "cpm_session")!;
    assert.ok(cookie.httpOnly && cookie.secure && cookie.sameSite === "Strict", JSON.stringify(cookie));
    assert.ok(cookie.expires > Date.now() / 1000 + 3600, "the session expires");
    await page.getByRole("button", { name: "New proxy host" }).click();
    await page.getByLabel("Name").fill("web");
    await page.getByLabel("Domains").fill("web.console.test");
    await page.getByLabel("Upstreams").fill(`127.0.0.1:${up.port}`);
    await page.screenshot({ path: path.join(IMAGES, "console-proxy-host-form.png") });
    await page.getByRole("button", { name: "Create" }).click();
    await page.getByRole("cell", { name: "web.console.test" }).waitFor();
    await slave.waitServes("web.console.test", /upstream=U/);
    for (let i = 0; i < 30; i++) {
      // More hosts, for the list's search and paging.
      await unary(
        master.config.createProxyHost.bind(master.config),
        {
          proxyHost: ProxyHost.fromPartial({
            name: `app-${String(i).padStart(2, "0")}`,
            domains: [`app${i}.console.test`],
            upstreams: [`127.0.0.1:${up.port}`],
          }),
        },
        master.adminToken,
      );
    }
    await page.reload();
    await page.getByText("Page 1 of 2 · 31 of 31 proxy hosts").waitFor();
    await page.screenshot({ path: path.join(IMAGES, "console-proxy-hosts.png"), fullPage: true });
    await page.getByLabel("Search").fill("app1");
    await page.getByText("Page 1 of 1 · 11 of 31 proxy hosts").waitFor();
    await page.getByLabel("Search").fill("");
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByText("Page 2 of 2").waitFor();
    await page.close();
  });

  it("a bad domain shows the API's error beside the field, and the version does not move", async () => {
    const page = await signedIn(master, "alice");
    const before = await master.version();
    await page.getByRole("button", { name: "New proxy host" }).click();
    await page.getByLabel("Name").fill("bad");
    await page.getByLabel("Domains").fill("not a domain!");
    await page.getByLabel("Upstreams").fill(`127.0.0.1:${up.port}`);
    await page.getByRole("button", { name: "Create" }).click();
    const domains = page.getByLabel("Domains");
    const errorId = await domains.getAttribute("aria-describedby");
    const error = page.locator(`#${errorId}`);
    await waitFor(async () => /\S/.test((await error.textContent()) ?? ""), "the field error", 10_000, 50);
    assert.match((await error.textContent()) ?? "", /^proxy_host\.domains\[0\]: /);
    await page.screenshot({ path: path.join(IMAGES, "console-field-error.png") });
    assert.equal(await master.version(), before);
    await page.close();
  });

  it("the fleet page shows the slave connected and on the master's version", async () => {
    const page = await signedIn(master, "alice");
    await page.getByRole("link", { name: "Fleet" }).click();
    const v = await master.version();
    const row = page.locator('tr[data-slave="edge-1"]');
    await row.getByText("connected", { exact: true }).waitFor({ timeout: 10_000 });
    await row.getByText(`${v} / ${v}`).waitFor({ timeout: 10_000 });
    await page.screenshot({ path: path.join(IMAGES, "console-fleet.png") });
    await page.close();
  });

  it("a viewer sees everything and can edit nothing, not even by calling the API itself", async () => {
    const page = await signedIn(master, "victor");
    await page.getByLabel("Search").fill("web.console");
    await page.getByRole("cell", { name: "web.console.test" }).waitFor();
    assert.equal(await page.getByRole("button", { name: "New proxy host" }).count(), 0);
    assert.equal(await page.getByRole("button", { name: /^Edit / }).count(), 0);
    const res = await page.evaluate(async () => {
      const r = await fetch("/api/cpm.config.v1.ConfigService/CreateProxyHost", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ proxyHost: { name: "x", domains: ["x.test"], upstreams: ["127.0.0.1:1"] } }),
      });
      return { status: r.status, body: (await r.json()) as { code: string } };
    });
    assert.equal(res.status, 403);
    assert.equal(res.body.code, "permission_denied");
    // Signing out revokes the token: the cookie is gone and the API refuses the old token.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    assert.deepEqual(await page.context().cookies(), []);
    await page.close();
  });

  it("a slave's console is read-only with a banner naming its master, at phone width too", async () => {
    const info = await master.info();
    const page = await signedIn(slave, "sam", { width: 390, height: 844 });
    const banner = page.getByRole("status").filter({ hasText: "Read-only" });
    await banner.waitFor();
    assert.match((await banner.textContent()) ?? "", new RegExp(`slave of master ${info.instanceId}`));
    await page.getByLabel("Search").fill("web.console");
    await page.getByRole("cell", { name: "web.console.test" }).waitFor();
    assert.equal(await page.getByRole("button", { name: "New proxy host" }).count(), 0);
    await page.screenshot({ path: path.join(IMAGES, "console-slave-phone.png"), fullPage: true });
    await page.close();
  });
});
