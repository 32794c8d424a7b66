// The web console in a real browser (Debian's Chromium through playwright-core): a master and
// a slave, each a whole node with its own Caddy, each serving its console.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it, type TestContext } from "node:test";
import type { Browser, Page } from "playwright-core";
import { AccessListSatisfy, CertificateStatus, CertificateType, L4Protocol, ProxyHost, Role } from "@cpm/proto";
import { unary } from "@cpm/grpc-kit";
import { startAcmeCa, type AcmeCa } from "../support/acme-ca.ts";
import { consoleUrl, launchChromium, signIn } from "../support/browser.ts";
import { Instance } from "../support/instance.ts";
import { freePort, startUpstream } from "../support/net.ts";
import { makePki, selfSigned, type TestPki } from "../support/tls.ts";
import { waitFor } from "../support/wait.ts";

const IMAGES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../docs/images");
const SYNC_TOKEN = "console-slave-sync-token-0123456789";
const PASSWORD = "correct horse battery staple";

describe("web console in Chromium: sign-in, every page, fleet, roles, a slave", () => {
  let pki: TestPki;
  let master: Instance;
  let slave: Instance;
  let browser: Browser;
  let up: Awaited<ReturnType<typeof startUpstream>>;

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
    browser = await launchChromium();
    mkdirSync(IMAGES, { recursive: true });
  });

  after(async () => {
    await browser?.close();
    for (const i of [master, slave]) await i?.stop();
    await up?.close();
  });

  async function signedIn(i: Instance, username: string, viewport = { width: 1280, height: 800 }): Promise<Page> {
    const page = await browser.newPage({ viewport });
    await signIn(page, i, username, PASSWORD);
    await page.getByRole("heading", { name: "Proxy hosts" }).waitFor();
    return page;
  }

  /** Opens a page from the menu and waits for its heading. */
  async function visit(page: Page, name: string): Promise<void> {
    await page.getByRole("navigation").getByRole("link", { name, exact: true }).click();
    await page.getByRole("heading", { name, exact: true }).waitFor();
  }

  /** Presses Tab until the control named `name` has the focus (it is reachable by keyboard). */
  async function tabTo(page: Page, name: string): Promise<void> {
    for (let n = 0; n < 60; n++) {
      await page.keyboard.press("Tab");
      const focused = await page.evaluate(
        () => document.activeElement?.getAttribute("aria-label") ?? document.activeElement?.textContent ?? "",
      );
      if (focused === name) return;
    }
    assert.fail(`${name} is not reachable with Tab`);
  }

  const shot = (page: Page, name: string, fullPage = false) =>
    page.screenshot({ path: path.join(IMAGES, `console-${name}.png`), fullPage });

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
    // The form is drawn by the app's script: a shot taken at load is a blank page.
    await page.getByRole("button", { name: "Sign in" }).waitFor();
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
    const release = (await slave.info()).release;
    assert.ok(release, "the slave announces its release");
    await row.locator('td[data-label="Release"]').getByText(release, { exact: true }).waitFor();
    await row.locator('td[data-label="Compatibility"]').getByText("ok", { exact: true }).waitFor();
    const status = await unary(master.dispatcher.getSyncStatus.bind(master.dispatcher), {}, master.adminToken);
    const served = status.certificates.filter((c) =>
      c.slaves.some((x) => x.slaveName === "edge-1" && x.servesCurrent),
    ).length;
    await row
      .locator('td[data-label="Certificates served"]')
      .getByText(`${served} of ${status.certificates.length}`, { exact: true })
      .waitFor();
    await page.close();
  });

  it("the fleet page shows a killed slave disconnected within 5 s, and connected again after its restart", async () => {
    const page = await signedIn(master, "alice");
    await page.getByRole("link", { name: "Fleet" }).click();
    const row = page.locator('tr[data-slave="edge-1"]');
    await row.getByText("connected", { exact: true }).waitFor({ timeout: 10_000 });
    await slave.kill();
    const killedAt = Date.now();
    await row.getByText("disconnected", { exact: true }).waitFor({ timeout: 5_000 });
    assert.ok(Date.now() - killedAt <= 5_000, `disconnected shown after ${Date.now() - killedAt} ms`);
    await slave.restart();
    await row.getByText("connected", { exact: true }).waitFor({ timeout: 30_000 });
    const v = await master.version();
    await row.getByText(`${v} / ${v}`).waitFor({ timeout: 30_000 });
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
  it("L4 hosts: the API's error beside the listen address, then one created and deleted through the page", async () => {
    const page = await signedIn(master, "alice");
    await visit(page, "L4 hosts");
    const before = await master.version();
    await page.getByRole("button", { name: "New L4 host" }).click();
    await page.getByLabel("Name", { exact: true }).fill("db");
    await page.getByLabel("Listen address", { exact: true }).fill("not an address");
    await page.getByLabel("Upstreams", { exact: true }).fill(`127.0.0.1:${up.port}`);
    await page.getByRole("button", { name: "Create" }).click();
    const error = page.locator(
      `#${await page.getByLabel("Listen address", { exact: true }).getAttribute("aria-describedby")}`,
    );
    await waitFor(async () => /\S/.test((await error.textContent()) ?? ""), "the field error", 10_000, 50);
    assert.match((await error.textContent()) ?? "", /^l4_proxy_host\.listen_address: /);
    assert.equal(await master.version(), before);
    const port = await freePort();
    await page.getByLabel("Listen address", { exact: true }).fill(`127.0.0.1:${port}`);
    await page.getByRole("button", { name: "Create" }).click();
    await page.locator('tr[data-name="db"]').getByText(`TCP 127.0.0.1:${port}`).waitFor();
    await shot(page, "l4-hosts");
    const hosts = await unary(master.config.listL4ProxyHosts.bind(master.config), {}, master.adminToken);
    const db = hosts.l4ProxyHosts.find((x) => x.name === "db");
    assert.ok(db, "the API lists the L4 host");
    assert.equal(db.protocol, L4Protocol.L4_PROTOCOL_TCP);
    assert.deepEqual(db.upstreams, [`127.0.0.1:${up.port}`]);
    // Deleted through the page (the slave's Caddy would bind the same port).
    page.once("dialog", (d) => void d.accept());
    await page.getByRole("button", { name: "Delete db" }).click();
    await page.getByText("No l4 hosts yet.").waitFor();
    const after = await unary(master.config.listL4ProxyHosts.bind(master.config), {}, master.adminToken);
    assert.equal(after.l4ProxyHosts.length, 0);
    await page.close();
  });

  it("certificates: one imported from PEM text areas, a managed one with its status", async () => {
    const page = await signedIn(master, "alice");
    await visit(page, "Certificates");
    const pem = selfSigned(mkdtempSync(path.join(os.tmpdir(), "cpm-cert-")), "imported", ["DNS:imported.console.test"]);
    // By keyboard: Tab to the button, Enter opens the form with the focus on its first field.
    await tabTo(page, "New certificate");
    await page.keyboard.press("Enter");
    await page.keyboard.type("imported");
    assert.equal(await page.getByLabel("Name", { exact: true }).inputValue(), "imported");
    assert.ok(await page.getByLabel("Certificate PEM", { exact: true }).isHidden(), "no PEM for a managed one");
    await page.getByLabel("Type", { exact: true }).selectOption({ label: "imported (PEM below)" });
    assert.ok(
      await page.getByLabel("Domain names", { exact: true }).isHidden(),
      "an imported one's names are its PEM's",
    );
    await page.getByLabel("Certificate PEM", { exact: true }).fill(pem.cert);
    await page.getByLabel("Private key PEM", { exact: true }).fill(pem.key);
    await shot(page, "certificate-import");
    await page.getByRole("button", { name: "Create" }).click();
    const row = page.locator('tr[data-name="imported"]');
    await row.getByText("imported.console.test").waitFor();
    assert.notEqual(await row.locator('td[data-label="Expires"]').textContent(), "not issued");
    await page.getByRole("button", { name: "New certificate" }).click();
    await page.getByLabel("Name", { exact: true }).fill("managed");
    await page.getByLabel("Domain names", { exact: true }).fill("managed.console.test");
    await page.getByRole("button", { name: "Create" }).click();
    await page
      .locator('tr[data-name="managed"] td[data-label="Status"]')
      .getByText(/^(PENDING|ISSUED|RENEWING|FAILED)$/)
      .waitFor();
    await shot(page, "certificates");
    const { certificates } = await unary(
      master.config.listCertificates.bind(master.config),
      { includePrivateKeys: false },
      master.adminToken,
    );
    const imported = certificates.find((c) => c.name === "imported");
    assert.equal(imported?.type, CertificateType.CERTIFICATE_TYPE_IMPORTED);
    assert.deepEqual(imported?.domainNames, ["imported.console.test"]);
    const managed = certificates.find((c) => c.name === "managed");
    assert.equal(managed?.type, CertificateType.CERTIFICATE_TYPE_MANAGED);
    assert.deepEqual(managed?.domainNames, ["managed.console.test"]);
    await page.close();
  });

  it("access lists: one created through the page, and an edit keeps its user's password", async () => {
    const page = await signedIn(master, "alice");
    await visit(page, "Access lists");
    await page.getByRole("button", { name: "New access list" }).click();
    await page.getByLabel("Name", { exact: true }).fill("office");
    await page.getByLabel("Allow", { exact: true }).fill("10.0.0.0/8");
    await page.getByLabel("Basic-auth users", { exact: true }).fill("bob:a long enough password");
    await page.getByLabel("Satisfy", { exact: true }).selectOption({ label: "all (an allowed address and a user)" });
    await page.getByRole("button", { name: "Create" }).click();
    await page.locator('tr[data-name="office"]').getByText("10.0.0.0/8").waitFor();
    await shot(page, "access-lists");
    const { accessLists } = await unary(master.config.listAccessLists.bind(master.config), {}, master.adminToken);
    const office = accessLists.find((x) => x.name === "office");
    assert.deepEqual(office?.allow, ["10.0.0.0/8"]);
    assert.equal(office?.satisfy, AccessListSatisfy.ACCESS_LIST_SATISFY_ALL);
    assert.deepEqual(
      office?.users.map((u) => u.username),
      ["bob"],
    );
    // An edit that names bob alone keeps his password (a user without one would be refused).
    await page.getByRole("button", { name: "Edit office" }).click();
    assert.equal(await page.getByLabel("Basic-auth users", { exact: true }).inputValue(), "bob");
    await page.getByLabel("Description", { exact: true }).fill("the office network");
    await page.getByRole("button", { name: "Save" }).click();
    await page.locator('tr[data-name="office"]').getByText("the office network").waitFor();
    const edited = await unary(master.config.getAccessList.bind(master.config), { id: office.id }, master.adminToken);
    assert.equal(edited.accessList?.description, "the office network");
    await page.close();
  });

  it("settings: saved through the page", async () => {
    const page = await signedIn(master, "alice");
    await visit(page, "Settings");
    await page.getByLabel("ACME account email", { exact: true }).fill("ops@console.test");
    await page.getByLabel("Upstream dial timeout (seconds)", { exact: true }).fill("7");
    await page.getByRole("button", { name: "Save settings" }).click();
    await page.getByText(/^Saved: version \d+\.$/).waitFor();
    await shot(page, "settings", true);
    const { settings } = await unary(master.config.getSettings.bind(master.config), {}, master.adminToken);
    assert.equal(settings?.general?.acmeEmail, "ops@console.test");
    assert.equal(settings?.http?.upstreamDialTimeoutSeconds, 7);
    await page.close();
  });

  it("users and API tokens: a user created, a token created whose secret is shown once and works", async () => {
    const page = await signedIn(master, "alice");
    await visit(page, "Users");
    await page.getByRole("button", { name: "New user" }).click();
    await page.getByLabel("Username", { exact: true }).fill("carol");
    await page.getByLabel("Role", { exact: true }).selectOption({ label: "viewer" });
    await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
    await page.getByRole("button", { name: "Create" }).click();
    await page.locator('tr[data-name="carol"]').getByText("viewer").waitFor();
    await shot(page, "users");
    const { users } = await unary(master.account.listUsers.bind(master.account), {}, master.adminToken);
    assert.equal(users.find((u) => u.username === "carol")?.role, Role.ROLE_VIEWER);

    await visit(page, "API tokens");
    await page.getByRole("button", { name: "New API token" }).click();
    await page.getByLabel("Name", { exact: true }).fill("ci");
    await page.getByLabel("Role", { exact: true }).selectOption({ label: "viewer" });
    await page.getByRole("button", { name: "Create" }).click();
    const secret = await page.getByLabel("Secret of ci").inputValue();
    assert.ok(secret.length > 20, "the secret is shown");
    await shot(page, "token-secret");
    await page.getByRole("button", { name: "Close" }).click();
    await page.locator('tr[data-name="ci"]').getByText("active").waitFor();
    assert.equal(await page.getByText(secret).count(), 0, "the secret is not shown again");
    const me = await unary(master.account.whoAmI.bind(master.account), {}, secret);
    assert.equal(me.tokenName, "ci");
    assert.equal(me.role, Role.ROLE_VIEWER);
    await page.close();
  });

  it("a viewer reads every page it may see, with no control that writes", async () => {
    const page = await signedIn(master, "victor");
    for (const name of ["L4 hosts", "Certificates", "Access lists"]) {
      await visit(page, name);
      assert.equal(await page.getByRole("button", { name: /^New / }).count(), 0, name);
      assert.equal(await page.getByRole("button", { name: /^(Edit|Delete) / }).count(), 0, name);
    }
    await page.locator('tr[data-name="office"]').waitFor();
    await visit(page, "Settings");
    assert.ok(await page.getByLabel("ACME account email", { exact: true }).isDisabled());
    assert.equal(await page.getByRole("button", { name: "Save settings" }).count(), 0);
    assert.equal(await page.getByRole("link", { name: "Users" }).count(), 0);
    assert.equal(await page.getByRole("link", { name: "API tokens" }).count(), 0);
    await page.close();
  });

  it("a slave: synced kinds read-only, its own users writable", async () => {
    const page = await signedIn(slave, "sam");
    await visit(page, "Access lists");
    await page.locator('tr[data-name="office"]').waitFor({ timeout: 15_000 });
    assert.equal(await page.getByRole("button", { name: "New access list" }).count(), 0);
    await visit(page, "Certificates");
    assert.equal(await page.getByRole("button", { name: "New certificate" }).count(), 0);
    await visit(page, "Settings");
    assert.ok(await page.getByLabel("ACME account email", { exact: true }).isDisabled());
    await visit(page, "Users");
    await page.getByRole("button", { name: "New user" }).click();
    await page.getByLabel("Username", { exact: true }).fill("sue");
    await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
    await page.getByRole("button", { name: "Create" }).click();
    await page.locator('tr[data-name="sue"]').waitFor();
    const { users } = await unary(slave.account.listUsers.bind(slave.account), {}, slave.adminToken);
    assert.ok(users.some((u) => u.username === "sue"));
    await page.close();
  });
  it("the fleet page counts the master's issued certificates the slave serves", async () => {
    const page = await signedIn(master, "alice");
    await visit(page, "Fleet");
    const status = await unary(master.dispatcher.getSyncStatus.bind(master.dispatcher), {}, master.adminToken);
    assert.ok(status.certificates.length > 0, "the managed certificate is the master's to issue");
    const served = status.certificates.filter((c) =>
      c.slaves.some((x) => x.slaveName === "edge-1" && x.servesCurrent),
    ).length;
    await page
      .locator('tr[data-slave="edge-1"] td[data-label="Certificates served"]')
      .getByText(`${served} of ${status.certificates.length}`, { exact: true })
      .waitFor();
    await shot(page, "fleet");
    await page.close();
  });

  it("a managed certificate for a name the CA refuses shows FAILED with the CA's error, on master and slave", async (t: TestContext) => {
    // A real ACME CA (the project's Caddy as acme_server) that refuses the name at the order:
    // no HTTP-01 challenge is reached, so port 80 is not needed here.
    const NAME = "refused-console.localhost";
    let ca: AcmeCa;
    try {
      ca = await startAcmeCa({ names: [NAME], deny: [NAME] });
    } catch (e) {
      return t.skip(`needs a mount namespace for the test CA: ${(e as Error).message}`);
    }
    try {
      const { settings } = await unary(master.config.getSettings.bind(master.config), {}, master.adminToken);
      await unary(
        master.config.updateSettings.bind(master.config),
        { settings: { ...settings!, acme: { ...settings!.acme!, caUrl: ca.directoryUrl, caRootPem: ca.rootPem } } },
        master.adminToken,
      );
      const page = await signedIn(master, "alice");
      await visit(page, "Certificates");
      await page.getByRole("button", { name: "New certificate" }).click();
      await page.getByLabel("Name", { exact: true }).fill("refused");
      await page.getByLabel("Domain names", { exact: true }).fill(NAME);
      await page.getByRole("button", { name: "Create" }).click();
      await page.locator('tr[data-name="refused"]').waitFor();
      // Caddy orders only the certificates a host uses.
      const { certificates } = await unary(
        master.config.listCertificates.bind(master.config),
        { includePrivateKeys: false },
        master.adminToken,
      );
      const cert = certificates.find((c) => c.name === "refused")!;
      await unary(
        master.config.createProxyHost.bind(master.config),
        {
          proxyHost: ProxyHost.fromPartial({
            name: "refused",
            domains: [NAME],
            upstreams: [`127.0.0.1:${up.port}`],
            certificateId: cert.id,
          }),
        },
        master.adminToken,
      );
      const failed = await waitFor(
        async () => {
          const got = await unary(
            master.config.getCertificate.bind(master.config),
            { id: cert.id, includePrivateKey: false },
            master.adminToken,
          );
          return got.certificate?.status === CertificateStatus.CERTIFICATE_STATUS_FAILED ? got.certificate : undefined;
        },
        "the master records the failed order",
        120_000,
        500,
      );
      assert.match(
        failed.statusDetail,
        /^refused-console\.localhost: .*urn:ietf:params:acme:error:rejectedIdentifier - The server will not issue certificates for the identifier$/,
      );
      /** The row's status cell shows FAILED and, as text, the CA's error as the API records it. */
      const showsFailure = async (p: Page) => {
        const cell = p.locator('tr[data-name="refused"] td[data-label="Status"]');
        await waitFor(
          async () => {
            if ((await cell.getByText("FAILED", { exact: true }).count()) > 0) return true;
            await p.reload();
            await p.getByRole("heading", { name: "Certificates", exact: true }).waitFor();
            return undefined;
          },
          "the certificates page shows FAILED",
          30_000,
          1000,
        );
        const error = cell.locator(".error");
        assert.equal(await error.textContent(), failed.statusDetail, "the CA's error, word for word");
        assert.equal(await error.evaluate((e) => e.children.length), 0, "shown as text, not markup");
      };
      await showsFailure(page);
      await shot(page, "certificate-failed");
      await page.close();
      // The slave shows the master's record of it, read-only.
      const onSlave = await signedIn(slave, "sam");
      await visit(onSlave, "Certificates");
      await showsFailure(onSlave);
      await onSlave.close();
    } finally {
      await ca.stop();
    }
  });
});
