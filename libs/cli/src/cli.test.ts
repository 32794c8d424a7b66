// The cpm CLI against a real config-service started in-process on 127.0.0.1:0: what an
// operator sees (tables, JSON, YAML), exit codes, field-named errors, export and import.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { ADMIN, selfSignedCertificate, startConfigService, type Harness } from "@cpm/config-service/testing";
import { ExitCode, runCli } from "./index.ts";

const tmp = mkdtempSync(path.join(tmpdir(), "cpm-cli-test-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
let files = 0;
const file = (content: string, ext = "yaml") => {
  const p = path.join(tmp, `f${++files}.${ext}`);
  writeFileSync(p, content);
  return p;
};

/** Runs cpm in-process against `h`; returns exit code, stdout and stderr. */
async function cpm(h: Harness, args: string[], env: NodeJS.ProcessEnv = {}) {
  let out = "";
  let err = "";
  const code = await runCli(args, {
    stdout: (s) => (out += s),
    stderr: (s) => (err += s),
    env: { XDG_CONFIG_HOME: path.join(tmp, "no-config"), CPM_API: h.apiAddress, CPM_TOKEN: ADMIN, ...env },
  });
  return { code, out, err };
}

describe("cpm against config-service", () => {
  let h: Harness;
  before(async () => {
    h = await startConfigService();
  });
  after(async () => h.close());

  it("--version prints this release (the root package.json's version)", async () => {
    const root = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
      version: string;
    };
    const r = await cpm(h, ["--version"]);
    assert.equal(r.code, ExitCode.OK);
    assert.equal(r.out, `cpm ${root.version}\n`);
  });

  it("creates resources from flags, lists them as a table, JSON and YAML, references by name", async () => {
    const site = selfSignedCertificate("site.test");
    const cert = file(site.cert, "pem");
    const key = file(site.key, "pem");
    assert.equal(
      (
        await cpm(h, [
          "certificate",
          "create",
          "--name",
          "site",
          "--type",
          "imported",
          "--cert-file",
          cert,
          "--key-file",
          key,
        ])
      ).code,
      ExitCode.OK,
    );
    assert.equal(
      (
        await cpm(h, [
          "access-list",
          "create",
          "--name",
          "office",
          "--allow",
          "203.0.113.0/24",
          "--user",
          "ops:a long passphrase",
        ])
      ).code,
      ExitCode.OK,
    );
    const created = await cpm(h, [
      "proxy-host",
      "create",
      "--name",
      "www",
      "--domain",
      "site.test",
      "--upstream",
      "10.0.0.5:8080",
      "--certificate",
      "site",
      "--access-list",
      "office",
      "--ssl-forced",
    ]);
    assert.equal(created.code, ExitCode.OK, created.err);
    assert.match(created.out, /^created proxy host "www" \(id [0-9a-f-]+, version 3\)\n$/);
    await cpm(h, [
      "proxy-host",
      "create",
      "--name",
      "api",
      "--domain",
      "api.example.com",
      "--upstream",
      "10.0.0.6:8080",
      "--no-enabled",
    ]);

    const table = await cpm(h, ["proxy-host", "list"]);
    assert.equal(
      table.out,
      [
        "NAME  DOMAINS          UPSTREAMS      CERTIFICATE  ACCESS LIST  ENABLED",
        "api   api.example.com  10.0.0.6:8080  -            -            no",
        "www   site.test        10.0.0.5:8080  site         office       yes",
        "",
      ].join("\n"),
    );
    const searched = await cpm(h, ["proxy-host", "list", "--query", "API.example"]);
    assert.deepEqual(
      searched.out
        .split("\n")
        .slice(1, -1)
        .map((l) => l.split(" ")[0]),
      ["api"],
    );
    const tooLong = await cpm(h, ["proxy-host", "list", "--query", "x".repeat(201)]);
    assert.equal(tooLong.code, ExitCode.INVALID);
    assert.match(tooLong.err, /query: /);
    const json = JSON.parse((await cpm(h, ["proxy-host", "list", "-o", "json"])).out) as Record<string, unknown>[];
    assert.deepEqual(
      json.map(({ id: _id, ...rest }) => rest),
      [
        { name: "api", domains: ["api.example.com"], upstreams: ["10.0.0.6:8080"], enabled: false },
        {
          name: "www",
          domains: ["site.test"],
          upstreams: ["10.0.0.5:8080"],
          certificate: "site",
          access_list: "office",
          ssl_forced: true,
          enabled: true,
        },
      ],
    );
    const yaml = parse((await cpm(h, ["--output", "yaml", "proxy-host", "get", "www"])).out) as Record<string, unknown>;
    assert.equal(yaml.certificate, "site");

    const updated = await cpm(h, ["proxy-host", "update", "www", "--upstream", "10.0.0.9:8080", "--no-ssl-forced"]);
    assert.equal(updated.code, ExitCode.OK, updated.err);
    const www = parse((await cpm(h, ["proxy-host", "get", "www", "-o", "yaml"])).out) as Record<string, unknown>;
    assert.deepEqual([www.upstreams, www.ssl_forced, www.certificate], [["10.0.0.9:8080"], undefined, "site"]);

    assert.equal((await cpm(h, ["proxy-host", "update", "www", "--compression"])).code, ExitCode.OK);
    const compressed = await cpm(h, ["proxy-host", "get", "www"]);
    assert.match(compressed.out, /^compression: true$/m);
    assert.equal((await cpm(h, ["proxy-host", "update", "www", "--no-compression"])).code, ExitCode.OK);
    const plain = parse((await cpm(h, ["proxy-host", "get", "www", "-o", "yaml"])).out) as Record<string, unknown>;
    assert.deepEqual([plain.compression, plain.upstreams], [undefined, ["10.0.0.9:8080"]]);
  });

  it("exit codes: usage 1, not found 2, invalid argument 3 with the server's field-named message, auth 4, unavailable 5", async () => {
    assert.equal((await cpm(h, ["proxy-host", "frobnicate"])).code, ExitCode.USAGE);
    assert.equal((await cpm(h, ["proxy-host", "create", "--load-balancing", "fastest"])).code, ExitCode.USAGE);

    const missing = await cpm(h, ["proxy-host", "get", "nope"]);
    assert.deepEqual([missing.code, missing.err], [ExitCode.NOT_FOUND, 'cpm: proxy host "nope" not found\n']);

    const bad = await cpm(h, [
      "proxy-host",
      "create",
      "--name",
      "bad",
      "--domain",
      "exa mple.com",
      "--upstream",
      "10.0.0.1:80",
    ]);
    assert.equal(bad.code, ExitCode.INVALID);
    assert.match(
      bad.err,
      /^cpm: proxy_host\.domains\[0\]: "exa mple\.com" is not a valid host name.*\(INVALID_ARGUMENT\)\n$/,
    );

    const badFile = await cpm(h, ["proxy-host", "create", "-f", file("name: x\ndomain: [a.example.com]\n")]);
    assert.equal(badFile.code, ExitCode.INVALID);
    assert.match(badFile.err, /^cpm: proxy_host\.domain: unknown field/);

    const noToken = await cpm(h, ["proxy-host", "list"], { CPM_TOKEN: "" });
    assert.equal(noToken.code, ExitCode.AUTH);
    assert.match(noToken.err, /no API token/);
    const wrong = await cpm(h, ["proxy-host", "list"], { CPM_TOKEN: "wrong-token-0123456789" });
    assert.deepEqual([wrong.code, /UNAUTHENTICATED/.test(wrong.err)], [ExitCode.AUTH, true]);

    const down = await cpm(h, ["proxy-host", "list"], { CPM_API: "127.0.0.1:1" });
    assert.deepEqual([down.code, /UNAVAILABLE/.test(down.err)], [ExitCode.UNAVAILABLE, true]);
  });

  it("reads address and token from the config file in $XDG_CONFIG_HOME/cpm; flags win over it", async () => {
    const home = path.join(tmp, "xdg");
    mkdirSync(path.join(home, "cpm"), { recursive: true });
    writeFileSync(path.join(home, "cpm", "config.yaml"), `api: ${h.apiAddress}\ntoken: ${ADMIN}\n`);
    const r = await runCli(["proxy-host", "list", "-o", "json"], {
      stdout: () => {},
      stderr: () => {},
      env: { XDG_CONFIG_HOME: home },
    });
    assert.equal(r, ExitCode.OK);
    const flagged = await runCli(["--token", "wrong-token-0123456789", "proxy-host", "list"], {
      stdout: () => {},
      stderr: () => {},
      env: { XDG_CONFIG_HOME: home },
    });
    assert.equal(flagged, ExitCode.AUTH);
  });

  it("users and tokens: a token made by the CLI works and is refused once revoked", async () => {
    assert.equal((await cpm(h, ["user", "create", "alice", "--role", "viewer"])).code, ExitCode.OK);
    const made = await cpm(h, [
      "token",
      "create",
      "alice-cli",
      "--role",
      "viewer",
      "--user",
      "alice",
      "--expires",
      "30d",
      "-o",
      "json",
    ]);
    assert.equal(made.code, ExitCode.OK, made.err);
    const secret = (JSON.parse(made.out) as { secret: string }).secret;
    assert.equal((await cpm(h, ["proxy-host", "list"], { CPM_TOKEN: secret })).code, ExitCode.OK);
    const write = await cpm(h, ["proxy-host", "delete", "www"], { CPM_TOKEN: secret });
    assert.deepEqual([write.code, /PERMISSION_DENIED/.test(write.err)], [ExitCode.AUTH, true]);
    assert.match(
      (await cpm(h, ["token", "list"])).out,
      /^NAME +ROLE +PREFIX +EXPIRES +REVOKED +ID\n(.*\n)*alice-cli +viewer /m,
    );
    assert.equal((await cpm(h, ["token", "revoke", "alice-cli"])).code, ExitCode.OK);
    assert.equal((await cpm(h, ["proxy-host", "list"], { CPM_TOKEN: secret })).code, ExitCode.AUTH);
  });

  it("the built binary exits with the documented code (a real process)", async () => {
    const main = path.join(path.dirname(fileURLToPath(import.meta.url)), "main.ts");
    const code = await new Promise<number>((resolve) => {
      const p = execFile(
        process.execPath,
        ["--conditions=cpm-source", "--import", "tsx", main, "proxy-host", "get", "nope"],
        {
          env: {
            ...process.env,
            CPM_API: h.apiAddress,
            CPM_TOKEN: ADMIN,
            XDG_CONFIG_HOME: path.join(tmp, "no-config"),
          },
        },
      );
      p.on("exit", (c) => resolve(c ?? -1));
    });
    assert.equal(code, ExitCode.NOT_FOUND);
  });
});

describe("cpm export and import", () => {
  let source: Harness;
  let target: Harness;
  before(async () => {
    source = await startConfigService();
    target = await startConfigService();
  });
  after(async () => {
    await source.close();
    await target.close();
  });

  const version = async (h: Harness) =>
    (await cpm(h, ["proxy-host", "list"])).code === ExitCode.OK && (await h.store.info()).version;

  it("round trip: export, import into an empty instance in one version, export again gives the same bytes", async () => {
    const site = selfSignedCertificate("shop.test");
    await cpm(source, [
      "certificate",
      "create",
      "--name",
      "shop",
      "--type",
      "imported",
      "--cert-file",
      file(site.cert, "pem"),
      "--key-file",
      file(site.key, "pem"),
    ]);
    await cpm(source, ["certificate", "create", "--name", "internal", "--type", "managed", "--domain", "app.internal"]);
    await cpm(source, [
      "access-list",
      "create",
      "--name",
      "office",
      "--allow",
      "203.0.113.0/24",
      "--deny",
      "203.0.113.7",
      "--user",
      "ops:a long passphrase",
      "--satisfy",
      "all",
    ]);
    await cpm(source, [
      "proxy-host",
      "create",
      "--name",
      "shop",
      "--domain",
      "shop.test",
      "--upstream",
      "10.0.0.5:8080",
      "--certificate",
      "shop",
      "--access-list",
      "office",
      "--hsts",
      "--compression",
    ]);
    await cpm(source, [
      "proxy-host",
      "create",
      "--name",
      "app",
      "--domain",
      "app.internal",
      "--upstream",
      "https://10.0.0.6:8443",
      "--certificate",
      "internal",
      "--load-balancing",
      "least_conn",
    ]);
    await cpm(source, ["l4-host", "create", "--name", "db", "--listen", ":5432", "--upstream", "10.0.0.7:5432"]);
    await cpm(source, [
      "settings",
      "update",
      "-f",
      file("general:\n  acme_email: ops@example.com\nhttp:\n  upstream_dial_timeout_seconds: 5\n"),
    ]);

    const first = await cpm(source, ["export", "--include-private-keys"]);
    assert.equal(first.code, ExitCode.OK, first.err);
    const doc = parse(first.out) as Record<string, unknown>;
    assert.deepEqual(Object.keys(doc), ["settings", "certificates", "access_lists", "proxy_hosts", "l4_proxy_hosts"]);
    assert.deepEqual(
      (doc.proxy_hosts as { name: string }[]).map((x) => x.name),
      ["app", "shop"],
    );
    assert.doesNotMatch(first.out, /\bid:/);
    assert.deepEqual(
      (doc.proxy_hosts as { compression?: boolean }[]).map((x) => x.compression),
      [undefined, true],
    );
    assert.match(first.out, /password_hash: \$2[aby]\$/);

    assert.equal(await version(target), 0);
    const imported = await cpm(target, ["import", file(first.out)]);
    assert.equal(imported.code, ExitCode.OK, imported.err);
    assert.match(
      imported.out,
      /^\+ certificate internal\n\+ certificate shop\n\+ access_list office\n\+ proxy_host app\n\+ proxy_host shop\n\+ l4_proxy_host db\n~ settings\n7 changes committed as version 1\n$/,
    );
    assert.equal(await version(target), 1);

    const second = await cpm(target, ["export", "--include-private-keys"]);
    assert.equal(second.out, first.out);
    // JSON is the same document.
    assert.deepEqual(JSON.parse((await cpm(target, ["export", "--include-private-keys", "-o", "json"])).out), doc);
  });

  it("without --include-private-keys no key leaves, and an import keeps the stored key", async () => {
    const out = (await cpm(source, ["export"])).out;
    assert.doesNotMatch(out, /PRIVATE KEY/);
    const r = await cpm(target, ["import", file(out)]);
    assert.equal(r.code, ExitCode.OK, r.err);
    assert.equal(r.out, "no changes; still version 1\n");
  });

  it("--dry-run prints added, changed and removed and writes nothing; a bad document names the field and writes nothing", async () => {
    const doc = parse((await cpm(target, ["export"])).out) as {
      proxy_hosts: Record<string, unknown>[];
      l4_proxy_hosts: unknown[];
    };
    doc.proxy_hosts[0]!.upstreams = ["10.0.0.99:8080"];
    doc.proxy_hosts.push({ name: "new", domains: ["new.example.com"], upstreams: ["10.0.0.8:80"] });
    doc.l4_proxy_hosts = [];
    const dry = await cpm(target, ["import", "--dry-run", file(JSON.stringify(doc), "json")]);
    assert.equal(dry.code, ExitCode.OK, dry.err);
    assert.equal(
      dry.out,
      "+ proxy_host new\n~ proxy_host app\n- l4_proxy_host db\n3 changes; dry run, nothing written\n",
    );
    const asYaml = parse(
      (await cpm(target, ["import", "--dry-run", "-o", "yaml", file(JSON.stringify(doc), "json")])).out,
    ) as Record<string, unknown>;
    assert.deepEqual(asYaml.proxy_hosts, { added: ["new"], changed: ["app"], removed: [] });
    assert.equal(asYaml.committed, false);
    assert.equal(await version(target), 1);

    doc.proxy_hosts[1]!.certificate = "gone";
    const bad = await cpm(target, ["import", file(JSON.stringify(doc), "json")]);
    assert.equal(bad.code, ExitCode.INVALID);
    assert.match(bad.err, /^cpm: config\.proxy_hosts\[1\]\.certificate_id: no certificate named "gone"/);
    const typo = await cpm(target, ["import", file("proxy_hosts:\n  - name: x\n    upstream: [a]\n")]);
    assert.deepEqual(
      [typo.code, typo.err.split(" (known")[0]],
      [ExitCode.INVALID, "cpm: config.proxy_hosts[0].upstream: unknown field"],
    );
    assert.equal(await version(target), 1);
  });
});
